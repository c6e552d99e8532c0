package bot

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/platform-team/sessionbot/cleanup"
)

// The approval state machine (SPEC §6, §11 "Who may press what", §13 "Approvals"). A press is
// decided by decide, a pure function of the request as last read, who pressed, and the time;
// act performs the decision's transition atomically in Redis and renders the rest. When the
// request changed in between (another press, another replica, the sweeper), the transition
// does not happen: act reads the request again and decides again, so every press is judged on
// the state it actually changes.

// presser is who pressed a button, with the roles the rules ask about.
type presser struct {
	Person
	Team     string // the workspace the press came from
	Foreign  bool   // Team is not SLACK_TEAM_ID
	Operator bool   // in OPERATORS
	Approver bool   // in APPROVERS
}

// effect is what a press does.
type effect string

const (
	doRefuse    effect = "refuse"     // nothing changes; the presser alone is told why
	doExpire    effect = "expire"     // the request is past its expiry: expire it, then decide again
	doRun       effect = "run"        // pending → approved, no approval needed; the job starts
	doApprove   effect = "approve"    // one more approval is counted; Start: it is the last
	doReject    effect = "reject"     // pending → rejected
	doCancel    effect = "cancel"     // pending → cancelled
	doCancelJob effect = "cancel job" // the request's job is asked to stop
	doResume    effect = "resume"     // failed → approved again, under the same approval; a job continues it
)

// Decision is what a press does to a request: what happens, what to audit, what the request's
// message becomes and what the presser alone is told. It changes nothing by itself.
type Decision struct {
	Do effect
	By Person // who pressed
	// Text is told to the presser alone; "" tells nothing.
	Text string
	// Start says the job starts: a Run, or the approval that reaches req.Required (the store
	// counts an approval only if len(req.Approvals) were counted before it, so it agrees).
	Start bool
	// Audit is the decision's line (Refused, Approved, Rejected, Cancelled), written once its
	// transition has happened (refusals: always); nil: none. The Approved line of the approval
	// that starts the job is written by startJob, once the job can start.
	Audit *cleanup.AuditEvent
	// Card and OriginCard replace the request's message and, when the approval request went
	// to APPROVAL_CHANNEL, the preview it came from; nil: unchanged.
	Card, OriginCard *Message
}

