package redistest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

const (
	// startTimeout bounds how long a redis-server may take to answer PING.
	startTimeout = 10 * time.Second
	// stopTimeout bounds a graceful shutdown before SIGKILL.
	stopTimeout = 5 * time.Second
	// pollEvery is the readiness polling interval.
	pollEvery = 5 * time.Millisecond
)

// errPortInUse means another process holds the port: Start retries with another one.
var errPortInUse = errors.New("port in use")

// Options configures a redis-server started by Start.
type Options struct {
	// Args are extra redis-server arguments, e.g. {"--maxmemory", "64mb"}. They come after the
	// defaults and so override them.
	Args []string
	// Cluster enables cluster mode (node timeout 2000 ms); StartCluster sets it.
	Cluster bool
	// SentinelConfig, when set, starts a Sentinel (redis-server sentinel.conf --sentinel) whose
	// configuration file holds these lines; StartSentinel sets it.
	SentinelConfig string
}

// Server is one redis-server process on 127.0.0.1. Its methods are safe for concurrent use.
type Server struct {
	opts Options
	port int
	addr string

	mu     sync.Mutex
	dir    string        // private working directory; removed by Stop
	cmd    *exec.Cmd     // nil when not running
	done   chan struct{} // closed once cmd has been reaped
	pid    int
	runID  string
	client *redis.Client
}

// Start starts redis-server (found on PATH) on a free loopback port in a private temporary
// directory, with persistence off and DEBUG enabled, and returns once it answers. The caller
// must call Stop.
func Start(opts Options) (*Server, error) {
	if _, err := exec.LookPath("redis-server"); err != nil {
		return nil, errors.New("redistest: redis-server not found on PATH; install it (Debian/Ubuntu: apt-get install redis-server)")
	}
	var err error
	for range 8 {
		var port int
		port, err = freePort()
		if err != nil {
			return nil, err
		}
		s := &Server{opts: opts, port: port, addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port))}
		if err = s.launch(time.Now().Add(startTimeout)); err == nil {
			return s, nil
		}
		s.removeDir()
		if !errors.Is(err, errPortInUse) {
			return nil, err
		}
	}
	return nil, err
}

// Standalone starts a redis-server for t (extra redis-server arguments optional) and stops it
// when the test ends. It fails t, never skips it, when redis-server cannot start.
func Standalone(t testing.TB, args ...string) *Server {
	t.Helper()
	s, err := Start(Options{Args: args})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s
}

// Addr is the server's host:port on 127.0.0.1. It does not change across Restart.
func (s *Server) Addr() string { return s.addr }

// URL is redis://Addr/0, in the form REDIS_URL takes.
func (s *Server) URL() string { return "redis://" + s.addr + "/0" }

// Port is the server's TCP port; in cluster mode the bus listens on Port+10000.
func (s *Server) Port() int { return s.port }

// PID is the process id of the most recently started redis-server; it may have exited since.
func (s *Server) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pid
}

// RunID is the run_id of the most recently started redis-server, read when it became ready.
// Every start (Restart included) has a new one.
func (s *Server) RunID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.runID
}

// Running reports whether the process is alive (not killed, stopped or crashed).
func (s *Server) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return false
	}
	select {
	case <-s.done:
		return false
	default:
		return true
	}
}

// Client is a go-redis client for the server, created once and closed by Stop. It survives Kill
// and Restart: go-redis redials on the next command.
func (s *Server) Client() *redis.Client {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.client == nil {
		s.client = redis.NewClient(&redis.Options{Addr: s.addr})
	}
	return s.client
}

// Kill SIGKILLs the server (a crash, for fault tests) and waits until it is gone. Its directory
// is kept, so Restart brings back a cluster node with its identity (nodes.conf).
func (s *Server) Kill() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.killLocked()
}

// Stop shuts the server down (SIGTERM, then SIGKILL after 5 s), waits until the process is gone,
// closes Client and removes the server's directory. It is idempotent and safe to defer.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.client != nil {
		_ = s.client.Close()
		s.client = nil
	}
	if s.cmd != nil {
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.done:
			s.cmd = nil
		case <-time.After(stopTimeout):
			s.killLocked()
		}
	}
	s.removeDirLocked()
}

