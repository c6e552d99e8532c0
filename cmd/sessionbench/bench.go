package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/platform-team/sessionbot/cleanup"
	"github.com/platform-team/sessionbot/cleanup/redistest"
	"github.com/redis/go-redis/v9"
)

type options struct {
	n, unrelated, clusterN int
	loopSample             int
	skipBaselines, json    bool
}

// row is one line of the table.
type row struct {
	Scenario   string        `json:"scenario"`
	Keys       int64         `json:"keys"`    // session keys processed
	Deleted    int64         `json:"deleted"` // session keys deleted
	Wall       time.Duration `json:"wall_ns"`
	KeysPerSec float64       `json:"keys_per_sec"`
	RSSMB      float64       `json:"peak_rss_mb,omitempty"`
	P50        time.Duration `json:"probe_p50_ns"`
	P99        time.Duration `json:"probe_p99_ns"`
	Max        time.Duration `json:"probe_max_ns"`
	Target     string        `json:"target,omitempty"`
	Verdict    string        `json:"verdict,omitempty"` // ok, MISS
	Note       string        `json:"note,omitempty"`
}

// childResult is what a child process reports back.
type childResult struct {
	Keys, Deleted int64
	Wall          time.Duration
}

func bench(ctx context.Context, o options, stdout, stderr io.Writer) error {
	logf := func(format string, a ...any) { fmt.Fprintf(stderr, "# "+format+"\n", a...) }
	self, err := os.Executable()
	if err != nil {
		return err
	}
	srv, err := redistest.Start(redistest.Options{})
	if err != nil {
		return err
	}
	defer srv.Stop()
	c := srv.Client()

	logf("seeding %d sessions and %d unrelated keys on %s", o.n, o.unrelated, srv.Addr())
	now := time.Now()
	t0 := time.Now()
	seed, err := cleanup.Seed(ctx, c, cleanup.SeedSpec{Count: o.n, Now: now, Seed: 1, Expired: 0.3, NoTTL: 0.1, Unrelated: o.unrelated})
	if err != nil {
		return fmt.Errorf("seed: %w", err)
	}
	small := redis.NewClient(&redis.Options{Addr: srv.Addr(), DB: 1})
	defer small.Close()
	if _, err := cleanup.Seed(ctx, small, cleanup.SeedSpec{Count: max(o.n/10, 1), Now: now, Seed: 2, Expired: 0.3, NoTTL: 0.1}); err != nil {
		return fmt.Errorf("seed db 1: %w", err)
	}
	logf("seeded in %s; snapshotting so every scenario starts from the same data", time.Since(t0).Round(time.Millisecond))
	// SAVE and DEBUG RELOAD of a million keys take seconds: a client without the 3 s read timeout.
	admin := redis.NewClient(&redis.Options{Addr: srv.Addr(), ReadTimeout: -1})
	defer admin.Close()
	if err := admin.Save(ctx).Err(); err != nil {
		return fmt.Errorf("save: %w", err)
	}
	tgt := cleanup.NewTarget(c, "session:", srv.Addr())
	before, err := counts(ctx, tgt)
	if err != nil {
		return err
	}
	if before.sessions != int64(o.n) {
		return fmt.Errorf("seeded %d session keys; want %d", before.sessions, o.n)
	}
	reset := func() error {
		if err := admin.Do(ctx, "DEBUG", "RELOAD", "NOSAVE").Err(); err != nil {
			return fmt.Errorf("reload snapshot: %w", err)
		}
		got, err := counts(ctx, tgt)
		if err == nil && got != before {
			err = fmt.Errorf("reload gave %+v; want %+v", got, before)
		}
		return err
	}

	p := newProbe(srv.Addr(), unrelatedProbeKey(ctx, c))
	defer p.close()
	var rows []row
	var failures []error
	check := func(name string, wantDeleted int64) {
		got, err := counts(ctx, tgt)
		switch {
		case err != nil:
			failures = append(failures, fmt.Errorf("%s: %w", name, err))
		case got.others != before.others:
			failures = append(failures, fmt.Errorf("%s: %d unrelated keys left; want all %d", name, got.others, before.others))
		case before.sessions-got.sessions != wantDeleted:
			failures = append(failures, fmt.Errorf("%s: %d session keys deleted; want exactly %d", name, before.sessions-got.sessions, wantDeleted))
		}
	}

	idle := p.record(func() { sleepCtx(ctx, 2*time.Second) })
	rows = append(rows, row{Scenario: "idle (probe only)", P50: idle.p50, P99: idle.p99, Max: idle.max})

	url := srv.URL()
	engineRows := []struct {
		name, mode string
		args       []string
		wantDel    int64
		target     func(r row) (string, bool)
	}{
		{"engine: dry-run preview (expired)", "preview", nil, 0, func(r row) (string, bool) {
			return "≥200k keys/s", r.KeysPerSec >= 200_000
		}},
		{"engine: cleanup expired, default pacing", "expired", []string{"-paced"}, seed.Expired, func(r row) (string, bool) {
			return "p99 ≤1ms, ≥40k keys/s", r.P99 <= time.Millisecond && r.KeysPerSec >= 40_000
		}},
		{"engine: cleanup expired, pacing off", "expired", nil, seed.Expired, func(r row) (string, bool) {
			return "≥100k keys/s", r.KeysPerSec >= 100_000
		}},
		{"engine: --all with backup, pacing off", "all", []string{"-backup"}, int64(o.n), nil},
		{"engine: --all without backup, pacing off", "all", nil, int64(o.n), func(r row) (string, bool) {
			return "≥300k keys/s", r.KeysPerSec >= 300_000
		}},
	}
	backupDir, err := os.MkdirTemp("", "sessionbench-backup-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(backupDir)
	for _, sc := range engineRows {
		if err := reset(); err != nil {
			return err
		}
		logf("%s…", sc.name)
		args := append([]string{"child", "-url", url, "-mode", sc.mode, "-backup-dir", backupDir}, sc.args...)
		r, err := p.child(ctx, self, args)
		if err != nil {
			return fmt.Errorf("%s: %w", sc.name, err)
		}
		r.Scenario = sc.name
		if sc.target != nil {
			t, ok := sc.target(r)
			r.Target, r.Verdict = t, verdict(ok)
		}
		if r.RSSMB > 64 {
			r.Verdict, r.Note = "MISS", "RSS over 64 MB"
		}
		rows = append(rows, r)
		check(sc.name, sc.wantDel)
	}

	// Peak RSS must not grow with the key count: the same preview over a tenth of the keys.
	{
		logf("RSS check: preview over %d sessions…", max(o.n/10, 1))
		r, err := p.child(ctx, self, []string{"child", "-url", "redis://" + srv.Addr() + "/1", "-mode", "preview"})
		if err != nil {
			return err
		}
		r.Scenario = fmt.Sprintf("engine: preview at %d keys (RSS flatness)", max(o.n/10, 1))
		rows = append(rows, r)
	}

	if !o.skipBaselines {
		if err := reset(); err != nil {
			return err
		}
		logf("runbook: redis-cli --scan | xargs -L 1000 redis-cli DEL…")
		host, port, _ := net.SplitHostPort(srv.Addr())
		cli := fmt.Sprintf("redis-cli -h %s -p %s", host, port)
		r, err := p.shell(ctx, fmt.Sprintf("%s --scan --pattern 'session:*' | xargs -L 1000 %s DEL >/dev/null", cli, cli), int64(o.n))
		if err != nil {
			return err
		}
		r.Scenario = "runbook: --scan | xargs -L 1000 DEL"
		rows = append(rows, r)
		check(r.Scenario, int64(o.n))

		if err := reset(); err != nil {
			return err
		}
		sample := int64(min(o.loopSample, o.n))
		logf("runbook: per-key TTL/DEL shell loop on %d keys…", sample)
		r, err = p.shell(ctx, fmt.Sprintf(`%s --scan --pattern 'session:*' | head -%d | while read key; do ttl=$(%s TTL "$key"); %s DEL "$key" >/dev/null; done`, cli, sample, cli, cli), sample)
		if err != nil {
			return err
		}
		perKey := r.Wall / time.Duration(sample)
		r.Scenario = fmt.Sprintf("runbook: per-key shell loop (%d keys, extrapolated)", sample)
		r.Note = fmt.Sprintf("measured %s for %d keys", r.Wall.Round(time.Millisecond), sample)
		r.Wall = perKey * time.Duration(o.n)
		r.Keys, r.Deleted = int64(o.n), int64(o.n)
		rows = append(rows, r)
		check("per-key loop", sample)
	}

	if o.clusterN > 0 {
		r, err := clusterScenario(ctx, self, o, p.interval, logf)
		if err != nil {
			return err
		}
		rows = append(rows, r...)
	}

	if o.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rows); err != nil {
			return err
		}
	} else {
		printTable(stdout, rows, o)
	}
	for _, r := range rows {
		if r.Verdict == "MISS" {
			fmt.Fprintf(stderr, "# target missed: %s (%s)\n", r.Scenario, r.Target+r.Note)
		}
	}
	if len(failures) > 0 {
		return fmt.Errorf("verification failed:\n  %w", errors.Join(failures...))
	}
	fmt.Fprintln(stderr, "# verified: every unrelated key survived; exactly the expected session keys were deleted")
	return nil
}

