package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/platform-team/sessionbot/cleanup"
)

func TestStatsJSON(t *testing.T) {
	tg := newTarget(t)
	res := tg.seed(cleanup.SeedSpec{Count: 150, Expired: 0.3, Malformed: 0.04, Unrelated: 5})
	inv := tg.run("", "stats", "--json")
	if inv.code != 0 {
		t.Fatalf("stats --json: exit %d; stderr:\n%s", inv.code, inv.stderr)
	}
	var got statsJSON
	dec := json.NewDecoder(strings.NewReader(inv.stdout))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&got); err != nil {
		t.Fatalf("stats --json is not one JSON object: %v\n%s", err, inv.stdout)
	}
	if got.Total != 150 || got.Expired != res.Expired || got.Malformed != res.Malformed || got.Orphans != res.NoTTL || !got.Complete {
		t.Errorf("stats = %+v; seeded %+v", got, res)
	}
	var ttl int64
	for _, n := range got.TTL {
		ttl += n
	}
	if ttl != 150 || got.TTL["no_ttl"] != res.NoTTL {
		t.Errorf("TTL distribution %v covers %d keys; want 150 with %d without TTL", got.TTL, ttl, res.NoTTL)
	}

	inv = tg.run("", "stats")
	wantLines(t, inv.stdout, "Found 150 total session keys")
	if inv.code != 0 || !strings.Contains(inv.stdout, "TTL distribution:") {
		t.Errorf("stats: exit %d, stdout:\n%s", inv.code, inv.stdout)
	}
}

func TestBackupThenRestore(t *testing.T) {
	tg := newTarget(t)
	tg.seed(procedure1)
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(t.TempDir(), "age.key")
	if err := os.WriteFile(keyFile, []byte(id.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tg.env["BACKUP_AGE_RECIPIENTS"] = id.Recipient().String()
	tg.env["BACKUP_AGE_IDENTITY_FILE"] = keyFile
	before := tg.snapshot()

	dir := filepath.Join(t.TempDir(), "private")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "incident.jsonl.gz")
	inv := tg.run("", "backup", "--all", "--out", out)
	if inv.code != 2 {
		t.Errorf("backup --all without --reason: exit %d; want 2", inv.code)
	}
	inv = tg.run("", "backup", "--all", "--reason", "forensics", "--out", out)
	if inv.code != 0 {
		t.Fatalf("backup: exit %d; stderr:\n%s", inv.code, inv.stderr)
	}
	file := out + ".age"
	wantLines(t, inv.stdout, "Backed up 150 sessions matching all to "+file)
	sameKeys(t, before, tg.snapshot())

	if inv := tg.run("", "cleanup", "--all", "--reason", "drill", "--yes", "--no-backup"); inv.code != 0 {
		t.Fatalf("cleanup --all: exit %d; stderr:\n%s", inv.code, inv.stderr)
	}
	if n := tg.count("session:*"); n != 0 {
		t.Fatalf("%d sessions left after --all", n)
	}

	if inv := tg.run("", "restore", file); inv.code != 2 {
		t.Errorf("restore without --reason: exit %d; want 2", inv.code)
	}
	inv = tg.run("", "restore", file, "--dry-run")
	if inv.code != 0 || tg.count("session:*") != 0 {
		t.Fatalf("restore --dry-run: exit %d, wrote keys; stderr:\n%s", inv.code, inv.stderr)
	}
	wantLines(t, inv.stdout, "Backup "+file+" holds 150 sessions", "105 sessions will be restored",
		"45 sessions expired since the backup (skipped)")
	inv = tg.run("15\n", "restore", file, "--reason", "rollback")
	if inv.code != 1 || tg.count("session:*") != 0 || !strings.Contains(inv.stderr, "aborted, nothing restored") {
		t.Fatalf("restore with a wrong count: exit %d; stderr:\n%s", inv.code, inv.stderr)
	}
	inv = tg.run("105\n", "restore", file, "--reason", "rollback")
	if inv.code != 0 {
		t.Fatalf("restore: exit %d; stderr:\n%s", inv.code, inv.stderr)
	}
	if !strings.Contains(inv.stdout, "\nRestored 105 sessions in ") {
		t.Errorf("restore output:\n%s", inv.stdout)
	}
	// The still-valid sessions are back, byte for byte; the expired ones stay gone.
	after := tg.snapshot()
	if n := tg.count("session:*"); n != 105 {
		t.Errorf("%d sessions after restore; want 105", n)
	}
	for k, v := range after {
		if before[k] != v {
			t.Errorf("restored key %q differs from the original", k)
		}
	}
	lines := tg.auditLines()
	wantAudit(t, lines[len(lines)-1], `Restore Completed \| User: alice \| Backup-ID: incident \| Restored: 105 \| Skipped-Expired: 45 \| Skipped-Exists: 0 \| Skipped-Prefix: 0 \| Errors: 0$`)
}

// A restore that loses Redis midway fails naming the key it was writing, shortened like every
// session key in the CLI's errors and audit lines: a session id may be a bearer credential.
func TestRestoreErrorRedactsKeys(t *testing.T) {
	tg := newTarget(t)
	tg.seed(cleanup.SeedSpec{Count: 30, Expired: -1})
	var ids []string
	for k := range tg.snapshot() {
		if id, ok := strings.CutPrefix(k, "session:"); ok {
			ids = append(ids, id)
		}
	}
	dir := filepath.Join(t.TempDir(), "private")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "incident.jsonl.gz")
	if inv := tg.run("", "backup", "--all", "--reason", "forensics", "--out", file); inv.code != 0 {
		t.Fatalf("backup: exit %d; stderr:\n%s", inv.code, inv.stderr)
	}
	if inv := tg.run("", "cleanup", "--all", "--reason", "drill", "--yes", "--no-backup"); inv.code != 0 {
		t.Fatalf("cleanup --all: exit %d; stderr:\n%s", inv.code, inv.stderr)
	}

	p := tg.runToPrompt("restore", file, "--reason", "rollback")
	tg.srv.Kill()
	inv := p.answer("30\n")
	if inv.code != 1 || !strings.Contains(inv.stderr, "restore incomplete") {
		t.Fatalf("restore without Redis: exit %d; want 1; stderr:\n%s", inv.code, inv.stderr)
	}
	if !regexp.MustCompile(`session:[^ :]{8}…`).MatchString(inv.stderr) {
		t.Errorf("the error names no (shortened) key:\n%s", inv.stderr)
	}
	audit, err := os.ReadFile(tg.audit)
	if err != nil {
		t.Fatal(err)
	}
	for what, text := range map[string]string{"stdout": inv.stdout, "stderr": inv.stderr, "audit log": string(audit)} {
		for _, id := range ids {
			if strings.Contains(text, id) {
				t.Errorf("%s holds the full session id %s…:\n%s", what, cleanup.ShortID(id), text)
			}
		}
	}
}