// Restart starts redis-server again on the same port (killing it first if it still runs): a new
// process with a new run_id. After Kill the directory (and a cluster node's nodes.conf) is
// reused; after Stop a fresh one is made. Without persistence the data set starts empty.
func (s *Server) Restart() error {
	s.mu.Lock()
	s.killLocked()
	s.mu.Unlock()
	// The port was ours a moment ago; TIME_WAIT does not stop redis (SO_REUSEADDR), but a
	// listener that grabbed it in between does, so retry until the deadline.
	deadline := time.Now().Add(startTimeout)
	for {
		err := s.launch(deadline)
		if err == nil || !errors.Is(err, errPortInUse) || time.Now().After(deadline) {
			return err
		}
	}
}

// RestartKeepingData restarts the server the way an operator does, keeping its data: it pauses
// writes (CLIENT PAUSE WRITE, so every write executed so far has had its reply sent, and no write
// runs without its client hearing of it), saves an RDB snapshot and exits (SHUTDOWN SAVE), then
// starts a new process on the same port and directory, which loads the snapshot: the same keys,
// values and TTLs under a new run_id. Writes sent meanwhile fail with a connection error and
// were not executed. Not for cluster nodes.
func (s *Server) RestartKeepingData() error {
	s.mu.Lock()
	done := s.done
	running := s.cmd != nil
	s.mu.Unlock()
	if !running {
		return fmt.Errorf("redistest: %s is not running", s.addr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), stopTimeout)
	defer cancel()
	admin := redis.NewClient(&redis.Options{Addr: s.addr, MaxRetries: -1})
	defer admin.Close()
	if err := admin.Do(ctx, "CLIENT", "PAUSE", stopTimeout.Milliseconds(), "WRITE").Err(); err != nil {
		return fmt.Errorf("redistest: CLIENT PAUSE on %s: %w", s.addr, err)
	}
	// SHUTDOWN answers only when it fails; on success the connection just closes.
	var rerr redis.Error
	if err := admin.Do(ctx, "SHUTDOWN", "SAVE").Err(); errors.As(err, &rerr) {
		return fmt.Errorf("redistest: SHUTDOWN SAVE on %s: %w", s.addr, err)
	}
	select {
	case <-done:
	case <-ctx.Done():
		return fmt.Errorf("redistest: %s did not exit within %v of SHUTDOWN SAVE", s.addr, stopTimeout)
	}
	return s.Restart()
}

func (s *Server) killLocked() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGKILL)
	<-s.done
	s.cmd = nil
}

func (s *Server) removeDir() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.removeDirLocked()
}

func (s *Server) removeDirLocked() {
	if s.dir != "" {
		_ = os.RemoveAll(s.dir)
		s.dir = ""
	}
}

func (s *Server) args() []string {
	if s.opts.SentinelConfig != "" {
		// Sentinel rewrites its configuration file, so it lives in the server's directory.
		return append([]string{filepath.Join(s.dir, "sentinel.conf"), "--sentinel",
			"--port", strconv.Itoa(s.port), "--bind", "127.0.0.1", "--daemonize", "no", "--dir", s.dir}, s.opts.Args...)
	}
	args := []string{
		"--port", strconv.Itoa(s.port),
		"--bind", "127.0.0.1",
		"--save", "",
		"--appendonly", "no",
		"--enable-debug-command", "yes",
		"--daemonize", "no",
		"--dir", s.dir,
		// Replicas sync at once instead of waiting 5 s for more replicas to join.
		"--repl-diskless-sync-delay", "0",
	}
	if s.opts.Cluster {
		args = append(args,
			"--cluster-enabled", "yes",
			"--cluster-config-file", "nodes.conf",
			"--cluster-node-timeout", "2000",
		)
	}
	return append(args, s.opts.Args...)
}

