package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/platform-team/sessionbot/cleanup"
)

var cleanupCommand = &command{
	name:    "cleanup",
	summary: "preview, then delete sessions (expired by default; --all for a mass logout)",
	run:     runCleanup,
	help: `sessionbot cleanup — delete OAuth2 sessions from Redis, safely

Always computes and prints the plan first (what will be deleted, what will be kept), in the
runbook's words. With --dry-run it stops there. Otherwise it deletes with SCAN + compare-and-
delete UNLINK in paced batches: a session refreshed between the preview and its deletion is kept.

Usage: sessionbot cleanup [filters] [options]

Filters (combine with AND; with no filter: expired sessions):
  --expired              expires_at is in the past (the default scope, explicitly)
  --orphans              keys with no TTL (TTL = -1)
  --auth-method M        auth_method is exactly M (e.g. basic_auth)
  --user-id U            user_id is exactly U (e.g. "auth0|123456789")
  --session-id S         the key session:S exactly; repeatable or comma-separated
  --older-than D         created_at is older than D (30m, 12h, 7d, 2w)
  --all                  EVERY session key: mass logout. Needs --reason; combines with no filter

Repair (runbook Scenario 1, "TTL not set correctly"):
  --repair-ttl           only with --orphans: instead of deleting a session without a TTL,
                         give it the expiry its expires_at says (EXPIREAT, only if the key is
                         still unchanged and without a TTL); delete only those already past
                         expires_at. Logs nobody out: no confirmation, no backup (--backup is
                         refused). Malformed orphans are kept.

Options:
  --dry-run              print the plan, delete nothing
  --reason TEXT          why; recorded in the audit log (required with --all)
  --yes                  do not ask to type the number of sessions (scripts, pre-approved runs)
  --backup               write a backup before deleting, even when not required
  --no-backup            skip the backup that --all and large runs write (audited)
  --batch-size N         keys per batch (default BATCH_SIZE)
  --pause D              pause between batches (default BATCH_PAUSE; 0: none)
  --max-rate N           at most N keys deleted/second; a key only read counts a quarter
                         (default MAX_KEYS_PER_SECOND; 0: no limit)
  --as NAME              your name for the audit log when sudo or a shared account hides it
  --target NAME          the TARGETS_FILE target to act on (needed when the file names several)
  --help                 this text

Safety:
  * Only keys starting with SESSION_KEY_PREFIX (default session:) are ever read or deleted;
    cb:*, feature:* and everything else are never touched.
  * --all, and any run that would log out more than APPROVAL_THRESHOLD (default 1000)
    still-valid sessions, asks you to type the number of sessions (unless --yes) and writes a
    backup first to BACKUP_DIR/<job-id>.jsonl.gz (age-encrypted when BACKUP_AGE_RECIPIENTS is
    set; undo with sessionbot restore). If the backup cannot be written, nothing is deleted.
  * A run stops before it logs out more still-valid sessions than previewed (+10% +10), and
    one that asked for no confirmation before it logs out more than APPROVAL_THRESHOLD.
  * Malformed sessions are kept unless you select them by key (--all or --session-id).
  * Ctrl-C stops cleanly and reports what was deleted so far.

Audit: lines in the runbook's format (Cleanup Started, Sessions Scanned, Cleanup Completed or
Cleanup Failed) go to stderr and, when set, are appended to AUDIT_LOG; if AUDIT_LOG is set but
cannot be written, nothing is done. User is --as, else $SUDO_USER, else $USER.

Examples (runbook procedures):
  # Procedure 1: expired sessions — review, then execute, then verify
  sessionbot cleanup --dry-run
      Found 150 total session keys
      45 sessions expired (will be deleted)
      105 sessions still valid (will be kept)
  sessionbot cleanup
  redis-cli --scan --pattern "session:*" | wc -l      # expected: 105

  # Procedure 1, step 4: sessions with no TTL
  sessionbot cleanup --orphans --dry-run

  # Scenario 1: TTL not set correctly — give orphans their TTL instead of logging users out
  sessionbot cleanup --orphans --repair-ttl --dry-run
      Found 150 total session keys
      12 sessions will get a TTL (repaired)
      3 sessions expired (will be deleted)
      135 sessions (will be kept)
  sessionbot cleanup --orphans --repair-ttl

  # Procedure 2: mass logout (security incident); asks you to type the count
  sessionbot cleanup --all --dry-run --reason "session secret rotated (INC-1234)"
  sessionbot cleanup --all --reason "session secret rotated (INC-1234)"

  # Procedure 3: one auth method
  sessionbot cleanup --auth-method basic_auth --dry-run
      Found 500 total session keys
      50 sessions with auth_method=basic_auth (will be deleted)
      450 sessions with other auth methods (will be kept)
  sessionbot cleanup --auth-method basic_auth

  # Procedure 4: one user, one session
  sessionbot cleanup --user-id "auth0|123456789" --reason "account compromise"
  sessionbot cleanup --session-id a1b2c3d4e5f6g7h8i9j0k1l2m3n4o5p6

  # Combined filters
  sessionbot cleanup --auth-method oauth2 --older-than 7d --dry-run

Environment: REDIS_URL (default redis://localhost:6379/0) | REDIS_CLUSTER_ADDRS |
  REDIS_SENTINEL_ADDRS + REDIS_SENTINEL_MASTER (set one), or TARGETS_FILE (named targets;
  choose one with --target NAME), SESSION_KEY_PREFIX, BATCH_SIZE,
  BATCH_PAUSE, MAX_KEYS_PER_SECOND, APPROVAL_THRESHOLD, BACKUP_DIR, BACKUP_AGE_RECIPIENTS,
  AUDIT_LOG, AUDIT_SYSLOG_ADDR.

Exit status: 0 done, 1 failed, partial or aborted, 2 bad command line or configuration.
`,
}

