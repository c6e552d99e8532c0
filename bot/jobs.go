package bot

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"time"

	"github.com/platform-team/sessionbot/bot/chat"
	"github.com/platform-team/sessionbot/cleanup"
)

// finishTimeout bounds the bookkeeping after a run (state, audit, message, notifications); it
// runs even when the Bot is shutting down, so that an interrupted job still gets its report.
const finishTimeout = 2 * time.Minute

// startJob runs the job of a request that d has just moved to approved — a Run, or the
// approval that brought the count to Required — and that only this call did (of two presses
// arriving together, two approvers, two replicas, a double click, exactly one gets here). It
// takes the target's lease (one destructive job per target), writes the approval's audit line
// and the intent, and moves the request on to running. Nothing is deleted unless all of it
// succeeds. A request that cannot start now goes back to pending, with the approval that
// approved it withdrawn so that its approver can press again; the error says why, for the
// presser: a *refusal (audited as such) or a failure.
//
// A resume (prev set: the job it continues) starts the same way, under the request's approval;
// one that cannot start goes back to failed and stays resumable.
func (b *Bot) startJob(ctx context.Context, req *Request, d Decision, prev *Job) error {
	now := b.now()
	bg := context.WithoutCancel(ctx)
	reopen := func() {
		if prev != nil {
			if _, _, err := b.st.transition(bg, req.ID, StatusApproved, StatusFailed, "resumable", "1"); err != nil {
				b.log.Error("reopen resumable request", "request", req.ID, "err", err)
			}
			return
		}
		last := ""
		if d.Do == doApprove {
			last = d.By.ID
		}
		if err := b.st.reopen(bg, req, last); err != nil {
			b.log.Error("reopen request", "request", req.ID, "err", err)
		}
	}
	t, err := b.targets.of(req.Target)
	if err != nil {
		reopen()
		return err
	}
	target := t.Name
	jobID, err := b.st.newJobID(ctx, b.targets.jobIDPrefix(t), now)
	if err != nil {
		reopen()
		return err
	}
	leasedAt := time.Now() // the lease runs from no earlier than this
	ok, holder, err := b.st.acquireLease(ctx, target, jobID, b.leaseTTL)
	if err != nil {
		reopen()
		return err
	}
	if !ok {
		reopen()
		return &refusal{why: "another cleanup is running: " + holder,
			text: fmt.Sprintf("Another cleanup is running: %s. Nothing was done; press again when it has finished (`%s status %s`).", holder, b.cfg.Command, holder)}
	}
	release := func() {
		if err := b.st.releaseLease(bg, target, jobID); err != nil {
			b.log.Warn("release lease", "job", jobID, "err", err)
		}
	}

	if d.Audit != nil {
		b.metrics.Approval("approved")
		_ = b.recordOn(target, *d.Audit)
	}
	ok, cur, err := b.st.transition(ctx, req.ID, StatusApproved, StatusRunning, "job", jobID)
	if err != nil || !ok {
		release()
		if err != nil {
			return err
		}
		if r, err := b.st.request(ctx, req.ID); err == nil {
			req = r
		}
		req.Status = cur
		return &refusal{why: "already " + string(cur), text: decidedText(req)}
	}
	req.Status, req.JobID = StatusRunning, jobID

	// Approved requests run on behalf of their requester; a run, of whoever pressed Run; a
	// resumed job, of whoever pressed Resume.
	executor := d.By
	if len(req.Approvals) > 0 && prev == nil {
		executor = req.Requester
	}
	job := &Job{
		ID: jobID, RequestID: req.ID, Mode: req.Mode, Scope: req.Scope, Reason: req.Reason,
		Requester: req.Requester, Executor: executor, Approvals: req.Approvals,
		Target: target, Ref: req.Ref, StartedAt: now,
	}
	if prev != nil {
		job.ResumeOf, job.Backup, job.ValidBefore = prev.ID, prev.backupID(), prev.ValidBefore
		if prev.Report != nil {
			job.ValidBefore += prev.Report.DeletedValid
		}
	}
	if err := b.st.createJob(ctx, job); err != nil {
		release()
		b.abortRequest(bg, req, job, b.safeText("store job", err)+"; nothing was deleted.")
		return nil
	}

	// The intent is on record before anything is deleted, or nothing is.
	intent := cleanup.CleanupStarted{User: personText(executor), Mode: string(req.Mode), Filters: req.Scope,
		Reason: req.Reason, Job: jobID, Request: req.ID, Backup: req.backupText(), BackupID: req.BackupID}
	if len(req.Approvals) > 0 {
		intent.ApprovedBy = peopleText(req.Approvals)
	} else if executor.ID != req.Requester.ID {
		intent.Requester = personText(req.Requester)
	}
	event := intent.Event(now)
	if prev != nil {
		resumed := cleanup.CleanupResumed{User: personText(executor), Mode: string(req.Mode), Filters: req.Scope,
			Job: jobID, Resumes: prev.ID, Request: req.ID, DeletedValidBefore: job.ValidBefore, MaxValid: job.maxValid(req)}
		if req.Backup {
			resumed.Backup = job.Backup
		}
		event = resumed.Event(now, num)
	}
	if err := b.recordOn(target, event); err != nil {
		release()
		b.abortRequest(bg, req, job, "The audit log could not be written, so the job was not started. Nothing was deleted.")
		return userErrorf("Not started: the audit log could not be written. Nothing was deleted.")
	}

	b.update(ctx, req.Ref, runningMessage(req, job, nil))
	if req.Origin != nil {
		b.update(ctx, *req.Origin, runningMessage(req, job, nil))
	}
	started := b.spawn(func(ctx context.Context) {
		defer release()
		b.runJob(ctx, req, job, leasedAt, release)
	})
	if !started {
		release()
		b.abortRequest(bg, req, job, "The bot is shutting down, so the job was not started. Nothing was deleted.")
	}
	return nil
}

