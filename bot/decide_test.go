package bot

import (
	"strings"
	"testing"
	"time"

	"github.com/platform-team/sessionbot/bot/chat"
	"github.com/platform-team/sessionbot/cleanup"
)

// TestDecide walks every rule of who may press what (SPEC §6, §11, §13 "Approvals") through the
// pure state machine: what happens, what is audited, what the presser and the card say.
func TestDecide(t *testing.T) {
	now := time.Date(2025, 11, 26, 10, 0, 0, 0, time.UTC)
	var (
		pAlice = presser{Person: Person{ID: alice, Name: "alice"}, Team: team, Operator: true} // the requester
		pCarol = presser{Person: Person{ID: carol, Name: "carol"}, Team: team, Operator: true}
		pBob   = presser{Person: Person{ID: bob, Name: "bob"}, Team: team, Approver: true}
		pDave  = presser{Person: Person{ID: dave, Name: "dave"}, Team: team, Approver: true}
		pEve   = presser{Person: Person{ID: eve, Name: "eve"}, Team: team}
		// alice as an approver too: she still may not approve her own request.
		pAliceApprover = presser{Person: pAlice.Person, Team: team, Operator: true, Approver: true}
		pForeign       = presser{Person: pBob.Person, Team: "T0OTHER1", Foreign: true, Approver: true}
	)
	// req is a pending request by alice; change tweaks it.
	req := func(change func(r *Request)) *Request {
		r := &Request{
			ID: "0123456789abcdef0123456789abcdef", Kind: KindCleanup, Mode: ModeAll, Filter: cleanup.Filter{All: true},
			Scope: "all", Reason: "incident 42", Requester: pAlice.Person, Channel: chan1,
			Ref:           MessageRef{Channel: chan1, TS: "1.000001"},
			Plan:          cleanup.Plan{Filter: cleanup.Filter{All: true}, Found: 10, Matched: 10, Valid: 8},
			NeedsApproval: true, Required: 1, Approvers: []string{bob, dave},
			CreatedAt: now.Add(-time.Minute), ExpiresAt: now.Add(14 * time.Minute), Status: StatusPending,
		}
		if change != nil {
			change(r)
		}
		return r
	}
	plain := func(r *Request) {
		r.NeedsApproval, r.Mode, r.Filter, r.Scope = false, ModeExecute, cleanup.Filter{}, "expired_only"
	}
	twoOf := func(by ...Person) func(r *Request) {
		return func(r *Request) { r.Required, r.Approvals = 2, by }
	}
	status := func(s Status, jobID string) func(r *Request) {
		return func(r *Request) { r.Status, r.JobID = s, jobID }
	}
	// failedAt: approved at decided, its job interrupted part-way.
	failedAt := func(decided time.Time) func(r *Request) {
		return func(r *Request) {
			r.Status, r.JobID, r.Resumable, r.DecidedAt = StatusFailed, "job-20251126-0001", true, decided
			r.Approvals = []Person{pBob.Person}
		}
	}

	tests := []struct {
		name   string
		req    *Request
		who    presser
		action string

		do    effect
		start bool
		audit string   // "" when nothing is audited; else what the line contains
		text  []string // what the presser alone is told
		card  []string // what the request's message says afterwards (nil: unchanged)
	}{
		// Before anything else.
		{name: "foreign workspace", req: req(nil), who: pForeign, action: "approve",
			do: doRefuse, audit: "| Refused | User: " + bob + " (bob) | Action: approve | Why: foreign workspace T0OTHER1", text: []string{"another Slack workspace"}},
		{name: "unknown action", req: req(nil), who: pBob, action: "delete", do: doRefuse, audit: "Why: unknown action", text: []string{"Unknown button"}},
		{name: "unknown request", req: nil, who: pBob, action: "approve", do: doRefuse, audit: "Why: unknown request", text: []string{"no longer exists"}},
		{name: "expired on click", req: req(func(r *Request) { r.ExpiresAt = now }), who: pBob, action: "approve", do: doExpire},
		{name: "expired, then pressed", req: req(status(StatusExpired, "")), who: pBob, action: "approve",
			do: doRefuse, audit: "Why: already expired", text: []string{"expired at <!date^1764152040^{date_short_pretty} {time}|2025-11-26 10:14:00Z>"}},

		// resume (SPEC §13 "Resume"): the request's approval was decided at now-2m; its TTL is 15m.
		{name: "resume by an operator", req: req(failedAt(now.Add(-2 * time.Minute))), who: pCarol, action: "resume", do: doResume, start: true},
		{name: "resume by a non-operator", req: req(failedAt(now.Add(-2 * time.Minute))), who: pBob, action: "resume",
			do: doRefuse, audit: "Why: not in OPERATORS", text: []string{"Only operators may resume"}},
		{name: "resume after the approval aged out", req: req(failedAt(now.Add(-15 * time.Minute))), who: pCarol, action: "resume",
			do: doRefuse, audit: "Why: approval aged out", text: []string{"older than APPROVAL_TTL (15m", "make a fresh request", "Nothing was done"}},
		{name: "resume a job stopped by its bound", req: req(func(r *Request) {
			failedAt(now.Add(-2 * time.Minute))(r)
			r.Resumable = false
		}), who: pCarol, action: "resume", do: doRefuse, audit: "Why: not resumable", text: []string{"cannot be resumed", "stopped at its bound"}},
		{name: "resume twice", req: req(status(StatusRunning, "job-20251126-0002")), who: pCarol, action: "resume",
			do: doRefuse, audit: "Why: already resumed", text: []string{"already running (job job-20251126-0002)"}},

		// run
		{name: "run by an operator", req: req(plain), who: pCarol, action: "run", do: doRun, start: true},
		{name: "run by the requester", req: req(plain), who: pAlice, action: "run", do: doRun, start: true},
		{name: "run by a non-operator", req: req(plain), who: pBob, action: "run", do: doRefuse, audit: "Why: not in OPERATORS", text: []string{"Only operators"}},
		{name: "run an approval request", req: req(nil), who: pAlice, action: "run", do: doRefuse, audit: "Why: needs approval", text: []string{"needs an approver"}},
		{name: "run twice", req: req(func(r *Request) {
			plain(r)
			r.Status, r.JobID, r.DecidedBy = StatusRunning, "job-20251126-0001", &pCarol.Person
		}),
			who: pAlice, action: "run", do: doRefuse, audit: "Why: already running", text: []string{"already started by <@" + carol + "> (job job-20251126-0001)"}},
		{name: "run after it ran", req: req(func(r *Request) { plain(r); r.Status, r.JobID = StatusDone, "job-20251126-0001" }),
			who: pCarol, action: "run", do: doRefuse, audit: "Why: already done", text: []string{"already ran (job job-20251126-0001, done)"}},

		// approve, reject: who
		{name: "self-approval", req: req(nil), who: pAliceApprover, action: "approve", do: doRefuse, audit: "Why: self-approval", text: []string{"two-person rule"}},
		{name: "self-rejection", req: req(nil), who: pAliceApprover, action: "reject", do: doRefuse, audit: "Why: self-approval", text: []string{"two-person rule"}},
		{name: "approval by a non-approver", req: req(nil), who: pCarol, action: "approve",
			do: doRefuse, audit: "Why: not in APPROVERS", text: []string{"Only approvers (<@" + bob + ">, <@" + dave + ">)"}},
		{name: "rejection by an outsider", req: req(nil), who: pEve, action: "reject", do: doRefuse, audit: "Why: not in APPROVERS"},
		{name: "approve a request that needs none", req: req(plain), who: pBob, action: "approve", do: doRefuse, audit: "Why: no approval needed"},
		{name: "approve a rejected request", req: req(func(r *Request) { r.Status, r.DecidedBy = StatusRejected, &pDave.Person }), who: pBob, action: "approve",
			do: doRefuse, audit: "Why: already rejected", text: []string{"already rejected by <@" + dave + ">"}},
		{name: "approve a started request", req: req(func(r *Request) {
			r.Status, r.JobID, r.Approvals = StatusRunning, "job-20251126-0001", []Person{pDave.Person}
		}), who: pBob, action: "approve",
			do: doRefuse, audit: "Why: already running", text: []string{"already approved by <@" + dave + "> and started (job job-20251126-0001)"}},

		// approve: one of one
		{name: "the one approval starts the job", req: req(nil), who: pBob, action: "approve", do: doApprove, start: true,
			audit: "| Approved | User: " + bob + " (bob) | Request: 0123456789abcdef0123456789abcdef | Requester: " + alice + " (alice) | Mode: all | Filters: all | Reason: incident 42 | Approvals: 1/1"},

		// approve: two of two
		{name: "first of two approvals", req: req(twoOf()), who: pBob, action: "approve", do: doApprove,
			audit: "| Approved | User: " + bob + " (bob) | Request: 0123456789abcdef0123456789abcdef | Requester: " + alice + " (alice) | Mode: all | Filters: all | Reason: incident 42 | Approvals: 1/2",
			text:  []string{"Your approval is counted: 1 of 2 approvals (by <@" + bob + ">)", "starts on the last"},
			card:  []string{"Approvals: 1 of 2 approvals (by @" + bob + ")", "2 approvers other than @" + alice + " must approve", "[Approve]"}},
		{name: "the same approver again counts once", req: req(twoOf(pBob.Person)), who: pBob, action: "approve",
			do: doRefuse, audit: "| Refused | User: " + bob + " (bob) | Action: approve | Request: 0123456789abcdef0123456789abcdef | Why: already approved by this approver",
			text: []string{"already approved", "counts once: 1 of 2 approvals (by <@" + bob + ">)"}},
		{name: "second distinct approver starts the job", req: req(twoOf(pBob.Person)), who: pDave, action: "approve", do: doApprove, start: true,
			audit: "| Approved | User: " + dave + " (dave) |", text: nil},
		{name: "the second approval's audit counts two", req: req(twoOf(pBob.Person)), who: pDave, action: "approve", do: doApprove, start: true,
			audit: "| Approvals: 2/2"},
		{name: "the requester never counts", req: req(twoOf(pBob.Person)), who: pAliceApprover, action: "approve", do: doRefuse, audit: "Why: self-approval"},
		{name: "a rejection after one approval ends it", req: req(twoOf(pBob.Person)), who: pDave, action: "reject", do: doReject,
			audit: "| Rejected | User: " + dave + " (dave) | Request: 0123456789abcdef0123456789abcdef",
			card:  []string{"Rejected by @" + dave, "Approvals: 1 of 2 approvals (by @" + bob + ")", "Nothing was deleted"}},
		{name: "an approver who approved may still reject", req: req(twoOf(pBob.Person)), who: pBob, action: "reject", do: doReject,
			audit: "| Rejected | User: " + bob, card: []string{"Rejected by @" + bob}},
		{name: "approve after expiry with one approval", req: req(func(r *Request) { twoOf(pBob.Person)(r); r.ExpiresAt = now.Add(-time.Second) }),
			who: pDave, action: "approve", do: doExpire},

		// cancel
		{name: "cancel by the requester", req: req(nil), who: pAlice, action: "cancel", do: doCancel,
			audit: "| Cancelled | User: " + alice + " (alice)", text: []string{"Cancelled; nothing was deleted."}, card: []string{"Cancelled by @" + alice}},
		{name: "cancel by an approver", req: req(twoOf(pBob.Person)), who: pDave, action: "cancel", do: doCancel,
			audit: "| Cancelled | User: " + dave, card: []string{"Cancelled by @" + dave, "Approvals: 1 of 2 approvals (by @" + bob + ")"}},
		{name: "cancel by an outsider", req: req(nil), who: pEve, action: "cancel", do: doRefuse, audit: "Why: not allowed to cancel", text: []string{"Only the requester"}},
		{name: "cancel a running job", req: req(status(StatusRunning, "job-20251126-0001")), who: pCarol, action: "cancel", do: doCancelJob},
		{name: "cancel a job still starting", req: req(status(StatusApproved, "")), who: pCarol, action: "cancel",
			do: doRefuse, audit: "Why: already approved", text: []string{"already started"}},
		{name: "cancel after it ran", req: req(status(StatusDone, "job-20251126-0001")), who: pAlice, action: "cancel", do: doRefuse, audit: "Why: already done"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var before []Person
			if tt.req != nil {
				before = append(before, tt.req.Approvals...)
			}
			d := decide(tt.req, tt.who, tt.action, now)
			call := "decide(" + tt.who.Name + ", " + tt.action + ")"
			if d.Do != tt.do || d.Start != tt.start {
				t.Fatalf("%s = %s, start %v; want %s, start %v", call, d.Do, d.Start, tt.do, tt.start)
			}
			if d.By != tt.who.Person {
				t.Errorf("%s.By = %v; want %v", call, d.By, tt.who.Person)
			}
			switch {
			case tt.audit == "" && d.Audit != nil:
				t.Errorf("%s audits %q; want nothing", call, d.Audit.String())
			case tt.audit != "" && d.Audit == nil:
				t.Errorf("%s audits nothing; want %q", call, tt.audit)
			case tt.audit != "" && !strings.Contains(d.Audit.String(), tt.audit):
				t.Errorf("%s audits %q; want it to contain %q", call, d.Audit.String(), tt.audit)
			}
			if tt.do == doRefuse && d.Text == "" {
				t.Errorf("%s refuses without telling the presser why", call)
			}
			wantContains(t, call+" text", d.Text, tt.text...)
			switch {
			case tt.card == nil && d.Card != nil:
				t.Errorf("%s changes the card to %q; want it unchanged", call, chat.FormatText(*d.Card))
			case tt.card != nil && d.Card == nil:
				t.Errorf("%s leaves the card; want %q", call, tt.card)
			case tt.card != nil:
				wantContains(t, call+" card", chat.FormatText(*d.Card), tt.card...)
			}
			if tt.req != nil && len(tt.req.Approvals) != len(before) {
				t.Errorf("%s changed the request's approvals to %v; decide must change nothing", call, tt.req.Approvals)
			}
		})
	}
}

// A card that was updated after one of two approvals keeps its Approve button and tells the
// next approver that theirs starts the job; a card that waits for two more says it does not.
func TestDecideApproveConfirm(t *testing.T) {
	r := &Request{ID: "0123456789abcdef0123456789abcdef", Kind: KindCleanup, Mode: ModeAll, Filter: cleanup.Filter{All: true},
		Scope: "all", Requester: Person{ID: alice}, NeedsApproval: true, Required: 3, Approvers: []string{"S0SEC001"},
		Plan: cleanup.Plan{Matched: 5}}
	confirm := func(r *Request) string {
		for _, b := range approvalMessage(r).Buttons {
			if b.ActionID == "approve" {
				return b.Confirm
			}
		}
		t.Fatal("no approve button")
		return ""
	}
	if got := confirm(r); !strings.HasPrefix(got, "Approve (1 of 3 approvals; the job starts on the last)") {
		t.Errorf("confirm with none of 3 = %q", got)
	}
	r.Approvals = []Person{{ID: bob}, {ID: dave}}
	if got := confirm(r); !strings.HasPrefix(got, "Approve and start now:") {
		t.Errorf("confirm with 2 of 3 = %q; want the last approval to say it starts the job", got)
	}
}