// decide applies the rules of who may press what to req (nil: no such request) as last read.
// It is pure: the caller performs the transition and renders the rest.
func decide(req *Request, p presser, action string, now time.Time) Decision {
	reqID := ""
	refuse := func(why, text string) Decision {
		ev := refusedEvent(now, p.Person, action, reqID, why)
		return Decision{Do: doRefuse, By: p.Person, Text: text, Audit: &ev}
	}
	switch {
	case p.Foreign:
		return refuse("foreign workspace "+p.Team, "This bot serves another Slack workspace; nothing was done.")
	case action != "run" && action != "approve" && action != "reject" && action != "cancel" && action != "resume":
		return refuse("unknown action", "Unknown button; nothing was done.")
	case req == nil:
		return refuse("unknown request", "This request no longer exists; nothing was done. Run a fresh preview.")
	case req.Status == StatusPending && !now.Before(req.ExpiresAt):
		// Expiry is noticed on every click, not only by the sweeper.
		return Decision{Do: doExpire, By: p.Person}
	}
	reqID = req.ID
	decided := "already " + string(req.Status)

	switch action {
	case "run":
		switch {
		case !p.Operator:
			return refuse("not in OPERATORS", "Only operators may run cleanups; nothing was done.")
		case req.NeedsApproval:
			return refuse("needs approval", "This request needs an approver's Approve; it cannot be run directly. Nothing was done.")
		case req.Status != StatusPending:
			return refuse(decided, decidedText(req))
		}
		return Decision{Do: doRun, By: p.Person, Start: true}

	case "resume":
		// SPEC §13 "Resume": an operator continues an interrupted job with the same filters and
		// bound, without a new approval while the approval is younger than APPROVAL_TTL.
		switch {
		case !p.Operator:
			return refuse("not in OPERATORS", "Only operators may resume a job; nothing was done.")
		case req.Status == StatusApproved || req.Status == StatusRunning:
			return refuse("already resumed", "A job of this request is already running (job "+req.JobID+"): it was resumed already. Nothing more was done.")
		case req.Status != StatusFailed || !req.Resumable:
			return refuse("not resumable", "This cleanup cannot be resumed: only one that failed or was interrupted part-way can be, not one that "+
				"completed, was cancelled or stopped at its bound (that needs a fresh preview). Nothing was done.")
		case !now.Before(req.resumeDeadline()):
			return refuse("approval aged out", fmt.Sprintf("The approval of this cleanup is older than APPROVAL_TTL (%s, since %s): it cannot be resumed. Nothing was done; make a fresh request (`%s` again) to finish it.",
				shortDuration(req.ExpiresAt.Sub(req.CreatedAt)), stamp(req.DecidedAt), userText(req.Scope)))
		}
		return Decision{Do: doResume, By: p.Person, Start: true}

	case "cancel":
		switch {
		case p.ID != req.Requester.ID && !p.Operator && !p.Approver:
			return refuse("not allowed to cancel", "Only the requester, an operator or an approver may cancel; nothing was done.")
		case req.Status == StatusPending:
			ev := cleanup.Cancelled{User: personText(p.Person), Request: req.ID,
				Requester: personText(req.Requester), Mode: string(req.Mode), Filters: req.Scope}.Event(now, num)
			card := cancelledMessage(req, p.Person)
			return Decision{Do: doCancel, By: p.Person, Text: "Cancelled; nothing was deleted.", Audit: &ev,
				Card: &card, OriginCard: &card}
		case (req.Status == StatusApproved || req.Status == StatusRunning) && req.JobID != "":
			return Decision{Do: doCancelJob, By: p.Person}
		}
		return refuse(decided, decidedText(req))
	}

	// approve, reject: the two-person rule.
	switch {
	case p.ID == req.Requester.ID:
		return refuse("self-approval", "You made this request: an approver other than you must "+action+" it (two-person rule). Nothing was done.")
	case !p.Approver:
		return refuse("not in APPROVERS", "Only approvers ("+approversText(req.Approvers)+") may "+action+" requests; nothing was done.")
	case !req.NeedsApproval:
		return refuse("no approval needed", "This request needs no approval; an operator can press Run. Nothing was done.")
	case req.Status != StatusPending:
		return refuse(decided, decidedText(req))
	case action == "reject":
		// Any approver ends the request, one who approved it before included.
		ev := cleanup.Rejected{User: personText(p.Person), Request: req.ID,
			Requester: personText(req.Requester), Mode: string(req.Mode), Filters: req.Scope, Reason: req.Reason}.Event(now)
		card := rejectedMessage(req, p.Person)
		return Decision{Do: doReject, By: p.Person, Audit: &ev, Card: &card, OriginCard: &card}
	case req.approvedBy(p.ID):
		return refuse("already approved by this approver", "You have already approved this request, and an approval counts once: "+
			approvalsText(req)+". Another approver must approve; nothing more was done.")
	}
	n := len(req.Approvals) + 1
	ev := cleanup.Approved{User: personText(p.Person), Request: req.ID,
		Requester: personText(req.Requester), Mode: string(req.Mode), Filters: req.Scope, Reason: req.Reason,
		Approvals: approvalCount(n, req.Required)}.Event(now)
	d := Decision{Do: doApprove, By: p.Person, Start: n >= req.Required, Audit: &ev}
	if !d.Start {
		after := *req
		after.Approvals = append(slices.Clip(req.Approvals), p.Person)
		card, origin := approvalMessage(&after), approvalElsewhereMessage(&after, req.Ref.Channel)
		d.Card, d.OriginCard = &card, &origin
		d.Text = fmt.Sprintf("Your approval is counted: %s. The job starts on the last one; nothing has been changed yet.", approvalsText(&after))
	}
	return d
}

// refusedEvent is the audit line of a refusal: the person refused, what they tried, and why.
func refusedEvent(now time.Time, who Person, what, requestID, why string) cleanup.AuditEvent {
	return cleanup.Refused{User: personText(who), Action: what, Request: requestID, Why: why}.Event(now)
}

