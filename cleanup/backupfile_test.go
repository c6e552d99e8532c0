package cleanup

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func TestListFindPruneBackups(t *testing.T) {
	dir := t.TempDir()
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	files := map[string]time.Time{
		"job-a.jsonl.gz":         now.Add(-8 * 24 * time.Hour),
		"job-a.r2.jsonl.gz":      now.Add(-8 * 24 * time.Hour),
		"job-b.jsonl.gz.age":     now.Add(-time.Hour),
		"job-b.r2.jsonl.gz.age":  now.Add(-time.Hour),
		"job-b.r10.jsonl.gz.age": now.Add(-time.Hour),
		".job-c.keys":            now, // a key list, not a backup
		"notes.txt":              now,
	}
	for name, mt := range files {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, mt, mt); err != nil {
			t.Fatal(err)
		}
	}
	all, err := ListBackups(dir)
	if err != nil || len(all) != 2 || all[0].ID != "job-b" || all[1].ID != "job-a" {
		t.Fatalf("ListBackups = %+v, %v; want job-b then job-a", all, err)
	}
	wantB := []string{"job-b.r10.jsonl.gz.age", "job-b.r2.jsonl.gz.age", "job-b.jsonl.gz.age"}
	var gotB []string
	for _, f := range all[0].Files {
		gotB = append(gotB, filepath.Base(f))
	}
	if !slices.Equal(gotB, wantB) || !all[0].Encrypted || all[0].Size != 3 {
		t.Errorf("job-b = %v encrypted %v size %d; want %v (newest round first), encrypted, 3 bytes", gotB, all[0].Encrypted, all[0].Size, wantB)
	}
	for _, ref := range []string{"job-a", filepath.Join(dir, "job-a.jsonl.gz"), filepath.Join(dir, "job-a.r2.jsonl.gz")} {
		b, err := FindBackup(dir, ref)
		if err != nil || b.ID != "job-a" || len(b.Files) != 2 {
			t.Errorf("FindBackup(%q) = %+v, %v; want job-a with 2 files", ref, b, err)
		}
	}
	if _, err := FindBackup(dir, "job-z"); err == nil {
		t.Error("FindBackup(job-z) found something")
	}
	pruned, err := PruneBackups(dir, 7*24*time.Hour, now)
	if err != nil || len(pruned) != 1 || pruned[0].ID != "job-a" {
		t.Fatalf("PruneBackups = %+v, %v; want job-a pruned", pruned, err)
	}
	left, _ := os.ReadDir(dir)
	if len(left) != 5 {
		t.Errorf("%d files left after pruning; want job-b's 3, the key list and notes.txt", len(left))
	}
}

// A session recorded in two rounds (rewritten while its job ran) is restored once, with its
// newest value: the later round is read first and the older copy is skipped, so a dry run
// counts it once too (the number an operator confirms is the number restored).
func TestRestoreTakesTheNewestRound(t *testing.T) {
	targets(t, func(t *testing.T, tgt *Target) {
		dir := t.TempDir()
		key := tgt.Prefix() + "abc"
		for round, val := range map[string]string{"job-n": `{"v":1}`, "job-n.r2": `{"v":2}`} {
			w, err := CreateBackup(dir, round, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := w.Write(BackupRecord{Key: key, Value: []byte(val), PTTL: NoTTL}); err != nil {
				t.Fatal(err)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
		}
		b, err := FindBackup(dir, "job-n")
		if err != nil {
			t.Fatal(err)
		}
		want := RestoreReport{Read: 1, Restored: 1}
		plan, err := Restore(context.Background(), tgt.Client(), tgt.Prefix(), b.Reader(nil), RestoreOptions{DryRun: true})
		if err != nil || plan != want {
			t.Fatalf("Restore dry run = %+v, %v; want %+v", plan, err, want)
		}
		rep, err := Restore(context.Background(), tgt.Client(), tgt.Prefix(), b.Reader(nil), RestoreOptions{})
		if err != nil || rep != want {
			t.Fatalf("Restore = %+v, %v; want %+v", rep, err, want)
		}
		if v, _ := tgt.Client().Get(context.Background(), key).Result(); v != `{"v":2}` {
			t.Errorf("restored value %s; want the newest round's", v)
		}
	})
}
