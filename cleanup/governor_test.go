package cleanup

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/platform-team/sessionbot/cleanup/redistest"
	"github.com/redis/go-redis/v9"
)

// fakeClock is a clock a test moves by hand.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time                  { return c.t }
func (c *fakeClock) advance(d time.Duration)         { c.t = c.t.Add(d) }
func (g *governor) shareNow() float64                { g.mu.Lock(); defer g.mu.Unlock(); return g.share }
func (g *governor) withClock(c *fakeClock) *governor { g.now = c.now; return g }

// The governor keeps the full rate while round trips stay near their floor, cuts it at once
// (once per slow moment, not once per slow command) when Redis answers slowly, never below
// minShare, and climbs back additively when Redis recovers.
func TestGovernorAIMD(t *testing.T) {
	clk := &fakeClock{t: testNow}
	g := newGovernor().withClock(clk)
	trips := func(n int, took time.Duration) {
		for range n {
			clk.advance(time.Millisecond)
			g.observe("read", took, 100)
		}
	}
	idle := func(n int) { trips(n, 200*time.Microsecond) }
	slow := func(n int) { trips(n, 3*time.Millisecond) }
	idle(100)
	if s := g.shareNow(); s != 1 {
		t.Fatalf("share after 100 idle round trips = %v; want 1 (the full MAX_KEYS_PER_SECOND)", s)
	}

	// A few slow round trips are noise; a majority of the recent ones is a busy server: one cut,
	// and the trips that caused it are forgotten.
	slow(3)
	if s := g.shareNow(); s != 1 {
		t.Fatalf("share after 3 slow round trips = %v; want 1 (noise)", s)
	}
	slow(recentTrips/2 + 1)
	if s := g.shareNow(); s != cutFactor {
		t.Fatalf("share after most recent round trips were slow = %v; want %v (one multiplicative cut)", s, cutFactor)
	}
	// Another operation's floor is its own: a SCAN is not slow for being slower than a read,
	// and the first round trips of an operation set its floor without judging it.
	for range floorSamples + 5 {
		clk.advance(time.Millisecond)
		g.observe("cad", 900*time.Microsecond, 100)
	}
	// A short last batch is not judged: 3 keys that took 400 µs are its fixed cost.
	clk.advance(cutEvery)
	g.observe("read", 400*time.Microsecond, 3)
	if g.cuts != 1 {
		t.Errorf("cuts = %d after a steady other operation and a short batch; want 1", g.cuts)
	}

	// A server slow for a long time: cut after cut, down to minShare and no further.
	for range 100 {
		clk.advance(cutEvery)
		g.observe("read", 5*time.Millisecond, 100)
	}
	if s := g.shareNow(); s != minShare {
		t.Fatalf("share after a long slow spell = %v; want the floor %v", s, minShare)
	}
	if r := g.rate(50_000); r != 5_000 {
		t.Errorf("rate(50000) = %v; want 5000", r)
	}

	// Recovery: additive, about raiseStep per raiseEvery, back to 1 and no further.
	clk.advance(2 * floorEvery) // the slow spell leaves the floor's windows
	idle(floorSamples)
	start := g.shareNow()
	for range 10 {
		clk.advance(raiseEvery)
		g.observe("read", 200*time.Microsecond, 100)
	}
	if got, want := g.shareNow(), start+10*raiseStep; got < want-1e-9 || got > want+1e-9 {
		t.Errorf("share after 10 good raiseEvery = %v; want %v (additive)", got, want)
	}
	for range 200 {
		clk.advance(raiseEvery)
		g.observe("read", 200*time.Microsecond, 100)
	}
	if s := g.shareNow(); s != 1 {
		t.Errorf("share after a long good spell = %v; want 1", s)
	}
}

// Wired into the engine: a paced run against a server that answers every read 3 ms late after
// the first few is slowed down by its governor; a run with pacing off is not paced at all.
func TestGovernorSlowsAPacedRunOnASlowServer(t *testing.T) {
	s := redistest.Standalone(t) // its own: a SCAN on a shared server answers fewer of our keys a page
	prefix := uniquePrefix(t)
	own := NewTarget(s.Client(), prefix, s.Addr())
	put(t, own, population(3000, 3000, nil)...)
	reads := 0
	h := cmdHook{before: func(cmds []redis.Cmder) {
		for _, c := range cmds {
			if c.Name() == "mget" {
				if reads++; reads > 2*floorSamples {
					time.Sleep(3 * time.Millisecond)
				}
				return
			}
		}
	}}
	e := NewEngine(hookedTarget(t, s, prefix, h), EngineConfig{BatchSize: 50, MaxRate: 1_000_000}).
		WithClock(func() time.Time { return testNow })
	rep, err := e.Run(context.Background(), RunSpec{Filter: Filter{}, MaxValid: -1})
	if err != nil || rep.Deleted != 3000 {
		t.Fatalf("Run = deleted %d, %v; want 3000", rep.Deleted, err)
	}
	if e.gov.cuts == 0 || e.gov.shareNow() >= 1 {
		t.Errorf("governor: %d cuts, share %v after a run on a server answering reads 3 ms late; want it slowed down", e.gov.cuts, e.gov.shareNow())
	}
}

