package bot

import (
	"context"
	"strings"
	"testing"

	"github.com/platform-team/sessionbot/internal/testkit"
)

// The console runs the same core: demo identities, buttons pressed by typed lines, /as to
// switch user, and a clean exit at end of input after the job finished.
func TestConsoleDemoMassLogout(t *testing.T) {
	h := newHarness(t)
	h.seedOthers()
	h.seed(sessionSpec{n: 12})
	d := h.deps()
	d.Config.Operators, d.Config.Approvers, d.Config.TeamID = nil, nil, ""
	d.Notifier = nil
	got := typeIntoConsole(t, d,
		"/sessions help",
		`/sessions cleanup --all --reason “incident 42”`,
		"press approve",
		"/as bob",
		"press approve",
		"",
	)
	wantContains(t, "console output", got,
		"Demo mode (OPERATORS and APPROVERS are not set): alice is an operator, bob is an approver.",
		"You are alice.",
		"== 🚨 Approval needed: MASS LOGOUT (all sessions) ==",
		"12 sessions will be deleted (ALL)",
		"Approvers: @bob",
		"  [Approve] type: press approve ",
		"── only alice sees this ──\nYou made this request: an approver other than you must approve it (two-person rule).",
		"You are now bob (UBOB).",
		"Approved by: @bob",
		"== ✅ Cleanup completed: all ==",
		"Remaining: 0 session keys",
		"── #console · reply to message 1 ──\n@bob: 🚨 Approval needed: MASS LOGOUT (all sessions), requested by @alice.",
		"── direct message to bob ──\n== 🚨 Approval needed",
		"── #platform-incidents · message 3 ──",
		"Mass Logout Executed",
		"*Affected Users:* All active users (12 sessions invalidated)",
		"*Reason:* incident 42",
	)
	if n := h.sessionCount(); n != 0 {
		t.Errorf("%d sessions left after the console's mass logout", n)
	}
	h.assertOthersIntact()
	wantContains(t, "audit", strings.Join(h.audited("Cleanup Started"), "\n"),
		"User: UALICE (alice) | Mode: all | Filters: all | Approved-By: UBOB (bob) | Reason: incident 42")
	h.assertNoLeaks()
}

// Unknown input, unknown buttons and unknown users are explained; nobody else may act.
func TestConsoleInputErrors(t *testing.T) {
	h := newHarness(t)
	h.seed(sessionSpec{n: 3, expired: true})
	d := h.deps()
	d.Config.Operators, d.Config.Approvers, d.Config.TeamID = nil, nil, ""
	got := typeIntoConsole(t, d,
		"hello",
		"press approve 00000000",
		"/as mallory",
		"/sessions cleanup",
		"/as alice",
		"/sessions cleanup",
		"press run",
		"/quit",
		"/sessions cleanup --all --reason never-read",
	)
	wantContains(t, "console output", got,
		`unknown input "hello"`,
		`no approve button with token "00000000"`,
		"You are now mallory (UMALLORY).",
		"You are not allowed to use /sessions (not in OPERATORS)",
		"3 sessions expired (will be deleted)",
		"Cleanup completed: expired_only")
	if strings.Contains(got, "never-read") {
		t.Error("input after /quit was read")
	}
	if h.sessionCount() != 0 {
		t.Errorf("%d sessions left", h.sessionCount())
	}
}

// typeIntoConsole runs the demo console over d with lines as its input and returns what it
// printed.
func typeIntoConsole(t *testing.T, d Deps, lines ...string) string {
	t.Helper()
	var out testkit.SyncBuffer
	if err := runDemoConsole(t, context.Background(), strings.NewReader(strings.Join(lines, "\n")), &out, d); err != nil {
		t.Fatalf("console.Run = %v", err)
	}
	return out.String()
}
