package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/platform-team/sessionbot/cleanup"
)

var backupCommand = &command{
	name:    "backup",
	summary: "write a backup of the selected sessions without deleting anything",
	run:     runBackup,
	help: `sessionbot backup — export sessions to a backup file, deleting nothing

Writes the sessions the filters select (the same filters as cleanup; with no filter: expired
sessions) to a gzip JSON-lines file {"key","value","pttl_ms"}, mode 0600, age-encrypted when
BACKUP_AGE_RECIPIENTS is set (the file then ends in .age). The file appears only when complete.
A backup holds live session tokens: keep it in a private directory (mode 0700); a group- or
world-writable directory such as /tmp is refused. The export is audited.

Usage: sessionbot backup [filters] [--out FILE] [--reason TEXT]
       sessionbot backup list                       the backups in BACKUP_DIR, newest first
       sessionbot backup prune [--older-than D] [--dry-run]
                                                    remove backups older than D (default
                                                    BACKUP_RETENTION, 7d); serve does it hourly

Flags:
  --out FILE       where to write; must end in .jsonl.gz (default BACKUP_DIR/<job-id>.jsonl.gz)
  --reason TEXT    why; recorded in the audit log (required with --all)
  --as NAME        your name for the audit log
  --target NAME    the TARGETS_FILE target (needed when the file names several)
  filters          --expired --orphans --auth-method M --user-id U --session-id S
                   --older-than D --all (see sessionbot cleanup --help)
  --help           this text

Examples:
  # Runbook Procedure 2, step 2: back up every session before a mass logout
  sessionbot backup --all --reason "INC-1234 forensics" --out ./backups/pre-logout.jsonl.gz
  # One user's sessions, for forensics
  sessionbot backup --user-id "auth0|123456789" --out ./backups/user-123.jsonl.gz
  # Put them back later
  sessionbot restore ./backups/pre-logout.jsonl.gz --reason "rollback INC-1234"
`,
}

func runBackup(ctx context.Context, c *cli, args []string) error {
	if len(args) > 0 {
		switch args[0] {
		case "list":
			return runBackupList(ctx, c, args[1:])
		case "prune":
			return runBackupPrune(ctx, c, args[1:])
		}
	}
	args, as, err := takeFlag(args, "as")
	if err != nil {
		return c.asUsage(err)
	}
	args, out, err := takeFlag(args, "out")
	if err != nil {
		return c.asUsage(err)
	}
	if slices.Contains(args, "--all") && !slices.ContainsFunc(args, func(a string) bool {
		return a == "--reason" || strings.HasPrefix(a, "--reason=")
	}) {
		return c.asUsage(fmt.Errorf(`backup --all exports every live session: give --reason "TEXT" (it is audited)`))
	}
	opts, err := cleanup.ParseArgs(args, true)
	if err != nil {
		return c.asUsage(err)
	}
	for flag, set := range map[string]bool{"--dry-run": opts.DryRun, "--yes": opts.Yes, "--backup": opts.Backup,
		"--no-backup": opts.NoBackup, "--batch-size": opts.BatchSize != 0, "--pause": opts.Pause >= 0, "--max-rate": opts.MaxRate >= 0} {
		if set {
			return c.asUsage(fmt.Errorf("%s is a cleanup option; backup takes filters, --out and --reason", flag))
		}
	}
	cfg, err := c.config(ctx)
	if err != nil {
		return err
	}
	spec := &cleanup.BackupSpec{Dir: cfg.Backup.Dir, JobID: newJobID(cfg.Redis.Name), Recipients: cfg.Backup.AgeRecipients}
	if out != "" {
		if spec.Dir, spec.JobID, err = backupTarget(out); err != nil {
			return c.asUsage(err)
		}
	}
	f := opts.Filter.Normalize()

	audit, t, err := c.openAuditAndConnect(ctx, cfg)
	if err != nil {
		return err
	}
	defer audit.Close()
	defer t.Close()

	bar := newProgressBar(c.stderr, isTerminal(c.stderr), 0, "backed up")
	rep, err := cleanup.NewEngine(t, cfg.Engine).Backup(ctx, f, spec, bar.update)
	bar.done()
	who := c.operator(as)
	if err != nil {
		return fmt.Errorf("backup failed, no file written: %s", cleanup.RedactKeys(err.Error(), t.Prefix()))
	}
	done := cleanup.BackupCompleted{User: who, Filters: f.Scope(), Sessions: rep.Matched, File: rep.Backup, Reason: opts.Reason}
	if err := audit.Log(done.Event(time.Now(), itoa)); err != nil {
		return fmt.Errorf("the backup was written to %s but its audit line could not be: %w", rep.Backup, err)
	}
	fmt.Fprintf(c.stdout, "Backed up %d %s matching %s to %s\n", rep.Matched, sessions(rep.Matched), f.Scope(), rep.Backup)
	if rep.Malformed > 0 {
		fmt.Fprintf(c.stdout, "%d malformed %s not included (select them with --all or --session-id)\n", rep.Malformed, sessions(rep.Malformed))
	}
	fmt.Fprintf(c.stdout, "Scanned %d session keys in %s. Nothing was deleted.\n", rep.Scanned, rep.Duration().Round(time.Millisecond))
	return nil
}