func runCleanup(ctx context.Context, c *cli, args []string) error {
	args, as, err := takeFlag(args, "as")
	if err != nil {
		return c.asUsage(err)
	}
	opts, err := cleanup.ParseArgs(args, true)
	if err != nil {
		return c.asUsage(err)
	}
	cfg, err := c.config(ctx)
	if err != nil {
		return err
	}
	f := opts.Filter.Normalize()
	mode := cleanup.ModeExecute
	switch {
	case opts.DryRun:
		mode = "dry-run"
	case f.All:
		mode = cleanup.ModeAll
	case f.RepairTTL:
		mode = cleanup.ModeRepair
	}

	// The audit log is opened before Redis is touched: nothing happens unrecorded.
	audit, t, err := c.openAuditAndConnect(ctx, cfg)
	if err != nil {
		return err
	}
	defer audit.Close()
	defer t.Close()
	// The pacing flags apply to every pass: the preview, the run and its final count.
	engine := cleanup.NewEngine(t, cfg.Engine).WithPacing(opts.BatchSize, pacingOverride(opts.Pause), pacingOverride(opts.MaxRate))

	who := c.operator(as)
	started := cleanup.CleanupStarted{User: who, Mode: mode, Filters: f.Scope(), Reason: opts.Reason}
	if opts.NoBackup {
		started.Backup = "skipped (--no-backup)"
	}
	if err := audit.Log(started.Event(time.Now())); err != nil {
		return fmt.Errorf("cannot write the audit log, nothing done: %w", err)
	}

	// What a preview shows, and what it audits before anything is deleted.
	showPlan := func(plan cleanup.Plan) error {
		for _, line := range cleanup.SummaryLines(plan, itoa) {
			fmt.Fprintln(c.stdout, line)
		}
		for _, line := range planDetails(plan) {
			fmt.Fprintln(c.stdout, line)
		}
		if err := audit.Log(cleanup.SessionsScanned{
			Total: plan.Found, Matched: plan.Matched, Kept: plan.Kept}.Event(time.Now(), itoa)); err != nil {
			return fmt.Errorf("cannot write the audit log, nothing deleted: %w", err)
		}
		return nil
	}
	run := runOnce{c: c, audit: audit, t: t, who: who, mode: mode, f: f}

	// A mass logout confirmed on the command line (--yes) asks nobody after its preview: its
	// backup's first round is the preview, so every session is read once, not twice.
	if decision, ok := cfg.Policy.DecideUpfront(f, opts); ok && opts.Yes && !opts.DryRun && decision.Backup {
		spec := cleanup.RunSpec{Filter: f, MaxValid: decision.MaxValid, Verify: true,
			Backup: c.newBackup(cfg, "as the sessions are read, ", decision.BackupWhy)}
		bar := newProgressBar(c.stderr, isTerminal(c.stderr), 0, "backed up")
		spec.Progress = bar.update
		spec.Planned = func(plan cleanup.Plan) error {
			bar.restart(plan.Found, "deleted")
			if err := showPlan(plan); err != nil {
				return err
			}
			if plan.Matched == 0 {
				return errNothingToDelete
			}
			return nil
		}
		rep, err := engine.Run(ctx, spec)
		bar.done()
		if errors.Is(err, errNothingToDelete) {
			removeBackupFiles(rep.Backup)
			fmt.Fprintln(c.stdout, "Nothing to delete (the empty backup was removed).")
			return audit.Log(cleanup.CleanupCompleted{Kept: rep.Kept}.Event(time.Now(), itoa))
		}
		return run.finish(rep, err, spec.MaxValid)
	}

	bar := newProgressBar(c.stderr, isTerminal(c.stderr), 0, "matched")
	var (
		plan cleanup.Plan
		sel  *cleanup.Selection // what the preview matched, for a run that follows at once
	)
	if opts.DryRun || f.All {
		plan, err = engine.Preview(ctx, f, bar.update)
	} else {
		plan, sel, err = engine.PreviewSelect(ctx, f, bar.update, cfg.Backup.Dir)
		defer sel.Close()
	}
	bar.done()
	if err != nil {
		c.logFailed(audit, who, mode, f, cleanup.Report{}, err, t.Prefix())
		return fmt.Errorf("preview failed, nothing deleted: %s", cleanup.RedactKeys(err.Error(), t.Prefix()))
	}
	if err := showPlan(plan); err != nil {
		return err
	}

	if opts.DryRun {
		fmt.Fprintln(c.stdout, "Dry run: nothing was deleted. Run the same command without --dry-run to delete.")
		return nil
	}
	if plan.Matched == 0 && plan.Repaired == 0 {
		fmt.Fprintln(c.stdout, "Nothing to delete.")
		return audit.Log(cleanup.CleanupCompleted{Kept: plan.Kept}.Event(time.Now(), itoa))
	}

	// Approval on the command line is the operator typing the number of sessions (or --yes).
	decision := cfg.Policy.Decide(plan, opts)
	if decision.NeedsApproval && !opts.Yes {
		question := fmt.Sprintf("This deletes %d sessions on %s and needs confirming: %s.", plan.Matched, t.Name(), decision.Why)
		if f.All {
			question = fmt.Sprintf("MASS LOGOUT: this deletes ALL %d sessions on %s; every user must log in again.", plan.Matched, t.Name())
		}
		if err := c.confirmCount(ctx, question, plan.Matched, errAborted); err != nil {
			_ = audit.Log(cleanup.Cancelled{User: who, Mode: mode,
				Filters: f.Scope(), Reason: "not confirmed at the prompt"}.Event(time.Now(), itoa))
			return err
		}
	}

	spec := cleanup.RunSpec{Filter: f, MaxValid: decision.MaxValid, Verify: true}
	if !decision.NeedsApproval || opts.Yes {
		// Run from what the preview just found: each session read once, not twice. After a
		// confirmation prompt (which may take the operator a while) the run reads afresh.
		spec.Selection = sel
	}
	if decision.Backup {
		spec.Backup = c.newBackup(cfg, "", decision.BackupWhy)
	}
	bar = newProgressBar(c.stderr, isTerminal(c.stderr), plan.Found, "deleted")
	spec.Progress = bar.update
	rep, err := engine.Run(ctx, spec)
	bar.done()
	return run.finish(rep, err, spec.MaxValid)
}

