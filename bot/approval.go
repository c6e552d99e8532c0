package bot

import (
	"context"
	"errors"
	"fmt"

	"github.com/platform-team/sessionbot/cleanup"
)

// HandleAction answers a button press. The transport has already acknowledged it. Every
// decision is a compare-and-set on the stored request, so a second press, a second approver or
// a second replica can change nothing once the first has decided; those get an ephemeral note.
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
	who := Person{ID: a.UserID, Name: a.UserName}
	refuse := func(reqID, why, text string) {
		b.refused(who, a.ActionID, reqID, why)
		if a.ActionID == "approve" || a.ActionID == "reject" {
			b.metrics.Approval("refused")
		}
		b.ephemeral(ctx, a.ChannelID, a.UserID, a.ResponseURL, Message{Text: text})
	}
	if b.cfg.TeamID != "" && a.TeamID != b.cfg.TeamID {
		refuse("", "foreign workspace "+a.TeamID, "This bot serves another Slack workspace; nothing was done.")
		return
	}
	switch a.ActionID {
	case "run", "approve", "reject", "cancel":
	default:
		refuse("", "unknown action", "Unknown button; nothing was done.")
		return
	}
	req, err := b.st.request(ctx, a.Value)
	if errors.Is(err, errNotFound) {
		refuse("", "unknown request", "This request no longer exists; nothing was done. Run a fresh preview.")
		return
	}
	if err != nil {
		b.ephemeral(ctx, a.ChannelID, a.UserID, a.ResponseURL, Message{Text: b.safeText("load request", err)})
		return
	}
	// Expiry is checked on every click, not only by the sweeper.
	if req.Status == StatusPending && !b.now().Before(req.ExpiresAt) {
		b.expire(ctx, req)
		if req, err = b.st.request(ctx, req.ID); err != nil {
			b.ephemeral(ctx, a.ChannelID, a.UserID, a.ResponseURL, Message{Text: b.safeText("load request", err)})
			return
		}
	}

	switch a.ActionID {
	case "run":
		switch {
		case !b.access.IsOperator(ctx, who.ID):
			refuse(req.ID, "not in OPERATORS", "Only operators may run cleanups; nothing was done.")
		case req.NeedsApproval:
			refuse(req.ID, "needs approval", "This request needs an approver's Approve; it cannot be run directly. Nothing was done.")
		case req.Status != StatusPending:
			refuse(req.ID, "already "+string(req.Status), decidedText(req))
		default:
			b.startJob(ctx, req, who, nil, a, refuse)
		}
	case "approve", "reject":
		switch {
		case who.ID == req.Requester.ID:
			refuse(req.ID, "self-approval", "You made this request: an approver other than you must "+a.ActionID+" it (two-person rule). Nothing was done.")
		case !b.access.IsApprover(ctx, who.ID):
			refuse(req.ID, "not in APPROVERS", "Only approvers ("+approversText(req.Approvers)+") may "+a.ActionID+" requests; nothing was done.")
		case !req.NeedsApproval:
			refuse(req.ID, "no approval needed", "This request needs no approval; an operator can press Run. Nothing was done.")
		case req.Status != StatusPending:
			refuse(req.ID, "already "+string(req.Status), decidedText(req))
		case a.ActionID == "approve":
			b.startJob(ctx, req, req.Requester, &who, a, refuse)
		default:
			b.reject(ctx, req, who, refuse)
		}
	case "cancel":
		if who.ID != req.Requester.ID && !b.access.IsOperator(ctx, who.ID) && !b.access.IsApprover(ctx, who.ID) {
			refuse(req.ID, "not allowed to cancel", "Only the requester, an operator or an approver may cancel; nothing was done.")
			return
		}
		b.ephemeral(ctx, a.ChannelID, a.UserID, a.ResponseURL, Message{Text: b.cancelRequest(ctx, req, who)})
	}
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
		return "This request was already started" + by + job + "; nothing more was done."
	default:
		return "This request already ran (job " + req.JobID + ", " + string(req.Status) + "); nothing more was done."
	}
}

func (b *Bot) reject(ctx context.Context, req *Request, who Person, refuse func(reqID, why, text string)) {
	ok, cur, err := b.st.transition(ctx, req.ID, StatusPending, StatusRejected, decisionFields(who, b.now())...)
	if err != nil {
		b.ephemeral(ctx, req.Channel, who.ID, "", Message{Text: b.safeText("reject", err)})
		return
	}
	if !ok {
		req.Status = cur
		refuse(req.ID, "already "+string(cur), decidedText(req))
		return
	}
	b.metrics.Approval("rejected")
	_ = b.record(cleanup.Rejected{User: personText(who), Request: req.ID,
		Requester: personText(req.Requester), Mode: req.Mode, Filters: req.Scope, Reason: req.Reason}.Event(b.now()))
	b.showDecided(ctx, req, rejectedMessage(req, who))
}

// cancelRequest cancels a pending request, or the job of a running one, and says what happened.
func (b *Bot) cancelRequest(ctx context.Context, req *Request, who Person) string {
	if req.Status == StatusRunning || req.Status == StatusApproved {
		j, err := b.st.job(ctx, req.JobID)
		if err != nil {
			return notFoundText(err, b)
		}
		return b.cancelJob(ctx, j, who)
	}
	ok, cur, err := b.st.transition(ctx, req.ID, StatusPending, StatusCancelled, decisionFields(who, b.now())...)
	if err != nil {
		return b.safeText("cancel request", err)
	}
	if !ok {
		req.Status = cur
		if cur == StatusRunning {
			if r, err := b.st.request(ctx, req.ID); err == nil && r.JobID != "" {
				if j, err := b.st.job(ctx, r.JobID); err == nil {
					return b.cancelJob(ctx, j, who)
				}
			}
		}
		b.refused(who, "cancel", req.ID, "already "+string(cur))
		return decidedText(req)
	}
	_ = b.record(cleanup.Cancelled{User: personText(who), Request: req.ID,
		Requester: personText(req.Requester), Mode: req.Mode, Filters: req.Scope}.Event(b.now(), num))
	b.showDecided(ctx, req, cancelledMessage(req, who))
	return "Cancelled; nothing was deleted."
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
	_ = b.record(cleanup.Expired{Request: req.ID,
		Requester: personText(req.Requester), Mode: req.Mode, Filters: req.Scope,
		Reason: req.Reason, ExpiresAt: req.ExpiresAt}.Event(b.now()))
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
