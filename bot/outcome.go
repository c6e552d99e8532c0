package bot

import (
	"context"
	"fmt"
	"time"

	"github.com/platform-team/sessionbot/cleanup"
)

// An outcome is what a finished job did. The two kinds of job do different work and count it
// differently: a cleanup deletes sessions and reports the engine's cleanup.Report; a restore
// puts sessions back and reports a cleanup.RestoreReport. Reporting a job (its audit lines,
// its message, its metrics) asks the outcome rather than the job's mode.
type outcome interface {
	// changed is how many sessions the job changed: deleted by a cleanup, put back by a restore.
	changed() int64
	// verb says what the job did to the sessions changed counts: "deleted" or "restored".
	verb() string
	// doing is verb's -ing form, for "Cancelled after deleting N sessions".
	doing() string
	// counts is what the job did, for its Cancelled or Cleanup Failed audit line.
	counts() cleanup.Counts
	// audit is the job's own audit lines: what a cleanup scanned, and, when the job completed,
	// Cleanup Completed or Restore Completed.
	audit(now time.Time, req *Request, job *Job, completed bool) []cleanup.AuditEvent
	// completedTitle is the report's title when the job did all it was asked.
	completedTitle(req *Request) string
	// reportLines are the report's lines (counts, backup) below the error, if any.
	reportLines(req *Request) []string
	// report is the job's counters in the shape the job store and the notifier take.
	report() cleanup.Report
}

// cleanupOutcome is a cleanup job's outcome: the engine's report.
type cleanupOutcome struct{ rep cleanup.Report }

func (o cleanupOutcome) changed() int64         { return o.rep.Deleted }
func (o cleanupOutcome) verb() string           { return "deleted" }
func (o cleanupOutcome) doing() string          { return "deleting" }
func (o cleanupOutcome) counts() cleanup.Counts { return o.rep }
func (o cleanupOutcome) report() cleanup.Report { return o.rep }

func (o cleanupOutcome) audit(now time.Time, _ *Request, job *Job, completed bool) []cleanup.AuditEvent {
	r := o.rep
	evs := []cleanup.AuditEvent{
		cleanup.SessionsScanned{Total: r.Scanned, Matched: r.Matched, Kept: r.Kept, Job: job.ID}.Event(now, num),
	}
	if completed {
		evs = append(evs, cleanup.CleanupCompleted{Deleted: r.Deleted, Kept: r.Kept, Errors: r.Errors, Skipped: r.Skipped,
			Job: job.ID, Duration: shortDuration(r.Duration()), Backup: r.Backup}.Event(now, num))
	}
	return evs
}

// restoreOutcome is a restore job's outcome. rr is what Restore did; rep holds the same counts
// in the shape the job store and the notifier take (Deleted counts the sessions put back,
// Skipped those skipped as expired, present or outside the prefix), with the run's times.
type restoreOutcome struct {
	rr  cleanup.RestoreReport
	rep cleanup.Report
}

func newRestoreOutcome(rr cleanup.RestoreReport, start, end time.Time) restoreOutcome {
	return restoreOutcome{rr: rr, rep: cleanup.Report{Mode: "restore", Start: start, End: end,
		Scanned: rr.Read, Matched: rr.Read, Deleted: rr.Restored,
		Skipped: rr.SkippedExpired + rr.SkippedExists + rr.SkippedPrefix, Errors: rr.Errors, Remaining: -1}}
}

func (o restoreOutcome) changed() int64         { return o.rr.Restored }
func (o restoreOutcome) verb() string           { return "restored" }
func (o restoreOutcome) doing() string          { return "restoring" }
func (o restoreOutcome) counts() cleanup.Counts { return o.rr }
func (o restoreOutcome) report() cleanup.Report { return o.rep }

