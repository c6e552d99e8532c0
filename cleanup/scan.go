package cleanup

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// pacing is how hard one operation may push Redis.
type pacing struct {
	batch      int
	workers    int  // batches in flight per master when not paced (0: 3)
	sequential bool // one command in flight per master, even without a pause or rate
	pause      time.Duration
	limiter    *limiter // nil: no rate limit
}

// paced reports whether any pacing is on. Paced runs work one batch at a time per master, so
// Redis never sees two of our commands back to back; unpaced runs overlap SCAN, reads and
// deletes across batches for throughput.
func (p pacing) paced() bool { return p.sequential || p.pause > 0 || p.limiter != nil }

func (e *Engine) pacing(batch int, pause time.Duration, rate int) pacing {
	if batch <= 0 {
		batch = e.cfg.BatchSize
	}
	if batch <= 0 {
		batch = 100
	}
	if pause == 0 {
		pause = e.cfg.Pause
	}
	if rate == 0 {
		rate = e.cfg.MaxRate
	}
	p := pacing{batch: batch}
	if pause > 0 {
		p.pause = pause
	}
	if rate > 0 {
		p.limiter = &limiter{rate: float64(rate), gov: e.gov, clock: e.pc}
	}
	return p
}

// readPacing is for work that only reads (previews, post-run counts): paced like a run when the
// engine is paced (SPEC §12.7: previews cannot overload production), one command in flight per
// master; unpaced, small commands (at most 100 keys) with two in flight per master. Measured on
// 300k sessions against 3 × 1000-key batches: faster (144k vs 136k keys/s) and a concurrent
// client's p99 1.7 ms instead of 8.3 ms — small batches pipeline better and never hold Redis long.
func (e *Engine) readPacing() pacing {
	p := e.pacing(0, 0, 0)
	if p.paced() {
		p.sequential = true
		return p
	}
	return pacing{batch: min(max(p.batch, 1), 100), workers: 2}
}

// countPacing is for keys-only scans (the post-run count, the rescan after a run from a
// Selection): one SCAN COUNT 100 in flight per master and no rate limit. A keys-only SCAN costs
// Redis about a microsecond a key, and one small command at a time never queues in front of
// other clients; rate-limiting it like a value-reading pass only made runs slower (the 1M-session
// load test: a 14 s count after a 22 s cleanup).
func (e *Engine) countPacing() pacing {
	return pacing{batch: min(max(e.cfg.BatchSize, 1), 100), sequential: true}
}

// readShare is what a key costs against the rate cap when a pass only reads it, as a share of
// one it deletes or rewrites: MAX_KEYS_PER_SECOND caps deletions, and a pass that only reads
// (a preview, a backup's first round) may go readShare⁻¹ times as fast. Measured on this
// project's 2-CPU machine: reading a session (SCAN + MGET + PTTL) costs Redis about 2 µs, the
// compare-and-delete script about 8 µs. A pass is charged readShare for every key it handles
// (pacing.step) and the rest of a whole key for every key it deletes (ops.paceWrite), so a pass
// that deletes everything it handles runs at exactly the cap.
const readShare = 0.25

// step runs work, one batch of n keys of a paced pass: it waits for the rate cap (charging
// each key as read, see readShare) first and sleeps BATCH_PAUSE after it.
func (p pacing) step(ctx context.Context, n int, work func() error) error {
	if p.limiter != nil {
		if err := p.limiter.wait(ctx, float64(n)*readShare); err != nil {
			return err
		}
	}
	if err := work(); err != nil {
		return err
	}
	if p.pause > 0 {
		return sleepUntil(ctx, time.Now().Add(p.pause))
	}
	return nil
}

// limiter spaces work out to at most rate keys per second across every master, less when the
// engine's governor has slowed it down because Redis answers slowly. A key counts whole when it
// is deleted, readShare of one when it is only read.
type limiter struct {
	mu    sync.Mutex
	rate  float64 // the cap: MAX_KEYS_PER_SECOND or its override
	gov   *governor
	clock paceClock
	next  time.Time
}

// limiterCredit is how far behind its schedule a limiter lets work fall before it forgets the
// time lost: a round trip that took longer than its share is made up by the next ones going
// without a wait, so that a paced pass averages its cap instead of falling short of it (50k
// keys/s allowed, 44k done, before). 5 ms is 250 keys at the default cap: a few batches, still
// one command at a time.
const limiterCredit = 5 * time.Millisecond

