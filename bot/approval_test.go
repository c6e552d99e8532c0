package bot

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/platform-team/sessionbot/bot/chat"
)

// requestAll makes a mass-logout approval request as alice and returns its id and message ref.
func (h *harness) requestAll() (string, MessageRef) {
	h.t.Helper()
	h.command(alice, `cleanup --all --reason "incident 42"`)
	ref, m := h.chat.latest(-1)
	return button(h.t, m, "approve"), ref
}

// Commands that must change nothing: one clear ephemeral line, no post, no Redis change.
func TestCommandRefusals(t *testing.T) {
	h := newHarness(t)
	h.seed(sessionSpec{n: 5, expired: true})
	tests := []struct {
		name, user, team, text string
		want                   string
		audited                string // Why: of the Refused line, if audited
	}{
		{"not an operator", eve, team, "cleanup", "not allowed to use /sessions", "not in OPERATORS"},
		{"approver may not clean up", bob, team, "cleanup", "not allowed", "not in OPERATORS"},
		{"foreign workspace", alice, "T0OTHER1", "cleanup", "another Slack workspace", "foreign workspace T0OTHER1"},
		{"too long", alice, team, "cleanup --reason " + strings.Repeat("x", 2000), "the limit is 2,000", ""},
		{"unterminated quote", alice, team, `cleanup --reason "oops`, "unterminated double quote", ""},
		{"unknown flag", alice, team, "cleanup --everything", "--everything", ""},
		{"bad duration", alice, team, "cleanup --older-than soon", "soon", ""},
		{"all with filter", alice, team, "cleanup --all --expired --reason x", "--all", ""},
		{"cli-only flag", alice, team, "cleanup --yes", "--yes", ""},
		{"unknown subcommand", alice, team, "purge", `Unknown command "purge"`, ""},
		{"restore without reason", alice, team, "restore job-20250101-abcd", "--reason", ""},
		{"restore path traversal", alice, team, "restore ../../etc/passwd --reason x", "not a backup id", ""},
		{"restore missing backup", alice, team, "restore job-20250101-abcd --reason x", "no backup", ""},
		{"cancel unknown job", alice, team, "cancel job-20250101-abcd", "No job", ""},
		{"cancel without id", alice, team, "cancel", "Usage", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			posts, refused := h.chat.postCount(), len(h.audited("Refused"))
			h.bot.HandleCommand(context.Background(), Command{EnvelopeID: h.envelope(), TeamID: tt.team,
				UserID: tt.user, UserName: name(tt.user), ChannelID: chan1, Text: tt.text})
			h.bot.Wait()
			got := h.chat.lastEphemeral(tt.user)
			if !strings.Contains(got, tt.want) {
				t.Errorf("HandleCommand(%q) ephemeral = %q; want it to contain %q", short(tt.text, 60), got, tt.want)
			}
			if strings.Contains(got, "\n") {
				t.Errorf("refusal %q is more than one line", got)
			}
			if h.chat.postCount() != posts {
				t.Errorf("HandleCommand(%q) posted a message", short(tt.text, 60))
			}
			if h.sessionCount() != 5 {
				t.Fatalf("HandleCommand(%q) changed Redis", short(tt.text, 60))
			}
			r := h.audited("Refused")
			if tt.audited != "" {
				if len(r) != refused+1 || !strings.Contains(r[len(r)-1], "Why: "+tt.audited) {
					t.Errorf("Refused audit lines = %q; want a new one with Why: %s", r, tt.audited)
				}
			}
		})
	}
}