// abortRequest ends a job that never started.
func (b *Bot) abortRequest(ctx context.Context, req *Request, job *Job, why string) {
	ctx, cancel := context.WithTimeout(ctx, finishTimeout)
	defer cancel()
	if _, err := b.st.finishJob(ctx, job.ID, StatusFailed, nil, why, b.now()); err != nil {
		b.log.Error("finish job", "job", job.ID, "err", err)
	}
	if _, _, err := b.st.transition(ctx, req.ID, StatusRunning, StatusFailed); err != nil {
		b.log.Error("fail request", "request", req.ID, "err", err)
	}
	_ = b.recordOn(job.Target, cleanup.CleanupFailed{User: personText(job.Executor),
		Mode: string(job.Mode), Filters: job.Scope, Done: cleanup.Report{}, Job: job.ID, Error: why}.Event(b.now(), num))
	b.metrics.CleanupFinished(job.Target, string(job.Mode), "failed", 0, 0)
	b.showDecided(ctx, req, notStartedMessage(req, why))
}

// runJob executes a started job and reports it. It owns the job's lease renewal, its progress
// updates and its cancellation (locally by context, from other replicas by a flag in Redis).
// release gives up the target's lease; it may be called more than once.
func (b *Bot) runJob(ctx context.Context, req *Request, job *Job, leasedAt time.Time, release func()) {
	// The cause says who stopped the job: a person (errCancelRequested), a lost lease, or the
	// Bot's own shutdown (the parent context).
	jctx, cancelCause := context.WithCancelCause(ctx)
	defer cancelCause(nil)
	cancel := func() { cancelCause(errCancelRequested) }
	b.mu.Lock()
	b.jobs[job.ID] = cancel
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		delete(b.jobs, job.ID)
		b.mu.Unlock()
	}()

	var (
		mu   sync.Mutex
		last *cleanup.Progress
	)
	setProgress := func(p cleanup.Progress) {
		mu.Lock()
		last = &p
		mu.Unlock()
	}
	bg := context.WithoutCancel(jctx)
	progress := b.progressMessage(req.Ref)
	checkCancel := func() {
		if by, err := b.st.cancelledBy(bg, job.ID); err == nil && by != nil {
			cancel()
		}
	}
	checkCancel() // a cancel pressed between start and now
	stopProgress := b.every(jctx, b.progressEvery, func() {
		mu.Lock()
		p := last
		mu.Unlock()
		// The heartbeat goes with every tick, progress or not: it is how other replicas tell a
		// slow job from a dead one.
		if err := b.st.setProgress(bg, job.ID, p, b.now()); err != nil {
			b.log.Warn("store progress", "job", job.ID, "err", err)
		}
		if p != nil {
			progress.update(bg, runningMessage(req, job, p))
		}
		checkCancel()
	})
	// The lease is renewed every third of its TTL. A job that cannot renew it for half the TTL
	// (its state Redis is unreachable) stops before the lease can run out: once it has, another
	// replica may start a job on the same target.
	renewed := leasedAt
	stopLease := b.every(jctx, max(b.leaseTTL/3, time.Millisecond), func() {
		sent := time.Now()
		rctx, cancel := context.WithTimeout(bg, max(b.leaseTTL/3, time.Millisecond))
		ok, err := b.st.renewLease(rctx, job.Target, job.ID, b.leaseTTL)
		cancel()
		switch {
		case err == nil && ok:
			renewed = sent
		case err == nil:
			// Another job may now hold the target: stop rather than run two at once.
			b.log.Error("lease lost; stopping job", "job", job.ID)
			cancelCause(errLeaseLost)
		case time.Since(renewed) >= b.leaseTTL/2:
			b.log.Error("lease not renewed for half its TTL; stopping job", "job", job.ID, "err", err)
			cancelCause(errLeaseLost)
		default:
			b.log.Warn("renew lease", "job", job.ID, "err", err)
		}
	})

	var users *userIDSet // the distinct user_ids deleted, when a sink wants them
	var deleted func([]string)
	if req.Kind != KindRestore && b.notify != nil && b.notify.WantsUserIDs() {
		users = newUserIDSet()
		deleted = users.add
	}
	out, err := b.run(jctx, req, job, setProgress, deleted)
	stopProgress()
	stopLease()
	// Nothing more is deleted: the next job may start while this one is being reported.
	release()
	var stopped error
	if jctx.Err() != nil {
		stopped = context.Cause(jctx)
	}
	b.finishJob(bg, req, job, out, users, err, stopped)
}

