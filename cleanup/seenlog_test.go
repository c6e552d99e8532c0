package cleanup

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// A seenLog window says "found by the preview" only for keys the preview found on that master,
// whatever the later scan's order; and when the later scan meets the surviving keys in nearly
// the preview's order, it recognises all of them while holding at most seenMax hashes, however
// many keys the log holds.
func TestSeenWindowFollowsALaterScan(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	const n = 60_000
	log := newSeenLog(t.TempDir(), "test")
	defer log.remove()
	preview := make([]string, n)
	for i := range preview {
		preview[i] = fmt.Sprintf("session:%d", i)
	}
	for i := 0; i < n; i += 100 {
		if err := log.add("a:1", preview[i:i+100]); err != nil {
			t.Fatal(err)
		}
	}
	if err := log.finish(); err != nil {
		t.Fatal(err)
	}

	// The later scan: the run deleted ~60% (and one stretch of 3,000 in a row), new keys
	// appeared between, and the order differs locally (blocks of up to 300 shuffled).
	var later []string
	fresh := map[string]bool{}
	for i, k := range preview {
		if rng.IntN(10) < 6 || i >= 20_000 && i < 23_000 {
			continue
		}
		later = append(later, k)
		if rng.IntN(20) == 0 {
			nk := fmt.Sprintf("session:new-%d", i)
			later = append(later, nk)
			fresh[nk] = true
		}
	}
	for start := 0; start < len(later); start += 300 {
		block := later[start:min(start+300, len(later))]
		rng.Shuffle(len(block), func(i, j int) { block[i], block[j] = block[j], block[i] })
	}

	scan := log.scan()
	defer scan.close()
	var reported []string
	for start := 0; start < len(later); start += 100 {
		got, err := scan.fresh("a:1", later[start:min(start+100, len(later))])
		if err != nil {
			t.Fatal(err)
		}
		reported = append(reported, got...)
		if w := scan.windows["a:1"]; w.size() > seenMax || len(w.at) > w.size() {
			t.Fatalf("the window holds %d hashes (%d in its map); want at most %d", w.size(), len(w.at), seenMax)
		}
	}
	var wrong []string
	for _, k := range reported {
		if !fresh[k] {
			wrong = append(wrong, k)
		}
	}
	if len(reported) != len(fresh) || len(wrong) > 0 {
		t.Errorf("reported %d keys as new (%d of them found by the preview, e.g. %v); want exactly the %d new ones", len(reported), len(wrong), wrong[:min(3, len(wrong))], len(fresh))
	}

	// Another master, and a scan that starts over: no key is vouched for that the preview did
	// not find there.
	if got, _ := scan.fresh("b:2", preview[:100]); len(got) != 100 {
		t.Errorf("a master the preview did not scan: %d of 100 keys reported new; want all", len(got))
	}
	for _, k := range []string{"session:new-x", "session:60000"} {
		if got, _ := scan.fresh("a:1", []string{k}); len(got) != 1 {
			t.Errorf("%s, never found by the preview, was taken as found", k)
		}
	}
}

func (w *seenWindow) size() int { return len(w.queue) - w.head }

// A run from a preview's Selection reads again only the sessions created since the preview,
// on a Cluster too: every other key is recognised from the preview's log, in bounded memory.
func TestRunFromSelectionReadsOnlyNewSessions(t *testing.T) {
	targets(t, func(t *testing.T, tgt *Target) {
		put(t, tgt, population(3000, 1000, nil)...)
		var (
			mu   sync.Mutex
			read = map[string]int{}
		)
		h := cmdHook{before: func(cmds []redis.Cmder) {
			mu.Lock()
			defer mu.Unlock()
			for _, c := range cmds {
				switch c.Name() {
				case "mget", "get":
					for _, a := range c.Args()[1:] {
						read[a.(string)]++
					}
				}
			}
		}}
		hooked := hookedClient(t, tgt, h)
		e := NewEngine(hooked, EngineConfig{BatchSize: 100}).WithClock(func() time.Time { return testNow })
		ctx := context.Background()
		plan, sel, err := e.PreviewSelect(ctx, Filter{}, nil, t.TempDir())
		if err != nil || plan.Matched != 1000 {
			t.Fatalf("PreviewSelect = %d matched, %v; want 1000", plan.Matched, err)
		}
		defer sel.Close()
		newer := population(3040, 3040, nil)[3000:] // 40 expired sessions created since
		put(t, tgt, newer...)
		mu.Lock()
		clear(read)
		mu.Unlock()
		rep, err := e.Run(ctx, RunSpec{Filter: Filter{}, MaxValid: -1, Selection: sel})
		if err != nil || rep.Deleted != 1040 {
			t.Fatalf("Run = deleted %d, %v; want the 1000 previewed and the 40 new", rep.Deleted, err)
		}
		if left := countPrefix(t, tgt); left != 2000 {
			t.Errorf("%d sessions left; want the 2000 valid ones", left)
		}
		mu.Lock()
		defer mu.Unlock()
		var old []string
		for k := range read {
			if !strings.HasPrefix(strings.TrimPrefix(k, tgt.Prefix()), "s30") {
				old = append(old, k)
			}
		}
		if len(read) != 40 || len(old) > 0 {
			t.Errorf("the run read %d keys, %d of them found by the preview (e.g. %v); want only the 40 new ones", len(read), len(old), old[:min(3, len(old))])
		}
	})
}

// hookedClient returns tgt through a client of its own that runs h on every command.
func hookedClient(t *testing.T, tgt *Target, h cmdHook) *Target {
	t.Helper()
	var c redis.UniversalClient
	switch o := tgt.Client().(type) {
	case *redis.Client:
		c = redis.NewClient(&redis.Options{Addr: o.Options().Addr})
	case *redis.ClusterClient:
		c = redis.NewClusterClient(&redis.ClusterOptions{Addrs: o.Options().Addrs})
	default:
		t.Fatalf("no hook for %T", o)
	}
	c.AddHook(h)
	t.Cleanup(func() { c.Close() })
	return NewTarget(c, tgt.Prefix(), tgt.Name())
}
