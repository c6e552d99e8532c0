package cleanup

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/redis/go-redis/v9"
)

// Target is a connected Redis deployment holding sessions: standalone, Sentinel or Cluster.
type Target struct {
	client  redis.UniversalClient
	cluster *redis.ClusterClient // nil unless Cluster
	prefix  string
	name    string
	addr    string // where it is: host:port/db, cluster:seed or sentinel:master
	// exclude is a key namespace that is never a session even when it starts with prefix: the
	// bot's own state when it lives in the target (SPEC §12.4).
	exclude string
}

// Engine previews and runs cleanups on one Target.
type Engine struct {
	t   *Target
	cfg EngineConfig
	now func() time.Time
	gov *governor  // paces paced work by Redis's latency; shared by copies
	rtt roundTrips // every round trip: to observe and to gov
	pc  paceClock  // the rate limiter's time
}

// CommandObserver is told the duration of each round trip the engine makes to Redis — a SCAN,
// one pipelined batch of up to BatchSize commands, a compare-and-delete script — with its
// operation: scan, read, ttl, dump, unlink, getdel or cad. It is called from the goroutines
// that work on the masters in parallel, so it must be safe for concurrent use, and cheap. The
// engine knows no metrics library: the bot registers a histogram as the observer.
type CommandObserver func(op string, d time.Duration)

// roundTrips is told every round trip the engine makes: the caller's CommandObserver and the
// governor. n is the keys the round trip was about (a batch's size).
type roundTrips struct {
	user CommandObserver
	gov  *governor
}

func (r roundTrips) observe(op string, start time.Time, n int) {
	d := time.Since(start)
	if r.user != nil {
		r.user(op, d)
	}
	if r.gov != nil {
		r.gov.observe(op, d, n)
	}
}

// ObserveCommands sets the observer of the engine's Redis round trips (nil: none). Call it
// before the engine is used; copies made by WithPacing afterwards share it.
func (e *Engine) ObserveCommands(o CommandObserver) { e.rtt.user = o }

// RunSpec is one cleanup to execute.
type RunSpec struct {
	Filter Filter
	// MaxValid stops the run before it deletes more still-valid sessions than this
	// (the previewed count + 10% + 10); negative means unbounded (--all).
	MaxValid int64
	// Backup, when set, is written completely (and synced) before anything is deleted.
	Backup *BackupSpec
	// Pacing overrides; zero values use the engine's configuration. Pause or MaxRate < 0: off.
	BatchSize int
	Pause     time.Duration
	MaxRate   int
	Progress  func(Progress)
	// Verify counts the session keys left after the run (Report.Remaining).
	Verify bool
	// Deleted, when set, is called with the user_id of every decodable session the run deletes,
	// in batches of up to 1000 (one call at a time; a user may appear in several calls): the
	// end-user notification webhook. With it, --all without a backup reads what it deletes
	// (GETDEL) to learn whose sessions they were.
	Deleted func(userIDs []string)
	// Selection, when set, is what a preview of the same filter matched moments ago: the run
	// deletes from it and reads only keys the preview did not see (not with a backup or --all,
	// which read or delete by key anyway).
	Selection *Selection
	// Planned, when set on a run with a Backup, makes the run's first backup round its
	// preview, for a run that follows its preview at once without asking anyone (`cleanup --all
	// --yes`): every session is read once, not twice. Planned receives the Plan of that round's
	// scan when its backup file is complete and synced, before anything is deleted; an error
	// stops the run there, with nothing deleted (the backup file stays).
	Planned func(Plan) error
}

// BackupSpec names the backup file a run writes before deleting.
type BackupSpec struct {
	Dir        string
	JobID      string
	Recipients []string // age recipients; empty: plain gzip
	// FirstRound is the round the run's first file is (0 or 1: <JobID>.jsonl.gz). A resumed job
	// extends the backup of the run it continues instead of rewriting it: its rounds follow
	// those already written (NextBackupRound), so one restore of JobID puts back both.
	FirstRound int
}

