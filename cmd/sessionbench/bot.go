package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/platform-team/sessionbot/bot/pdtest"
	"github.com/platform-team/sessionbot/bot/slacktest"
	"github.com/platform-team/sessionbot/cleanup"
)

// Identities of the bench's fake workspace: alice is the operator, bob the approver.
const (
	benchAlice = "U0BENCHALICE"
	benchBob   = "U0BENCHBOB01"
	// benchRoutingKey is a fake PagerDuty integration key; only the fake PagerDuty sees it.
	benchRoutingKey = "B3NCHR0UTINGKEY0123456789abcdefg"
)

var userNames = map[string]string{benchAlice: "alice", benchBob: "bob"}

// botScenarios drive `sessionbot serve` through the fake Slack as an operator does; the time
// is from the button press to the final report (the preview before it is not timed).
var botScenarios = []struct {
	name    string
	command string // slash command text
	button  string // pressed on the message that offers it
	presser string
	wantDel func(cleanup.SeedResult) int64
}{
	{"bot: /sessions cleanup, run → report", "cleanup", "run", benchAlice, expired},
	{"bot: /sessions cleanup --all, approve → report (backup)", "cleanup --all --reason bench", "approve", benchBob, every},
}

// bot runs each bot scenario against a fresh `sessionbot serve` child.
func (r *runner) bot() error {
	if r.o.skipBot {
		return nil
	}
	for _, sc := range botScenarios {
		if !r.o.want(sc.name) {
			continue
		}
		if err := r.reset(); err != nil {
			return err
		}
		r.logf("%s…", sc.name)
		row, err := r.botRun(sc.command, sc.button, sc.presser)
		if err != nil {
			return fmt.Errorf("%s: %w", sc.name, err)
		}
		row.Scenario, row.Deleted = sc.name, sc.wantDel(r.full.seed)
		r.rows = append(r.rows, row)
		r.verify(sc.name, r.full, row.Deleted)
	}
	return nil
}

// botRun starts the fakes and `sessionbot serve`, types the slash command as alice, waits for
// the message with the button, and times the press until the message becomes the final report.
func (r *runner) botRun(command, button, presser string) (rw row, err error) {
	tb := &fakeTB{}
	defer tb.close()
	slack := slacktest.New(tb, slacktest.WithWaitTimeout(30*time.Second))
	for id, name := range userNames {
		slack.AddUser(id, name, name+"@company.example")
	}
	ops := slack.ChannelID("#sre-ops")
	pd := pdtest.New(tb)
	metricsAddr, err := freeAddr()
	if err != nil {
		return row{}, err
	}
	s, err := startServe(r.bin, r.env(r.full.url,
		"STATE_REDIS_URL=redis://"+r.srv.Addr()+"/2", // not in db 0, whose keys are verified
		"SLACK_APP_TOKEN="+slack.AppToken(), "SLACK_BOT_TOKEN="+slack.BotToken(), "SLACK_API_URL="+slack.APIURL(),
		"OPERATORS="+benchAlice, "APPROVERS="+benchBob,
		"PAGERDUTY_ROUTING_KEY="+benchRoutingKey, "PAGERDUTY_EVENTS_URL="+pd.URL(),
		"METRICS_ADDR="+metricsAddr,
		// One session sample, at start-up (awaited below), none during the measurement.
		"SESSION_SAMPLE_INTERVAL=1h",
	))
	if err != nil {
		return row{}, err
	}
	defer func() {
		rss, serr := s.stop()
		rw.RSSMB = rss
		err = errors.Join(err, serr)
		if err != nil {
			err = fmt.Errorf("%w; sessionbot serve's output ends with:\n%s", err, tail(s.out.String()))
		}
	}()

	// Generous: a slow machine previews a million keys in well under this.
	limit := time.Minute + time.Duration(r.o.n)*200*time.Microsecond
	err = tb.try(func() error {
		if err := s.waitFor(r.ctx, "the Socket Mode connection", 30*time.Second, func() bool { return slack.LiveConnections() > 0 }); err != nil {
			return err
		}
		if err := s.waitFor(r.ctx, "the start-up session sample", limit, func() bool { return sampled(metricsAddr) }); err != nil {
			return err
		}
		slack.WaitAck(tb, slack.SlashCommand(slacktest.SlashCommand{UserID: benchAlice, UserName: userNames[benchAlice], ChannelID: ops, Command: "/sessions", Text: command}), 10*time.Second)
		var msg slacktest.Message
		if err := s.waitFor(r.ctx, "a message with the "+button+" button", limit, func() bool {
			for _, m := range slack.Messages(ops) {
				if strings.Contains(string(m.Blocks), `"action_id":"`+button+`"`) {
					msg = m
					return true
				}
			}
			return false
		}); err != nil {
			return err
		}
		var (
			start, end time.Time
			report     string
			werr       error
		)
		lat := r.p.record(func() {
			start = time.Now()
			slack.PressButton(presser, ops, msg.TS, button)
			werr = s.waitFor(r.ctx, "the final report", limit, func() bool {
				m, _ := slack.Message(ops, msg.TS)
				if b := string(m.Blocks); strings.Contains(b, "Cleanup completed: ") || strings.Contains(b, ":x: Failed: ") || strings.Contains(b, "Cancelled: ") {
					end, report = time.Now(), b
					return true
				}
				return false
			})
		})
		if werr != nil {
			return werr
		}
		if !strings.Contains(report, "Cleanup completed: ") {
			return fmt.Errorf("the run did not complete: %.2000s", report)
		}
		wall := end.Sub(start)
		n := r.full.seed.Count
		rw = row{Keys: n, Wall: wall, KeysPerSec: perSec(n, wall), P50: lat.p50, P99: lat.p99, Max: lat.max}
		return nil
	})
	return rw, err
}