func (o restoreOutcome) audit(now time.Time, req *Request, job *Job, completed bool) []cleanup.AuditEvent {
	if !completed {
		return nil
	}
	return []cleanup.AuditEvent{cleanup.RestoreCompleted{User: personText(job.Executor), Job: job.ID,
		BackupID: req.BackupID, Report: o.rr}.Event(now, num)}
}

// run does a started job's work: the cleanup it previewed, or the restore.
// deleted, when set, receives the user_id of every session the run deletes (RunSpec.Deleted).
func (b *Bot) run(ctx context.Context, req *Request, job *Job, progress func(cleanup.Progress), deleted func([]string)) (outcome, error) {
	if req.Kind == KindRestore {
		return b.runRestore(ctx, req, job, progress)
	}
	spec := cleanup.RunSpec{
		Filter:   req.Filter,
		MaxValid: job.maxValid(req),
		Progress: progress,
		Verify:   true,
		Deleted:  deleted,
	}
	if req.Backup {
		spec.Backup = &cleanup.BackupSpec{Dir: b.backup.Dir, JobID: job.backupID(), Recipients: b.backup.AgeRecipients}
		if job.ResumeOf != "" {
			// Extend the interrupted run's backup: its rounds stay as they are.
			next, err := cleanup.NextBackupRound(b.backup.Dir, job.backupID())
			if err != nil {
				return cleanupOutcome{cleanup.Report{Start: job.StartedAt, End: b.now(), Remaining: -1}}, fmt.Errorf("backup: %w", err)
			}
			spec.Backup.FirstRound = next
		}
	}
	t, err := b.targets.of(job.Target)
	if err != nil {
		return cleanupOutcome{cleanup.Report{Start: job.StartedAt, End: b.now()}}, err
	}
	rep, err := t.Engine.Run(ctx, spec)
	if rep.Start.IsZero() {
		rep.Start = job.StartedAt
	}
	if rep.End.IsZero() {
		rep.End = b.now()
	}
	return cleanupOutcome{rep}, err
}

// runRestore puts the request's backup back, reporting progress as a cleanup.Progress in
// which Deleted counts the sessions restored and Skipped those expired, present or outside
// the prefix (the shape the job store keeps).
func (b *Bot) runRestore(ctx context.Context, req *Request, job *Job, progress func(cleanup.Progress)) (outcome, error) {
	start := time.Now()
	// Path is one of the backup's files (its first round's); FindBackup adds the others.
	bk, err := cleanup.FindBackup(b.backup.Dir, req.Restore.Path)
	if err != nil {
		return newRestoreOutcome(cleanup.RestoreReport{}, start, time.Now()), err
	}
	tgt, err := b.targets.of(job.Target)
	if err != nil {
		return newRestoreOutcome(cleanup.RestoreReport{}, start, time.Now()), err
	}
	t := tgt.Engine.Target()
	rr, err := cleanup.Restore(ctx, t.Client(), t.Prefix(), b.backupReader(bk), cleanup.RestoreOptions{
		Now: b.now,
		Progress: func(r cleanup.RestoreReport) {
			progress(cleanup.Progress{Phase: "restore", Scanned: r.Read, Deleted: r.Restored,
				Skipped: r.SkippedExpired + r.SkippedExists + r.SkippedPrefix, Errors: r.Errors, Elapsed: time.Since(start)})
		},
	})
	return newRestoreOutcome(rr, start, time.Now()), err
}

// storedOutcome is a job's outcome from the report the job store keeps (a restore's in the
// cleanup.Report shape: Deleted restored, Skipped the sum): the final one, or for a job whose
// replica died the last progress it stored (interruptedReport). A restore's stored report does
// not say why sessions were skipped, so its audit counts them under none of the Skipped- fields;
// its message shows them.
func storedOutcome(req *Request, rep cleanup.Report) outcome {
	if req.Kind == KindRestore {
		return restoreOutcome{rr: cleanup.RestoreReport{Read: rep.Scanned, Restored: rep.Deleted, Errors: rep.Errors}, rep: rep}
	}
	return cleanupOutcome{rep}
}
