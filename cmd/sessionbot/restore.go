package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/platform-team/sessionbot/cleanup"
)

var restoreCommand = &command{
	name:    "restore",
	summary: "put sessions from a backup file back into Redis (undo a cleanup)",
	run:     runRestore,
	help: `sessionbot restore — put backed-up sessions back into Redis

Reads a backup written by cleanup or backup (BACKUP_DIR/<job-id>.jsonl.gz, or .jsonl.gz.age,
decrypted with the identity in BACKUP_AGE_IDENTITY_FILE), counts what it would restore, asks you
to type that number (unless --yes), then writes each session back with its remaining TTL.
It never overwrites a key that exists, never writes a key outside SESSION_KEY_PREFIX, and skips
sessions that have expired since the backup. Running it twice is safe.

FILE is any file of the backup, or its job id to find it in BACKUP_DIR. A job whose sessions
were rewritten while it ran has more files (<job-id>.r2.jsonl.gz, …); all of them are read, and
each session is restored with its newest value.

Usage: sessionbot restore FILE|JOB_ID --reason TEXT [--dry-run] [--yes]

Flags:
  --reason TEXT    why; recorded in the audit log (required, except with --dry-run)
  --dry-run        count what would be restored, write nothing
  --yes            do not ask to type the number of sessions
  --as NAME        your name for the audit log
  --target NAME    the TARGETS_FILE target to restore into (needed when the file names several)
  --help           this text

Examples:
  sessionbot restore ./backups/cli-20251126T100000Z-a1b2c3.jsonl.gz --dry-run
  sessionbot restore ./backups/cli-20251126T100000Z-a1b2c3.jsonl.gz --reason "mass logout rolled back (INC-1234)"
  sessionbot restore job-20251126-7f3a9c2b --reason "wrong target"
  BACKUP_AGE_IDENTITY_FILE=~/.age/sessionbot.key sessionbot restore ./backups/job.jsonl.gz.age --reason "..."

Audit: Cleanup Started (Mode: restore) and Restore Completed (or Cleanup Failed) lines go to
stderr and AUDIT_LOG.
`,
}

func runRestore(ctx context.Context, c *cli, args []string) error {
	args, as, err := takeFlag(args, "as")
	if err != nil {
		return c.asUsage(err)
	}
	args, reason, err := takeFlag(args, "reason")
	if err != nil {
		return c.asUsage(err)
	}
	var file string
	var dryRun, yes bool
	for _, a := range args {
		switch {
		case a == "--dry-run":
			dryRun = true
		case a == "--yes":
			yes = true
		case strings.HasPrefix(a, "-"):
			return c.asUsage(fmt.Errorf("unknown flag %q", shorten(a)))
		case file != "":
			return c.asUsage(fmt.Errorf("one backup file at a time (got %q and %q)", shorten(file), shorten(a)))
		default:
			file = a
		}
	}
	if file == "" {
		return c.asUsage(errors.New("which backup? give a file or the job id: sessionbot restore FILE|JOB_ID --reason TEXT"))
	}
	if strings.TrimSpace(reason) == "" && !dryRun {
		return c.asUsage(errors.New(`restore needs --reason "TEXT" (it is audited)`))
	}
	cfg, err := c.config(ctx)
	if err != nil {
		return err
	}
	bk, err := cleanup.FindBackup(cfg.Backup.Dir, file)
	if err != nil {
		return fmt.Errorf("cannot read the backup: %w", err)
	}
	if err := cleanup.CheckRestoreTarget(bk.ID, cfg.Redis.Name, cleanup.TargetNames(cfg.Targets)); err != nil {
		return c.asUsage(err)
	}
	ids, err := cfg.Backup.Identities()
	if err != nil {
		return err
	}
	read := bk.Reader(ids)

	audit, t, err := c.openAuditAndConnect(ctx, cfg)
	if err != nil {
		return err
	}
	defer audit.Close()
	defer t.Close()

	// A dry run first, always: it reads the whole file (a corrupt or truncated backup fails
	// here, before anything is written) and gives the number the operator confirms.
	plan, err := cleanup.Restore(ctx, t.Client(), t.Prefix(), read, cleanup.RestoreOptions{DryRun: true})
	if err != nil {
		return fmt.Errorf("cannot restore from %s, nothing written: %s", file, cleanup.RedactKeys(err.Error(), t.Prefix()))
	}
	fmt.Fprintf(c.stdout, "Backup %s holds %d %s\n", file, plan.Read, sessions(plan.Read))
	fmt.Fprintf(c.stdout, "%d %s will be restored\n", plan.Restored, sessions(plan.Restored))
	printRestoreSkips(c, plan)
	if dryRun {
		fmt.Fprintln(c.stdout, "Dry run: nothing was written.")
		return nil
	}
	if plan.Restored == 0 {
		fmt.Fprintln(c.stdout, "Nothing to restore.")
		return nil
	}
	who := c.operator(as)
	scope := "backup=" + file
	if err := audit.Log(cleanup.CleanupStarted{User: who, Mode: "restore",
		Filters: scope, Reason: reason}.Event(time.Now())); err != nil {
		return fmt.Errorf("cannot write the audit log, nothing restored: %w", err)
	}
	if !yes {
		q := fmt.Sprintf("This writes %d sessions back into %s: those users are logged in again.", plan.Restored, t.Name())
		abort := &exitError{code: exitFailed, err: errors.New("aborted, nothing restored")}
		if err := c.confirmCount(ctx, q, plan.Restored, abort); err != nil {
			_ = audit.Log(cleanup.Cancelled{User: who, Mode: "restore",
				Filters: scope, Reason: "not confirmed at the prompt"}.Event(time.Now(), itoa))
			return err
		}
	}
	start := time.Now()
	rep, err := cleanup.Restore(ctx, t.Client(), t.Prefix(), read, cleanup.RestoreOptions{})
	fmt.Fprintf(c.stdout, "Restored %d %s in %s\n", rep.Restored, sessions(rep.Restored), time.Since(start).Round(time.Millisecond))
	printRestoreSkips(c, rep)
	if err != nil || rep.Errors > 0 {
		why := "Redis refused some keys"
		if err != nil {
			why = cleanup.RedactKeys(err.Error(), t.Prefix())
		}
		_ = audit.Log(cleanup.CleanupFailed{User: who, Mode: "restore",
			Filters: scope, Done: rep, Error: why}.Event(time.Now(), itoa))
		return &exitError{code: exitFailed, err: fmt.Errorf("restore incomplete: %s", why)}
	}
	if err := audit.Log(cleanup.RestoreCompleted{User: who, BackupID: bk.ID, Report: rep}.Event(time.Now(), itoa)); err != nil {
		return &exitError{code: exitFailed, err: fmt.Errorf("the restore completed but its audit line could not be written: %w", err)}
	}
	return nil
}

func printRestoreSkips(c *cli, r cleanup.RestoreReport) {
	for _, s := range []struct {
		n    int64
		what string
	}{
		{r.SkippedExpired, "expired since the backup (skipped)"},
		{r.SkippedExists, "already in Redis (skipped, never overwritten)"},
		{r.SkippedPrefix, "outside SESSION_KEY_PREFIX (skipped, never written)"},
		{r.Errors, "refused by Redis"},
	} {
		if s.n > 0 {
			fmt.Fprintf(c.stdout, "%d %s %s\n", s.n, sessions(s.n), s.what)
		}
	}
}