func verdict(ok bool) string {
	if ok {
		return "ok"
	}
	return "MISS"
}

type keyCounts struct{ sessions, others int64 }

// counts counts session keys (SCAN) and everything else (DBSIZE minus sessions).
func counts(ctx context.Context, tgt *cleanup.Target) (keyCounts, error) {
	n, err := cleanup.NewEngine(tgt, cleanup.EngineConfig{BatchSize: 1000}).CountKeys(ctx)
	if err != nil {
		return keyCounts{}, err
	}
	size, err := tgt.Client().DBSize(ctx).Result()
	return keyCounts{sessions: n, others: size - n}, err
}

// unrelatedProbeKey picks a key outside the prefix for the probe to GET.
func unrelatedProbeKey(ctx context.Context, c *redis.Client) string {
	keys, _, _ := c.Scan(ctx, 0, "cb:*", 100).Result()
	if len(keys) > 0 {
		return keys[0]
	}
	return "cb:probe"
}

func sleepCtx(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// child runs this binary as an engine child process under the probe and collects its result and
// peak RSS.
func (p *probe) child(ctx context.Context, self string, args []string) (row, error) {
	var (
		res  childResult
		rss  float64
		cerr error
	)
	lat := p.record(func() {
		cmd := exec.CommandContext(ctx, self, args...)
		cmd.Stderr = os.Stderr
		out, err := cmd.Output()
		if err != nil {
			cerr = fmt.Errorf("child %v: %w", args, err)
			return
		}
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			rss = float64(ru.Maxrss) / 1024
		}
		cerr = json.Unmarshal(out, &res)
	})
	if cerr != nil {
		return row{}, cerr
	}
	return row{Keys: res.Keys, Deleted: res.Deleted, Wall: res.Wall, KeysPerSec: perSec(res.Keys, res.Wall),
		RSSMB: rss, P50: lat.p50, P99: lat.p99, Max: lat.max}, nil
}

