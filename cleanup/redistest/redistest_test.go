package redistest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func TestStandaloneKillRestartStop(t *testing.T) {
	ctx := context.Background()
	s, err := Start(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()

	if got, want := s.URL(), "redis://"+s.Addr()+"/0"; got != want {
		t.Errorf("URL() = %q; want %q", got, want)
	}
	if host, _, _ := net.SplitHostPort(s.Addr()); host != "127.0.0.1" {
		t.Errorf("Addr() = %q; want a 127.0.0.1 address", s.Addr())
	}
	c := s.Client()
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	for param, want := range map[string]string{"save": "", "appendonly": "no", "bind": "127.0.0.1", "enable-debug-command": "yes"} {
		got, err := c.ConfigGet(ctx, param).Result()
		if err != nil {
			t.Fatal(err)
		}
		if got[param] != want {
			t.Errorf("CONFIG GET %s = %q; want %q", param, got[param], want)
		}
	}
	if err := c.Do(ctx, "DEBUG", "SLEEP", "0").Err(); err != nil {
		t.Errorf("DEBUG SLEEP 0: %v; want DEBUG enabled", err)
	}

	addr, pid1, run1 := s.Addr(), s.PID(), s.RunID()
	if run1 == "" || pid1 == 0 {
		t.Fatalf("RunID() = %q, PID() = %d; want both set", run1, pid1)
	}
	s.Kill()
	if s.Running() {
		t.Fatal("Running() after Kill = true")
	}
	assertGone(t, pid1)
	if _, err := serverInfo(addr); err == nil {
		t.Fatal("INFO after Kill succeeded")
	}

	if err := s.Restart(); err != nil {
		t.Fatal(err)
	}
	if s.Addr() != addr {
		t.Errorf("Addr() after Restart = %s; want the same %s", s.Addr(), addr)
	}
	if s.RunID() == run1 || s.PID() == pid1 {
		t.Errorf("after Restart RunID, PID = %s, %d; want new ones (were %s, %d)", s.RunID(), s.PID(), run1, pid1)
	}
	// The cached client reconnects by itself; the data set is gone (no persistence).
	if n, err := c.Exists(ctx, "k").Result(); err != nil || n != 0 {
		t.Errorf("EXISTS k after Restart = %d, %v; want 0, nil", n, err)
	}
	info, err := c.Info(ctx, "server").Result()
	if err != nil {
		t.Fatal(err)
	}
	if got := infoFields(info)["run_id"]; got != s.RunID() {
		t.Errorf("INFO run_id = %s; want RunID() = %s", got, s.RunID())
	}

	pid2 := s.PID()
	dir := s.dir
	s.Stop()
	s.Stop() // idempotent
	assertGone(t, pid2)
	assertPortFree(t, s.Port())
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("directory %s after Stop: %v; want removed", dir, err)
	}

	// Restart after Stop works too, on the same port, in a fresh directory.
	if err := s.Restart(); err != nil {
		t.Fatal(err)
	}
	if err := s.Client().Ping(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	pid3 := s.PID()
	s.Stop()
	assertGone(t, pid3)
	assertPortFree(t, s.Port())
}

func TestStandaloneArgs(t *testing.T) {
	s := Standalone(t, "--maxmemory", "12mb")
	got, err := s.Client().ConfigGet(context.Background(), "maxmemory").Result()
	if err != nil {
		t.Fatal(err)
	}
	if got["maxmemory"] != strconv.Itoa(12<<20) {
		t.Errorf("maxmemory = %s; want %d", got["maxmemory"], 12<<20)
	}
}

func TestStartBadArgs(t *testing.T) {
	s, err := Start(Options{Args: []string{"--no-such-option", "1"}})
	if err == nil {
		s.Stop()
		t.Fatal("Start with a bad option succeeded")
	}
	t.Log(err)
}

func TestStartParallel(t *testing.T) {
	const n = 8
	servers := make([]*Server, n)
	errs := make(chan error, n)
	for i := range n {
		go func() {
			var err error
			servers[i], err = Start(Options{})
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	seen := map[string]bool{}
	for _, s := range servers {
		if s == nil {
			continue
		}
		defer s.Stop()
		if seen[s.Addr()] {
			t.Errorf("two servers on %s", s.Addr())
		}
		seen[s.Addr()] = true
	}
}

func TestCluster(t *testing.T) {
	ctx := context.Background()
	start := time.Now()
	c, err := StartCluster(ClusterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	t.Logf("cluster of %d nodes ready in %v", len(c.Nodes()), time.Since(start))

	masters := c.Masters()
	if len(masters) != 3 || len(c.Nodes()) != 3 || len(c.Seeds()) != 3 {
		t.Fatalf("%d masters, %d nodes, %d seeds; want 3 each", len(masters), len(c.Nodes()), len(c.Seeds()))
	}
	cc := c.Client()
	const keys = 300
	for i := range keys {
		if err := cc.Set(ctx, fmt.Sprintf("session:%d", i), "x", 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	var total int64
	for _, m := range masters {
		n, err := m.Client().DBSize(ctx).Result()
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			t.Errorf("master %s holds no keys; want keys on every master", m.Addr())
		}
		total += n
	}
	if total != keys {
		t.Errorf("masters hold %d keys; want %d", total, keys)
	}

	type proc struct{ pid, port int }
	var procs []proc
	for _, s := range c.Nodes() {
		procs = append(procs, proc{s.PID(), s.Port()})
	}
	c.Stop()
	c.Stop()
	for _, p := range procs {
		assertGone(t, p.pid)
		assertPortFree(t, p.port)
		assertPortFree(t, p.port+10000)
	}
}

func TestClusterFailover(t *testing.T) {
	ctx := context.Background()
	start := time.Now()
	c := NewCluster(t, ClusterOptions{Replicas: 1})
	t.Logf("cluster of %d nodes ready in %v", len(c.Nodes()), time.Since(start))
	if got := len(c.Masters()); got != 3 {
		t.Fatalf("%d masters; want 3", got)
	}
	replicas := c.Replicas()
	if len(replicas) != 3 {
		t.Fatalf("%d replicas; want 3", len(replicas))
	}
	if err := c.Client().Set(ctx, "before", "1", 0).Err(); err != nil {
		t.Fatal(err)
	}
	r := replicas[0]
	start = time.Now()
	if err := c.Failover(r); err != nil {
		t.Fatal(err)
	}
	t.Logf("failover in %v", time.Since(start))
	if role, err := nodeRole(r); err != nil || role != "master" {
		t.Fatalf("ROLE of %s after Failover = %q, %v; want master", r.Addr(), role, err)
	}
	if got := len(c.Masters()); got != 3 {
		t.Errorf("%d masters after Failover; want 3", got)
	}
	for i := range 100 {
		if err := c.Client().Set(ctx, fmt.Sprintf("after:%d", i), "1", 0).Err(); err != nil {
			t.Fatalf("SET after Failover: %v", err)
		}
	}
	if v, err := c.Client().Get(ctx, "before").Result(); err != nil || v != "1" {
		t.Errorf("GET before = %q, %v; want 1", v, err)
	}
}

func TestKeySlot(t *testing.T) {
	// Values from the Redis Cluster specification and CLUSTER KEYSLOT.
	for key, want := range map[string]uint16{"123456789": 0x31C3 % 16384, "foo": 12182, "bar": 5061} {
		if got := keySlot(key); got != want {
			t.Errorf("keySlot(%q) = %d; want %d", key, got, want)
		}
	}
}

func assertGone(t *testing.T, pid int) {
	t.Helper()
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("kill(%d, 0) = %v; want ESRCH (process gone)", pid, err)
	}
}

func assertPortFree(t *testing.T, port int) {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		t.Errorf("port %d not free: %v", port, err)
		return
	}
	_ = l.Close()
}

// RestartKeepingData brings the server back with its keys, values and TTLs under a new run_id,
// and a client writing all along loses nothing and gains nothing: every INCR that was answered
// is in the data, and none that failed was applied (the counter equals the answered INCRs).
func TestRestartKeepingData(t *testing.T) {
	ctx := context.Background()
	s := Standalone(t)
	c := s.Client()
	if err := c.Set(ctx, "kept", "v", time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
	if err := c.Set(ctx, "forever", "w", 0).Err(); err != nil {
		t.Fatal(err)
	}
	// Its own client, no retries: a reply lost would show as a failed INCR that was applied.
	w := redis.NewClient(&redis.Options{Addr: s.Addr(), MaxRetries: -1})
	defer w.Close()
	stop := make(chan struct{})
	var answered, failed atomic.Int64
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			if err := w.Incr(ctx, "counter").Err(); err != nil {
				failed.Add(1)
			} else {
				answered.Add(1)
			}
		}
	})
	// waitWrites polls until n more INCRs were answered.
	waitWrites := func(n int64) {
		t.Helper()
		want := answered.Load() + n
		deadline := time.Now().Add(10 * time.Second)
		for answered.Load() < want {
			if time.Now().After(deadline) {
				t.Fatalf("%d INCRs answered; want %d", answered.Load(), want)
			}
			time.Sleep(pollEvery)
		}
	}
	waitWrites(1000)
	run1, pid1 := s.RunID(), s.PID()
	if err := s.RestartKeepingData(); err != nil {
		t.Fatal(err)
	}
	waitWrites(1000) // on the new process too
	close(stop)
	wg.Wait()

	if s.RunID() == run1 || s.PID() == pid1 {
		t.Errorf("after RestartKeepingData RunID, PID = %s, %d; want new ones", s.RunID(), s.PID())
	}
	if got, err := c.Get(ctx, "kept").Result(); err != nil || got != "v" {
		t.Errorf("GET kept = %q, %v; want v", got, err)
	}
	if ttl, err := c.TTL(ctx, "kept").Result(); err != nil || ttl <= 59*time.Minute {
		t.Errorf("TTL kept = %v, %v; want about an hour", ttl, err)
	}
	if ttl, err := c.TTL(ctx, "forever").Result(); err != nil || ttl != -1 {
		t.Errorf("TTL forever = %v, %v; want none (-1)", ttl, err)
	}
	n, err := c.Get(ctx, "counter").Int64()
	if err != nil || n != answered.Load() {
		t.Errorf("counter = %d, %v; want %d, the INCRs answered (%d failed during the restart)", n, err, answered.Load(), failed.Load())
	}
	if failed.Load() == 0 {
		t.Error("no INCR failed: the restart happened while nobody was writing")
	}
}

// A Sentinel deployment starts with its replica known, and a failover swaps the roles: a key
// written before it is read back through a Sentinel-aware client after it.
func TestSentinelFailover(t *testing.T) {
	d := NewSentinel(t)
	ctx := context.Background()
	c := d.Client()
	defer c.Close()
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	before, err := d.Master()
	if err != nil {
		t.Fatal(err)
	}
	// Replication is asynchronous and a Sentinel failover does not wait for it: make sure the
	// replica has k before promoting it.
	if n, err := before.Client().Do(ctx, "WAIT", 1, 5000).Int(); err != nil || n != 1 {
		t.Fatalf("WAIT 1 = %d, %v", n, err)
	}
	if err := d.Failover(); err != nil {
		t.Fatal(err)
	}
	after, err := d.Master()
	if err != nil {
		t.Fatal(err)
	}
	if after == before {
		t.Fatalf("master is still %s after Failover", before.Addr())
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := c.Set(ctx, "k2", "v2", 0).Err()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no write through the Sentinel client after the failover: %v", err)
		}
	}
	if v, err := after.Client().Get(ctx, "k").Result(); err != nil || v != "v" {
		t.Errorf("GET k on the new master = %q, %v; want v", v, err)
	}
}
