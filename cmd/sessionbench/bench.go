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
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/platform-team/sessionbot/cleanup"
	"github.com/platform-team/sessionbot/cleanup/redistest"
)

type options struct {
	n, unrelated, clusterN       int
	loopSample                   int
	skipBaselines, skipBot, json bool
	only                         *regexp.Regexp // nil: every scenario
	env                          []string       // extra KEY=VALUE for the sessionbot children
}

// want reports whether the scenario named name is to be measured (-only).
func (o options) want(name string) bool { return o.only == nil || o.only.MatchString(name) }

// row is one line of the table (or of the ceilings below it).
type row struct {
	Scenario   string        `json:"scenario"`
	Keys       int64         `json:"keys"`    // session keys processed (considered)
	Deleted    int64         `json:"deleted"` // session keys deleted
	Wall       time.Duration `json:"wall_ns"`
	KeysPerSec float64       `json:"keys_per_sec"`
	XArgs      float64       `json:"x_xargs,omitempty"` // KeysPerSec over the xargs baseline's
	RSSMB      float64       `json:"peak_rss_mb,omitempty"`
	TenthRSSMB float64       `json:"peak_rss_mb_at_tenth,omitempty"` // the same command over n/10 sessions
	P50        time.Duration `json:"probe_p50_ns"`
	P99        time.Duration `json:"probe_p99_ns"`
	Max        time.Duration `json:"probe_max_ns"`
	Target     string        `json:"target,omitempty"`
	Verdict    string        `json:"verdict,omitempty"` // ok, MISS
	Note       string        `json:"note,omitempty"`

	goal goal
}

// report is the -json output.
type report struct {
	Sessions int       `json:"sessions"`
	Baseline *baseline `json:"xargs_baseline,omitempty"`
	Rows     []row     `json:"rows"`
	Ceilings []row     `json:"ceilings"`
}

// baseline is the runbook's `redis-cli --scan | xargs -L 1000 redis-cli DEL`, measured twice
// in the run (once before the other scenarios, once after); ratios divide by the mean.
type baseline struct {
	KeysPerSec float64         `json:"keys_per_sec"` // sessions / mean wall
	Walls      []time.Duration `json:"walls_ns"`
}

// childResult is what an engine child process reports back.
type childResult struct {
	Keys, Deleted int64
	Wall          time.Duration
}

// db is one seeded database of the bench's redis-server and its counts after seeding.
type db struct {
	url    string
	tgt    *cleanup.Target
	seed   cleanup.SeedResult
	before keyCounts
}

// runner holds one run of the benchmark: the server, the snapshot every scenario starts from,
// the probe, and what was measured and verified so far.
type runner struct {
	ctx  context.Context
	o    options
	logf func(format string, a ...any)

	self      string // this binary: the engine children
	bin       string // the sessionbot binary: CLI and bot scenarios
	dir       string // audit log of the CLI and bot runs
	backupDir string // emptied after every scenario

	srv   *redistest.Server
	admin *redis.Client
	full  *db // n sessions and the unrelated keys
	tenth *db // n/10 sessions: the RSS flatness runs
	p     *probe

	rows, ceilings []row
	xargs          []time.Duration
	failures       []error
	// expiredAtReset is the server's expired_keys when the snapshot was last restored: keys
	// Redis expires by TTL during a long run (valid sessions expire 5–60 min after seeding)
	// vanish without anyone deleting them.
	expiredAtReset int64
}

