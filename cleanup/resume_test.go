package cleanup

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A resumed job extends the backup of the run it continues: its rounds follow every round the
// interrupted run wrote (or left half-written), nothing of it is overwritten, and one restore of
// the backup id reads the sessions both runs deleted.
func TestResumedRunExtendsBackup(t *testing.T) {
	targets(t, func(t *testing.T, tgt *Target) {
		ctx := context.Background()
		dir := t.TempDir()
		put(t, tgt, population(100, 50, nil)...)
		e := engine(tgt)
		first, err := e.Run(ctx, RunSpec{Filter: Filter{Expired: true}, MaxValid: 10, Backup: &BackupSpec{Dir: dir, JobID: "job-resume"}})
		if err != nil || first.Deleted != 50 {
			t.Fatalf("first run = deleted %d, %v; want 50", first.Deleted, err)
		}
		// What the interruption left: expired sessions not yet deleted, and a round it was
		// writing when its replica died.
		left := population(20, 20, nil)
		for i := range left {
			left[i].id = fmt.Sprintf("left%02d%s", i, strings.Repeat("c", 27))
		}
		put(t, tgt, left...)
		if err := os.WriteFile(filepath.Join(dir, ".job-resume.r2.tmp"), []byte("half"), 0o600); err != nil {
			t.Fatal(err)
		}
		next, err := NextBackupRound(dir, "job-resume")
		if err != nil || next != 3 {
			t.Fatalf("NextBackupRound = %d, %v; want 3 (after round 1 and the half-written round 2)", next, err)
		}
		before, _ := os.ReadFile(filepath.Join(dir, "job-resume.jsonl.gz"))

		second, err := e.Run(ctx, RunSpec{Filter: Filter{Expired: true}, MaxValid: 10,
			Backup: &BackupSpec{Dir: dir, JobID: "job-resume", FirstRound: next}})
		if err != nil || second.Deleted != 20 || filepath.Base(strings.Split(second.Backup, ",")[0]) != "job-resume.r3.jsonl.gz" {
			t.Fatalf("resumed run = deleted %d, backup %q, %v; want 20 in job-resume.r3.jsonl.gz", second.Deleted, second.Backup, err)
		}
		if after, _ := os.ReadFile(filepath.Join(dir, "job-resume.jsonl.gz")); string(after) != string(before) {
			t.Error("the first run's backup file was rewritten")
		}
		bk, err := FindBackup(dir, "job-resume")
		if err != nil {
			t.Fatal(err)
		}
		keys := map[string]bool{}
		if err := bk.Reader(nil)(func(r BackupRecord) error { keys[r.Key] = true; return nil }); err != nil {
			t.Fatal(err)
		}
		if len(keys) != 70 {
			t.Errorf("backup job-resume holds %d sessions; want the 70 both runs deleted", len(keys))
		}
		if n := countPrefix(t, tgt); n != 50 {
			t.Errorf("%d sessions left; want the 50 still valid", n)
		}
	})
}