// newBackup names the backup of the run about to start, and says where it goes, when
// ("as the sessions are read, " or "") and why.
func (c *cli) newBackup(cfg config, when, why string) *cleanup.BackupSpec {
	b := &cleanup.BackupSpec{Dir: cfg.Backup.Dir, JobID: newJobID(cfg.Redis.Name), Recipients: cfg.Backup.AgeRecipients}
	fmt.Fprintf(c.stdout, "Writing a backup to %s %sbefore deleting anything (%s).\n", backupName(b), when, why)
	return b
}

// errNothingToDelete stops a run whose own preview found nothing (RunSpec.Planned).
var errNothingToDelete = errors.New("nothing to delete")

// removeBackupFiles removes the backup files of a run that deleted nothing (Report.Backup: the
// paths, comma-separated).
func removeBackupFiles(paths string) {
	for p := range strings.SplitSeq(paths, ",") {
		if p != "" {
			_ = os.Remove(p)
		}
	}
}

// runOnce is one `sessionbot cleanup` after its preview: how its run's end is reported.
type runOnce struct {
	c     *cli
	audit *auditLog
	t     *cleanup.Target
	who   string
	mode  string
	f     cleanup.Filter
}

// finish prints the run's report and audits its end.
func (r runOnce) finish(rep cleanup.Report, err error, maxValid int64) error {
	c, audit, f := r.c, r.audit, r.f
	printReport(c, rep, err, maxValid)
	if err != nil || rep.Errors > 0 {
		c.logFailed(audit, r.who, r.mode, f, rep, err, r.t.Prefix())
		if err == nil {
			err = errors.New("finished with errors")
		}
		return &exitError{code: exitFailed, err: fmt.Errorf("cleanup failed after deleting %d sessions: %s",
			rep.Deleted, cleanup.RedactKeys(err.Error(), r.t.Prefix()))}
	}
	completed := cleanup.CleanupCompleted{Deleted: rep.Deleted, Kept: rep.Kept, Errors: rep.Errors, Backup: rep.Backup}
	if err := audit.Log(completed.Event(time.Now(), itoa)); err != nil {
		return &exitError{code: exitFailed, err: fmt.Errorf("the cleanup completed but its audit line could not be written: %w", err)}
	}
	if f.All && rep.Remaining > 0 {
		fmt.Fprintf(c.stdout, "WARNING: %d session keys remain: created since the scan, or not removable (see above). Run sessionbot cleanup --all again.\n", rep.Remaining)
	}
	for _, line := range verifyHint(f, rep, r.t.Prefix()) {
		fmt.Fprintln(c.stdout, line)
	}
	return nil
}