// backupTarget splits --out into the directory and the job id the engine names files by, and
// refuses a directory anyone else could write to (backups hold live sessions).
func backupTarget(out string) (dir, id string, err error) {
	base := filepath.Base(out)
	id, ok := strings.CutSuffix(base, ".jsonl.gz.age")
	if !ok {
		id, ok = strings.CutSuffix(base, ".jsonl.gz")
	}
	if !ok || id == "" || strings.HasPrefix(id, ".") {
		return "", "", fmt.Errorf("--out %q: the file name must end in .jsonl.gz (like incident.jsonl.gz)", shorten(out))
	}
	dir = filepath.Dir(out)
	if fi, err := os.Stat(dir); err == nil && fi.Mode().Perm()&0o022 != 0 {
		return "", "", fmt.Errorf("--out %q: directory %s is writable by others (mode %04o); backups hold live sessions: use a private directory (mkdir -m 700 ./backups)",
			shorten(out), dir, fi.Mode().Perm())
	}
	if _, err := os.Lstat(out); err == nil {
		return "", "", fmt.Errorf("--out %q already exists; backups are never overwritten", shorten(out))
	}
	return dir, id, nil
}

// runBackupList prints the backups in BACKUP_DIR: id, files, size, age, encrypted.
func runBackupList(ctx context.Context, c *cli, args []string) error {
	if len(args) > 0 {
		return c.asUsage(fmt.Errorf("backup list takes no arguments (got %q)", shorten(args[0])))
	}
	cfg, err := c.config(ctx)
	if err != nil {
		return err
	}
	all, err := cleanup.ListBackups(cfg.Backup.Dir)
	if err != nil {
		return fmt.Errorf("cannot list BACKUP_DIR: %w", err)
	}
	if len(all) == 0 {
		fmt.Fprintf(c.stdout, "No backups in %s.\n", cfg.Backup.Dir)
		return nil
	}
	fmt.Fprintf(c.stdout, "%-40s %5s %10s %8s  %s\n", "BACKUP ID", "FILES", "SIZE", "AGE", "ENCRYPTED")
	for _, b := range all {
		enc := "no (set BACKUP_AGE_RECIPIENTS)"
		if b.Encrypted {
			enc = "yes (age)"
		}
		fmt.Fprintf(c.stdout, "%-40s %5d %10s %8s  %s\n", b.ID, len(b.Files), bytesText(b.Size), ageText(time.Since(b.Modified)), enc)
	}
	return nil
}

// runBackupPrune removes backups older than --older-than (default BACKUP_RETENTION).
func runBackupPrune(ctx context.Context, c *cli, args []string) error {
	args, older, err := takeFlag(args, "older-than")
	if err != nil {
		return c.asUsage(err)
	}
	dryRun := slices.Contains(args, "--dry-run")
	args = slices.DeleteFunc(args, func(a string) bool { return a == "--dry-run" })
	if len(args) > 0 {
		return c.asUsage(fmt.Errorf("backup prune takes --older-than D and --dry-run, not %q", shorten(args[0])))
	}
	cfg, err := c.config(ctx)
	if err != nil {
		return err
	}
	retention := time.Duration(cfg.Backup.Retention)
	if older != "" {
		var d cleanup.Duration
		if err := d.EnvDecode(older); err != nil || d <= 0 {
			return c.asUsage(fmt.Errorf("--older-than needs a duration like 12h, 7d or 2w, not %q", shorten(older)))
		}
		retention = time.Duration(d)
	}
	now := time.Now()
	if dryRun {
		all, err := cleanup.ListBackups(cfg.Backup.Dir)
		if err != nil {
			return fmt.Errorf("cannot list BACKUP_DIR: %w", err)
		}
		n := 0
		for _, b := range all {
			if b.Modified.Before(now.Add(-retention)) {
				fmt.Fprintf(c.stdout, "would remove %s (%s old, %s)\n", b.ID, ageText(now.Sub(b.Modified)), bytesText(b.Size))
				n++
			}
		}
		fmt.Fprintf(c.stdout, "Dry run: %d backup(s) older than %s would be removed; nothing was.\n", n, ageText(retention))
		return nil
	}
	pruned, err := cleanup.PruneBackups(cfg.Backup.Dir, retention, now)
	for _, b := range pruned {
		fmt.Fprintf(c.stdout, "removed %s (%s old, %s)\n", b.ID, ageText(now.Sub(b.Modified)), bytesText(b.Size))
	}
	if err != nil {
		return fmt.Errorf("pruning stopped: %w", err)
	}
	fmt.Fprintf(c.stdout, "Removed %d backup(s) older than %s from %s.\n", len(pruned), ageText(retention), cfg.Backup.Dir)
	return nil
}

// pruneBackupsHourly removes backups older than the retention now and every hour until ctx ends
// (serve): backups hold live session tokens.
func pruneBackupsHourly(ctx context.Context, cfg cleanup.BackupConfig, log *slog.Logger) {
	prune := func() {
		pruned, err := cleanup.PruneBackups(cfg.Dir, time.Duration(cfg.Retention), time.Now())
		for _, b := range pruned {
			log.Info("backup pruned", "backup", b.ID, "retention", time.Duration(cfg.Retention).String())
		}
		if err != nil {
			log.Error("backup pruning failed", "dir", cfg.Dir, "err", err)
		}
	}
	prune()
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			prune()
		}
	}
}

// ageText is a duration for people: 3d4h, 5h12m, 40s.
func ageText(d time.Duration) string {
	switch {
	case d >= 24*time.Hour:
		return fmt.Sprintf("%dd%dh", int(d.Hours())/24, int(d.Hours())%24)
	case d >= time.Hour:
		return fmt.Sprintf("%dh%dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return d.Round(time.Second).String()
}
