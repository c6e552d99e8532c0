package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/platform-team/sessionbot/bot/slacktest"
	"github.com/platform-team/sessionbot/cleanup"
)

// orphans counts session keys without a TTL.
func (tg *target) orphans() int {
	tg.t.Helper()
	ctx := context.Background()
	n := 0
	iter := tg.client.Scan(ctx, 0, "session:*", 1000).Iterator()
	for iter.Next(ctx) {
		if d, err := tg.client.TTL(ctx, iter.Val()).Result(); err == nil && d == -1 {
			n++
		}
	}
	return n
}

// TestServeWatchAndSchedules runs `sessionbot serve` with the watcher and a schedule against a
// fake Slack and a real redis-server: at start the schedule (never run before) deletes the
// expired sessions without anyone typing and reports in WATCH_CHANNEL; the watcher posts the
// keys without a TTL with an --orphans preview whose Run button works.
func TestServeWatchAndSchedules(t *testing.T) {
	tg := newTarget(t)
	tg.seed(cleanup.SeedSpec{Count: 200, Expired: 0.3, NoTTL: 0.2, Unrelated: 10})
	slack := slacktest.New(t)
	slack.AddUser("UALICE", "alice", "alice@example.com")
	s := startServe(t, slack, tg.env, map[string]string{
		"WATCH_INTERVAL": "1s", "WATCH_CHANNEL": "C0OPS", "WATCH_ORPHANS": "5",
		"SCHEDULES": "default: every 1d",
	})
	stdout := s.stdout
	slack.WaitConnections(t, 1, 10*time.Second)

	find := func(needle string) (slacktest.Message, bool) {
		for _, m := range slack.Messages("C0OPS") {
			if strings.Contains(string(m.Blocks), needle) {
				return m, true
			}
		}
		return slacktest.Message{}, false
	}
	// The schedule's report.
	slacktest.WaitFor(t, func() bool { _, ok := find("Cleanup completed"); return ok }, 20*time.Second)
	if !strings.Contains(stdout.String(), "Cleanup Started | User: schedule | Mode: execute | Filters: expired_only") {
		t.Errorf("no scheduled job in the audit log:\n%s", stdout.String())
	}
	// The watcher's symptom and its preview.
	var preview slacktest.Message
	slacktest.WaitFor(t, func() bool {
		_, symptom := find("session keys without a TTL")
		var ok bool
		preview, ok = find("matching orphans (will be deleted)")
		return symptom && ok && strings.Contains(string(preview.Blocks), `"action_id":"run"`)
	}, 20*time.Second)
	if !strings.Contains(stdout.String(), "Symptom Detected | User: watch | Target: default | Symptom: orphans") {
		t.Errorf("no Symptom Detected in the audit log:\n%s", stdout.String())
	}
	if tg.orphans() == 0 {
		t.Fatal("no keys without a TTL left to delete; the test seeds too few")
	}
	slack.WaitAck(t, slack.PressButton("UALICE", "C0OPS", preview.TS, "run"), 3*time.Second)
	slacktest.WaitFor(t, func() bool { return tg.orphans() == 0 }, 10*time.Second)
	if n := tg.count("cb:*") + tg.count("feature:*"); n == 0 {
		t.Error("unrelated keys are gone")
	}

	if err := s.stop(); err != nil {
		t.Errorf("serve returned %v on shutdown; want nil", err)
	}
	if out := stdout.String() + s.stderr.String(); strings.Contains(out, canary) {
		t.Error("a session token reached serve's output")
	}
	// Within the cooldown the symptom was posted once, however many checks ran.
	if n := strings.Count(stdout.String(), "Symptom Detected | User: watch | Target: default | Symptom: orphans"); n != 1 {
		t.Errorf("Symptom Detected (orphans) logged %d times; want 1 per WATCH_COOLDOWN", n)
	}
}

// Bad watch settings and schedules stop start-up with one line each, naming the variable and,
// for a schedule, the entry.
func TestServeRefusesBadWatchAndSchedules(t *testing.T) {
	inv := runWith(t, map[string]string{"REDIS_URL": "redis://127.0.0.1:1/0", "SLACK_APP_TOKEN": "xapp-1-A0-1-abc",
		"SLACK_BOT_TOKEN": "xoxb-1-abc", "OPERATORS": "U0OPS", "APPROVERS": "U0BOB",
		"WATCH_COOLDOWN": "6x", "WATCH_MEMORY_PERCENT": "120",
		"SCHEDULES": "prod-us: every 6h; default: --bogus every 1h; default: every soon"}, "", "serve")
	if inv.code != exitUsage {
		t.Fatalf("exit %d; want %d (stderr %q)", inv.code, exitUsage, inv.stderr)
	}
	want := []string{
		`WATCH_COOLDOWN: "6x" is not valid (want a duration like 30s, 15m, 12h, 7d or 2w)`,
		"WATCH_MEMORY_PERCENT: 120 is out of range (1 to 100)",
		`SCHEDULES: "prod-us: every 6h": unknown target "prod-us" (known: default)`,
		`SCHEDULES: "default: --bogus every 1h": unknown flag "--bogus"`,
		`SCHEDULES: "default: every soon": "soon" is not a duration like 30m, 12h, 7d or 2w`,
	}
	lines := strings.Split(strings.TrimSpace(inv.stderr), "\n")
	if len(lines) != len(want) {
		t.Errorf("stderr has %d lines; want %d:\n%s", len(lines), len(want), inv.stderr)
	}
	for _, w := range want {
		if !strings.Contains(inv.stderr, w) {
			t.Errorf("stderr lacks %q:\n%s", w, inv.stderr)
		}
	}
}
