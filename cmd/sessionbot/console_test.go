package main

import (
	"strings"
	"testing"

	"github.com/platform-team/sessionbot/cleanup"
)

// consoleTarget is a real redis-server with sessions and the identities of a real deployment.
func consoleTarget(t *testing.T) *target {
	t.Helper()
	tg := newTarget(t)
	tg.seed(cleanup.SeedSpec{Count: 30})
	tg.env["OPERATORS"] = "UOPS1"
	tg.env["APPROVERS"] = "UVPENG"
	return tg
}

// Against a real Redis one console is one person (SPEC §12.5): /as is refused, so the operator
// who asked for a mass logout cannot approve it too, and every audit line names who typed.
func TestConsoleOnRealRedisIsOnePerson(t *testing.T) {
	tg := consoleTarget(t)
	inv := tg.run(strings.Join([]string{
		`/sessions cleanup --all --reason "drill"`,
		"/as UVPENG",
		"press approve",
	}, "\n")+"\n", "console", "--as", "UOPS1")
	if inv.code != 0 {
		t.Fatalf("console: exit %d; stderr:\n%s", inv.code, inv.stderr)
	}
	for _, want := range []string{
		"/as is refused: this console is connected to a real Redis, so it acts only as alice (UOPS1)",
		"You made this request: an approver other than you must approve it (two-person rule).",
	} {
		if !strings.Contains(inv.stdout, want) {
			t.Errorf("console output lacks %q:\n%s", want, inv.stdout)
		}
	}
	if strings.Contains(inv.stdout, "You are now") {
		t.Errorf("the console switched identity on a real Redis:\n%s", inv.stdout)
	}
	if n := tg.count("session:*"); n != 30 {
		t.Errorf("%d of 30 sessions left: one person passed the two-person rule", n)
	}
	lines := tg.auditLines()
	var requested bool
	for _, l := range lines {
		if strings.Contains(l, "| Approved |") || strings.Contains(l, "Mode: all | Filters: all | Approved-By") {
			t.Errorf("audit line of an approval nobody else gave: %s", l)
		}
		if strings.Contains(l, "| Request Created |") {
			requested = true
			if !strings.Contains(l, "UOPS1 (alice)") {
				t.Errorf("audit line does not name the console's fixed identity and its OS user: %s", l)
			}
		}
	}
	if !requested {
		t.Errorf("no Request Created line in the audit:\n%s", strings.Join(lines, "\n"))
	}
}

// Without --as the console acts as the OS user; without OPERATORS it does not start on a real
// Redis (the demo identities exist only on the embedded one).
func TestConsoleOnRealRedisIdentity(t *testing.T) {
	tg := consoleTarget(t)
	inv := tg.run("/as UVPENG\n", "console")
	if inv.code != 0 || !strings.Contains(inv.stdout, "You are alice.") || !strings.Contains(inv.stdout, "/as is refused") {
		t.Errorf("console without --as: exit %d; stdout:\n%s\nstderr:\n%s", inv.code, inv.stdout, inv.stderr)
	}
	delete(tg.env, "OPERATORS")
	delete(tg.env, "APPROVERS")
	inv = tg.run("/sessions cleanup\n", "console")
	if inv.code == 0 || !strings.Contains(inv.stderr, "set OPERATORS and APPROVERS to use a real Redis") {
		t.Errorf("console on a real Redis without OPERATORS: exit %d; stderr:\n%s", inv.code, inv.stderr)
	}
}

// A console restarted on the same state Redis (or a second one beside it) has its commands
// handled: its envelope ids are its own, not console-1, console-2… again (SPEC §12.5).
func TestConsoleRestartedHandlesCommands(t *testing.T) {
	tg := consoleTarget(t)
	for run := 1; run <= 2; run++ {
		inv := tg.run("/sessions cleanup\n", "console", "--as", "UOPS1")
		if inv.code != 0 || !strings.Contains(inv.stdout, "Found 30 total session keys") {
			t.Errorf("console run %d: exit %d; the preview is missing:\n%s\nstderr:\n%s", run, inv.code, inv.stdout, inv.stderr)
		}
	}
}

// The demo console reads like a chat: audit lines are marked apart from the bot's messages,
// emoji shortcodes show as symbols, and stats says what it knows about memory (the embedded
// Redis reports none) instead of "of 0 B used".
func TestConsoleDemoIsReadable(t *testing.T) {
	dir := t.TempDir()
	inv := runWith(t, map[string]string{"USER": "alice", "AUDIT_LOG": dir + "/audit.log"},
		"/sessions stats\n/sessions cleanup\npress run\n", "console")
	if inv.code != 0 {
		t.Fatalf("console: exit %d; stderr:\n%s", inv.code, inv.stderr)
	}
	for _, want := range []string{"== ✅ Cleanup completed: expired_only ==", "Redis does not report its memory use."} {
		if !strings.Contains(inv.stdout, want) {
			t.Errorf("console output lacks %q:\n%s", want, inv.stdout)
		}
	}
	for _, bad := range []string{":white_check_mark:", " of 0 B used", "audit │"} {
		if strings.Contains(inv.stdout, bad) {
			t.Errorf("console output has %q:\n%s", bad, inv.stdout)
		}
	}
	var audit int
	for _, l := range strings.Split(strings.TrimSpace(inv.stderr), "\n") {
		if strings.Contains(l, " | Cleanup Started | ") {
			audit++
			if !strings.HasPrefix(l, "audit │ ") {
				t.Errorf("audit line on the terminal is not marked: %q", l)
			}
		}
	}
	if audit == 0 {
		t.Errorf("no audit lines on stderr:\n%s", inv.stderr)
	}
}