// logFailed audits a run that stopped early or failed, with what it deleted so far.
func (c *cli) logFailed(audit *auditLog, who, mode string, f cleanup.Filter, rep cleanup.Report, err error, prefix string) {
	why := "errors during the run"
	if err != nil {
		why = cleanup.RedactKeys(err.Error(), prefix)
	}
	rep.Errors = max(rep.Errors, 1) // it failed: at least one error
	_ = audit.Log(cleanup.CleanupFailed{User: who, Mode: mode,
		Filters: f.Scope(), Done: rep, Error: why}.Event(time.Now(), itoa))
}

// pacingOverride maps a pacing flag (-1: not given, 0: off) to RunSpec's convention (0: the
// configured default, negative: off).
func pacingOverride[T int | time.Duration](v T) T {
	switch {
	case v < 0:
		return 0
	case v == 0:
		return -1
	}
	return v
}

// newJobID names one CLI run on target (and its backup file): time-ordered, unique enough per
// host; a named target's name is in it, the default target's is not.
func newJobID(target string) string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	prefix := "cli-"
	if target != "" && target != cleanup.DefaultTargetName {
		prefix += target + "-"
	}
	return prefix + time.Now().UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b[:])
}

// backupName is the file a BackupSpec produces.
func backupName(b *cleanup.BackupSpec) string {
	name := b.Dir + "/" + b.JobID + ".jsonl.gz"
	if len(b.Recipients) > 0 {
		name += ".age"
	}
	return name
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