// sampled reports whether serve's session sampler has finished its first sample.
func sampled(metricsAddr string) bool {
	resp, err := http.Get("http://" + metricsAddr + "/metrics")
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "sessionbot_sessions_sampled_timestamp_seconds "); ok {
			return v != "0"
		}
	}
	return false
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// serveProc is a running `sessionbot serve` child.
type serveProc struct {
	cmd     *exec.Cmd
	out     bytes.Buffer // stdout and stderr; read only after it exited
	done    chan struct{}
	waitErr error
	stopped bool
}

func startServe(bin string, env []string) (*serveProc, error) {
	s := &serveProc{cmd: exec.Command(bin, "serve"), done: make(chan struct{})}
	s.cmd.Env = env
	s.cmd.Stdout, s.cmd.Stderr = &s.out, &s.out
	if err := s.cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		s.waitErr = s.cmd.Wait()
		close(s.done)
	}()
	return s, nil
}

// waitFor polls cond until it holds, failing when serve exits or after timeout.
func (s *serveProc) waitFor(ctx context.Context, what string, timeout time.Duration, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("gave up waiting for %s after %v", what, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.done:
			return fmt.Errorf("sessionbot serve exited (%v) while waiting for %s", s.waitErr, what)
		case <-tick.C:
		}
	}
	return nil
}

// stop ends serve as a deployment does (SIGTERM: running jobs and notifications finish) and
// returns its peak RSS.
func (s *serveProc) stop() (float64, error) {
	var err error
	if !s.stopped {
		s.stopped = true
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.done:
			err = s.waitErr
		case <-time.After(30 * time.Second):
			_ = s.cmd.Process.Kill()
			<-s.done
			err = errors.New("sessionbot serve did not stop within 30 s of SIGTERM")
		}
	}
	return peakRSS(s.cmd.ProcessState), err
}

// fakeTB lets the bench use the test fakes of Slack and PagerDuty (bot/slacktest, bot/pdtest),
// which take a testing.TB, outside `go test`. The fakes call only Helper, Cleanup and Fatalf,
// from the goroutine that calls them; the embedded nil TB panics on anything else, a bug here.
type fakeTB struct {
	testing.TB
	cleanups []func()
}

// fatal is what Fatalf panics with; try turns it into an error.
type fatal struct{ err error }

func (*fakeTB) Helper() {}

func (t *fakeTB) Cleanup(f func()) { t.cleanups = append(t.cleanups, f) }

func (*fakeTB) Fatalf(format string, args ...any) { panic(fatal{fmt.Errorf(format, args...)}) }

// try runs fn, returning a fake's Fatalf as an error.
func (*fakeTB) try(fn func() error) (err error) {
	defer func() {
		switch v := recover().(type) {
		case nil:
		case fatal:
			err = v.err
		default:
			panic(v)
		}
	}()
	return fn()
}

// close runs the cleanups, last registered first, as testing does.
func (t *fakeTB) close() {
	for i := len(t.cleanups) - 1; i >= 0; i-- {
		t.cleanups[i]()
	}
}