// Why a job's context was cancelled, besides the Bot shutting down.
var (
	errCancelRequested = errors.New("cancel requested")
	errLeaseLost       = errors.New("target lease lost")
)

// stoppedInterrupted is Report.Stopped of a job whose replica died: its numbers are the last
// progress it stored, a lower bound of what it did.
const stoppedInterrupted = "interrupted"

// finishJob records the outcome of a run everywhere: state, audit, message, notifications,
// metrics. stopped is why the job's context was cancelled (nil when it was not): a person's
// cancel is a cancellation; a shutdown or a lost lease is a failure (nobody asked the run to
// stop half-way, and PagerDuty must hear of it). users are the distinct user_ids it deleted,
// nil unless a sink wants them.
func (b *Bot) finishJob(ctx context.Context, req *Request, job *Job, out outcome, users *userIDSet, runErr, stopped error) {
	ctx, cancel := context.WithTimeout(ctx, finishTimeout)
	defer cancel()
	now := b.now()
	rep := out.report()
	by, _ := b.st.cancelledBy(ctx, job.ID)

	status, result, errText := StatusDone, "completed", ""
	switch {
	case runErr == nil && rep.Stopped == "":
	case by != nil || errors.Is(stopped, errCancelRequested):
		status, result = StatusCancelled, "cancelled"
		errText = fmt.Sprintf("Cancelled after %s %s sessions; those stay %s.", out.doing(), num(out.changed()), out.verb())
	case errors.Is(stopped, errLeaseLost):
		status, result = StatusFailed, "failed"
		errText = fmt.Sprintf("Stopped after %s %s sessions: this bot lost the target's lease (it could not renew it in Redis), so it stopped rather than risk two jobs at once. Run a fresh preview to finish.",
			out.doing(), num(out.changed()))
	case stopped != nil || errors.Is(runErr, context.Canceled):
		status, result = StatusFailed, "failed"
		errText = fmt.Sprintf("Interrupted after %s %s sessions: the bot was shutting down. The other sessions were not %s; run a fresh preview to finish.",
			out.doing(), num(out.changed()), out.verb())
	case errors.Is(runErr, cleanup.ErrBoundReached):
		status, result = StatusFailed, "stopped"
		errText = fmt.Sprintf("Stopped: more still-valid sessions match than the %s previewed (limit %s). %s were deleted; run a fresh preview.",
			num(req.Plan.Valid), num(req.MaxValid), num(out.changed()))
	default:
		status, result = StatusFailed, "failed"
		errText = fmt.Sprintf("Failed after %s %s sessions: %s", out.doing(), num(out.changed()), b.safeText("job "+job.ID, runErr))
		if out.changed() == 0 && req.Backup && rep.Backup == "" {
			errText = "Failed before deleting anything (the backup could not be written): " + b.safeText("job "+job.ID, runErr)
		}
	}

	if ok, err := b.st.finishJob(ctx, job.ID, status, &rep, errText, now); err != nil {
		b.log.Error("finish job", "job", job.ID, "err", err)
	} else if !ok {
		// The sweeper of another replica took this job for dead and reported it; this report
		// (the real outcome) follows it.
		b.log.Warn("job was already marked finished; reporting its real outcome", "job", job.ID, "status", status)
	}
	b.reportJob(ctx, req, job, out, users, status, result, errText, by)
}