// Stats describes the sessions on a target.
type Stats struct {
	Prefix       string
	Total        int64
	Orphans      int64 // no TTL
	Expired      int64 // expires_at in the past
	Malformed    int64
	ByAuthMethod map[string]int64
	TTL          TTLHistogram
	Bytes        int64 // estimated memory used by session keys
	UsedMemory   int64 // INFO memory used_memory, summed over masters; 0: not reported
	// MaxMemory is INFO memory maxmemory summed over masters; 0 when a master has none set
	// (its memory is not bounded) or does not report it.
	MaxMemory int64
	Nodes     int
	Duration  time.Duration
	// Complete is false when a key budget stopped the scan early: counts cover only what was seen.
	Complete bool
	// KeysOnly says no value was read (KeyStats): Expired, Malformed, ByAuthMethod and Bytes are
	// unknown, and zero.
	KeysOnly bool
}

// Name identifies the target (e.g. "127.0.0.1:6379/0" or "cluster:10.0.0.1:7000").
func (t *Target) Name() string { return t.name }

// Addr says where the target is ("127.0.0.1:6379/0", "cluster:10.0.0.1:7000"); it is its Name
// unless the target was named (TARGETS_FILE, or "default").
func (t *Target) Addr() string { return t.addr }

// Prefix is the session key prefix.
func (t *Target) Prefix() string { return t.prefix }

// Client is the underlying client (routes per-key commands on a Cluster).
func (t *Target) Client() redis.UniversalClient { return t.client }

// NewEngine returns an engine for t.
func NewEngine(t *Target, cfg EngineConfig) *Engine {
	if cfg.RetryFor <= 0 {
		cfg.RetryFor = 5 * time.Second
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 100
	}
	gov := newGovernor()
	return &Engine{t: t, cfg: cfg, now: time.Now, gov: gov, rtt: roundTrips{gov: gov}, pc: wallClock}
}

// WithPacing returns a copy of e whose previews, runs and counts use these overrides of its
// configuration (the CLI's --batch-size, --pause, --max-rate): zero keeps the configured value,
// a negative pause or rate turns it off.
func (e *Engine) WithPacing(batch int, pause time.Duration, rate int) *Engine {
	c := *e
	if batch > 0 {
		c.cfg.BatchSize = batch
	}
	switch {
	case pause < 0:
		c.cfg.Pause = 0
	case pause > 0:
		c.cfg.Pause = pause
	}
	switch {
	case rate < 0:
		c.cfg.MaxRate = 0
	case rate > 0:
		c.cfg.MaxRate = rate
	}
	return &c
}

// WithClock returns a copy of e that reads time from now (tests).
func (e *Engine) WithClock(now func() time.Time) *Engine { c := *e; c.now = now; return &c }

// Target returns the engine's target.
func (e *Engine) Target() *Target { return e.t }

// Config returns the engine's pacing configuration.
func (e *Engine) Config() EngineConfig { return e.cfg }

// ErrBoundReached stops a run that would log out more still-valid sessions than were previewed
// (plus the allowed margin): the operator must look at a fresh preview.
var ErrBoundReached = errors.New("more still-valid sessions match than were previewed; nothing more was deleted — run a fresh preview")

// ValidBound is how many still-valid sessions a run may delete after a preview showed previewed.
func ValidBound(previewed int64) int64 { return previewed + previewed/10 + 10 }

// forEachBatch feeds fn the keys selected by f: the explicit keys of --session-id, or SCAN
// batches from every master.
func (e *Engine) forEachBatch(ctx context.Context, f Filter, p pacing, st *scanState, fn batchFunc) (int, error) {
	if len(f.SessionIDs) == 0 {
		return e.scanAll(ctx, p, st, fn)
	}
	keys := sessionKeys(e.t.prefix, f.SessionIDs)
	return 1, e.explicitKeys(ctx, keys, p, st, fn)
}

// sessionKeys maps session ids to keys, literally (a '*' in an id is a '*' in the key).
func sessionKeys(prefix string, ids []string) []string {
	seen := make(map[string]bool, len(ids))
	var keys []string
	for _, id := range ids {
		k := prefix + id
		if !seen[k] {
			seen[k] = true
			keys = append(keys, k)
		}
	}
	return keys
}

