package main

import (
	"context"
	"errors"
	"io"
	"maps"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/platform-team/sessionbot/bot/pdtest"
	"github.com/platform-team/sessionbot/bot/slacktest"
	"github.com/platform-team/sessionbot/cleanup"
	"github.com/platform-team/sessionbot/internal/testkit"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// servedBot is `sessionbot serve` running in the test process against the fake Slack.
type servedBot struct {
	metricsAddr    string
	stdout, stderr *testkit.SyncBuffer
	cancel         context.CancelFunc // SIGTERM
	exited         chan struct{}      // closed when serve has returned, err then set
	err            error
}

// startServe runs `sessionbot serve` as main does, with the fake Slack's tokens and API URL,
// OPERATORS=UALICE, APPROVERS=UBOB and a free METRICS_ADDR, each overridden by env, which adds
// the rest (the target's variables, sinks, watch settings). It is stopped when the test ends.
func startServe(t *testing.T, slack *slacktest.Server, env ...map[string]string) *servedBot {
	t.Helper()
	all := map[string]string{
		"SLACK_APP_TOKEN": slack.AppToken(), "SLACK_BOT_TOKEN": slack.BotToken(), "SLACK_API_URL": slack.APIURL(),
		"OPERATORS": "UALICE", "APPROVERS": "UBOB", "METRICS_ADDR": freeAddr(t),
	}
	for _, e := range env {
		maps.Copy(all, e)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &servedBot{metricsAddr: all["METRICS_ADDR"], stdout: &testkit.SyncBuffer{}, stderr: &testkit.SyncBuffer{},
		cancel: cancel, exited: make(chan struct{})}
	go func() {
		defer close(s.exited)
		s.err = run(ctx, []string{"serve"}, func(k string) string { return all[k] }, strings.NewReader(""), s.stdout, s.stderr)
	}()
	t.Cleanup(func() { _ = s.stop() })
	return s
}

// stop ends serve as SIGTERM does and returns what it returned.
func (s *servedBot) stop() error {
	s.cancel()
	select {
	case <-s.exited:
		return s.err
	case <-time.After(15 * time.Second):
		return errors.New("serve did not stop within 15 s of SIGTERM")
	}
}

// get fetches path from serve's metrics and health server.
func (s *servedBot) get(path string) (int, string) {
	resp, err := http.Get("http://" + s.metricsAddr + path)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestServe runs `sessionbot serve` as main does, against a fake Slack, a fake PagerDuty and a
// real redis-server: the runbook's Procedure 1 from slash command to Redis state, readiness,
// metrics, and a clean exit on shutdown.
func TestServe(t *testing.T) {
	tg := newTarget(t)
	tg.seed(cleanup.SeedSpec{Count: 150, Expired: 0.3, Unrelated: 10})
	slack := slacktest.New(t)
	slack.AddUser("UALICE", "alice", "alice@example.com")
	pd := pdtest.New(t)
	s := startServe(t, slack, tg.env, map[string]string{
		"PAGERDUTY_ROUTING_KEY": "R0UTINGKEY0123456789abcdefghijkl", "PAGERDUTY_EVENTS_URL": pd.URL(),
	})
	slack.WaitConnections(t, 1, 10*time.Second)
	slacktest.WaitFor(t, func() bool { code, _ := s.get("/readyz"); return code == http.StatusOK }, 10*time.Second)

	env1 := slack.SlashCommand(slacktest.SlashCommand{UserID: "UALICE", UserName: "alice", ChannelID: "C0OPS", Command: "/sessions", Text: "cleanup"})
	slack.WaitAck(t, env1, 3*time.Second)
	var preview slacktest.Message
	slacktest.WaitFor(t, func() bool {
		for _, m := range slack.Messages("C0OPS") {
			if strings.Contains(string(m.Blocks), "45 sessions expired (will be deleted)") {
				preview = m
				return true
			}
		}
		return false
	}, 10*time.Second)
	for _, want := range []string{"Found 150 total session keys", "105 sessions still valid (will be kept)"} {
		if !strings.Contains(string(preview.Blocks), want) {
			t.Errorf("preview lacks %q:\n%s", want, preview.Blocks)
		}
	}
	if n := tg.count("session:*"); n != 150 {
		t.Fatalf("the preview changed Redis: %d session keys; want 150", n)
	}

	slack.WaitAck(t, slack.PressButton("UALICE", "C0OPS", preview.TS, "run"), 3*time.Second)
	slacktest.WaitFor(t, func() bool { return tg.count("session:*") == 105 }, 10*time.Second)
	slacktest.WaitFor(t, func() bool { return len(pd.ChangeEvents()) == 1 }, 10*time.Second)
	if n := tg.count("cb:*") + tg.count("feature:*"); n == 0 {
		t.Error("unrelated keys are gone")
	}

	code, body := s.get("/metrics")
	if code != http.StatusOK || !strings.Contains(body, `sessionbot_cleanups_total{mode="execute",result="completed",target="default"} 1`) {
		t.Errorf("/metrics = %d; want a completed execute cleanup counted:\n%.2000s", code, body)
	}
	if err := s.stop(); err != nil {
		t.Errorf("serve returned %v on shutdown; want nil", err)
	}
	stdout := s.stdout
	out := stdout.String() + s.stderr.String()
	for _, secret := range []string{slack.AppToken(), slack.BotToken(), "R0UTINGKEY0123456789abcdefghijkl", canary} {
		if strings.Contains(out, secret) {
			t.Errorf("a secret reached serve's output: %q", secret)
		}
	}
	if !strings.Contains(stdout.String(), "Cleanup Completed | Deleted: 45") {
		t.Errorf("no audit line on stdout:\n%s", stdout.String())
	}
}

func TestServeConfigErrorsAllAtOnce(t *testing.T) {
	inv := runWith(t, map[string]string{"REDIS_URL": "redis://127.0.0.1:1/0", "SLACK_BOT_TOKEN": "xoxp-wrong"}, "", "serve")
	if inv.code != exitUsage {
		t.Fatalf("exit %d; want %d", inv.code, exitUsage)
	}
	for _, v := range []string{"SLACK_APP_TOKEN", "SLACK_BOT_TOKEN", "OPERATORS", "APPROVERS"} {
		if !strings.Contains(inv.stderr, v) {
			t.Errorf("stderr does not name %s:\n%s", v, inv.stderr)
		}
	}
	if strings.Contains(inv.stderr, "xoxp-wrong") {
		t.Error("a token value was printed")
	}
}

// A bad APPROVALS_REQUIRED (more approvals than the listed approvers can give, or not a number)
// stops start-up with one line naming it, and only it: the other settings are fine.
func TestServeRefusesBadApprovalsRequired(t *testing.T) {
	for value, want := range map[string]string{
		"3":   "APPROVALS_REQUIRED: 3 approvals can never be given by the 2 users in APPROVERS",
		"two": `APPROVALS_REQUIRED: "two" is not valid (want a whole number)`,
	} {
		inv := runWith(t, map[string]string{"REDIS_URL": "redis://127.0.0.1:1/0", "SLACK_APP_TOKEN": "xapp-1-A0-1-abc",
			"SLACK_BOT_TOKEN": "xoxb-1-abc", "OPERATORS": "U0OPS", "APPROVERS": "U0BOB,U0DAVE", "APPROVALS_REQUIRED": value}, "", "serve")
		if inv.code != exitUsage {
			t.Fatalf("APPROVALS_REQUIRED=%s: exit %d; want %d (stderr %q)", value, inv.code, exitUsage, inv.stderr)
		}
		if lines := strings.Split(strings.TrimSpace(inv.stderr), "\n"); len(lines) != 1 || !strings.Contains(lines[0], want) {
			t.Errorf("APPROVALS_REQUIRED=%s: stderr = %q; want one line containing %q", value, inv.stderr, want)
		}
	}
}

// Redis down at start-up: serve does not exit (a pod would crash-loop); /healthz is 200, /readyz
// is 503 naming Redis, and Slack is not connected, so no command is accepted that could not be
// served. A redis-server started late on that port makes it ready and connected, and commands
// work.
func TestServeWaitsForRedis(t *testing.T) {
	tg := newTarget(t)
	tg.srv.Kill() // its port now has no redis-server; Restart starts one there
	slack := slacktest.New(t)
	slack.AddUser("UALICE", "alice", "alice@example.com")
	s := startServe(t, slack, tg.env)
	var body string
	slacktest.WaitFor(t, func() bool {
		var code int
		code, body = s.get("/readyz")
		return code == http.StatusServiceUnavailable
	}, 10*time.Second)
	if !strings.Contains(body, "redis") || !strings.Contains(body, "does not answer") {
		t.Errorf("/readyz body %q; want the reason: redis does not answer", body)
	}
	if code, _ := s.get("/healthz"); code != http.StatusOK {
		t.Errorf("/healthz = %d while Redis is down; want 200 (alive, only not ready)", code)
	}
	select {
	case <-s.exited:
		t.Fatalf("serve exited while Redis was down: %v\n%s", s.err, s.stderr.String())
	default:
	}
	if n := slack.LiveConnections(); n != 0 {
		t.Errorf("%d Socket Mode connections while Redis is down; want none (commands could not be served)", n)
	}

	slacktest.WaitFor(t, func() bool { return strings.Contains(s.stderr.String(), "waiting for redis") }, 10*time.Second)
	if err := tg.srv.Restart(); err != nil {
		t.Fatal(err)
	}
	slacktest.WaitFor(t, func() bool { code, _ := s.get("/readyz"); return code == http.StatusOK }, 15*time.Second)
	tg.seed(cleanup.SeedSpec{Count: 20, Expired: 0.5})
	env1 := slack.SlashCommand(slacktest.SlashCommand{UserID: "UALICE", UserName: "alice", ChannelID: "C0OPS", Command: "/sessions", Text: "cleanup"})
	slack.WaitAck(t, env1, 3*time.Second)
	slacktest.WaitFor(t, func() bool {
		for _, m := range slack.Messages("C0OPS") {
			if strings.Contains(string(m.Blocks), "Found 20 total session keys") {
				return true
			}
		}
		return false
	}, 10*time.Second)
	if err := s.stop(); err != nil {
		t.Errorf("serve returned %v on shutdown; want nil", err)
	}
}