// Every button refusal: ephemeral, audited, nothing changes.
func TestActionRefusals(t *testing.T) {
	h := newHarness(t, func(_ *harness, d *Deps) {
		d.Config.Operators = append(d.Config.Operators, dave) // dave: operator and approver
	})
	h.seed(sessionSpec{n: 5})
	h.command(alice, "cleanup --auth-method oauth2") // needs no approval
	_, plain := h.chat.latest(-1)
	runID := button(t, plain, "run")
	approveID, _ := h.requestAll()
	h.command(dave, `cleanup --all --reason "dave asks"`)
	_, daves := h.chat.latest(-1)
	daveID := button(t, daves, "approve")

	tests := []struct {
		name, user, action, value, team string
		want, why                       string
	}{
		{"run by outsider", eve, "run", runID, team, "Only operators", "not in OPERATORS"},
		{"run by approver only", bob, "run", runID, team, "Only operators", "not in OPERATORS"},
		{"approve a no-approval request", bob, "approve", runID, team, "needs no approval", "no approval needed"},
		{"run an approval request", alice, "run", approveID, team, "needs an approver", "needs approval"},
		{"self-approval", alice, "approve", approveID, team, "two-person rule", "self-approval"},
		{"self-approval by an approver", dave, "approve", daveID, team, "two-person rule", "self-approval"},
		{"self-rejection", dave, "reject", daveID, team, "two-person rule", "self-approval"},
		{"operator approves", carol, "approve", approveID, team, "Only approvers", "not in APPROVERS"},
		{"outsider rejects", eve, "reject", approveID, team, "Only approvers", "not in APPROVERS"},
		{"outsider cancels", eve, "cancel", approveID, team, "Only the requester", "not allowed to cancel"},
		{"foreign workspace", bob, "approve", approveID, "T0OTHER1", "another Slack workspace", "foreign workspace"},
		{"forged value", bob, "approve", "session:abc", team, "no longer exists", "unknown request"},
		{"unknown request", bob, "approve", strings.Repeat("a", 32), team, "no longer exists", "unknown request"},
		{"unknown action", bob, "delete_everything", approveID, team, "Unknown button", "unknown action"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := len(h.audited("Refused"))
			h.bot.HandleAction(context.Background(), Action{EnvelopeID: h.envelope(), TeamID: tt.team, UserID: tt.user,
				UserName: name(tt.user), ChannelID: chan1, ActionID: tt.action, Value: tt.value})
			h.bot.Wait()
			if got := h.chat.lastEphemeral(tt.user); !strings.Contains(got, tt.want) {
				t.Errorf("press %s by %s: ephemeral %q; want %q", tt.action, name(tt.user), got, tt.want)
			}
			r := h.audited("Refused")
			if len(r) != n+1 || !strings.Contains(r[len(r)-1], "Why: "+tt.why) {
				t.Errorf("Refused lines = %q; want a new one with Why: %s", r[n:], tt.why)
			}
			if h.sessionCount() != 5 {
				t.Fatal("a refused press changed Redis")
			}
		})
	}
	if len(h.audited("Cleanup Started")) != 3 { // the three dry runs only
		t.Errorf("Cleanup Started = %q; want only the dry runs", h.audited("Cleanup Started"))
	}
}

// Reject and cancel are final; the message says so, and later presses are refused.
func TestRejectAndCancel(t *testing.T) {
	h := newHarness(t)
	h.seed(sessionSpec{n: 5})
	id, ref := h.requestAll()
	h.press(bob, "reject", id)
	wantContains(t, "rejected message", chat.FormatText(h.chat.msg(ref)), "Rejected", "Rejected by @"+bob, "Nothing was deleted")
	if len(h.chat.msg(ref).Buttons) != 0 {
		t.Error("a rejected request still has buttons")
	}
	h.press(dave, "approve", id)
	wantContains(t, "approve after reject", h.chat.lastEphemeral(dave), "already rejected by <@"+bob+">")
	wantContains(t, "audit", strings.Join(h.audited("Rejected"), ""), "User: "+bob+" (bob) | Request: "+id+" | Requester: "+alice+" (alice)")

	id, ref = h.requestAll()
	h.press(alice, "cancel", id) // the requester
	wantContains(t, "cancelled message", chat.FormatText(h.chat.msg(ref)), "Cancelled by @"+alice)
	h.press(bob, "approve", id)
	wantContains(t, "approve after cancel", h.chat.lastEphemeral(bob), "already cancelled")
	if h.sessionCount() != 5 {
		t.Error("sessions deleted")
	}
	if len(h.audited("Cancelled")) != 1 {
		t.Errorf("Cancelled lines = %q", h.audited("Cancelled"))
	}
}

