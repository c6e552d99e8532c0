package cleanup_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/platform-team/sessionbot/cleanup"
	"github.com/platform-team/sessionbot/cleanup/redistest"
	"github.com/platform-team/sessionbot/cleanup/sessiontest"
)

var invariantNow = time.Date(2025, 11, 26, 10, 0, 0, 0, time.UTC)

// TestInvariantsUnderConcurrentWriters runs every kind of cleanup against a real redis-server,
// standalone and a 3-master Cluster, while an application keeps rewriting the sessions it uses
// (SET XX KEEPTTL every few milliseconds), logs users in and out, changes some sessions so that
// they stop matching and writes deleted sessions back; then checks SPEC §12 from Redis, the
// report and the backup alone (sessiontest.App.Check). Replay a failure with SESSIONBOT_SEED.
func TestInvariantsUnderConcurrentWriters(t *testing.T) {
	seed := sessiontest.SeedFromEnv()
	t.Logf("seed %d (replay: SESSIONBOT_SEED=%d go test -run %s ./cleanup)", seed, seed, t.Name())
	const (
		selection = 2 // backup value: no backup, run from the preview's Selection (the CLI)
		planned   = 3 // backup value: a backup whose first round is the preview (--all --yes)
	)
	cases := []struct {
		name   string
		filter cleanup.Filter
		backup int // 0 none, 1 backup, selection, planned
		// MaxValid: -1 unbounded (approved); otherwise the bound of an approval-free run.
		maxValid int64
	}{
		{"expired", cleanup.Filter{}, 0, -1},
		{"expired/selection", cleanup.Filter{}, selection, -1},
		{"user-id/selection", cleanup.Filter{UserID: sessiontest.UserID(0)}, selection, -1},
		{"orphans/selection", cleanup.Filter{Orphans: true}, selection, -1},
		{"expired/backup", cleanup.Filter{Expired: true}, 1, -1},
		{"user-id", cleanup.Filter{UserID: sessiontest.UserID(0)}, 0, -1},
		{"user-id/backup", cleanup.Filter{UserID: sessiontest.UserID(0)}, 1, -1},
		{"auth-method", cleanup.Filter{AuthMethod: "basic_auth"}, 0, -1},
		{"auth-method/backup", cleanup.Filter{AuthMethod: "basic_auth"}, 1, -1},
		{"older-than", cleanup.Filter{OlderThan: 7 * 24 * time.Hour, OlderThanText: "7d"}, 0, -1},
		{"orphans", cleanup.Filter{Orphans: true}, 0, -1},
		{"orphans/repair", cleanup.Filter{Orphans: true, RepairTTL: true}, 0, 0},
		{"all", cleanup.Filter{All: true}, 0, -1},
		{"all/backup", cleanup.Filter{All: true}, 1, -1},
		{"all/backup-planned", cleanup.Filter{All: true}, planned, -1},
	}
	kinds := []struct {
		name   string
		client func(t *testing.T) redis.UniversalClient
	}{
		{"standalone", func(t *testing.T) redis.UniversalClient { return redistest.Standalone(t).Client() }},
		{"cluster", func(t *testing.T) redis.UniversalClient { return redistest.NewCluster(t).Client() }},
	}
	for ki, kind := range kinds {
		t.Run(kind.name, func(t *testing.T) {
			c := kind.client(t)
			for ci, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					s := seed + uint64(ki*100+ci)
					cfg := sessiontest.Config{
						Prefix: fmt.Sprintf("inv%d:session:", ci), Now: invariantNow, Seed: s,
						Sessions: 4000, Hot: 200, Unmatch: 40, Logout: 40, WriteBack: 40, Creators: 1, Writers: 3,
					}
					if tc.filter.RepairTTL {
						// Redis expires what a repair sets by its own clock.
						cfg.Now = time.Now().Truncate(time.Second)
					}
					if tc.filter.All && tc.backup == 1 && kind.name == "standalone" {
						// The numbers of the report that found mass logouts leaving active users
						// logged in: 20,000 sessions, 1,000 of them rewritten all the time.
						cfg.Sessions, cfg.Hot = 20000, 1000
					}
					runUnderTraffic(t, c, tc.filter, cfg, tc.backup, tc.maxValid)
				})
			}
		})
	}
}