// decidedText tells a late presser what already happened.
func decidedText(req *Request) string {
	by := ""
	if req.DecidedBy != nil {
		by = " by " + userRef(req.DecidedBy.ID)
	}
	switch req.Status {
	case StatusExpired:
		return "This request expired at " + stamp(req.ExpiresAt) + "; nothing was done. Run a fresh preview."
	case StatusRejected:
		return "This request was already rejected" + by + "; nothing was done."
	case StatusCancelled:
		return "This request was already cancelled" + by + "; nothing was done."
	case StatusApproved, StatusRunning:
		job := ""
		if req.JobID != "" {
			job = " (job " + req.JobID + ")"
		}
		if len(req.Approvals) > 0 {
			return "This request was already approved by " + peopleRefs(req.Approvals) + " and started" + job + "; nothing more was done."
		}
		return "This request was already started" + by + job + "; nothing more was done."
	default:
		return "This request already ran (job " + req.JobID + ", " + string(req.Status) + "); nothing more was done."
	}
}

// HandleAction answers a button press. The transport has already acknowledged it.
func (b *Bot) HandleAction(ctx context.Context, a Action) {
	first, err := b.st.firstDelivery(ctx, a.EnvelopeID)
	if err != nil {
		b.ephemeral(ctx, a.ChannelID, a.UserID, a.ResponseURL, Message{Text: b.safeText("envelope dedupe", err)})
		return
	}
	if !first {
		b.log.Info("redelivered action ignored", "envelope", a.EnvelopeID)
		return
	}
	p := b.whoPressed(ctx, Person{ID: a.UserID, Name: a.UserName}, a.TeamID)
	if text := b.act(ctx, a.Value, p, a.ActionID); text != "" {
		b.ephemeral(ctx, a.ChannelID, a.UserID, a.ResponseURL, Message{Text: text})
	}
}

// whoPressed resolves who's roles; a press from a foreign workspace has none.
func (b *Bot) whoPressed(ctx context.Context, who Person, team string) presser {
	p := presser{Person: who, Team: team, Foreign: b.cfg.TeamID != "" && team != b.cfg.TeamID}
	if !p.Foreign {
		p.Operator = b.access.IsOperator(ctx, who.ID)
		p.Approver = b.access.IsApprover(ctx, who.ID)
	}
	return p
}

// maxRounds bounds act's decide-again loop. A round is repeated only after someone else changed
// the request (counted an approval, decided or expired it), which happens at most
// APPROVALS_REQUIRED + 2 times; the bound only keeps a broken store from spinning.
const maxRounds = 100

// act decides p's press of action on request id and performs it. It returns what p alone is
// told ("" for nothing).
func (b *Bot) act(ctx context.Context, id string, p presser, action string) string {
	for range maxRounds {
		req, err := b.st.request(ctx, id)
		if errors.Is(err, errNotFound) {
			req = nil
		} else if err != nil {
			return b.safeText("load request", err)
		}
		d := decide(req, b.onRequest(ctx, req, p), action, b.now())
		if text, done := b.perform(ctx, req, d, action); done {
			return text
		}
	}
	return b.safeText("decide", fmt.Errorf("request %s changed %d times while deciding", id, maxRounds))
}

// onRequest is p as an approver of req's target: req.Approvers, the target's approvers (or
// APPROVERS) when the request was made, decide who may approve it. A request stored without
// them falls back to p's standing.
func (b *Bot) onRequest(ctx context.Context, req *Request, p presser) presser {
	if req != nil && !p.Foreign && len(req.Approvers) > 0 {
		p.Approver = b.access.in(ctx, req.Approvers, p.ID)
	}
	return p
}

// targetOf is the name of req's target for its audit lines ("" for no request).
func targetOf(req *Request) string {
	if req == nil {
		return ""
	}
	return req.Target
}