func bench(ctx context.Context, o options, stdout, stderr io.Writer) error {
	r := &runner{ctx: ctx, o: o, logf: func(format string, a ...any) { fmt.Fprintf(stderr, "# "+format+"\n", a...) }}
	var err error
	if r.self, err = os.Executable(); err != nil {
		return err
	}
	if r.dir, err = os.MkdirTemp("", "sessionbench-"); err != nil {
		return err
	}
	defer os.RemoveAll(r.dir)
	r.backupDir = filepath.Join(r.dir, "backups")
	r.logf("building the sessionbot binary…")
	if r.bin, err = buildSessionbot(ctx, r.dir); err != nil {
		return err
	}
	if r.srv, err = redistest.Start(redistest.Options{}); err != nil {
		return err
	}
	defer r.srv.Stop()
	// SAVE and DEBUG RELOAD of a million keys take seconds: a client without the 3 s read timeout.
	r.admin = redis.NewClient(&redis.Options{Addr: r.srv.Addr(), ReadTimeout: -1})
	defer r.admin.Close()
	if err := r.seed(); err != nil {
		return err
	}
	r.p = newProbe(r.srv.Addr(), unrelatedProbeKey(ctx, r.srv.Client()))
	defer r.p.close()

	idle := r.p.record(func() { sleepCtx(ctx, 2*time.Second) })
	r.rows = append(r.rows, row{Scenario: "idle (probe only)", P50: idle.p50, P99: idle.p99, Max: idle.max})
	// The baseline brackets the other scenarios: once first, once last.
	steps := []func() error{r.xargsRun, r.engine, r.cli, r.bot, r.ceilingRuns, r.perKeyLoop, r.xargsRun, r.cluster}
	for _, step := range steps {
		if err := step(); err != nil {
			return err
		}
	}

	rep := r.report()
	if o.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else {
		printTable(stdout, rep, o)
	}
	for _, row := range rep.Rows {
		if row.Verdict == "MISS" {
			fmt.Fprintf(stderr, "# target missed: %s (target %s: %s)\n", row.Scenario, row.Target, row.Note)
		}
	}
	if len(r.failures) > 0 {
		return fmt.Errorf("verification failed:\n  %w", errors.Join(r.failures...))
	}
	fmt.Fprintln(stderr, "# verified: every unrelated key survived; exactly the expected session keys were deleted")
	return nil
}

// seed fills db 0 with the sessions and unrelated keys and db 1 with a tenth of the sessions,
// and saves the snapshot every scenario starts from.
func (r *runner) seed() error {
	ctx, o := r.ctx, r.o
	r.logf("seeding %d sessions and %d unrelated keys on %s", o.n, o.unrelated, r.srv.Addr())
	now := time.Now()
	t0 := time.Now()
	c := r.srv.Client()
	seed, err := cleanup.Seed(ctx, c, cleanup.SeedSpec{Count: o.n, Now: now, Seed: 1, Expired: 0.3, NoTTL: 0.1, Unrelated: o.unrelated})
	if err != nil {
		return fmt.Errorf("seed: %w", err)
	}
	small := redis.NewClient(&redis.Options{Addr: r.srv.Addr(), DB: 1})
	seed1, err := cleanup.Seed(ctx, small, cleanup.SeedSpec{Count: r.tenthN(), Now: now, Seed: 2, Expired: 0.3, NoTTL: 0.1})
	if err != nil {
		return fmt.Errorf("seed db 1: %w", err)
	}
	r.logf("seeded in %s; snapshotting so every scenario starts from the same data", time.Since(t0).Round(time.Millisecond))
	if err := r.admin.Save(ctx).Err(); err != nil {
		return fmt.Errorf("save: %w", err)
	}
	r.full = &db{url: r.srv.URL(), tgt: cleanup.NewTarget(c, "session:", r.srv.Addr()), seed: seed}
	r.tenth = &db{url: "redis://" + r.srv.Addr() + "/1", tgt: cleanup.NewTarget(small, "session:", r.srv.Addr()+"/1"), seed: seed1}
	for _, d := range []*db{r.full, r.tenth} {
		if d.before, err = counts(ctx, d.tgt); err != nil {
			return err
		}
		if d.before.sessions != d.seed.Count {
			return fmt.Errorf("seeded %d session keys on %s; want %d", d.before.sessions, d.url, d.seed.Count)
		}
	}
	return nil
}

func (r *runner) tenthN() int { return max(r.o.n/10, 1) }

