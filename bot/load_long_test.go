//go:build long

package bot

// Load: 1,000,000 sessions cleaned through the bot (slash command → preview → Run) with the
// default engine pacing, while another client GETs a key every millisecond. Run it with
// `make test-long` (or go test -tags long -run TestLoad -v ./bot/).

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/platform-team/sessionbot/bot/slacktest"
	"github.com/platform-team/sessionbot/cleanup"
)

// latencyProbe GETs one key every millisecond on its own connection and records each round trip.
type latencyProbe struct {
	mu      sync.Mutex
	samples []time.Duration
	errors  int
	stop    func()
}

func startProbe(t *testing.T, addr, key string) *latencyProbe {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: addr, PoolSize: 1})
	ctx, cancel := context.WithCancel(context.Background())
	p := &latencyProbe{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			start := time.Now()
			err := c.Get(ctx, key).Err()
			d := time.Since(start)
			p.mu.Lock()
			if err != nil && ctx.Err() == nil {
				p.errors++
			} else {
				p.samples = append(p.samples, d)
			}
			p.mu.Unlock()
		}
	}()
	p.stop = func() { cancel(); <-done; _ = c.Close() }
	t.Cleanup(p.stop)
	return p
}

// phase returns p50, p99 and max of the samples since the last call, and starts a new phase.
func (p *latencyProbe) phase() (n int, p50, p99, maxD time.Duration) {
	p.mu.Lock()
	s := p.samples
	p.samples = nil
	p.mu.Unlock()
	if len(s) == 0 {
		return 0, 0, 0, 0
	}
	slices.Sort(s)
	return len(s), s[len(s)/2], s[len(s)*99/100], s[len(s)-1]
}

// heapSampler samples HeapInuse every 250 ms.
type heapSampler struct {
	mu   sync.Mutex
	max  uint64
	last uint64
	stop func()
}

func startHeapSampler(t *testing.T) *heapSampler {
	h := &heapSampler{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			h.mu.Lock()
			h.last, h.max = ms.HeapInuse, max(h.max, ms.HeapInuse)
			h.mu.Unlock()
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	h.stop = func() { cancel(); <-done }
	t.Cleanup(h.stop)
	return h
}

func (h *heapSampler) peak() uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.max
}