// perform carries out d on req. done is false when req changed since it was read, so that
// nothing happened and the press must be decided again.
func (b *Bot) perform(ctx context.Context, req *Request, d Decision, action string) (text string, done bool) {
	now := b.now()
	switch d.Do {
	case doRefuse:
		_ = b.recordOn(targetOf(req), *d.Audit)
		if action == "approve" || action == "reject" {
			b.metrics.Approval("refused")
		}
		return d.Text, true

	case doExpire:
		b.expire(ctx, req)
		return "", false

	case doRun:
		ok, _, err := b.st.transition(ctx, req.ID, StatusPending, StatusApproved, decisionFields(d.By, now)...)
		if err != nil {
			return b.safeText("decide", err), true
		}
		if !ok {
			return "", false
		}
		req.Status, req.DecidedBy, req.DecidedAt = StatusApproved, &d.By, time.UnixMilli(now.UnixMilli()).UTC()
		return b.startText(ctx, req, d, action, nil), true

	case doApprove:
		res, err := b.st.approve(ctx, req, d.By, now)
		if err != nil {
			return b.safeText("approve", err), true
		}
		switch res {
		case approveCounted:
			b.metrics.Approval("approved")
			_ = b.recordOn(req.Target, *d.Audit)
			b.showCards(ctx, req, d)
			b.settleCard(ctx, req.ID, len(req.Approvals)+1)
			return d.Text, true
		case approveApproved:
			req.Status, req.Approvals = StatusApproved, append(req.Approvals, d.By)
			req.DecidedAt = time.UnixMilli(now.UnixMilli()).UTC() // as approveScript stored it
			return b.startText(ctx, req, d, action, nil), true
		}
		return "", false

	case doResume:
		prev, err := b.st.job(ctx, req.JobID)
		if err != nil {
			return notFoundText(err, b), true
		}
		ok, _, err := b.st.transition(ctx, req.ID, StatusFailed, StatusApproved, "resumable", "")
		if err != nil {
			return b.safeText("resume", err), true
		}
		if !ok {
			return "", false // another press or replica resumed it first: decide again
		}
		req.Status, req.Resumable = StatusApproved, false
		return b.startText(ctx, req, d, action, prev), true

	case doReject, doCancel:
		to := StatusRejected
		if d.Do == doCancel {
			to = StatusCancelled
		}
		ok, _, err := b.st.transition(ctx, req.ID, StatusPending, to, decisionFields(d.By, now)...)
		if err != nil {
			return b.safeText(string(d.Do), err), true
		}
		if !ok {
			return "", false
		}
		if d.Do == doReject {
			b.metrics.Approval("rejected")
		}
		_ = b.recordOn(req.Target, *d.Audit)
		b.showCards(ctx, req, d)
		return d.Text, true
	}
	// doCancelJob
	j, err := b.st.job(ctx, req.JobID)
	if err != nil {
		return notFoundText(err, b), true
	}
	return b.cancelJob(ctx, j, d.By), true
}

// startText starts the job of req, just approved by d (resuming prev, when set), and says what
// the presser is told: nothing when it started, or why it did not.
func (b *Bot) startText(ctx context.Context, req *Request, d Decision, action string, prev *Job) string {
	err := b.startJob(ctx, req, d, prev)
	var r *refusal
	switch {
	case err == nil:
		return ""
	case errors.As(err, &r):
		_ = b.recordOn(req.Target, refusedEvent(b.now(), d.By, action, req.ID, r.why))
		if d.Do == doApprove {
			b.metrics.Approval("refused")
		}
		return r.text
	}
	return b.safeText("start job", err)
}

// refusal is a press that changed nothing after all, found out once the job was to start.
type refusal struct{ why, text string }

func (r *refusal) Error() string { return r.why }

// showCards shows d's cards on req's message(s).
func (b *Bot) showCards(ctx context.Context, req *Request, d Decision) {
	if d.Card != nil {
		b.update(ctx, req.Ref, *d.Card)
	}
	if d.OriginCard != nil && req.Origin != nil {
		b.update(ctx, *req.Origin, *d.OriginCard)
	}
}