// reset restores the snapshot (both databases) and empties the backup directory.
func (r *runner) reset() error {
	if err := os.RemoveAll(r.backupDir); err != nil {
		return err
	}
	if err := r.admin.Do(r.ctx, "DEBUG", "RELOAD", "NOSAVE").Err(); err != nil {
		return fmt.Errorf("reload snapshot: %w", err)
	}
	var err error
	if r.expiredAtReset, err = r.expiredKeys(); err != nil {
		return err
	}
	for _, d := range []*db{r.full, r.tenth} {
		got, err := counts(r.ctx, d.tgt)
		if err == nil && got != d.before {
			err = fmt.Errorf("reload gave %+v on %s; want %+v", got, d.url, d.before)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// verify records a failure unless exactly wantDeleted session keys went from d since the
// snapshot (and at most as many more as Redis expired by TTL meanwhile) and every other key
// survived.
func (r *runner) verify(name string, d *db, wantDeleted int64) {
	got, err := counts(r.ctx, d.tgt)
	var expired int64
	if err == nil {
		expired, err = r.expiredKeys()
		expired -= r.expiredAtReset
	}
	gone := d.before.sessions - got.sessions
	switch {
	case err != nil:
		r.failures = append(r.failures, fmt.Errorf("%s: %w", name, err))
	case got.others != d.before.others:
		r.failures = append(r.failures, fmt.Errorf("%s: %d unrelated keys left on %s; want all %d", name, got.others, d.url, d.before.others))
	case gone < wantDeleted || gone > wantDeleted+expired:
		r.failures = append(r.failures, fmt.Errorf("%s: %d session keys deleted on %s; want exactly %d (+ the %d Redis expired by TTL meanwhile)", name, gone, d.url, wantDeleted, expired))
	}
}

// Expected deletions of a scenario, from what was seeded.
func none(cleanup.SeedResult) int64      { return 0 }
func expired(s cleanup.SeedResult) int64 { return s.Expired }
func every(s cleanup.SeedResult) int64   { return s.Count }

// engine measures the engine alone, each scenario in a child process of this binary.
func (r *runner) engine() error {
	scenarios := []struct {
		name, mode string
		args       []string
		wantDel    func(cleanup.SeedResult) int64
		goal       goal
	}{
		{"engine: dry-run preview, pacing off", "preview", nil, none, goal{minRate: 200_000}},
		{"engine: cleanup expired, default pacing", "expired", []string{"-paced"}, expired, goal{maxP99: time.Millisecond, minRate: 40_000}},
		{"engine: cleanup expired, pacing off", "expired", nil, expired, goal{minRate: 100_000}},
		{"engine: --all with backup, pacing off", "all", []string{"-backup"}, every, goal{}},
		{"engine: --all without backup, pacing off", "all", nil, every, goal{minRate: 300_000}},
	}
	for _, sc := range scenarios {
		if !r.o.want(sc.name) {
			continue
		}
		if err := r.reset(); err != nil {
			return err
		}
		r.logf("%s…", sc.name)
		args := append([]string{"child", "-url", r.full.url, "-mode", sc.mode, "-backup-dir", r.backupDir}, sc.args...)
		row, err := r.p.child(r.ctx, r.self, args)
		if err != nil {
			return fmt.Errorf("%s: %w", sc.name, err)
		}
		row.Scenario, row.goal = sc.name, sc.goal
		r.rows = append(r.rows, row)
		r.verify(sc.name, r.full, sc.wantDel(r.full.seed))
	}
	// Peak RSS must not grow with the key count: the same preview over a tenth of the keys.
	if !r.o.want("engine: preview at n/10 (RSS flatness)") {
		return nil
	}
	r.logf("RSS check: preview over %d sessions…", r.tenthN())
	row, err := r.p.child(r.ctx, r.self, []string{"child", "-url", r.tenth.url, "-mode", "preview"})
	if err != nil {
		return err
	}
	row.Scenario = fmt.Sprintf("engine: preview at %d keys (RSS flatness)", r.tenthN())
	r.rows = append(r.rows, row)
	return nil
}

// xargsRun measures the runbook's mass deletion, the baseline of every ratio.
func (r *runner) xargsRun() error {
	if r.o.skipBaselines {
		return nil
	}
	if err := r.reset(); err != nil {
		return err
	}
	name := fmt.Sprintf("runbook: --scan | xargs -L 1000 DEL (run %d of 2)", len(r.xargs)+1)
	r.logf("%s…", name)
	cli := r.redisCLI()
	row, err := r.p.shell(r.ctx, fmt.Sprintf("%s --scan --pattern 'session:*' | xargs -L 1000 %s DEL >/dev/null", cli, cli), int64(r.o.n))
	if err != nil {
		return err
	}
	row.Scenario = name
	r.rows = append(r.rows, row)
	r.xargs = append(r.xargs, row.Wall)
	r.verify(name, r.full, r.full.seed.Count)
	return nil
}

// perKeyLoop measures the runbook's per-key shell loop on a sample and extrapolates.
func (r *runner) perKeyLoop() error {
	if r.o.skipBaselines || !r.o.want("runbook: per-key shell loop") {
		return nil
	}
	if err := r.reset(); err != nil {
		return err
	}
	sample := int64(min(r.o.loopSample, r.o.n))
	r.logf("runbook: per-key TTL/DEL shell loop on %d keys…", sample)
	cli := r.redisCLI()
	row, err := r.p.shell(r.ctx, fmt.Sprintf(`%s --scan --pattern 'session:*' | head -%d | while read key; do ttl=$(%s TTL "$key"); %s DEL "$key" >/dev/null; done`, cli, sample, cli, cli), sample)
	if err != nil {
		return err
	}
	perKey := row.Wall / time.Duration(sample)
	row.Scenario = fmt.Sprintf("runbook: per-key shell loop (%d keys, extrapolated)", sample)
	row.Note = fmt.Sprintf("measured %s for %d keys", row.Wall.Round(time.Millisecond), sample)
	row.Wall = perKey * time.Duration(r.o.n)
	row.Keys, row.Deleted = int64(r.o.n), int64(r.o.n)
	row.KeysPerSec = perSec(row.Keys, row.Wall)
	r.rows = append(r.rows, row)
	r.verify("per-key loop", r.full, sample)
	return nil
}

func (r *runner) redisCLI() string {
	host, port, _ := net.SplitHostPort(r.srv.Addr())
	return fmt.Sprintf("redis-cli -h %s -p %s", host, port)
}

func (r *runner) cluster() error {
	if r.o.clusterN <= 0 || !r.o.want("cluster:") {
		return nil
	}
	rows, err := clusterScenario(r.ctx, r.self, r.o, r.p.interval, r.logf)
	r.rows = append(r.rows, rows...)
	return err
}

// report computes the baseline, every row's ratio to it and the verdicts.
func (r *runner) report() report {
	rep := report{Sessions: r.o.n, Rows: r.rows, Ceilings: r.ceilings}
	if len(r.xargs) > 0 {
		var sum time.Duration
		for _, w := range r.xargs {
			sum += w
		}
		rep.Baseline = &baseline{KeysPerSec: perSec(int64(r.o.n), sum/time.Duration(len(r.xargs))), Walls: r.xargs}
	}
	for _, rows := range [][]row{rep.Rows, rep.Ceilings} {
		for i := range rows {
			rows[i].judge(rep.Baseline, int64(r.o.n))
		}
	}
	return rep
}

// rssFlatSlack is how much higher the peak RSS over n sessions may be than over n/10 and still
// count as flat: GC timing moves it by a few MB, anything kept per key grows it several times.
const rssFlatSlack = 1.25

// goal is a row's target: SPEC §10's absolute rates, issue 11's ratios to the xargs baseline,
// the probe's p99, and peak RSS ≤ 64 MB not growing from n/10 to n sessions.
type goal struct {
	minRatio float64       // × xargs
	maxP99   time.Duration // the probe's
	minRate  float64       // keys/s
	flatRSS  bool
}

func (g goal) String() string {
	var parts []string
	if g.minRatio > 0 {
		parts = append(parts, fmt.Sprintf("≥%.1f×", g.minRatio))
	}
	if g.maxP99 > 0 {
		parts = append(parts, "p99 ≤"+g.maxP99.String())
	}
	if g.minRate > 0 {
		parts = append(parts, fmt.Sprintf("≥%.0fk keys/s", g.minRate/1000))
	}
	if g.flatRSS {
		parts = append(parts, "RSS ≤64 MB flat")
	}
	return strings.Join(parts, ", ")
}

// judge sets the row's ratio to the baseline (rows over the n sessions of db 0 only), its
// target, its verdict and, on a MISS, what missed.
func (r *row) judge(base *baseline, n int64) {
	if base != nil && r.Keys == n && r.Wall > 0 {
		r.XArgs = r.KeysPerSec / base.KeysPerSec
	}
	g := r.goal
	r.Target = g.String()
	var missed []string
	if g.minRatio > 0 && base == nil {
		r.Note = "ratio not judged: no baseline"
	} else if g.minRatio > 0 && r.XArgs < g.minRatio {
		missed = append(missed, fmt.Sprintf("%.2f×", r.XArgs))
	}
	if g.maxP99 > 0 && r.P99 > g.maxP99 {
		missed = append(missed, "p99 "+ms(r.P99))
	}
	if g.minRate > 0 && r.KeysPerSec < g.minRate {
		missed = append(missed, fmt.Sprintf("%.0f keys/s", r.KeysPerSec))
	}
	switch {
	case r.RSSMB > 64:
		missed = append(missed, "RSS over 64 MB")
	case g.flatRSS && r.TenthRSSMB > 64:
		missed = append(missed, "RSS over 64 MB at n/10")
	case g.flatRSS && r.RSSMB > r.TenthRSSMB*rssFlatSlack:
		missed = append(missed, fmt.Sprintf("RSS grows with the key count: %.1f MB at n/10", r.TenthRSSMB))
	}
	switch {
	case len(missed) > 0 && r.Note != "":
		r.Verdict, r.Note = "MISS", r.Note+"; "+strings.Join(missed, ", ")
	case len(missed) > 0:
		r.Verdict, r.Note = "MISS", strings.Join(missed, ", ")
	case r.Target != "" && r.Note == "":
		r.Verdict = "ok"
	}
}

type keyCounts struct{ sessions, others int64 }

// counts counts session keys (SCAN) and everything else (DBSIZE minus sessions).
// expiredKeys is the server's count of keys it expired by TTL (INFO stats expired_keys).
func (r *runner) expiredKeys() (int64, error) {
	info, err := r.admin.Info(r.ctx, "stats").Result()
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, "expired_keys:"); ok {
			return strconv.ParseInt(v, 10, 64)
		}
	}
	return 0, errors.New("INFO stats has no expired_keys")
}

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
// peak RSS. The wall time is the engine's own, without the process start.
func (p *probe) child(ctx context.Context, self string, args []string) (row, error) {
	cmd := exec.CommandContext(ctx, self, args...)
	cmd.Stderr = os.Stderr
	var out strings.Builder
	cmd.Stdout = &out
	pr, err := p.process(cmd)
	if err != nil {
		return row{}, fmt.Errorf("child %v: %w", args, err)
	}
	var res childResult
	if err := json.Unmarshal([]byte(out.String()), &res); err != nil {
		return row{}, fmt.Errorf("child %v: %w", args, err)
	}
	return row{Keys: res.Keys, Deleted: res.Deleted, Wall: res.Wall, KeysPerSec: perSec(res.Keys, res.Wall),
		RSSMB: pr.rssMB, P50: pr.lat.p50, P99: pr.lat.p99, Max: pr.lat.max}, nil
}

// shell times a runbook shell pipeline under the probe.
func (p *probe) shell(ctx context.Context, script string, keys int64) (row, error) {
	cmd := exec.CommandContext(ctx, "bash", "-c", "set -o pipefail; "+script+" || [ $? -eq 141 ]")
	cmd.Stderr = os.Stderr
	pr, err := p.process(cmd)
	if err != nil {
		return row{}, fmt.Errorf("%s: %w", script, err)
	}
	return row{Keys: keys, Deleted: keys, Wall: pr.wall, KeysPerSec: perSec(keys, pr.wall), P50: pr.lat.p50, P99: pr.lat.p99, Max: pr.lat.max}, nil
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