// paceClock is the time a limiter spaces work out in: the wall clock, or a test's.
type paceClock struct {
	now   func() time.Time
	sleep func(ctx context.Context, until time.Time) error
}

var wallClock = paceClock{now: time.Now, sleep: sleepUntil}

// wait blocks until n more keys (fractions: keys only read) may be processed.
func (l *limiter) wait(ctx context.Context, n float64) error {
	rate := l.rate
	if l.gov != nil {
		rate = l.gov.rate(rate)
	}
	l.mu.Lock()
	if floor := l.clock.now().Add(-limiterCredit); l.next.Before(floor) {
		l.next = floor
	}
	at := l.next
	l.next = l.next.Add(time.Duration(n / rate * float64(time.Second)))
	l.mu.Unlock()
	return l.clock.sleep(ctx, at)
}

func sleepUntil(ctx context.Context, at time.Time) error {
	d := time.Until(at)
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// batchFunc processes one batch of keys read from a master. Keys always start with the prefix.
type batchFunc func(ctx context.Context, node *redis.Client, keys []string) error

// scanState is shared by the per-master scanners of one operation.
type scanState struct {
	scanned   atomic.Int64
	mu        sync.Mutex
	restarted []string
	budget    int64 // stop after this many keys (0: no limit)
	truncated atomic.Bool
}

func (s *scanState) noteRestart(addr string) {
	s.mu.Lock()
	s.restarted = append(s.restarted, addr)
	s.mu.Unlock()
}

// nodeName names a master in reports: its address, or for a Sentinel target (whose client's
// address is go-redis's placeholder "FailoverClient") the target's name, sentinel:<master>.
func (e *Engine) nodeName(node *redis.Client) string {
	if addr := node.Options().Addr; addr != "FailoverClient" {
		return addr
	}
	return e.t.Name()
}

// errBudget stops a scan that reached its key budget; it is not a failure.
var errBudget = errors.New("key budget reached")

// scanAll runs SCAN MATCH prefix* on every master (each with its own cursor, in parallel across
// masters), handing each batch of keys to fn. A Cluster whose topology changes mid-scan (a
// failed-over master) is re-read and every master not yet completed is scanned from cursor 0.
func (e *Engine) scanAll(ctx context.Context, p pacing, st *scanState, fn batchFunc) (nodes int, err error) {
	done := map[string]bool{}
	for round := 0; ; round++ {
		var masters []*redis.Client
		err := e.retry(ctx, func() (err error) { masters, err = e.t.masters(ctx); return err })
		if err != nil {
			return len(done), errorf("listing masters", err)
		}
		var todo []*redis.Client
		for _, m := range masters {
			if !done[m.Options().Addr] {
				todo = append(todo, m)
			}
		}
		if len(todo) == 0 {
			return len(done), nil
		}
		errs := make([]error, len(todo))
		var wg sync.WaitGroup
		for i, m := range todo {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[i] = e.scanNode(ctx, m, p, st, fn)
			}()
		}
		wg.Wait()
		var failed []error
		for i, m := range todo {
			switch {
			case errs[i] == nil:
				done[m.Options().Addr] = true
			case errors.Is(errs[i], errBudget):
				st.truncated.Store(true)
				return len(done) + 1, nil
			default:
				failed = append(failed, fmt.Errorf("%s: %w", m.Options().Addr, errs[i]))
			}
		}
		if len(failed) == 0 {
			if e.t.cluster == nil {
				return len(done), nil
			}
			continue // confirm the topology did not change under us
		}
		if e.t.cluster == nil || round >= 3 || ctx.Err() != nil {
			return len(done), errors.Join(failed...)
		}
		// A master failed for longer than RetryFor: perhaps it failed over. Re-read the slot
		// map (ForEachMaster reloads it) and scan the masters not yet completed.
	}
}

// scanNode scans one master. Its run_id is read with every SCAN; when it changes (the node
// restarted or another process now answers on that address) the cursor means nothing any more
// and the scan restarts from 0. The last batches are processed after the last SCAN, so the
// run_id is confirmed once more at the end: a restart there (a crash that lost deletions, or a
// restore from a snapshot that brought deleted sessions back) also means a rescan from 0.
func (e *Engine) scanNode(ctx context.Context, node *redis.Client, p pacing, st *scanState, fn batchFunc) error {
	for {
		run, err := e.scanPass(ctx, node, p, st, fn)
		if err != nil {
			return err
		}
		var id string
		err = e.retry(ctx, func() error {
			info, err := node.Info(ctx, "server").Result()
			var rerr redis.Error
			if errors.As(err, &rerr) && !transient(err) {
				err = nil // INFO refused: run_id unknown ("") here as with every SCAN
			}
			id = runID(info)
			return err
		})
		if err != nil {
			return errorf("scan", err)
		}
		if id == run {
			return nil
		}
		st.noteRestart(e.nodeName(node))
	}
}