// Many approvers pressing at once (and one pressing many times) run the job exactly once.
func TestConcurrentApprovalsRunOnce(t *testing.T) {
	h := newHarness(t)
	h.seed(sessionSpec{n: 50})
	id, _ := h.requestAll()
	second := h.newBot(h.deps()) // a second replica on the same state

	var wg sync.WaitGroup
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b, user := h.bot, bob
			if i%2 == 1 {
				b, user = second, dave
			}
			h.pressOn(b, user, "approve", id, fmt.Sprintf("race-%d", i))
		}()
	}
	wg.Wait()
	h.bot.Wait()
	second.Wait()

	if n := len(h.audited("Approved")); n != 1 {
		t.Errorf("%d Approved lines; want 1", n)
	}
	if n := len(h.audited("Cleanup Started")) - 1; n != 1 { // minus the dry run
		t.Errorf("%d jobs started; want 1", n)
	}
	if n := len(h.notifier.all()); n != 1 {
		t.Errorf("%d jobs finished; want 1", n)
	}
	jobs, err := h.bot.st.recentJobs(context.Background(), 10)
	if err != nil || len(jobs) != 1 {
		t.Errorf("jobs = %d, %v; want 1", len(jobs), err)
	}
	if h.sessionCount() != 0 {
		t.Errorf("%d sessions left", h.sessionCount())
	}
	if n := len(h.audited("Refused")); n != 39 {
		t.Errorf("%d Refused lines; want 39 (every losing press is refused and audited)", n)
	}
}

// A redelivered envelope (same id) is handled once, for commands and for clicks.
func TestRedeliveryHandledOnce(t *testing.T) {
	h := newHarness(t)
	h.seed(sessionSpec{n: 5, expired: true})
	c := Command{EnvelopeID: "env-dup-cmd", TeamID: team, UserID: alice, UserName: "alice", ChannelID: chan1, Text: "cleanup"}
	h.bot.HandleCommand(context.Background(), c)
	h.bot.HandleCommand(context.Background(), c)
	h.bot.Wait()
	if n := h.chat.postCount(); n != 1 {
		t.Fatalf("%d previews posted; want 1", n)
	}
	_, m := h.chat.latest(-1)
	// Redelivered to another replica: still once.
	other := h.newBot(h.deps())
	h.pressOn(h.bot, alice, "run", button(t, m, "run"), "env-dup-run")
	h.pressOn(other, alice, "run", button(t, m, "run"), "env-dup-run")
	h.bot.Wait()
	other.Wait()
	if n := len(h.notifier.all()); n != 1 {
		t.Errorf("%d jobs; want 1", n)
	}
	if n := h.chat.ephemeralCount(); n != 0 {
		t.Errorf("%d ephemeral messages; a redelivery must not even say 'already decided'", n)
	}
}

// A request survives a restart: a new Bot on the same state honours the approval.
func TestRestartBetweenRequestAndApproval(t *testing.T) {
	h := newHarness(t)
	h.seed(sessionSpec{n: 7})
	id, ref := h.requestAll()
	h.bot.Close()

	h.bot = h.newBot(h.deps())
	h.press(alice, "approve", id)
	wantContains(t, "self-approval after restart", h.chat.lastEphemeral(alice), "two-person rule")
	h.press(bob, "approve", id)
	wantContains(t, "report", chat.FormatText(h.chat.msg(ref)), "Cleanup completed: all", "Deleted:   7")
	if h.sessionCount() != 0 {
		t.Errorf("%d sessions left", h.sessionCount())
	}
}

