package cleanup

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"
)

// A run whose first backup round is its preview (RunSpec.Planned): Planned sees the plan of what
// the round backed up, the backup is complete before it is called, and an error from it stops the
// run with nothing deleted.
func TestRunPlannedIsThePreview(t *testing.T) {
	targets(t, func(t *testing.T, tgt *Target) {
		ctx := context.Background()
		put(t, tgt, population(300, 100, nil)...)
		check := unrelated(t, tgt)
		e := NewEngine(tgt, EngineConfig{BatchSize: 50}).WithClock(func() time.Time { return testNow })
		want, err := e.Preview(ctx, Filter{All: true}, nil)
		if err != nil {
			t.Fatal(err)
		}

		stop := errors.New("the operator's audit log is full")
		var got Plan
		spec := RunSpec{Filter: Filter{All: true}, MaxValid: -1, Backup: &BackupSpec{Dir: t.TempDir(), JobID: "planned-stop"}}
		spec.Planned = func(p Plan) error {
			got = p
			if n := countBackup(t, spec.Backup.Dir+"/planned-stop.jsonl.gz"); n != 300 {
				t.Errorf("when Planned is called the backup holds %d sessions; want all 300, complete", n)
			}
			return stop
		}
		rep, err := e.Run(ctx, spec)
		if !errors.Is(err, stop) {
			t.Fatalf("Run = %v; want Planned's error", err)
		}
		if rep.Deleted != 0 || len(snapshot(t, tgt.Client(), tgt.Prefix())) != 300 {
			t.Errorf("deleted %d after Planned refused; want nothing deleted", rep.Deleted)
		}
		if got.Found != want.Found || got.Matched != want.Matched || got.Valid != want.Valid || got.Kept != want.Kept ||
			got.Bytes != want.Bytes || len(got.Samples) != len(want.Samples) || got.Nodes != want.Nodes {
			t.Errorf("Planned's plan = found %d, matched %d, valid %d, kept %d, %d bytes, %d samples, %d nodes;\nPreview's = found %d, matched %d, valid %d, kept %d, %d bytes, %d samples, %d nodes",
				got.Found, got.Matched, got.Valid, got.Kept, got.Bytes, len(got.Samples), got.Nodes,
				want.Found, want.Matched, want.Valid, want.Kept, want.Bytes, len(want.Samples), want.Nodes)
		}

		spec.Backup.JobID = "planned-go"
		spec.Planned = func(Plan) error { return nil }
		rep, err = e.Run(ctx, spec)
		if err != nil || rep.Deleted != 300 {
			t.Fatalf("Run = deleted %d, %v; want 300", rep.Deleted, err)
		}
		check()
	})
}

func countBackup(t *testing.T, path string) int {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n := 0
	if err := ReadBackup(f, nil, func(BackupRecord) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}
