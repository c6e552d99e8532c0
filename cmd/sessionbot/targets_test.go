package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/platform-team/sessionbot/bot/slacktest"
)

// twoTargets is prod-us (tg's server) and prod-eu (a second server) in a TARGETS_FILE, state in
// a third.
func twoTargets(t *testing.T) (us, eu *target) {
	t.Helper()
	us, eu, state := newTarget(t), newTarget(t), newTarget(t)
	file := filepath.Join(t.TempDir(), "targets.yaml")
	yaml := "targets:\n" +
		"  - name: prod-us\n    redis_url: " + us.srv.URL() + "\n" +
		"  - name: prod-eu\n    redis_url: " + eu.srv.URL() + "\n    approval_threshold: 5\n"
	if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	delete(us.env, "REDIS_URL")
	us.env["TARGETS_FILE"] = file
	us.env["STATE_REDIS_URL"] = state.srv.URL()
	return us, eu
}

// The CLI acts on the target --target names, and only there; without it, or with an unknown
// one, it refuses with the names and changes nothing.
func TestCLITarget(t *testing.T) {
	us, eu := twoTargets(t)
	us.seed(procedure1)
	eu.seed(procedure1)
	usBefore, euBefore := us.snapshot(), eu.snapshot()

	for _, args := range [][]string{{"cleanup", "--dry-run"}, {"stats"}, {"cleanup", "--target", "prod-ap", "--dry-run"}} {
		inv := us.run("", args...)
		if inv.code != exitUsage || !strings.Contains(inv.stderr, "prod-us, prod-eu") {
			t.Errorf("sessionbot %s: exit %d, stderr %q; want exit 2 listing the targets", strings.Join(args, " "), inv.code, inv.stderr)
		}
	}
	sameKeys(t, usBefore, us.snapshot())
	sameKeys(t, euBefore, eu.snapshot())

	inv := us.run("", "cleanup", "--target", "prod-eu", "--reason", "expired sessions piling up")
	if inv.code != 0 {
		t.Fatalf("cleanup --target prod-eu: exit %d; stderr:\n%s", inv.code, inv.stderr)
	}
	wantLines(t, inv.stdout, "Target: prod-eu, "+strings.TrimPrefix(eu.srv.URL(), "redis://")+" (session keys session:*)", "45 sessions expired (will be deleted)")
	if n := eu.count("session:*"); n != 105 {
		t.Errorf("prod-eu has %d sessions; want 105 (the expired ones deleted)", n)
	}
	sameKeys(t, usBefore, us.snapshot())
	for _, l := range us.auditLines() {
		if !strings.HasSuffix(l, " | Target: prod-eu") {
			t.Errorf("audit line %q does not end with Target: prod-eu", l)
		}
	}

	// prod-eu's own approval_threshold (5) applies: logging out its 81 oauth2 sessions needs
	// typing the count.
	inv = us.run("", "cleanup", "--target", "prod-eu", "--auth-method", "oauth2")
	if inv.code == 0 || !strings.Contains(inv.stdout+inv.stderr, "more than APPROVAL_THRESHOLD (5)") {
		t.Errorf("cleanup --auth-method oauth2 on prod-eu: exit %d; want a confirmation citing its threshold 5:\n%s\n%s", inv.code, inv.stdout, inv.stderr)
	}
	if n := eu.count("session:*"); n != 105 {
		t.Errorf("prod-eu has %d sessions after an unconfirmed run; want 105", n)
	}

	// A mass logout there writes a backup named after the target.
	inv = us.run("105\n", "cleanup", "--target=prod-eu", "--all", "--reason", "rotate")
	if inv.code != 0 || !strings.Contains(inv.stderr+inv.stdout, "cli-prod-eu-") {
		t.Errorf("cleanup --all --target=prod-eu: exit %d, want 0 and a backup named cli-prod-eu-…:\n%s\n%s", inv.code, inv.stdout, inv.stderr)
	}
	if n := eu.count("session:*"); n != 0 {
		t.Errorf("prod-eu has %d sessions after --all; want 0", n)
	}
	sameKeys(t, usBefore, us.snapshot())

	// Its backup goes back to prod-eu only: restoring it into prod-us is refused, changing nothing.
	id := regexp.MustCompile(`cli-prod-eu-[0-9TZ]+-[0-9a-f]+`).FindString(inv.stderr + inv.stdout)
	inv = us.run("", "restore", "--target", "prod-us", id, "--reason", "undo", "--yes")
	if inv.code != exitUsage || !strings.Contains(inv.stderr, "was written on target prod-eu, not prod-us") {
		t.Errorf("restore --target prod-us %s: exit %d, stderr %q; want exit 2 naming prod-eu", id, inv.code, inv.stderr)
	}
	sameKeys(t, usBefore, us.snapshot())
	inv = us.run("", "restore", "--target", "prod-eu", id, "--reason", "undo", "--yes")
	if inv.code != 0 || eu.count("session:*") == 0 {
		t.Errorf("restore --target prod-eu %s: exit %d, %d sessions back; want 0 and the sessions back:\n%s", id, inv.code, eu.count("session:*"), inv.stderr)
	}
}

