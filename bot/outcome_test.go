package bot

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/platform-team/sessionbot/bot/chat"
	"github.com/platform-team/sessionbot/cleanup"
	"github.com/platform-team/sessionbot/internal/testkit"
)

// A restore that fails is audited as a restore: Cleanup Failed counts what it restored and
// skipped (not "Deleted"), and no Restore Completed line claims it completed.
func TestRestoreFailureIsAuditedAsRestore(t *testing.T) {
	h := newHarness(t)
	testkit.WriteBackup(t, h.backupDir, "job-gone",
		cleanup.BackupRecord{Key: "session:a", Value: []byte(`{"v":1}`), PTTL: time.Hour},
		cleanup.BackupRecord{Key: "session:b", Value: []byte(`{"v":2}`), PTTL: time.Hour})
	h.command(carol, "restore job-gone --reason 'undo drill'")
	ref, m := h.chat.latest(-1)
	wantContains(t, "restore request", chat.FormatText(m), "2 sessions will be restored")
	if err := os.Remove(filepath.Join(h.backupDir, "job-gone.jsonl.gz")); err != nil {
		t.Fatal(err)
	}
	h.press(bob, "approve", button(t, m, "approve"))

	wantContains(t, "report", chat.FormatText(h.chat.msg(ref)), ":x: Failed: restore=job-gone", "Failed after restoring 0 sessions")
	if got := h.audited(cleanup.EventRestoreCompleted); len(got) != 0 {
		t.Errorf("Restore Completed lines = %q; want none for a failed restore", got)
	}
	failed := h.audited(cleanup.EventCleanupFailed)
	if len(failed) != 1 {
		t.Fatalf("Cleanup Failed lines = %q; want 1", failed)
	}
	wantContains(t, "Cleanup Failed", failed[0], "| Mode: restore | Filters: restore=job-gone | Restored: 0 | Skipped-Expired: 0 | Skipped-Exists: 0 | Skipped-Prefix: 0 | Errors: 0 | Job: job-")
	if strings.Contains(failed[0], "Deleted:") {
		t.Errorf("Cleanup Failed = %q; a restore deletes nothing", failed[0])
	}
	if o := h.notifier.all(); len(o) != 1 || !o[0].Failed || o[0].Mode != "restore" {
		t.Errorf("outcomes = %+v; want one failed restore", o)
	}
}

// A job's backup may be several files (sessions rewritten while the job ran are backed up
// again in later rounds): a restore reads them all and puts each session back once, with its
// newest value.
func TestRestoreReadsEveryRound(t *testing.T) {
	h := newHarness(t)
	rec := func(key, value string) cleanup.BackupRecord {
		return cleanup.BackupRecord{Key: key, Value: []byte(value), PTTL: time.Hour}
	}
	testkit.WriteBackup(t, h.backupDir, "job-n", rec("session:rewritten", `{"v":1}`), rec("session:once", `{"v":1}`))
	testkit.WriteBackup(t, h.backupDir, "job-n.r2", rec("session:rewritten", `{"v":2}`), rec("session:late", `{"v":2}`))
	h.command(carol, "restore job-n --reason 'undo drill'")
	ref, m := h.chat.latest(-1)
	wantContains(t, "restore request", chat.FormatText(m), "Found 3 sessions in backup job-n", "3 sessions will be restored")
	h.press(bob, "approve", button(t, m, "approve"))

	wantContains(t, "report", chat.FormatText(h.chat.msg(ref)), "Restore completed: job-n", "Restored: 3", "Skipped: 0")
	for k, want := range map[string]string{"session:rewritten": `{"v":2}`, "session:once": `{"v":1}`, "session:late": `{"v":2}`} {
		if got, err := h.rdb.Get(context.Background(), k).Result(); err != nil || got != want {
			t.Errorf("GET %s = %q, %v; want %q", k, got, err, want)
		}
	}
	done := h.audited(cleanup.EventRestoreCompleted)
	if len(done) != 1 {
		t.Fatalf("Restore Completed lines = %q; want 1", done)
	}
	wantContains(t, "Restore Completed", done[0], "| User: "+carol+" (carol) | Job: job-",
		" | Backup-ID: job-n | Restored: 3 | Skipped-Expired: 0 | Skipped-Exists: 0 | Skipped-Prefix: 0 | Errors: 0")
}