// reportJob tells everyone how a job ended, once its status is stored: the request's status,
// the audit lines, the message, metrics and notifications. by is who cancelled it, if anyone;
// users are for the sinks that want them (nil when nobody collected them), listed only once the
// report is shown: a million of them take a moment to sort.
func (b *Bot) reportJob(ctx context.Context, req *Request, job *Job, out outcome, users *userIDSet, status Status, result, errText string, by *Person) {
	now := b.now()
	// A cleanup that failed part-way may be resumed; one stopped by its bound may not (it would
	// stop again at once: a fresh preview is what it needs), nor a cancelled or completed one.
	resumable := status == StatusFailed && req.Kind == KindCleanup && out.report().Stopped != "bound" && !req.DecidedAt.IsZero()
	var fields []string
	if resumable {
		fields = []string{"resumable", "1"}
	}
	if _, _, err := b.st.transition(ctx, req.ID, StatusRunning, status, fields...); err != nil {
		b.log.Error("finish request", "request", req.ID, "err", err)
	}

	events := out.audit(now, req, job, status == StatusDone)
	switch status {
	case StatusDone:
	case StatusCancelled:
		canceller := "shutdown"
		if by != nil {
			canceller = personText(*by)
		}
		events = append(events, cleanup.Cancelled{User: canceller, Job: job.ID, Mode: string(job.Mode), Filters: job.Scope,
			Done: out.counts()}.Event(now, num))
	default:
		events = append(events, cleanup.CleanupFailed{Mode: string(job.Mode), Filters: job.Scope, Done: out.counts(),
			Job: job.ID, Error: errText}.Event(now, num))
	}
	for _, ev := range events {
		_ = b.recordOn(job.Target, ev)
	}

	rep := out.report()
	msg := reportMessage(req, job, out, status, errText)
	if resumable && now.Before(req.resumeDeadline()) {
		msg = withResume(msg, req)
	}
	b.showReport(ctx, req.Ref, msg, job.ID, job.Target)
	if req.Origin != nil {
		b.showReport(ctx, *req.Origin, msg, job.ID, job.Target)
	}
	b.metrics.CleanupFinished(job.Target, string(job.Mode), result, out.changed(), rep.Duration())

	if b.notify != nil {
		o := JobOutcome{
			JobID: job.ID, Mode: string(job.Mode), Filter: req.Filter, Scope: job.Scope, Reason: job.Reason,
			Requester: job.Requester, Approvals: job.Approvals, Executor: job.Executor,
			Report: rep, Failed: status == StatusFailed, Error: errText,
			Partial: req.Filter.All && status != StatusDone && out.changed() > 0,
			Target:  job.Target, Thread: req.Ref, UserIDs: users.sorted(), At: now,
		}
		if req.Filter.UserID != "" {
			for _, u := range rep.Users {
				o.AffectedUsers = append(o.AffectedUsers, AffectedUser{UserID: u.UserID, Email: u.Username})
			}
		}
		b.notify.JobFinished(ctx, o)
	}
}

// showReport replaces a job's message with its report. When Slack refuses (after the Slack
// adapter's retries) the report is posted in the message's thread instead and the failure
// audited, so the outcome never hides behind a message that still says "running".
func (b *Bot) showReport(ctx context.Context, ref MessageRef, m Message, jobID, jobTarget string) {
	if ref.TS == "" {
		return
	}
	err := b.chat.Update(ctx, ref, m)
	if err == nil {
		return
	}
	b.log.Warn("report update failed; replying in the thread", "job", jobID, "channel", ref.Channel, "ts", ref.TS, "err", err)
	b.metrics.NotificationFailed("slack")
	_ = b.recordOn(jobTarget, cleanup.NotificationFailed{Channel: ref.Channel,
		Error: chat.Truncate("report update: "+err.Error(), 500), Job: jobID}.Event(b.now()))
	if _, err := b.chat.Reply(ctx, ref, m); err != nil {
		b.log.Error("report reply failed", "job", jobID, "channel", ref.Channel, "err", err)
	}
}

