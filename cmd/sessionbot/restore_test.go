package main

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/platform-team/sessionbot/cleanup"
	"github.com/platform-team/sessionbot/internal/testkit"
)

// A job's backup may be several files (sessions rewritten while the job ran are backed up
// again in later rounds): restore, given any one of them or the job id, reads them all and
// puts each session back once, with its newest value.
func TestRestoreReadsEveryRound(t *testing.T) {
	for _, tt := range []struct{ name, ref string }{
		{"first round's file", "job-n.jsonl.gz"},
		{"later round's file", "job-n.r2.jsonl.gz"},
		{"job id in BACKUP_DIR", "job-n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tg := newTarget(t)
			dir := tg.env["BACKUP_DIR"]
			rounds := []struct {
				name string
				recs map[string]string
			}{
				{"job-n", map[string]string{"session:rewritten": `{"v":1}`, "session:once": `{"v":1}`}},
				{"job-n.r2", map[string]string{"session:rewritten": `{"v":2}`, "session:late": `{"v":2}`}},
			}
			for _, r := range rounds {
				var recs []cleanup.BackupRecord
				for k, v := range r.recs {
					recs = append(recs, cleanup.BackupRecord{Key: k, Value: []byte(v), PTTL: time.Hour})
				}
				testkit.WriteBackup(t, dir, r.name, recs...)
			}
			ref := tt.ref
			if ref != "job-n" {
				ref = filepath.Join(dir, ref)
			}

			inv := tg.run("", "restore", ref, "--reason", "undo", "--yes")
			if inv.code != 0 {
				t.Fatalf("restore %s: exit %d; stderr:\n%s", tt.ref, inv.code, inv.stderr)
			}
			wantLines(t, inv.stdout, "Backup "+ref+" holds 3 sessions", "3 sessions will be restored")
			for k, want := range map[string]string{"session:rewritten": `{"v":2}`, "session:once": `{"v":1}`, "session:late": `{"v":2}`} {
				if got, err := tg.client.Get(context.Background(), k).Result(); err != nil || got != want {
					t.Errorf("GET %s = %q, %v; want %q", k, got, err, want)
				}
			}
			lines := tg.auditLines()
			wantAudit(t, lines[len(lines)-1], `Restore Completed \| User: alice \| Backup-ID: job-n \| Restored: 3 \| Skipped-Expired: 0 \| Skipped-Exists: 0 \| Skipped-Prefix: 0 \| Errors: 0$`)
		})
	}
}