// runIDEvery is how many SCANs may go by without reading the node's run_id: a restart that
// no error reveals costs at most this many batches read through a stale cursor (their keys are
// real keys of the restarted node, so nothing is decided wrongly; a preview may count them twice).
const runIDEvery = 8

// scanPass scans one master once, from cursor 0 to cursor 0, and returns the run_id seen with
// the last SCAN.
func (e *Engine) scanPass(ctx context.Context, node *redis.Client, p pacing, st *scanState, fn batchFunc) (string, error) {
	match := matchPattern(e.t.prefix)
	addr := e.nodeName(node)

	type batch struct{ keys []string }
	var (
		work    = make(chan batch, 2)
		workers = 1
		wg      sync.WaitGroup
		errOnce sync.Once
		werr    error
	)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	fail := func(err error) {
		errOnce.Do(func() { werr = err; cancel() })
	}
	process := func(keys []string) {
		if err := fn(ctx, node, keys); err != nil {
			fail(err)
		}
	}
	if !p.paced() {
		workers = cmp.Or(p.workers, 3)
		for range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for b := range work {
					if ctx.Err() == nil {
						process(b.keys)
					}
				}
			}()
		}
	}

	var (
		cursor uint64
		run    string
		first  = true
		// checkRun asks for the run_id with the next SCAN: at the start of the pass, after any
		// failed attempt (a restart often shows as a connection error first) and every
		// runIDEvery SCANs. An INFO with every SCAN would cost ~10% of a preview; the run_id
		// check after the pass (scanNode) catches a restart after the last one.
		checkRun = true
		scans    int
	)
	scanErr := func() error {
		for {
			var (
				keys    []string
				next    uint64
				id      string
				checked bool
			)
			err := e.retry(ctx, func() error {
				pipe := node.Pipeline()
				scan := pipe.Scan(ctx, cursor, match, int64(p.batch))
				var info *redis.StringCmd
				if checkRun {
					info = pipe.Info(ctx, "server")
				}
				start := time.Now()
				_, _ = pipe.Exec(ctx)
				e.rtt.observe("scan", start, p.batch)
				if err := scan.Err(); err != nil {
					checkRun = true
					return err
				}
				keys, next = scan.Val()
				if info != nil {
					id, checked = runID(info.Val()), true // "" when INFO is unsupported: restarts go unnoticed there
				}
				return nil
			})
			if err != nil {
				return errorf("scan", err)
			}
			scans++
			checkRun = scans%runIDEvery == 0
			switch {
			case !checked:
			case first:
				run, first = id, false
			case id != run:
				st.noteRestart(addr)
				run, cursor = id, 0
				continue
			}
			keys = e.t.sessionKeysOnly(keys)
			if len(keys) > 0 {
				n := st.scanned.Add(int64(len(keys)))
				if over := n - st.budget; st.budget > 0 && over > 0 {
					// The budget is exact: the batch that crosses it is cut, and the scan ends.
					cut := min(over, int64(len(keys)))
					st.scanned.Add(-cut)
					st.truncated.Store(true)
					if keys = keys[:int64(len(keys))-cut]; len(keys) == 0 {
						return errBudget
					}
				}
				if p.paced() {
					err := p.step(ctx, len(keys), func() error {
						process(keys)
						return werr
					})
					if err != nil {
						return err
					}
				} else {
					select {
					case work <- batch{keys}:
					case <-ctx.Done():
						return ctx.Err()
					}
				}
			}
			cursor = next
			if cursor == 0 {
				return nil
			}
		}
	}()
	close(work)
	wg.Wait()
	if werr != nil {
		return run, werr
	}
	return run, scanErr
}

// sessionKeysOnly drops any key that does not start with the prefix (SCAN MATCH already
// guarantees it; this is the last line of defence for "never a key outside the prefix") and any
// key in the excluded namespace (the bot's own state), in place.
func (t *Target) sessionKeysOnly(keys []string) []string {
	out := keys[:0]
	for _, k := range keys {
		if t.IsSessionKey(k) {
			out = append(out, k)
		}
	}
	return out
}