// progressUpdater updates one message with progress, skipping an update that would show what
// the message already shows (the engine between two batches, a stalled Redis): chat.update is
// rate-limited, and the limit is better spent on news. Its owner calls it from one goroutine.
type progressUpdater struct {
	b    *Bot
	ref  MessageRef
	last *Message // the last message that landed
}

func (b *Bot) progressMessage(ref MessageRef) *progressUpdater {
	return &progressUpdater{b: b, ref: ref}
}

func (p *progressUpdater) update(ctx context.Context, m Message) {
	if p.ref.TS == "" || (p.last != nil && reflect.DeepEqual(*p.last, m)) {
		return
	}
	if err := p.b.chat.Update(ctx, p.ref, m); err != nil {
		p.b.log.Warn("progress update failed", "channel", p.ref.Channel, "ts", p.ref.TS, "err", err)
		return
	}
	p.last = &m
}

// every calls fn every d until the returned stop is called (or ctx ends); stop waits for a
// running fn to return.
func (b *Bot) every(ctx context.Context, d time.Duration, fn func()) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(d)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				fn()
			}
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { close(done); wg.Wait() }) }
}

// sweepStaleJobs fails jobs whose replica died mid-run: no heartbeat for three lease periods
// and nobody holding the target's lease for them. The job is reported like any failed run
// (message, audit, metrics, notifications and a PagerDuty alert) with the last progress it
// stored, so a crash mid-run is never silently lost. It is not resumed by itself: the report
// offers an operator Resume while the approval is younger than APPROVAL_TTL.
func (b *Bot) sweepStaleJobs(ctx context.Context) {
	jobs, err := b.st.recentJobs(ctx, 20)
	if err != nil {
		return
	}
	now := b.now()
	for _, j := range jobs {
		if j.Status != StatusRunning || now.Sub(j.Heartbeat) < 3*b.leaseTTL {
			continue
		}
		b.mu.Lock()
		_, local := b.jobs[j.ID]
		b.mu.Unlock()
		if local {
			continue
		}
		if h, err := b.st.leaseHolder(ctx, j.Target); err != nil || h == j.ID {
			continue
		}
		rep := interruptedReport(j)
		why := fmt.Sprintf("Interrupted: the bot running this job stopped (no heartbeat since %s) after deleting at least %s sessions. The others were not deleted; check `%s stats` and run a fresh preview.",
			stamp(j.Heartbeat), num(rep.Deleted), b.cfg.Command)
		ok, err := b.st.finishJob(ctx, j.ID, StatusFailed, &rep, why, now)
		if err != nil || !ok {
			continue
		}
		b.log.Error("job interrupted: its replica stopped", "job", j.ID, "heartbeat", j.Heartbeat)
		req, err := b.st.request(ctx, j.RequestID)
		if err != nil {
			b.log.Warn("request of an interrupted job", "job", j.ID, "request", j.RequestID, "err", err)
			req = &Request{ID: j.RequestID, Kind: KindCleanup, Mode: j.Mode, Scope: j.Scope, Reason: j.Reason,
				Requester: j.Requester, Ref: j.Ref, Filter: cleanup.Filter{All: j.Mode == ModeAll}}
			if j.Mode == ModeRestore {
				req.Kind = KindRestore
				req.Restore = &RestorePlan{}
			}
		}
		b.reportJob(ctx, req, j, storedOutcome(req, rep), nil, StatusFailed, "failed", why, nil)
	}
}

// interruptedReport is the report of a job whose replica died, from the last progress it
// stored.
func interruptedReport(j *Job) cleanup.Report {
	rep := cleanup.Report{Mode: string(j.Mode), Start: j.StartedAt, End: j.Heartbeat, Remaining: -1, Stopped: stoppedInterrupted}
	if p := j.Progress; p != nil {
		rep.Scanned, rep.Matched, rep.Deleted, rep.Skipped, rep.Errors = p.Scanned, p.Matched, p.Deleted, p.Skipped, p.Errors
		rep.DeletedValid = p.DeletedValid
		rep.Kept = max(p.Scanned-p.Matched, 0)
	}
	if rep.End.Before(rep.Start) {
		rep.End = rep.Start
	}
	return rep
}

// maxValid is the bound the job runs under: what the request's bound leaves after the
// still-valid sessions the jobs before it logged out (negative: unbounded).
func (j *Job) maxValid(req *Request) int64 {
	if req.MaxValid < 0 {
		return req.MaxValid
	}
	return max(req.MaxValid-j.ValidBefore, 0)
}