// The sweeper expires requests within its interval: message updated, Expired audited (distinct
// from a rejection), and a later approval is refused.
func TestExpiry(t *testing.T) {
	h := newHarness(t)
	h.seed(sessionSpec{n: 5})
	id, ref := h.requestAll()

	h.clock.Advance(14 * time.Minute)
	h.bot.Sweep(context.Background())
	if len(h.audited("Expired")) != 0 {
		t.Fatal("expired before APPROVAL_TTL")
	}
	h.clock.Advance(time.Minute)
	h.bot.Sweep(context.Background())
	h.bot.Sweep(context.Background()) // idempotent
	wantContains(t, "expired message", chat.FormatText(h.chat.msg(ref)), "Expired", "without being run", "Nothing was deleted")
	if len(h.chat.msg(ref).Buttons) != 0 {
		t.Error("an expired request still has buttons")
	}
	exp := h.audited("Expired")
	if len(exp) != 1 || !strings.Contains(exp[0], "Request: "+id+" | Requester: "+alice+" (alice) | Mode: all") {
		t.Errorf("Expired lines = %q", exp)
	}
	if len(h.audited("Rejected")) != 0 {
		t.Error("expiry audited as a rejection")
	}
	h.press(bob, "approve", id)
	wantContains(t, "late approval", h.chat.lastEphemeral(bob), "expired")
	if h.sessionCount() != 5 {
		t.Error("an expired request ran")
	}
}

// Expiry is also noticed on a click, without the sweeper.
func TestExpiryOnClick(t *testing.T) {
	h := newHarness(t)
	h.seed(sessionSpec{n: 5})
	id, ref := h.requestAll()
	h.clock.Advance(16 * time.Minute)
	h.press(bob, "approve", id)
	wantContains(t, "late approval", h.chat.lastEphemeral(bob), "expired")
	wantContains(t, "message", chat.FormatText(h.chat.msg(ref)), "Expired")
	if len(h.audited("Expired")) != 1 || !strings.Contains(strings.Join(h.audited("Refused"), ""), "Why: already expired") {
		t.Errorf("audit: Expired %q Refused %q", h.audited("Expired"), h.audited("Refused"))
	}
	if h.sessionCount() != 5 {
		t.Error("an expired request ran")
	}
}

// Run drives the sweeper by itself.
func TestRunSweeps(t *testing.T) {
	h := newHarness(t, func(_ *harness, d *Deps) { d.SweepInterval = 10 * time.Millisecond })
	h.seed(sessionSpec{n: 1})
	_, ref := h.requestAll()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.bot.Run(ctx) }()
	h.clock.Advance(time.Hour)
	h.chat.waitFor(t, func() bool { return strings.Contains(chat.FormatText(h.chat.msg(ref)), "Expired") })
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run = %v", err)
	}
}

// Operators and approvers may be user groups, resolved through Chat and cached.
func TestUserGroups(t *testing.T) {
	h := newHarness(t, func(h *harness, d *Deps) {
		d.Config.Operators = []string{"S0OPS001"}
		d.Config.Approvers = []string{"S0SEC001"}
		h.chat.groups["S0OPS001"] = []string{"UGRPOP01"}
		h.chat.groups["S0SEC001"] = []string{"UGRPSEC1"}
	})
	h.seed(sessionSpec{n: 3})
	h.command("UGRPOP01", `cleanup --all --reason "group test"`)
	_, m := h.chat.latest(-1)
	id := button(t, m, "approve")
	h.press("UGRPOP01", "approve", id)
	wantContains(t, "self", h.chat.lastEphemeral("UGRPOP01"), "two-person rule")
	h.press("UGRPSEC1", "approve", id)
	if h.sessionCount() != 0 {
		t.Errorf("group approver could not approve: %d sessions left", h.sessionCount())
	}
	h.command(eve, "stats")
	wantContains(t, "outsider", h.chat.lastEphemeral(eve), "not allowed")
	h.chat.mu.Lock()
	calls := h.chat.groupCalls
	h.chat.mu.Unlock()
	if calls > 3 {
		t.Errorf("%d user-group lookups; want them cached", calls)
	}
}