// explicitKeys feeds fn a known list of keys in batches (no SCAN).
func (e *Engine) explicitKeys(ctx context.Context, keys []string, p pacing, st *scanState, fn batchFunc) error {
	node, err := e.anyNode(ctx)
	if err != nil {
		return err
	}
	for start := 0; start < len(keys); start += p.batch {
		batch := e.t.sessionKeysOnly(append([]string(nil), keys[start:min(start+p.batch, len(keys))]...))
		st.scanned.Add(int64(len(batch)))
		if err := p.step(ctx, len(batch), func() error { return fn(ctx, node, batch) }); err != nil {
			return err
		}
	}
	return nil
}

// anyNode returns the node for explicit-key work: the client itself on a single node; on a
// Cluster the per-key commands go through the cluster client and the node is unused.
func (e *Engine) anyNode(ctx context.Context) (*redis.Client, error) {
	if e.t.cluster != nil {
		return nil, nil
	}
	ms, err := e.t.masters(ctx)
	if err != nil {
		return nil, err
	}
	return ms[0], nil
}

// classify reads what a batch needs and decides every key. readTTL: read PTTL of every key
// (otherwise only where the filter needs it), in the same round trip as the values.
func (e *Engine) classify(ctx context.Context, o ops, f Filter, keys []string, readValues, readTTL bool, now time.Time) ([]item, error) {
	items := make([]item, len(keys))
	for i, k := range keys {
		items[i].key = k
	}
	withTTL := readTTL || f.Orphans
	if readValues {
		if err := o.readValues(ctx, items, withTTL); err != nil {
			return nil, errorf("read", err)
		}
	} else if withTTL {
		idx := make([]int, len(items))
		for i := range idx {
			idx[i] = i
		}
		if err := o.readTTLs(ctx, items, idx); err != nil {
			return nil, errorf("ttl", err)
		}
	}
	for i := range items {
		it := &items[i]
		if it.ttlRead && it.pttl == -2 {
			it.state = stateMissing
		}
		if it.state == stateMissing {
			continue
		}
		if it.state == stateString {
			it.sess, it.ok = DecodeSession(unsafe.Slice(unsafe.StringData(it.val), len(it.val)))
		}
		pttl := it.pttl
		if !it.ttlRead {
			pttl = -2
		}
		it.verdict = f.Decide(it.sess, it.ok, pttl, now)
	}
	return items, nil
}

// Preview computes the plan of a cleanup without changing anything.
func (e *Engine) Preview(ctx context.Context, f Filter, progress func(Progress)) (Plan, error) {
	return e.preview(ctx, f.Normalize(), progress, nil)
}

// preview computes the plan; also, when set, hands every classified batch to each, with the
// master it came from.
func (e *Engine) preview(ctx context.Context, f Filter, progress func(Progress), each func(node string, items []item) error) (Plan, error) {
	start := time.Now()
	pb := e.newPlanBuilder(f, e.now())
	st := &scanState{}
	stop := pb.c.report(progress, "scan", start, &st.scanned)
	fn := func(ctx context.Context, node *redis.Client, keys []string) error {
		items, err := e.classify(ctx, e.opsFor(node), f, keys, true, true, pb.plan.At)
		if err != nil {
			return err
		}
		if each != nil {
			if err := each(e.nodeName(node), items); err != nil {
				return err
			}
		}
		pb.add(items)
		return nil
	}
	nodes, err := e.forEachBatch(ctx, f, e.readPacing(), st, fn)
	stop()
	plan := pb.done(nodes, st, start)
	if err != nil {
		return plan, fmt.Errorf("preview: %w", err)
	}
	return plan, nil
}

// planBuilder adds classified batches up into a Plan: the preview's, or that of a run whose
// first backup round is its preview (RunSpec.Planned).
type planBuilder struct {
	mu   sync.Mutex
	plan Plan
	c    counters // matched so far, for progress
}