func TestBackupRefusesSharedDirectory(t *testing.T) {
	tg := newTarget(t)
	tg.seed(procedure1)
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	inv := tg.run("", "backup", "--out", filepath.Join(dir, "x.jsonl.gz"))
	if inv.code != 2 || !strings.Contains(inv.stderr, "writable by others") {
		t.Errorf("exit %d; stderr:\n%s", inv.code, inv.stderr)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("files written: %v", entries)
	}
}

func TestSeedRefusesTargetWithSessions(t *testing.T) {
	tg := newTarget(t)
	inv := tg.run("", "seed", "--count", "150", "--expired", "0.3", "--unrelated", "10")
	if inv.code != 0 {
		t.Fatalf("seed: exit %d; stderr:\n%s", inv.code, inv.stderr)
	}
	if !strings.Contains(inv.stdout, "Wrote 150 session keys") || !strings.Contains(inv.stdout, "45 expired, 105 still valid") {
		t.Errorf("seed output:\n%s", inv.stdout)
	}
	before := tg.snapshot()
	inv = tg.run("", "seed", "--count", "10")
	if inv.code != 1 || !strings.Contains(inv.stderr, "already holds 150 session keys") {
		t.Errorf("second seed: exit %d; stderr:\n%s", inv.code, inv.stderr)
	}
	sameKeys(t, before, tg.snapshot())
	if inv := tg.run("", "seed", "--count", "10", "--expired", "2"); inv.code != 2 {
		t.Errorf("--expired 2: exit %d; want 2", inv.code)
	}
}

func TestVersion(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"--version"}} {
		var stdout, stderr strings.Builder
		err := run(context.Background(), args, func(string) string { return "" }, strings.NewReader(""), &stdout, &stderr)
		if err != nil || !strings.HasPrefix(stdout.String(), "sessionbot "+version+" (go") {
			t.Errorf("sessionbot %s = %q, %v; want the stamped version", args[0], stdout.String(), err)
		}
	}
}

// Backups hold live tokens: backup prune removes those older than BACKUP_RETENTION (or
// --older-than), backup list shows what is left.
func TestBackupListAndPrune(t *testing.T) {
	tg := newTarget(t)
	dir := tg.env["BACKUP_DIR"]
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-8 * 24 * time.Hour)
	for _, name := range []string{"job-old.jsonl.gz", "job-old.r2.jsonl.gz", "job-new.jsonl.gz.age"} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(name, "old") {
			if err := os.Chtimes(p, old, old); err != nil {
				t.Fatal(err)
			}
		}
	}
	inv := tg.run("", "backup", "list")
	if inv.code != 0 || !strings.Contains(inv.stdout, "job-old") || !regexp.MustCompile(`job-new\s+1\s.*yes \(age\)`).MatchString(inv.stdout) {
		t.Fatalf("backup list = %d:\n%s%s", inv.code, inv.stdout, inv.stderr)
	}
	inv = tg.run("", "backup", "prune", "--dry-run")
	if inv.code != 0 || !strings.Contains(inv.stdout, "would remove job-old") || strings.Contains(inv.stdout, "job-new") {
		t.Fatalf("backup prune --dry-run = %d:\n%s%s", inv.code, inv.stdout, inv.stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "job-old.jsonl.gz")); err != nil {
		t.Fatalf("dry run removed a file: %v", err)
	}
	inv = tg.run("", "backup", "prune")
	if inv.code != 0 || !strings.Contains(inv.stdout, "Removed 1 backup(s) older than 7d0h") {
		t.Fatalf("backup prune = %d:\n%s%s", inv.code, inv.stdout, inv.stderr)
	}
	left, _ := os.ReadDir(dir)
	if len(left) != 1 || left[0].Name() != "job-new.jsonl.gz.age" {
		t.Errorf("left in BACKUP_DIR: %v; want only job-new", left)
	}
	if inv := tg.run("", "backup", "prune", "--older-than", "soon"); inv.code != 2 {
		t.Errorf("prune --older-than soon: exit %d; want 2", inv.code)
	}
}