// TARGETS_FILE problems stop start-up with one line each, naming the file, the target and the
// field; setting both it and REDIS_URL is an error; more than one target needs STATE_REDIS_URL.
func TestCLITargetsConfigErrors(t *testing.T) {
	us, _ := twoTargets(t)
	file := us.env["TARGETS_FILE"]
	tests := []struct {
		name string
		env  map[string]string
		want string
	}{
		{"both set", map[string]string{"REDIS_URL": "redis://:hunter2@127.0.0.1:1/0"},
			"TARGETS_FILE: set either TARGETS_FILE or REDIS_URL"},
		{"state required", map[string]string{"STATE_REDIS_URL": ""},
			"STATE_REDIS_URL: required with more than one target in TARGETS_FILE " + file},
		{"missing file", map[string]string{"TARGETS_FILE": file + ".missing"}, "TARGETS_FILE: open "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := map[string]string{}
			for k, v := range us.env {
				env[k] = v
			}
			for k, v := range tt.env {
				env[k] = v
			}
			inv := runWith(t, env, "", "stats", "--target", "prod-us")
			if inv.code != exitUsage || !strings.Contains(inv.stderr, tt.want) || strings.Contains(inv.stderr, "hunter2") {
				t.Errorf("exit %d, stderr %q; want exit 2 and %q, no password", inv.code, inv.stderr, tt.want)
			}
		})
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("targets:\n  - name: prod-us\n    redis_url: 'redis://:pa/ss@h:1/0'\n    treshold: 3\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"TARGETS_FILE": bad, "USER": "alice"}
	inv := runWith(t, env, "", "stats")
	if inv.code != exitUsage || !strings.Contains(inv.stderr, "TARGETS_FILE "+bad+": line 4: field treshold not found") || strings.Contains(inv.stderr, "pa/ss") {
		t.Errorf("stats with a misspelt field: exit %d, stderr %q; want exit 2 naming the file, line and field", inv.code, inv.stderr)
	}
}

// TestServeTargets runs `sessionbot serve` with a TARGETS_FILE of two targets against the fake
// Slack: a command in prod-eu's channel previews and runs there, and prod-us is untouched.
func TestServeTargets(t *testing.T) {
	us, eu := twoTargets(t)
	us.seed(procedure1)
	eu.seed(procedure1)
	usBefore := us.snapshot()
	file := us.env["TARGETS_FILE"]
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, append(data, "    channels: [C0EU]\n"...), 0o600); err != nil {
		t.Fatal(err)
	}
	slack := slacktest.New(t)
	slack.AddUser("UALICE", "alice", "alice@example.com")
	s := startServe(t, slack, us.env)
	stdout := s.stdout
	slack.WaitConnections(t, 1, 10*time.Second)

	slack.WaitAck(t, slack.SlashCommand(slacktest.SlashCommand{UserID: "UALICE", UserName: "alice", ChannelID: "C0EU", Command: "/sessions", Text: "cleanup"}), 3*time.Second)
	var preview slacktest.Message
	slacktest.WaitFor(t, func() bool {
		for _, m := range slack.Messages("C0EU") {
			if strings.Contains(string(m.Blocks), `"action_id":"run"`) {
				preview = m
				return true
			}
		}
		return false
	}, 10*time.Second)
	if !strings.Contains(string(preview.Blocks), "prod-eu") {
		t.Errorf("preview does not name prod-eu:\n%s", preview.Blocks)
	}
	slack.WaitAck(t, slack.PressButton("UALICE", "C0EU", preview.TS, "run"), 3*time.Second)
	slacktest.WaitFor(t, func() bool { return eu.count("session:*") == 105 }, 10*time.Second)
	slacktest.WaitFor(t, func() bool { return strings.Contains(stdout.String(), "Cleanup Completed") }, 10*time.Second)
	sameKeys(t, usBefore, us.snapshot())
	if !strings.Contains(stdout.String(), "Cleanup Completed | Deleted: 45 | Kept: 105 | Errors: 0 | Skipped: 0 | Job: job-prod-eu-") ||
		!strings.Contains(stdout.String(), "| Target: prod-eu\n") {
		t.Errorf("audit lines do not name prod-eu:\n%s", stdout.String())
	}
	// The job is counted once its report is out: poll.
	metrics := func() string { _, body := s.get("/metrics"); return body }
	slacktest.WaitFor(t, func() bool {
		return strings.Contains(metrics(), `sessionbot_cleanups_total{mode="execute",result="completed",target="prod-eu"} 1`)
	}, 10*time.Second)
	if m := metrics(); !strings.Contains(m, `sessionbot_cleanups_total{mode="execute",result="completed",target="prod-us"} 0`) {
		t.Errorf("/metrics lacks prod-us's zero-valued series:\n%.3000s", m)
	}
	if err := s.stop(); err != nil {
		t.Errorf("serve returned %v on shutdown; want nil", err)
	}
}