// APPROVAL_CHANNEL receives the approval request; the preview says where it went.
func TestApprovalChannel(t *testing.T) {
	h := newHarness(t, func(_ *harness, d *Deps) { d.Config.ApprovalChannel = "C0APPROVE" })
	h.seed(sessionSpec{n: 3})
	h.command(alice, `cleanup --all --reason "channel test"`)
	h.chat.mu.Lock()
	var posts []postedMsg
	for _, p := range h.chat.posts {
		if p.Thread == nil {
			posts = append(posts, p)
		}
	}
	h.chat.mu.Unlock()
	if len(posts) != 2 || posts[1].Channel != "C0APPROVE" {
		t.Fatalf("posts = %+v; want the preview in %s and the request in C0APPROVE", posts, chan1)
	}
	preview, request := h.chat.msg(posts[0].Ref), h.chat.msg(posts[1].Ref)
	if len(preview.Buttons) != 0 {
		t.Errorf("the preview in the command channel has buttons %v", actionIDs(preview))
	}
	wantContains(t, "preview", chat.FormatText(preview), "Approval requested in #C0APPROVE")
	h.press(bob, "approve", button(t, request, "approve"))
	wantContains(t, "report in approval channel", chat.FormatText(h.chat.msg(posts[1].Ref)), "Cleanup completed")
	wantContains(t, "report in command channel", chat.FormatText(h.chat.msg(posts[0].Ref)), "Cleanup completed")
}

// Help teaches every flag with an example; status lists jobs; stats counts.
func TestHelpStatusStats(t *testing.T) {
	h := newHarness(t)
	h.seed(sessionSpec{n: 4, expired: true})
	h.command(alice, "help")
	help := h.chat.lastEphemeral(alice)
	h.chat.mu.Lock()
	helpMsg := chat.FormatText(h.chat.ephemerals[len(h.chat.ephemerals)-1].Msg)
	h.chat.mu.Unlock()
	_ = help
	for _, flag := range []string{"--expired", "--orphans", "--auth-method", "--user-id", "--session-id", "--older-than", "--all", "--reason", "--no-backup", "--backup", "status", "cancel", "restore", "stats"} {
		if !strings.Contains(helpMsg, flag) {
			t.Errorf("help does not mention %s", flag)
		}
	}
	h.command(alice, "")
	if h.chat.lastEphemeral(alice) != help {
		t.Error("empty command does not show help")
	}
	h.command(bob, "help") // approvers may read help
	wantContains(t, "approver help", h.chat.lastEphemeral(bob), "help")

	h.command(alice, "status")
	wantContains(t, "status", h.chat.lastEphemeral(alice), "No jobs yet")
	h.command(alice, "cleanup")
	_, m := h.chat.latest(-1)
	h.press(alice, "run", button(t, m, "run"))
	h.command(bob, "status")
	h.chat.mu.Lock()
	status := chat.FormatText(h.chat.ephemerals[len(h.chat.ephemerals)-1].Msg)
	h.chat.mu.Unlock()
	jobID := h.notifier.all()[0].JobID
	wantContains(t, "status", status, jobID, "done", "deleted 4")
	h.command(alice, "status "+jobID)
	wantContains(t, "job status", h.chat.lastEphemeral(alice), jobID+": done")

	h.seed(sessionSpec{n: 6})
	h.command(carol, "stats")
	h.chat.mu.Lock()
	stats := chat.FormatText(h.chat.ephemerals[len(h.chat.ephemerals)-1].Msg)
	h.chat.mu.Unlock()
	wantContains(t, "stats", stats, "Found 6 total session keys", "0 sessions expired", "oauth2 6")
	h.assertNoLeaks()
}