// The limiter paces at the governor's share of its cap.
func TestLimiterFollowsItsGovernor(t *testing.T) {
	g := newGovernor()
	g.share = 0.1
	l := &limiter{rate: 1000, gov: g, clock: wallClock}
	before := time.Now()
	if err := l.wait(context.Background(), 10); err != nil {
		t.Fatal(err)
	}
	// 10 keys at 10% of 1000 keys/s: the next batch may start 100 ms later, not 10 ms.
	if got := l.next.Sub(before); got < 90*time.Millisecond || got > 200*time.Millisecond {
		t.Errorf("next batch in %v; want about 100ms", got)
	}
}

// A paced run compare-and-deletes at most pacedCADChunk keys a round trip (Redis runs a script
// without serving anyone else: ~8 µs a key); a run with pacing off sends a whole batch at once.
func TestPacedCompareAndDeleteIsSmall(t *testing.T) {
	s := redistest.Standalone(t) // its own: a SCAN on a shared server answers fewer of our keys a page
	for _, tc := range []struct {
		name  string
		rate  int
		paced bool
	}{
		{"paced", 1_000_000, true},
		{"pacing off", -1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			prefix := uniquePrefix(t)
			own := NewTarget(s.Client(), prefix, s.Addr())
			put(t, own, population(1000, 1000, nil)...)
			var (
				mu      sync.Mutex
				biggest int
			)
			h := cmdHook{before: func(cmds []redis.Cmder) {
				mu.Lock()
				defer mu.Unlock()
				for _, c := range cmds {
					biggest = max(biggest, len(evalKeys(c)))
				}
			}}
			e := NewEngine(hookedTarget(t, s, prefix, h), EngineConfig{BatchSize: 100}).WithClock(func() time.Time { return testNow })
			rep, err := e.Run(context.Background(), RunSpec{Filter: Filter{}, MaxValid: -1, MaxRate: tc.rate, Pause: -1})
			if err != nil || rep.Deleted != 1000 {
				t.Fatalf("Run = deleted %d, %v; want 1000", rep.Deleted, err)
			}
			// SCAN COUNT 100 may answer a few more than 100 keys: a batch is about 100.
			if tc.paced && biggest != pacedCADChunk || !tc.paced && biggest < 100 {
				t.Errorf("the biggest compare-and-delete carried %d keys; want %d paced, a whole batch (≥100) with pacing off", biggest, pacedCADChunk)
			}
		})
	}
}

// sleepClock is a paceClock whose sleeps return at once and move its time to their end, so a
// test reads exactly how long the limiter held a pass back without waiting for it.
type sleepClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *sleepClock) paceClock() paceClock {
	return paceClock{
		now: func() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t },
		sleep: func(_ context.Context, until time.Time) error {
			c.mu.Lock()
			defer c.mu.Unlock()
			if until.After(c.t) {
				c.t = until
			}
			return nil
		},
	}
}

// MAX_KEYS_PER_SECOND caps deletions: a key a pass only reads costs readShare of one, a key it
// deletes a whole one; previews are paced like runs (SPEC §12.7). The limiter never waits before
// its first batch, so a pass is held back for what it was charged less its last charge (at most
// a batch).
func TestRateCapChargesReadsAQuarterOfADeletion(t *testing.T) {
	targets(t, func(t *testing.T, tgt *Target) {
		put(t, tgt, population(1000, 400, nil)...)
		clk := &sleepClock{t: testNow}
		e := NewEngine(tgt, EngineConfig{BatchSize: 100, MaxRate: 1000}).WithClock(func() time.Time { return testNow })
		e.gov, e.pc = nil, clk.paceClock() // the cap alone, on the test's clock
		heldBack := func(pass func()) time.Duration {
			start := clk.paceClock().now()
			pass()
			return clk.paceClock().now().Sub(start)
		}
		within := func(what string, got, want, slack time.Duration) {
			t.Helper()
			if got > want || got < want-slack {
				t.Errorf("%s was held back %v; want %v less at most one batch (%v)", what, got, want, slack)
			}
		}
		ctx := context.Background()
		preview := heldBack(func() {
			if plan, err := e.Preview(ctx, Filter{}, nil); err != nil || plan.Matched != 400 {
				t.Fatalf("Preview = %d matched, %v; want 400", plan.Matched, err)
			}
		})
		// 1000 keys read at a quarter of the 1000 keys/s cap each: 250 ms.
		within("the preview", preview, 250*time.Millisecond, 30*time.Millisecond)
		run := heldBack(func() {
			if rep, err := e.Run(ctx, RunSpec{Filter: Filter{}, MaxValid: -1}); err != nil || rep.Deleted != 400 {
				t.Fatalf("Run = deleted %d, %v; want 400", rep.Deleted, err)
			}
		})
		// The same 1000 read (250 ms), and the 400 deleted charged the rest of a key (300 ms).
		within("the run", run, 550*time.Millisecond, 80*time.Millisecond)
	})
}