// settleCard follows a counted approval's update of the request's message. That update can land
// after a decision taken meanwhile on another replica (the last approval, a rejection, an
// expiry) had updated the message, and would then show a stale count with live buttons. So the
// request is read again and, unless the message still shows what is true (shown approvals,
// still pending), shown as it now is. A request whose job is starting or running is left to the
// job: its progress and report replace the message.
func (b *Bot) settleCard(ctx context.Context, id string, shown int) {
	for range maxRounds {
		req, err := b.st.request(ctx, id)
		if err != nil {
			b.log.Warn("settle approval card", "request", id, "err", err)
			return
		}
		var m Message
		switch {
		case req.Status == StatusPending && len(req.Approvals) == shown,
			req.Status == StatusApproved, req.Status == StatusRunning:
			return
		case req.Status == StatusPending:
			shown = len(req.Approvals)
			card, origin := approvalMessage(req), approvalElsewhereMessage(req, req.Ref.Channel)
			b.showCards(ctx, req, Decision{Card: &card, OriginCard: &origin})
			continue
		case req.Status == StatusExpired:
			m = expiredMessage(req)
		case req.JobID == "" && req.DecidedBy != nil && req.Status == StatusRejected:
			m = rejectedMessage(req, *req.DecidedBy)
		case req.JobID == "" && req.DecidedBy != nil && req.Status == StatusCancelled:
			m = cancelledMessage(req, *req.DecidedBy)
		case req.JobID != "":
			j, err := b.st.job(ctx, req.JobID)
			if err != nil {
				b.log.Warn("settle approval card", "request", id, "job", req.JobID, "err", err)
				return
			}
			if j.Report == nil {
				m = notStartedMessage(req, j.Error)
			} else {
				m = reportMessage(req, j, storedOutcome(req, *j.Report), j.Status, j.Error)
				if req.Status == StatusFailed && req.Resumable && b.now().Before(req.resumeDeadline()) {
					m = withResume(m, req) // as reportJob showed it
				}
			}
		default:
			return
		}
		b.showDecided(ctx, req, m)
		return
	}
}

// cancelJob asks a running job to stop: at once when it runs here, within a progress tick when
// another replica runs it (it watches the flag in Redis).
func (b *Bot) cancelJob(ctx context.Context, j *Job, who Person) string {
	ok, err := b.st.requestCancel(ctx, j.ID, who)
	if err != nil {
		return b.safeText("cancel job", err)
	}
	if !ok {
		return fmt.Sprintf("Job %s is not running (%s); nothing to cancel.", j.ID, j.Status)
	}
	b.mu.Lock()
	cancel := b.jobs[j.ID]
	b.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	return "Cancelling job " + j.ID + "… sessions already deleted stay deleted; the report follows."
}

// showDecided replaces the request's message(s) with m.
func (b *Bot) showDecided(ctx context.Context, req *Request, m Message) {
	b.update(ctx, req.Ref, m)
	if req.Origin != nil {
		b.update(ctx, *req.Origin, m)
	}
}

// expire moves a pending request to expired, once across replicas, audits it and updates its
// message. It reports whether this call did it.
func (b *Bot) expire(ctx context.Context, req *Request) bool {
	ok, cur, err := b.st.transition(ctx, req.ID, StatusPending, StatusExpired)
	if err != nil {
		b.log.Warn("expire request", "request", req.ID, "err", err)
		return false
	}
	if !ok {
		if cur != StatusPending {
			_ = b.st.forgetPending(ctx, req.ID)
		}
		return false
	}
	if req.NeedsApproval {
		b.metrics.Approval("expired")
	}
	_ = b.recordOn(req.Target, cleanup.Expired{Request: req.ID, Requester: personText(req.Requester), Mode: string(req.Mode),
		Filters: req.Scope, Reason: req.Reason, ExpiresAt: req.ExpiresAt}.Event(b.now()))
	req.Status = StatusExpired
	b.showDecided(ctx, req, expiredMessage(req))
	return true
}

// Sweep expires every pending request past its expiry. Run calls it periodically; it is
// exported for transports and tests that drive time themselves.
func (b *Bot) Sweep(ctx context.Context) {
	ids, err := b.st.dueRequests(ctx, b.now())
	if err != nil {
		b.log.Warn("sweep", "err", err)
		return
	}
	for _, id := range ids {
		req, err := b.st.request(ctx, id)
		if errors.Is(err, errNotFound) {
			_ = b.st.forgetPending(ctx, id)
			continue
		}
		if err != nil {
			b.log.Warn("sweep", "request", id, "err", err)
			continue
		}
		b.expire(ctx, req)
	}
	b.sweepStaleJobs(ctx)
}