// shell times a runbook shell pipeline under the probe.
func (p *probe) shell(ctx context.Context, script string, keys int64) (row, error) {
	var (
		wall time.Duration
		cerr error
	)
	lat := p.record(func() {
		start := time.Now()
		cmd := exec.CommandContext(ctx, "bash", "-c", "set -o pipefail; "+script+" || [ $? -eq 141 ]")
		cmd.Stderr = os.Stderr
		cerr = cmd.Run()
		wall = time.Since(start)
	})
	if cerr != nil {
		return row{}, fmt.Errorf("%s: %w", script, cerr)
	}
	return row{Keys: keys, Deleted: keys, Wall: wall, KeysPerSec: perSec(keys, wall), P50: lat.p50, P99: lat.p99, Max: lat.max}, nil
}

func perSec(n int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

func clusterScenario(ctx context.Context, self string, o options, interval time.Duration, logf func(string, ...any)) ([]row, error) {
	logf("cluster: starting 3 masters, seeding %d sessions…", o.clusterN)
	cl, err := redistest.StartCluster(redistest.ClusterOptions{})
	if err != nil {
		return nil, err
	}
	defer cl.Stop()
	cc := cl.Client()
	seed, err := cleanup.Seed(ctx, cc, cleanup.SeedSpec{Count: o.clusterN, Now: time.Now(), Seed: 3, Expired: 0.3, NoTTL: 0.1, Unrelated: o.unrelated})
	if err != nil {
		return nil, err
	}
	tgt := cleanup.NewTarget(cc, "session:", "cluster")
	eng := cleanup.NewEngine(tgt, cleanup.EngineConfig{BatchSize: 1000})
	sessionsBefore, err := eng.CountKeys(ctx)
	if err != nil {
		return nil, err
	}
	masters := cl.Masters()
	p := newProbe(masters[0].Addr(), "cb:probe")
	p.interval = interval
	defer p.close()
	logf("cluster: cleanup expired, pacing off…")
	r, err := p.child(ctx, self, []string{"child", "-cluster", strings.Join(cl.Seeds(), ","), "-mode", "expired"})
	if err != nil {
		return nil, err
	}
	r.Scenario = fmt.Sprintf("engine on 3-master Cluster: cleanup expired (%d keys)", o.clusterN)
	left, err := eng.CountKeys(ctx)
	if err != nil {
		return nil, err
	}
	if sessionsBefore-left != seed.Expired {
		return nil, fmt.Errorf("cluster: deleted %d; want exactly %d expired", sessionsBefore-left, seed.Expired)
	}
	return []row{r}, nil
}