// A running job is cancelled by `cancel JOB_ID` too; cancelling a finished job says so.
func TestCancelCommand(t *testing.T) {
	h := newHarness(t)
	h.seed(sessionSpec{n: 2, expired: true})
	h.command(alice, "cleanup")
	_, m := h.chat.latest(-1)
	h.press(alice, "run", button(t, m, "run"))
	jobID := h.notifier.all()[0].JobID
	h.command(carol, "cancel "+jobID)
	wantContains(t, "cancel done job", h.chat.lastEphemeral(carol), "is not running (done)")
}

// twoApprovals is a harness whose two-person actions need two approvals (APPROVALS_REQUIRED=2).
func twoApprovals(_ *harness, d *Deps) { d.Config.ApprovalsRequired = 2 }

// N-of-M (SPEC §13): the first approval is counted, audited and shown on the card; the same
// approver again counts once and is told so; the requester never counts; the second distinct
// approver starts the job, once.
func TestTwoOfTwoApprovals(t *testing.T) {
	h := newHarness(t, twoApprovals, func(_ *harness, d *Deps) {
		d.Config.Approvers = append(d.Config.Approvers, alice) // alice may approve, but not her own request
	})
	h.seed(sessionSpec{n: 6})
	id, ref := h.requestAll()
	wantContains(t, "approval request", chat.FormatText(h.chat.msg(ref)), "Approvals: 0 of 2 approvals",
		"2 approvers other than @"+alice+" must approve")
	wantContains(t, "Request Created", strings.Join(h.audited("Request Created"), ""), "Approval: required (2 of "+bob+","+dave+","+alice+")")

	h.press(bob, "approve", id)
	wantContains(t, "first approver", h.chat.lastEphemeral(bob), "Your approval is counted: 1 of 2 approvals (by <@"+bob+">)")
	card := h.chat.msg(ref)
	wantContains(t, "card after one approval", chat.FormatText(card), "Approvals: 1 of 2 approvals (by @"+bob+")", "[Approve]")
	if got := strings.Join(actionIDs(card), ","); got != "approve,reject,cancel" {
		t.Errorf("card after one approval has buttons %s; want approve,reject,cancel", got)
	}
	h.press(bob, "approve", id)
	wantContains(t, "same approver again", h.chat.lastEphemeral(bob), "already approved", "counts once: 1 of 2 approvals")
	h.press(alice, "approve", id)
	wantContains(t, "requester", h.chat.lastEphemeral(alice), "two-person rule")
	if n := h.sessionCount(); n != 6 {
		t.Fatalf("%d sessions left before the second approval; want 6", n)
	}
	if got := len(h.notifier.all()); got != 0 {
		t.Fatalf("%d jobs ran on one approval of two", got)
	}

	h.press(dave, "approve", id)
	wantContains(t, "report", chat.FormatText(h.chat.msg(ref)), "Cleanup completed: all", "Approved by: @"+bob+", @"+dave)
	if n := h.sessionCount(); n != 0 {
		t.Errorf("%d sessions left after the second approval", n)
	}
	approved := h.audited("Approved")
	if len(approved) != 2 || !strings.Contains(approved[0], "| User: "+bob+" (bob) | Request: "+id) || !strings.HasSuffix(approved[0], "| Approvals: 1/2") ||
		!strings.Contains(approved[1], "| User: "+dave+" (dave) |") || !strings.HasSuffix(approved[1], "| Approvals: 2/2") {
		t.Errorf("Approved lines = %q; want bob's 1/2, then dave's 2/2", approved)
	}
	wantContains(t, "Cleanup Started", strings.Join(h.audited("Cleanup Started"), "\n"),
		"| User: "+alice+" (alice) | Mode: all | Filters: all | Approved-By: "+bob+" (bob), "+dave+" (dave) |")
	wantContains(t, "Refused", strings.Join(h.audited("Refused"), "\n"),
		"| User: "+bob+" (bob) | Action: approve | Request: "+id+" | Why: already approved by this approver",
		"| User: "+alice+" (alice) | Action: approve | Request: "+id+" | Why: self-approval")
	if outs := h.notifier.all(); len(outs) != 1 || len(outs[0].Approvals) != 2 || outs[0].Approvals[0].ID != bob || outs[0].Approvals[1].ID != dave {
		t.Errorf("outcomes = %+v; want one, naming bob and dave, in the order they approved", outs)
	}
	h.press(bob, "approve", id)
	wantContains(t, "late approval", h.chat.lastEphemeral(bob), "already ran")
}