// launch starts the process and polls until it answers as itself (process_id matches: a server
// of someone else that took the port must not be mistaken for ours) or deadline passes.
func (s *Server) launch(deadline time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dir == "" {
		dir, err := os.MkdirTemp("", "redistest-*")
		if err != nil {
			return fmt.Errorf("redistest: %w", err)
		}
		s.dir = dir
	}
	if s.opts.SentinelConfig != "" {
		conf := filepath.Join(s.dir, "sentinel.conf")
		if _, err := os.Stat(conf); errors.Is(err, os.ErrNotExist) {
			if err := os.WriteFile(conf, []byte(s.opts.SentinelConfig), 0o600); err != nil {
				return fmt.Errorf("redistest: %w", err)
			}
		}
	}
	logPath := filepath.Join(s.dir, "redis.log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("redistest: %w", err)
	}
	cmd := exec.Command("redis-server", s.args()...)
	cmd.Dir = s.dir
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		_ = logFile.Close()
		return fmt.Errorf("redistest: start redis-server: %w", err)
	}
	_ = logFile.Close() // the child has its own descriptor
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	s.cmd, s.done, s.pid, s.runID = cmd, done, cmd.Process.Pid, ""

	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	var lastErr error
	for {
		select {
		case <-done:
			s.cmd = nil
			tail := logTail(logPath)
			if strings.Contains(tail, "Address already in use") {
				return fmt.Errorf("redistest: %s: %w", s.addr, errPortInUse)
			}
			return fmt.Errorf("redistest: redis-server on %s exited before answering (%s); log:\n%s", s.addr, cmd.ProcessState, tail)
		case <-tick.C:
		}
		fields, err := serverInfo(s.addr)
		if err == nil {
			if fields["process_id"] != strconv.Itoa(s.pid) {
				s.killLocked()
				return fmt.Errorf("redistest: %s answered as process %s, not ours: %w", s.addr, fields["process_id"], errPortInUse)
			}
			s.runID = fields["run_id"]
			return nil
		}
		lastErr = err
		if time.Now().After(deadline) {
			s.killLocked()
			return fmt.Errorf("redistest: redis-server on %s did not answer within %v: %v; log:\n%s", s.addr, startTimeout, lastErr, logTail(logPath))
		}
	}
}

// serverInfo reads INFO server over a fresh connection. It speaks RESP itself rather than using
// go-redis, whose dialer retries (5 × 100 ms) and logs every refused connection.
func serverInfo(addr string) (map[string]string, error) {
	conn, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(time.Second))
	if _, err := io.WriteString(conn, "*2\r\n$4\r\nINFO\r\n$6\r\nserver\r\n"); err != nil {
		return nil, err
	}
	r := bufio.NewReader(conn)
	line, err := r.ReadString('\n')
	if err != nil {
		return nil, err
	}
	line = strings.TrimRight(line, "\r\n")
	if !strings.HasPrefix(line, "$") {
		return nil, fmt.Errorf("INFO: %s", line) // e.g. -LOADING while starting
	}
	n, err := strconv.Atoi(line[1:])
	if err != nil || n < 0 {
		return nil, fmt.Errorf("INFO: bad reply %q", line)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return nil, err
	}
	return infoFields(string(body)), nil
}

// freePort picks a random port in [10000, 22000) whose cluster bus port (+10000) is free too.
// The range lies below Linux's ephemeral ports (32768+), so outgoing connections of other
// processes do not take it between the check and redis-server's bind; a race with another
// listener is caught by launch (errPortInUse) and retried.
func freePort() (int, error) {
	for range 100 {
		p := 10000 + rand.IntN(12000)
		if portFree(p) && portFree(p+10000) {
			return p, nil
		}
	}
	return 0, errors.New("redistest: no free loopback port found in 10000-22000")
}

func portFree(p int) bool {
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
	if err != nil {
		return false
	}
	_ = l.Close()
	return true
}

// infoFields parses INFO (or CLUSTER INFO) output into field: value pairs.
func infoFields(info string) map[string]string {
	m := make(map[string]string)
	for line := range strings.Lines(info) {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if ok {
			m[k] = v
		}
	}
	return m
}

// logTail returns the last lines of the server log, for error messages.
func logTail(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	defer f.Close()
	const max = 2048
	if st, err := f.Stat(); err == nil && st.Size() > max {
		_, _ = f.Seek(st.Size()-max, io.SeekStart)
	}
	b, _ := io.ReadAll(f)
	return strings.TrimSpace(string(b))
}