// newPlanBuilder starts the plan of f for batches classified at now.
func (e *Engine) newPlanBuilder(f Filter, now time.Time) *planBuilder {
	return &planBuilder{plan: Plan{Filter: f, Prefix: e.t.prefix, At: now, ByAuthMethod: map[string]int64{}}}
}

// add counts one classified batch (safe for concurrent use).
func (pb *planBuilder) add(items []item) {
	pb.mu.Lock()
	defer pb.mu.Unlock()
	plan, f, now := &pb.plan, pb.plan.Filter, pb.plan.At
	for i := range items {
		it := &items[i]
		if it.state == stateMissing {
			continue
		}
		plan.Found++
		if it.malformedFor(f) {
			plan.Malformed++
		}
		if it.verdict == Repair {
			plan.Repaired++
			continue
		}
		if it.verdict != Delete {
			continue
		}
		plan.Matched++
		pb.c.matched.Add(1)
		if it.valid(now) {
			plan.Valid++
		}
		plan.ByAuthMethod[authMethodLabel(it)]++
		plan.TTL.Add(it.pttl)
		plan.Bytes += int64(len(it.key)+len(it.val)) + keyOverhead
		if len(plan.Samples) < 5 {
			plan.Samples = append(plan.Samples, sampleOf(it, plan.Prefix))
		}
	}
}

// done completes the plan of a scan over nodes masters that began at start.
func (pb *planBuilder) done(nodes int, st *scanState, start time.Time) Plan {
	pb.mu.Lock()
	defer pb.mu.Unlock()
	plan := pb.plan
	plan.Kept = plan.Found - plan.Matched
	plan.Nodes = nodes
	plan.Restarted = st.restarted
	plan.Duration = time.Since(start)
	return plan
}

// keyOverhead approximates Redis's per-key memory beyond key and value bytes (dict entry, object
// headers, expiry entry), for "estimated memory freed".
const keyOverhead = 72

func authMethodLabel(it *item) string {
	switch {
	case it.state == stateOther:
		return "(not a string)"
	case !it.ok:
		return "(malformed)"
	case !it.sess.Has.Contains(FieldAuthMethod):
		return "(none)"
	}
	return it.sess.AuthMethod
}

func sampleOf(it *item, prefix string) Sample {
	return Sample{
		ID:           ShortID(strings.TrimPrefix(it.key, prefix)),
		UserID:       it.sess.UserID,
		AuthMethod:   it.sess.AuthMethod,
		CreatedAt:    it.sess.CreatedAt,
		LastActivity: it.sess.LastActivity,
		ExpiresAt:    it.sess.ExpiresAt,
		TTL:          it.pttl,
		Malformed:    !it.ok,
	}
}

// counters are the live numbers of one operation, read by the progress reporter.
type counters struct {
	matched, deleted, deletedValid, skipped, malformed, errors, repaired atomic.Int64
	phase                                                                atomic.Value // string
}

// report calls progress every 250 ms until the returned stop is called (and once more then).
func (c *counters) report(progress func(Progress), phase string, start time.Time, scanned *atomic.Int64) (stop func()) {
	if progress == nil {
		return func() {}
	}
	c.phase.Store(phase)
	snap := func() Progress {
		return Progress{
			Phase: c.phase.Load().(string), Scanned: scanned.Load(), Matched: c.matched.Load(),
			Deleted: c.deleted.Load(), DeletedValid: c.deletedValid.Load(), Skipped: c.skipped.Load(), Errors: c.errors.Load(),
			Elapsed: time.Since(start),
		}
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				progress(snap())
			}
		}
	}()
	return func() {
		close(done)
		<-finished
		progress(snap())
	}
}