// A rejection by any approver ends a request that already has an approval.
func TestRejectAfterOneOfTwoApprovals(t *testing.T) {
	h := newHarness(t, twoApprovals)
	h.seed(sessionSpec{n: 4})
	id, ref := h.requestAll()
	h.press(bob, "approve", id)
	h.press(dave, "reject", id)
	wantContains(t, "rejected card", chat.FormatText(h.chat.msg(ref)), "Rejected by @"+dave, "1 of 2 approvals (by @"+bob+")", "Nothing was deleted")
	if len(h.chat.msg(ref).Buttons) != 0 {
		t.Error("a rejected request still has buttons")
	}
	h.press(dave, "approve", id)
	wantContains(t, "approve after reject", h.chat.lastEphemeral(dave), "already rejected by <@"+dave+">")
	if n := h.sessionCount(); n != 4 || len(h.notifier.all()) != 0 {
		t.Errorf("%d sessions left, %d jobs; want 4 and none", n, len(h.notifier.all()))
	}
	if n := len(h.audited("Rejected")); n != 1 {
		t.Errorf("%d Rejected lines; want 1", n)
	}
}

// With two approvals required, two approvers pressing at once on two replicas start the job
// exactly once, and one approver pressing on both replicas never starts it.
func TestTwoOfTwoConcurrentPresses(t *testing.T) {
	h := newHarness(t, twoApprovals)
	h.seed(sessionSpec{n: 30})
	second := h.newBot(h.deps())
	storm := func(id string, users ...string) {
		var wg sync.WaitGroup
		for i := range 40 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				b := h.bot
				if i%2 == 1 {
					b = second
				}
				h.pressOn(b, users[i%len(users)], "approve", id, fmt.Sprintf("storm-%s-%d", id, i))
			}()
		}
		wg.Wait()
		h.bot.Wait()
		second.Wait()
	}

	// One approver only: counted once, never started.
	alone, ref := h.requestAll()
	storm(alone, bob)
	if n := len(h.audited("Approved")); n != 1 {
		t.Errorf("bob pressing 40 times: %d Approved lines; want 1", n)
	}
	if n := h.sessionCount(); n != 30 || len(h.notifier.all()) != 0 {
		t.Fatalf("bob alone started a job: %d sessions left, %d jobs", n, len(h.notifier.all()))
	}
	if r, err := h.bot.st.request(context.Background(), alone); err != nil || r.Status != StatusPending || len(r.Approvals) != 1 {
		t.Fatalf("request after bob's presses = %+v, %v; want pending with one approval", r, err)
	}
	wantContains(t, "card", chat.FormatText(h.chat.msg(ref)), "1 of 2 approvals (by @"+bob+")")
	h.press(alice, "cancel", alone)

	// Two approvers (bob's presses on one replica, dave's on the other): one job.
	both, ref := h.requestAll()
	storm(both, bob, bob, dave, dave) // i%4: 0 bob/first, 1 bob/second, 2 dave/first, 3 dave/second
	approved := h.audited("Approved")[1:]
	if len(approved) != 2 || !strings.HasSuffix(approved[0], "Approvals: 1/2") || !strings.HasSuffix(approved[1], "Approvals: 2/2") {
		t.Errorf("Approved lines = %q; want one 1/2 and one 2/2", approved)
	}
	if n := len(h.audited("Cleanup Started")) - 2; n != 1 { // minus the two dry runs
		t.Errorf("%d jobs started; want 1", n)
	}
	if n := len(h.notifier.all()); n != 1 {
		t.Errorf("%d jobs finished; want 1", n)
	}
	if n := h.sessionCount(); n != 0 {
		t.Errorf("%d sessions left", n)
	}
	wantContains(t, "report", chat.FormatText(h.chat.msg(ref)), "Cleanup completed: all")
}

