package cleanup

import (
	"sync"
	"time"
)

// governor adapts an engine's paced work to how Redis answers it, so that operators do not tune
// MAX_KEYS_PER_SECOND by hand for every server (AIMD, as TCP does): while the engine's own
// round trips stay near the lowest seen lately for their operation, the allowed rate climbs
// additively towards MAX_KEYS_PER_SECOND; when one takes much longer — Redis busy with other
// clients, or short of CPU — the rate is cut multiplicatively at once. The ceiling stays the
// operator's: the governor only ever slows a paced run down, never speeds it past the cap, and
// it does nothing to a run with pacing off.
//
// One governor serves every pass of an engine (preview, run, counts) and all its masters: what
// the preview learns about the server's idle latency carries over to the run that follows.
type governor struct {
	mu        sync.Mutex
	share     float64 // of MAX_KEYS_PER_SECOND allowed now, in [minShare, 1]
	ops       map[string]*floorWindow
	lastCut   time.Time
	lastRaise time.Time
	cuts      int64
	now       func() time.Time
}

// The governor's constants. A round trip of n keys is slow when it takes longer than
// slowFactor × what n keys took at the operation's best lately (its floor, per key) +
// slowMargin. Redis is congested when most of an operation's last judged round trips were slow
// (more than half of the last recentTrips): one slow answer — a GC pause, a scheduling hiccup —
// is noise, not a busy server. Round trips of fewer than minKeys keys (the last batch of a pass)
// are not judged: their fixed cost would skew the floor. A cut forgets the trips that caused it
// and is at most one per cutEvery; raises are one raiseStep per raiseEvery of good answers:
// from minShare to the full rate in about two seconds.
const (
	minShare    = 0.1
	startShare  = 1
	cutFactor   = 0.7
	raiseStep   = 0.02
	raiseEvery  = 40 * time.Millisecond
	cutEvery    = 100 * time.Millisecond
	slowFactor  = 3
	slowMargin  = 500 * time.Microsecond
	minKeys     = 16
	recentTrips = 16
	// floorEvery is how long a floor stands: the best of the last one or two windows, so the
	// floor follows a server that became slower for good (another workload moved in), within a
	// minute, instead of cutting the rate for ever.
	floorEvery = 30 * time.Second
	// floorSamples: fewer judged round trips of an operation than this set no floor yet.
	floorSamples = 8
)

// floorWindow is an operation's best time per key in the current and the previous window, and
// which of its recent round trips were slow.
type floorWindow struct {
	cur, prev float64 // seconds per key; 0: none
	since     time.Time
	n         int
	recent    [recentTrips]bool // a ring: slow or not
	next      int
}

func newGovernor() *governor {
	return &governor{share: startShare, ops: map[string]*floorWindow{}, now: time.Now}
}

// observe takes one round trip of op about n keys that took d.
func (g *governor) observe(op string, d time.Duration, n int) {
	if n < minKeys {
		return
	}
	perKey := d.Seconds() / float64(n)
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.now()
	w := g.ops[op]
	if w == nil {
		w = &floorWindow{since: now}
		g.ops[op] = w
	}
	if now.Sub(w.since) >= floorEvery {
		w.prev, w.cur, w.since = w.cur, 0, now
	}
	floor := w.floor()
	if w.cur == 0 || perKey < w.cur {
		w.cur = perKey
	}
	if w.n++; w.n <= floorSamples {
		return
	}
	slow := d > time.Duration(slowFactor*floor*float64(n)*float64(time.Second))+slowMargin
	w.note(slow)
	switch {
	case w.slowCount() > recentTrips/2:
		if now.Sub(g.lastCut) >= cutEvery {
			g.share = max(g.share*cutFactor, minShare)
			g.lastCut, g.lastRaise = now, now
			g.cuts++
			w.forget()
		}
	case !slow && now.Sub(g.lastRaise) >= raiseEvery:
		g.share = min(g.share+raiseStep, 1)
		g.lastRaise = now
	}
}

// note records whether the latest round trip was slow.
func (w *floorWindow) note(slow bool) {
	w.recent[w.next] = slow
	w.next = (w.next + 1) % recentTrips
}

// slowCount is how many of the recent round trips were slow.
func (w *floorWindow) slowCount() int {
	n := 0
	for _, slow := range w.recent {
		if slow {
			n++
		}
	}
	return n
}

// forget clears the recent round trips: the next cut needs a new majority of slow ones.
func (w *floorWindow) forget() { w.recent = [recentTrips]bool{} }

// floor is the best time per key of the current and the previous window (0: none yet).
func (w *floorWindow) floor() float64 {
	switch {
	case w.prev == 0:
		return w.cur
	case w.cur == 0:
		return w.prev
	}
	return min(w.cur, w.prev)
}

// rate is the rate allowed now under a cap of limit keys per second.
func (g *governor) rate(limit float64) float64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	return limit * g.share
}