// Stats describes the sessions on the target, scanning at most maxKeys keys (0: all).
func (e *Engine) Stats(ctx context.Context, maxKeys int64) (Stats, error) {
	start := time.Now()
	now := e.now()
	s := Stats{Prefix: e.t.prefix, ByAuthMethod: map[string]int64{}}
	var mu sync.Mutex
	st := &scanState{budget: maxKeys}
	expired := Filter{Expired: true}
	fn := func(ctx context.Context, node *redis.Client, keys []string) error {
		items, err := e.classify(ctx, e.opsFor(node), expired, keys, true, true, now)
		if err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		for i := range items {
			it := &items[i]
			if it.state == stateMissing {
				continue
			}
			s.Total++
			s.TTL.Add(it.pttl)
			if it.pttl == -1 {
				s.Orphans++
			}
			switch it.verdict {
			case Malformed:
				s.Malformed++
			case Delete:
				s.Expired++
			}
			s.ByAuthMethod[authMethodLabel(it)]++
			s.Bytes += int64(len(it.key)+len(it.val)) + keyOverhead
		}
		return nil
	}
	return e.statsScan(ctx, &s, st, fn, start)
}

// KeyStats counts the session keys and their TTLs (orphans: none), scanning at most maxKeys
// keys (0: all), without reading a single value: what a periodic sample may cost production
// Redis, SCAN and PTTL. Expired, Malformed, ByAuthMethod and Bytes need the values: they stay
// zero, and KeysOnly says so.
func (e *Engine) KeyStats(ctx context.Context, maxKeys int64) (Stats, error) {
	start := time.Now()
	s, err := e.keyTTLs(ctx, maxKeys)
	if err == nil {
		s.UsedMemory, s.MaxMemory = e.memory(ctx)
	}
	s.Duration = time.Since(start)
	return s, err
}

// keyTTLs counts the session keys and their TTLs, at most maxKeys of them (0: all), one SCAN
// COUNT ≤100 and one PTTL pipeline in flight per master: KeyStats without the memory figures.
func (e *Engine) keyTTLs(ctx context.Context, maxKeys int64) (Stats, error) {
	s := Stats{Prefix: e.t.prefix, KeysOnly: true}
	var mu sync.Mutex
	st := &scanState{budget: maxKeys}
	fn := func(ctx context.Context, node *redis.Client, keys []string) error {
		items, idx := make([]item, len(keys)), make([]int, len(keys))
		for i, k := range keys {
			items[i].key, idx[i] = k, i
		}
		if err := e.opsFor(node).readTTLs(ctx, items, idx); err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		for _, it := range items {
			if it.pttl == -2 { // gone since the SCAN
				continue
			}
			s.Total++
			s.TTL.Add(it.pttl)
			if it.pttl == -1 {
				s.Orphans++
			}
		}
		return nil
	}
	nodes, err := e.scanAll(ctx, e.countPacing(), st, fn)
	s.Nodes = nodes
	s.Complete = err == nil && !st.truncated.Load()
	return s, err
}

// statsScan runs a stats scan: small batches, one command in flight per master, so that
// sampling on a schedule never disturbs other clients; then the memory figures.
func (e *Engine) statsScan(ctx context.Context, s *Stats, st *scanState, fn func(context.Context, *redis.Client, []string) error, start time.Time) (Stats, error) {
	p := pacing{batch: e.cfg.BatchSize, sequential: true}
	nodes, err := e.scanAll(ctx, p, st, fn)
	s.Nodes = nodes
	s.Complete = err == nil && !st.truncated.Load()
	if err == nil {
		s.UsedMemory, s.MaxMemory = e.memory(ctx)
	}
	s.Duration = time.Since(start)
	return *s, err
}

// memory sums INFO memory used_memory and maxmemory over the masters (0 where a server does not
// say). max is 0 when any master has no maxmemory: the total is then not bounded.
func (e *Engine) memory(ctx context.Context) (used, max int64) {
	ms, err := e.t.masters(ctx)
	if err != nil {
		return 0, 0
	}
	bounded := true
	for _, m := range ms {
		info, err := m.Info(ctx, "memory").Result()
		if err != nil {
			bounded = false
			continue
		}
		used += infoInt(info, "used_memory")
		nodeMax := infoInt(info, "maxmemory")
		bounded = bounded && nodeMax > 0
		max += nodeMax
	}
	if !bounded {
		max = 0
	}
	return used, max
}