// A pending request made before an upgrade (no required count stored) still needs one
// approval, as its card said, even once APPROVALS_REQUIRED is 2.
func TestRequestFromBeforeUpgradeIsApprovable(t *testing.T) {
	h := newHarness(t)
	h.seed(sessionSpec{n: 5})
	id, ref := h.requestAll()
	ctx := context.Background()
	key := h.bot.st.reqKey(id)
	data, err := h.rdb.HGet(ctx, key, "data").Result()
	if err != nil {
		t.Fatal(err)
	}
	var old map[string]any
	if err := json.Unmarshal([]byte(data), &old); err != nil {
		t.Fatal(err)
	}
	delete(old, "required") // as the previous version wrote it
	raw, _ := json.Marshal(old)
	if err := h.rdb.HSet(ctx, key, "data", raw).Err(); err != nil {
		t.Fatal(err)
	}

	d := h.deps()
	d.Config.ApprovalsRequired = 2
	h.bot.Close()
	h.bot = h.newBot(d) // the upgraded replica
	h.press(bob, "approve", id)
	wantContains(t, "report", chat.FormatText(h.chat.msg(ref)), "Cleanup completed: all")
	if n := h.sessionCount(); n != 0 {
		t.Errorf("%d sessions left", n)
	}
	if a := h.audited("Approved"); len(a) != 1 || !strings.HasSuffix(a[0], "| Approvals: 1/1") {
		t.Errorf("Approved lines = %q; want one with Approvals: 1/1", a)
	}
}

// A first approval's card update that lands after the job was approved, ran and reported
// (another replica, a slow Slack) does not leave the stale card: the report is shown again.
func TestStaleApprovalCardIsSettled(t *testing.T) {
	h := newHarness(t, twoApprovals)
	h.seed(sessionSpec{n: 3})
	id, ref := h.requestAll()
	h.press(bob, "approve", id)
	stale := h.chat.msg(ref) // "1 of 2 approvals", as bob's replica rendered it
	h.press(dave, "approve", id)
	report := h.chat.msg(ref)
	wantContains(t, "report", chat.FormatText(report), "Cleanup completed")

	ctx := context.Background()
	if err := h.chat.Update(ctx, ref, stale); err != nil { // bob's update lands late
		t.Fatal(err)
	}
	h.bot.settleCard(ctx, id, 1)
	if got := chat.FormatText(h.chat.msg(ref)); got != chat.FormatText(report) {
		t.Errorf("after settling, the message shows:\n%s\nwant the report:\n%s", got, chat.FormatText(report))
	}

	// The same for a rejection that overtook the first approval's card.
	h.seed(sessionSpec{n: 3})
	id, ref = h.requestAll()
	h.press(bob, "approve", id)
	stale = h.chat.msg(ref)
	h.press(dave, "reject", id)
	rejected := h.chat.msg(ref)
	if err := h.chat.Update(ctx, ref, stale); err != nil {
		t.Fatal(err)
	}
	h.bot.settleCard(ctx, id, 1)
	if got := chat.FormatText(h.chat.msg(ref)); got != chat.FormatText(rejected) {
		t.Errorf("after settling, the message shows:\n%s\nwant the rejection:\n%s", got, chat.FormatText(rejected))
	}
}