func runUnderTraffic(t *testing.T, c redis.UniversalClient, f cleanup.Filter, cfg sessiontest.Config, backup int, maxValid int64) {
	t.Helper()
	ctx := context.Background()
	app := sessiontest.New(c, f, cfg)
	if err := app.Populate(ctx); err != nil {
		t.Fatal(err)
	}
	tgt := cleanup.NewTarget(c, cfg.Prefix, "test")
	tgt.Exclude(cleanup.StateNamespace)
	rng := rand.New(rand.NewPCG(cfg.Seed, 1))
	eng := cleanup.NewEngine(tgt, cleanup.EngineConfig{BatchSize: 50 + rng.IntN(150)}).WithClock(func() time.Time { return cfg.Now })
	spec := cleanup.RunSpec{Filter: f, MaxValid: maxValid, Pause: -1, MaxRate: -1}
	if rng.IntN(3) == 0 {
		spec.MaxRate = 40000 // paced, as production runs are
	}
	var plans int
	if backup == 1 || backup == 3 {
		spec.Backup = &cleanup.BackupSpec{Dir: t.TempDir(), JobID: "job-inv"}
	}
	if backup == 3 {
		spec.Planned = func(p cleanup.Plan) error {
			if plans++; p.Matched == 0 {
				t.Errorf("Planned: a plan that matched nothing out of %d keys", p.Found)
			}
			return nil
		}
	}
	app.Start(ctx)
	// The application is busy before the run starts, and stays busy until it ends.
	deadline := time.Now().Add(10 * time.Second)
	for app.Writes() < 200 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if backup == 2 {
		// The CLI: a preview, then at once a run from what it found, while the application
		// keeps rewriting the sessions in between.
		_, sel, err := eng.PreviewSelect(ctx, f, nil, t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		defer sel.Close()
		spec.Selection = sel
	}
	var (
		mu       sync.Mutex
		reported = map[string]bool{}
	)
	spec.Deleted = func(users []string) {
		mu.Lock()
		defer mu.Unlock()
		for _, u := range users {
			reported[u] = true
		}
	}
	rep, err := eng.Run(ctx, spec)
	writes := app.Writes()
	if werr := app.Stop(); werr != nil {
		t.Fatalf("application traffic: %v", werr)
	}
	t.Logf("%s: deleted %d (valid %d), skipped %d, malformed %d, remaining %d, %d application writes, backup %q, %v",
		f.Scope(), rep.Deleted, rep.DeletedValid, rep.Skipped, rep.Malformed, rep.Remaining, writes, rep.Backup, rep.Duration())
	if err != nil || rep.Stopped != "" {
		t.Errorf("Run = stopped %q, %v; want completed (seed %d)", rep.Stopped, err, cfg.Seed)
	}
	if rep.Deleted == 0 {
		t.Errorf("Run deleted nothing; the test proves nothing")
	}
	if backup == 3 && plans != 1 {
		t.Errorf("RunSpec.Planned called %d times; want once", plans)
	}
	if cerr := app.Check(ctx, rep, err); cerr != nil {
		t.Errorf("invariants violated (seed %d):\n%v", cfg.Seed, cerr)
	}
	if kerr := app.CheckKept(ctx); kerr != nil {
		t.Errorf("kept sessions (seed %d): %v", cfg.Seed, kerr)
	}
	if uerr := app.CheckUsers(ctx, reported); uerr != nil {
		t.Errorf("users handed to RunSpec.Deleted (seed %d): %v", cfg.Seed, uerr)
	}
}