func mib(b uint64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

// What the load test asserts, and the README's Reliability row states. The figures the README
// quoted before (an idle 2-CPU machine): about 40,000 keys/s, probe p99 2.1 ms. Heap growth
// measured 4.5 MiB. The rate and p99 bounds do not hold on a machine whose CPUs are shared with
// other heavy work: at a load average of 17 on 2 CPUs a run gave 24,700 keys/s and p99 11 ms,
// the probe then timing the scheduler more than Redis.
const (
	loadMinKeysPerSec = 30_000               // keys scanned per second by the cleanup
	loadMaxProbeP99   = 5 * time.Millisecond // the 1 ms GET probe's p99 during the cleanup
	loadMaxHeapGrowth = 16 << 20             // test-process HeapInuse peak over its start
	loadMinUpdates    = 3                    // progress updates per phase (preview, run)
)

func TestLoadMillionSessionsThroughTheBot(t *testing.T) {
	const sessions = 1_000_000
	const wait = 10 * time.Minute
	start := time.Now()
	f := newFleet(t, fleetOptions{sessions: sessions, maxRate: 50_000, progress: DefaultProgressInterval})
	r := f.replicas[0]
	t.Logf("seeded %s sessions (%s expired, %s valid, %s malformed) in %v", num(f.seeded.Count), num(f.seeded.Expired),
		num(f.seeded.Valid), num(f.seeded.Malformed), time.Since(start).Round(time.Millisecond))
	probeKey := f.seeded.UnrelatedKeys[0]

	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)
	heap := startHeapSampler(t)
	probe := startProbe(t, f.redis.Addr(), probeKey)

	began := time.Now()
	f.command(flAlice, "cleanup")
	var preview slacktest.Message
	slacktest.WaitFor(t, func() bool {
		for _, m := range f.slack.Messages(f.ops) {
			if strings.Contains(string(m.Blocks), `"action_id":"run"`) {
				preview = m
				return true
			}
		}
		return false
	}, wait)
	previewed := time.Since(began)
	n, p50, p99, mx := probe.phase()
	t.Logf("preview of %s keys (paced like a run: MAX_KEYS_PER_SECOND, one ≤100-key command in flight): %v (%.0f keys/s); GET probe every 1 ms meanwhile: %d GETs, p50 %v, p99 %v, max %v",
		num(f.seeded.Count), previewed.Round(time.Millisecond), float64(f.seeded.Count)/previewed.Seconds(), n, p50, p99, mx)
	wantContains(t, "preview", string(preview.Blocks), "Found "+num(f.seeded.Count)+" total session keys",
		num(f.seeded.Expired)+" sessions expired (will be deleted)")

	ran := time.Now()
	f.slack.WaitAck(t, f.click(flAlice, "", preview.TS, "run"), 3*time.Second)
	slacktest.WaitFor(t, func() bool {
		m, _ := f.slack.Message(f.ops, preview.TS)
		return strings.Contains(string(m.Blocks), "Cleanup completed")
	}, wait)
	cleaned := time.Since(ran)
	probe.stop()
	heap.stop()
	r.stop()

	n, p50, p99, mx = probe.phase()
	t.Logf("race-safe cleanup of %s expired sessions (scanning %s, default pacing): %v (%.0f keys scanned/s)", num(f.seeded.Expired), num(f.seeded.Count),
		cleaned.Round(time.Millisecond), float64(f.seeded.Count)/cleaned.Seconds())
	t.Logf("GET probe every 1 ms during the cleanup: %d GETs, %d errors, p50 %v, p99 %v, max %v", n, probe.errors, p50, p99, mx)
	t.Logf("test process HeapInuse: %s before, peak %s while the bot worked (+%s; %d sessions)", mib(base.HeapInuse), mib(heap.peak()),
		mib(heap.peak()-min(heap.peak(), base.HeapInuse)), sessions)

	if left := f.sessionCount(); left != int(f.seeded.Count-f.seeded.Expired) {
		t.Errorf("%d sessions left; want the %d not expired", left, f.seeded.Count-f.seeded.Expired)
	}
	if got := f.audited(cleanup.EventCleanupCompleted); len(got) != 1 || !strings.Contains(got[0], "Deleted: "+num(f.seeded.Expired)+" |") {
		t.Errorf("Cleanup Completed = %q; want %s deleted", got, num(f.seeded.Expired))
	}
	for _, k := range f.seeded.UnrelatedKeys {
		if n, _ := f.rdb.Exists(context.Background(), k).Result(); n != 1 {
			t.Errorf("unrelated key %q is gone", k)
		}
	}

	// Progress: several updates of the message while previewing and while running, none
	// closer than the interval to the previous one of the same phase.
	for _, phase := range []struct{ name, marker string }{{"preview", "so far ("}, {"run", " · matched "}} {
		var at []time.Time
		for _, c := range f.slack.Calls("chat.update") {
			if c.Form.Get("ts") == preview.TS && c.Status == 200 && strings.Contains(c.Form.Get("blocks"), phase.marker) {
				at = append(at, c.Time)
			}
		}
		if len(at) < loadMinUpdates {
			t.Errorf("%d %s progress updates; want at least %d", len(at), phase.name, loadMinUpdates)
		}
		var gaps []string
		for i := 1; i < len(at); i++ {
			gap := at[i].Sub(at[i-1])
			gaps = append(gaps, gap.Round(10*time.Millisecond).String())
			if gap < DefaultProgressInterval-100*time.Millisecond { // the fake times arrivals, not sends
				t.Errorf("%s progress updates %d and %d arrived %v apart; want at most one per %v", phase.name, i-1, i, gap, DefaultProgressInterval)
			}
		}
		t.Logf("%d %s progress updates, gaps %s", len(at), phase.name, strings.Join(gaps, " "))
	}

	if rate := float64(f.seeded.Count) / cleaned.Seconds(); rate < loadMinKeysPerSec {
		t.Errorf("cleanup scanned %.0f keys/s; want at least %d", rate, loadMinKeysPerSec)
	}
	if p99 > loadMaxProbeP99 {
		t.Errorf("probe p99 %v during the cleanup; want at most %v (other Redis clients stall)", p99, loadMaxProbeP99)
	}
	if probe.errors > 0 {
		t.Errorf("%d probe GETs failed", probe.errors)
	}
	// Memory is bounded by the batch size, not the number of keys.
	if peak := heap.peak(); peak > base.HeapInuse+loadMaxHeapGrowth {
		t.Errorf("HeapInuse peaked at %s (base %s); want at most %s more: memory grows with the key count",
			mib(peak), mib(base.HeapInuse), mib(loadMaxHeapGrowth))
	}
}
