package cleanup

// Fault tests: real redis-server processes are killed, restarted, failed over and starved of
// disk while the engine works, and every test checks what is left in Redis and what the Report
// says. Faults are injected at a chosen point of the engine's conversation with Redis (a
// go-redis hook on the engine's own client), not at a random moment, so each test exercises the
// protection it names on every run.

import (
	"context"
	"crypto/rand"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/platform-team/sessionbot/cleanup/redistest"
)

// faultRetryFor is EngineConfig.RetryFor in fault tests: short, so "the server never came back"
// fails fast.
const faultRetryFor = 2 * time.Second

// cmdHook runs test code just before or just after a command or pipeline of the engine's
// client, in the engine's goroutine: the engine waits while the test injects a fault. Code
// run there reports with t.Errorf, never t.Fatal (not the test's goroutine).
type cmdHook struct {
	before func(cmds []redis.Cmder)
	after  func(cmds []redis.Cmder)
	// gate, when set, is held (read-locked) by every dial: a test that write-locks it knows
	// the engine cannot reach a server it is still filling.
	gate *sync.RWMutex
}

var _ redis.Hook = cmdHook{}

func (h cmdHook) DialHook(next redis.DialHook) redis.DialHook {
	if h.gate == nil {
		return next
	}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		h.gate.RLock()
		defer h.gate.RUnlock()
		return next(ctx, network, addr)
	}
}

func (h cmdHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		return h.around(ctx, []redis.Cmder{cmd}, func() error { return next(ctx, cmd) })
	}
}

func (h cmdHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		return h.around(ctx, cmds, func() error { return next(ctx, cmds) })
	}
}

func (h cmdHook) around(_ context.Context, cmds []redis.Cmder, run func() error) error {
	if h.before != nil {
		h.before(cmds)
	}
	err := run()
	if h.after != nil {
		h.after(cmds)
	}
	return err
}

// hookedTarget is a Target on s through a client of its own carrying h (the server's Client
// stays hook-free for the test's own reads and writes).
func hookedTarget(t *testing.T, s *redistest.Server, prefix string, h cmdHook) *Target {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: s.Addr()})
	c.AddHook(h)
	t.Cleanup(func() { c.Close() })
	return NewTarget(c, prefix, s.Addr())
}

// evalKeys returns the keys of an EVALSHA command (nil for any other command).
func evalKeys(cmd redis.Cmder) []string {
	if cmd.Name() != "evalsha" {
		return nil
	}
	args := cmd.Args()
	n, _ := args[2].(int)
	keys := make([]string, 0, n)
	for _, a := range args[3 : 3+n] {
		keys = append(keys, a.(string))
	}
	return keys
}

// scanReply returns the reply of a SCAN in cmds (ok false when there is none or it failed).
func scanReply(cmds []redis.Cmder) (keys []string, cursor uint64, ok bool) {
	for _, c := range cmds {
		if sc, isScan := c.(*redis.ScanCmd); isScan && sc.Err() == nil {
			keys, cursor = sc.Val()
			return keys, cursor, true
		}
	}
	return nil, 0, false
}

// scanCursor returns the cursor a SCAN in cmds was sent with.
func scanCursor(cmds []redis.Cmder) uint64 {
	for _, c := range cmds {
		if sc, isScan := c.(*redis.ScanCmd); isScan {
			cursor, _ := sc.Args()[1].(uint64)
			return cursor
		}
	}
	return 0
}

// snapshot reads every key with prefix (every master of a Cluster) with its value; a key that is
// not a string shows as "<type>".
func snapshot(t *testing.T, c redis.UniversalClient, prefix string) map[string]string {
	t.Helper()
	snap, err := readAll(c, prefix)
	if err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	return snap
}

// readAll is snapshot for code that must not call t.Fatal (hooks, other goroutines).
func readAll(c redis.UniversalClient, prefix string) (map[string]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var (
		mu   sync.Mutex
		keys []string
		seen = map[string]bool{}
	)
	scan := func(ctx context.Context, n *redis.Client) error {
		var cursor uint64
		for {
			ks, next, err := n.Scan(ctx, cursor, matchPattern(prefix), 1000).Result()
			if err != nil {
				return err
			}
			mu.Lock()
			for _, k := range ks {
				if !seen[k] {
					seen[k] = true
					keys = append(keys, k)
				}
			}
			mu.Unlock()
			if cursor = next; cursor == 0 {
				return nil
			}
		}
	}
	var err error
	if cc, ok := c.(*redis.ClusterClient); ok {
		err = cc.ForEachMaster(ctx, scan)
	} else {
		err = scan(ctx, c.(*redis.Client))
	}
	if err != nil {
		return nil, err
	}
	out := make(map[string]string, len(keys))
	for start := 0; start < len(keys); start += 1000 {
		part := keys[start:min(start+1000, len(keys))]
		cmds := make([]*redis.StringCmd, len(part))
		_, _ = c.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, k := range part {
				cmds[i] = p.Get(ctx, k)
			}
			return nil
		})
		for i, k := range part {
			v, err := cmds[i].Result()
			switch {
			case err == nil:
				out[k] = v
			case errors.Is(err, redis.Nil):
			case isWrongType(err):
				out[k] = "<" + c.Type(ctx, k).Val() + ">"
			default:
				return nil, fmt.Errorf("GET %s: %w", k, err)
			}
		}
	}
	return out, nil
}

// store writes sessions under prefix, like put, for code that must not call t.Fatal.
func store(c redis.UniversalClient, prefix string, ss ...testSession) error {
	ctx := context.Background()
	_, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, s := range ss {
			p.Set(ctx, prefix+s.id, sessionValue(s), s.ttl)
		}
		return nil
	})
	return err
}

// otherKeys are keys next to the sessions that no cleanup may touch (as unrelated writes them).
func otherKeys(prefix string) []string {
	p := strings.TrimSuffix(prefix, "session:")
	return []string{p + "cb:payments", p + "feature:flags", p + "sessions", p + "session", p + "sessionbot:state", p + "xsession:1"}
}

// expiredValue reports whether v is a session past its expires_at at testNow.
func expiredValue(v string) bool {
	s, ok := DecodeSession([]byte(v))
	return ok && s.Has.Contains(FieldExpiresAt) && s.ExpiresAt.Before(testNow)
}

func countExpired(snap map[string]string) int64 {
	var n int64
	for _, v := range snap {
		if expiredValue(v) {
			n++
		}
	}
	return n
}

// valid returns s refreshed: the user came back, the session now expires in the future.
func valid(s testSession) testSession {
	s.expires = testNow.Add(2 * time.Hour)
	s.created = testNow.Add(-time.Minute)
	return s
}

// Fault 1: a standalone server is SIGKILLed in the middle of a paced cleanup, after the first
// compare-and-delete of a batch succeeded and before the second one (a batch of 1000 keys is
// deleted 500 at a time). It comes back empty (no persistence) on the same port at once, or
// after an outage longer than go-redis's own retries (so the engine's retry is what rides it
// out), or never. Sessions written to the new server under the old names, now valid, must
// survive the compare-and-delete the engine was about to send; the engine must notice the new
// run_id, and count exactly what it removed: the half batch it deleted before the crash
// included. A server that never comes back fails the run within RetryFor.
func TestFaultStandaloneKilledMidRun(t *testing.T) {
	for _, tc := range []struct {
		name     string
		outage   time.Duration // < 0: never restarted
		retryFor time.Duration
	}{
		{"restarted at once", 0, faultRetryFor},
		{"restarted after 2.5s", 2500 * time.Millisecond, 5 * time.Second},
		{"never restarted", -1, faultRetryFor},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := redistest.Standalone(t)
			admin := s.Client()
			ctx := context.Background()
			const prefix = "f1:session:"
			own := NewTarget(admin, prefix, s.Addr())
			const n, expired = 4000, 3000
			ss := population(n, expired, nil)
			put(t, own, ss...)

			newExpired := population(300, 300, nil)
			for i := range newExpired {
				newExpired[i].id = "n" + newExpired[i].id
			}
			// What the new server holds once it is back: half of the old names as valid sessions
			// (users who logged in again), new expired sessions, and keys outside the prefix.
			recreated := map[string]string{}
			var back []testSession
			for i, x := range ss {
				if i%2 == 0 {
					back = append(back, valid(x))
					recreated[prefix+x.id] = sessionValue(valid(x))
				}
			}
			var gate sync.RWMutex
			refill := func() {
				gate.Lock() // the engine dials the new server only once it is filled
				defer gate.Unlock()
				if err := s.Restart(); err != nil {
					t.Errorf("Restart: %v", err)
					return
				}
				if err := store(admin, prefix, append(back, newExpired...)...); err != nil {
					t.Errorf("refill: %v", err)
				}
				for _, k := range otherKeys(prefix) {
					if err := admin.Set(ctx, k, "keep", 0).Err(); err != nil {
						t.Errorf("refill: %v", err)
					}
				}
			}

			var (
				armed, fired atomic.Bool
				chunksDone   int      // compare-and-delete calls that succeeded for the current batch
				inFlight     []string // keys of the compare-and-delete that met the fault
				// unsettled: the keys the batch had not deleted when the server died — the
				// in-flight ones and those of its later compare-and-delete calls (a paced run
				// sends a batch pacedCADChunk keys at a time), until the batch reads again.
				unsettled  = map[string]bool{}
				collecting bool
				deletedOld int64 // deleted on the old server before the kill
				killedAt   time.Time
				restarted  = make(chan struct{})
			)
			h := cmdHook{gate: &gate, after: func(cmds []redis.Cmder) {
				switch {
				case cmds[0].Name() == "mget":
					chunksDone = 0
					collecting = false
				case len(evalKeys(cmds[0])) > 0 && cmds[0].Err() == nil:
					chunksDone++
				}
			}, before: func(cmds []redis.Cmder) {
				keys := evalKeys(cmds[0])
				if collecting {
					for _, k := range keys {
						unsettled[k] = true
					}
				}
				if len(keys) == 0 || chunksDone == 0 || !armed.Load() || fired.Swap(true) {
					return
				}
				inFlight, collecting = keys, true
				for _, k := range keys {
					unsettled[k] = true
				}
				old, err := readAll(admin, prefix)
				if err != nil {
					t.Errorf("reading the old server: %v", err)
				}
				deletedOld = expired - countExpired(old)
				killedAt = time.Now()
				s.Kill()
				switch {
				case tc.outage == 0:
					refill()
					close(restarted)
				case tc.outage > 0:
					go func() {
						defer close(restarted)
						time.Sleep(tc.outage) // the outage itself, not a wait for a condition
						refill()
					}()
				}
			}}
			e := NewEngine(hookedTarget(t, s, prefix, h), EngineConfig{BatchSize: 1000, MaxRate: 8000, RetryFor: tc.retryFor}).
				WithClock(func() time.Time { return testNow })
			rep, err := e.Run(ctx, RunSpec{Filter: Filter{}, MaxValid: -1, Progress: func(p Progress) {
				if p.Deleted > 0 {
					armed.Store(true)
				}
			}})
			if !fired.Load() {
				t.Fatalf("the fault was never injected (run ended: %+v, %v)", rep, err)
			}
			t.Logf("killed with %d keys in flight (%d of the batch not yet deleted) after %d deletions; Run = %v after %v; report deleted %d skipped %d restarted %v",
				len(inFlight), len(unsettled), deletedOld, err, time.Since(killedAt).Round(time.Millisecond), rep.Deleted, rep.Skipped, rep.Restarted)

			if tc.outage < 0 {
				if err == nil || rep.Stopped != "error" || rep.Errors == 0 {
					t.Fatalf("Run against a dead server = %v, stopped %q, errors %d; want a failure", err, rep.Stopped, rep.Errors)
				}
				if d := time.Since(killedAt); d > tc.retryFor+2*time.Second {
					t.Errorf("Run failed %v after the kill; want within RetryFor (%v) + 2 s", d, tc.retryFor)
				}
				if !strings.Contains(err.Error(), "delete") || !strings.Contains(err.Error(), "connection refused") {
					t.Errorf("error %q does not say which phase failed and why", err)
				}
				if rep.Deleted != deletedOld {
					t.Errorf("Report.Deleted = %d; want %d (what was deleted before the kill)", rep.Deleted, deletedOld)
				}
				return
			}

			<-restarted
			if err != nil || rep.Stopped != "" {
				t.Fatalf("Run = %v, stopped %q; want it to ride out an outage shorter than RetryFor", err, rep.Stopped)
			}
			if !slices.Equal(rep.Restarted, []string{s.Addr()}) {
				t.Errorf("Report.Restarted = %v; want [%s]", rep.Restarted, s.Addr())
			}
			after := snapshot(t, admin, prefix)
			for k, v := range recreated {
				if after[k] != v {
					t.Errorf("session %s written after the restart (valid) was deleted or changed", ShortID(k))
				}
			}
			if n := countExpired(after); n != 0 {
				t.Errorf("%d expired sessions written after the restart are left; want 0 (rescan from cursor 0)", n)
			}
			if len(after) != len(recreated) {
				t.Errorf("%d session keys left; want the %d valid ones", len(after), len(recreated))
			}
			for _, k := range otherKeys(prefix) {
				if v, err := admin.Get(ctx, k).Result(); v != "keep" {
					t.Errorf("unrelated key %q: got %q, %v; want it untouched", k, v, err)
				}
			}
			// Counted: what was removed from the old server, plus the new expired sessions. The
			// in-flight keys were not removed by the engine: valid ones were kept (Skipped),
			// vanished ones were lost with the crash (neither deleted nor kept).
			if want := deletedOld + int64(len(newExpired)); rep.Deleted != want {
				t.Errorf("Report.Deleted = %d; want %d (%d before the kill + %d after)", rep.Deleted, want, deletedOld, len(newExpired))
			}
			var kept int64
			for k := range unsettled {
				if _, ok := recreated[k]; ok {
					kept++
				}
			}
			if rep.Skipped != kept {
				t.Errorf("Report.Skipped = %d; want %d (keys the batch had not deleted at the kill that came back valid; the %d lost in the crash were not kept)",
					rep.Skipped, kept, int64(len(unsettled))-kept)
			}
		})
	}
}

// Fault 2b: a bounded run (--user-id) whose server restarts mid-scan from a snapshot taken
// before the run: the sessions it already deleted come back (as an application writes back a
// session it holds) and the rescan deletes them again. Each is one logout, not two: a bound of
// exactly the previewed count must not stop the run (the chaos flake of seed
// 8231517880663793686, "the bound counted something that was no real logout").
func TestFaultRestartDeletesAgainWithoutSpendingTheBound(t *testing.T) {
	const prefix = "f2b:session:"
	s := redistest.Standalone(t)
	admin := s.Client()
	own := NewTarget(admin, prefix, s.Addr())
	put(t, own, population(2000, 0, nil)...)
	checkOther := unrelated(t, own)
	if err := admin.Save(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	f := Filter{UserID: "auth0|1000"}
	before := snapshot(t, admin, prefix)
	var matching int64
	for _, v := range before {
		if strings.Contains(v, `"auth0|1000"`) {
			matching++
		}
	}
	var (
		scans int
		fired bool
	)
	h := cmdHook{after: func(cmds []redis.Cmder) {
		if _, _, ok := scanReply(cmds); !ok || fired {
			return
		}
		if scans++; scans == 12 {
			fired = true
			if err := s.Restart(); err != nil {
				t.Errorf("Restart: %v", err)
			}
		}
	}}
	e := NewEngine(hookedTarget(t, s, prefix, h), EngineConfig{BatchSize: 100, MaxRate: 100000, RetryFor: faultRetryFor}).
		WithClock(func() time.Time { return testNow })
	rep, err := e.Run(context.Background(), RunSpec{Filter: f, MaxValid: matching})
	if !fired {
		t.Fatal("the restart was never injected")
	}
	if err != nil {
		t.Fatalf("Run = %v (Report: deleted %d, still-valid %d, bound %d)", err, rep.Deleted, rep.DeletedValid, matching)
	}
	if rep.Deleted <= matching {
		t.Errorf("Report.Deleted = %d; want more than the %d matching sessions (some deleted twice: the test did not exercise the rescan)", rep.Deleted, matching)
	}
	after := snapshot(t, admin, prefix)
	for k, v := range after {
		if strings.Contains(v, `"auth0|1000"`) {
			t.Errorf("%s of auth0|1000 left behind", k)
		}
	}
	if want := len(before) - int(matching); len(after) != want {
		t.Errorf("%d sessions left; want %d (every other user's)", len(after), want)
	}
	checkOther()
}

// Fault 2: a server restarts between two SCAN calls and comes back with its data (loaded from
// an RDB snapshot taken before the cleanup, so deleted sessions come back too, in a new hash
// table order). The old cursor means nothing to the new process: the node must be rescanned
// from cursor 0 and named in Report.Restarted / Plan.Restarted. Also when the restart falls
// after the last SCAN, while the last batch is processed.
func TestFaultRestartRescansFromCursorZero(t *testing.T) {
	const prefix = "f2:session:"
	setup := func(t *testing.T, n, expired int) (*redistest.Server, func()) {
		s := redistest.Standalone(t)
		own := NewTarget(s.Client(), prefix, s.Addr())
		put(t, own, population(n, expired, nil)...)
		check := unrelated(t, own)
		if err := s.Client().Save(context.Background()).Err(); err != nil {
			t.Fatal(err)
		}
		return s, check
	}
	restart := func(t *testing.T, s *redistest.Server) {
		if err := s.Restart(); err != nil {
			t.Errorf("Restart: %v", err)
		}
	}

	for _, tc := range []struct {
		name string
		at   func(scans int, cursor uint64) bool // restart after this SCAN reply
	}{
		{"mid-scan", func(scans int, _ uint64) bool { return scans == 8 }},
		{"after the last SCAN", func(_ int, cursor uint64) bool { return cursor == 0 }},
	} {
		t.Run("run/"+tc.name, func(t *testing.T) {
			s, checkOther := setup(t, 2000, 1500)
			admin := s.Client()
			var (
				scans      int
				fired      bool
				deletedOld int64
				sentAfter  []uint64 // cursors of the SCANs answered by the new server
			)
			h := cmdHook{after: func(cmds []redis.Cmder) {
				_, cursor, ok := scanReply(cmds)
				if !ok {
					return
				}
				if fired {
					sentAfter = append(sentAfter, scanCursor(cmds))
					return
				}
				if scans++; tc.at(scans, cursor) {
					fired = true
					old, err := readAll(admin, prefix)
					if err != nil {
						t.Errorf("reading the old server: %v", err)
					}
					deletedOld = 1500 - countExpired(old)
					restart(t, s)
				}
			}}
			e := NewEngine(hookedTarget(t, s, prefix, h), EngineConfig{BatchSize: 100, MaxRate: 100000, RetryFor: faultRetryFor}).
				WithClock(func() time.Time { return testNow })
			rep, err := e.Run(context.Background(), RunSpec{Filter: Filter{}, MaxValid: -1})
			if !fired {
				t.Fatal("the restart was never injected")
			}
			if err != nil {
				t.Fatalf("Run = %v", err)
			}
			if !slices.Equal(rep.Restarted, []string{s.Addr()}) {
				t.Errorf("Report.Restarted = %v; want [%s]", rep.Restarted, s.Addr())
			}
			// Mid-scan, the SCANs the new server answers carry the old cursor until the engine
			// reads the run_id again: at the latest runIDEvery SCANs later, the rescan from 0
			// starts. After the last SCAN, the next one is a new pass from 0.
			limit := 0 // the SCAN by which cursor 0 must have been sent
			if tc.name == "mid-scan" {
				limit = runIDEvery
			}
			if i := slices.Index(sentAfter, 0); i < 0 || i > limit {
				t.Errorf("cursors of the SCANs after the restart = %v; want the rescan from 0 within %d SCANs", sentAfter, limit)
			}
			after := snapshot(t, admin, prefix)
			if n := countExpired(after); n != 0 {
				t.Errorf("%d expired sessions left on the restarted server; want 0 (a stale cursor skips keys)", n)
			}
			if len(after) != 500 {
				t.Errorf("%d session keys left; want the 500 valid ones", len(after))
			}
			checkOther()
			if want := deletedOld + 1500; rep.Deleted != want {
				t.Errorf("Report.Deleted = %d; want %d (%d before the restart + all 1500 again after it)", rep.Deleted, want, deletedOld)
			}
		})
	}

	t.Run("preview", func(t *testing.T) {
		const n, expired = 8000, 6000
		s, _ := setup(t, n, expired)
		var (
			scans        int
			fired        bool
			seenAfter    = map[string]bool{}
			countedSoFar int
		)
		h := cmdHook{after: func(cmds []redis.Cmder) {
			keys, _, ok := scanReply(cmds)
			if !ok {
				return
			}
			if fired {
				for _, k := range keys {
					seenAfter[k] = true
				}
				return
			}
			countedSoFar += len(keys)
			if scans++; scans == 3 {
				fired = true
				restart(t, s)
			}
		}}
		e := NewEngine(hookedTarget(t, s, prefix, h), EngineConfig{RetryFor: faultRetryFor}).WithClock(func() time.Time { return testNow })
		plan, err := e.Preview(context.Background(), Filter{}, nil)
		if !fired {
			t.Fatal("the restart was never injected")
		}
		if err != nil {
			t.Fatalf("Preview = %v", err)
		}
		if !slices.Equal(plan.Restarted, []string{s.Addr()}) {
			t.Errorf("Plan.Restarted = %v; want [%s]", plan.Restarted, s.Addr())
		}
		missed := 0
		for _, x := range population(n, expired, nil) {
			if !seenAfter[prefix+x.id] {
				missed++
			}
		}
		if missed > 0 {
			t.Errorf("%d of %d sessions never returned by SCAN after the restart; want 0 (rescan from cursor 0)", missed, n)
		}
		// Keys counted before the restart are counted again after it, and so are those of the
		// (at most runIDEvery) batches read through the stale cursor: a preview over a restart
		// over-counts by at most that, never under-counts.
		overcount := countedSoFar + runIDEvery*e.Config().BatchSize
		if plan.Matched < expired || plan.Found < n || plan.Found > int64(n+overcount) {
			t.Errorf("Plan = found %d matched %d; want matched ≥ %d and %d ≤ found ≤ %d", plan.Found, plan.Matched, expired, n, n+overcount)
		}
	})
}

// Fault 3: a Cluster master fails over to its replica while a paced cleanup runs: by CLUSTER
// FAILOVER (coordinated, nothing lost), or because the master is SIGKILLed and its replica is
// promoted after the node timeout (2 s here). The engine keeps a stale slot map (its own
// ClusterClient), so it meets redirections, a master that became a replica or died, a new
// master to scan from cursor 0, an empty script cache there, and (after a kill) a cluster down
// until the promotion. The run completes all the same: every expired session deleted and
// counted once, the valid and unrelated keys untouched.
func TestFaultClusterFailoverMidRun(t *testing.T) {
	c := redistest.NewCluster(t, redistest.ClusterOptions{Replicas: 1})
	for i, tc := range []struct {
		name  string
		fault func() error
	}{
		{"CLUSTER FAILOVER", func() error { return c.Failover(c.Replicas()[0]) }},
		{"master killed", func() error {
			c.Masters()[0].Kill()
			return waitPromoted(c)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clusterFailoverRun(t, c, fmt.Sprintf("f3%d:session:", i), tc.fault)
		})
	}
}

// waitPromoted polls until a replica has replaced the killed master: three running masters, and
// every running node says cluster_state:ok.
func waitPromoted(c *redistest.Cluster) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		err := func() error {
			if m := c.Masters(); len(m) != 3 {
				return fmt.Errorf("%d masters running", len(m))
			}
			for _, s := range c.Nodes() {
				if !s.Running() {
					continue
				}
				info, err := s.Client().ClusterInfo(ctx).Result()
				if err != nil {
					return err
				}
				if !strings.Contains(info, "cluster_state:ok") {
					return fmt.Errorf("%s: cluster not ok", s.Addr())
				}
			}
			return nil
		}()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("no promotion: %w", err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func clusterFailoverRun(t *testing.T, c *redistest.Cluster, prefix string, fault func() error) {
	ctx := context.Background()
	admin := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Seeds()})
	defer admin.Close()
	own := NewTarget(admin, prefix, "cluster")
	const n, expired = 6000, 4000
	ss := population(n, expired, nil)
	put(t, own, ss...)
	checkOther := unrelated(t, own)

	// The engine's own client: its slot map goes stale with the failover. Its hook sees each
	// command's final outcome (after go-redis followed redirections).
	var (
		mu         sync.Mutex
		failedOver atomic.Bool
		seen       = map[string]int{} // errors seen by the engine after the failover began
	)
	ec := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Seeds()})
	defer ec.Close()
	ec.AddHook(cmdHook{after: func(cmds []redis.Cmder) {
		if !failedOver.Load() {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		for _, c := range cmds {
			if err := c.Err(); err != nil && !errors.Is(err, redis.Nil) {
				seen[strings.SplitN(err.Error(), " ", 2)[0]]++
			}
		}
	}})
	e := NewEngine(NewTarget(ec, prefix, "cluster"), EngineConfig{BatchSize: 100, MaxRate: 3000, RetryFor: faultRetryFor}).
		WithClock(func() time.Time { return testNow })

	var (
		once              sync.Once
		faultDone         = make(chan error, 1)
		faultAt, doneAt   time.Time
		deletedAtFailover atomic.Int64
	)
	rep, err := e.Run(ctx, RunSpec{Filter: Filter{}, MaxValid: -1, Progress: func(p Progress) {
		if p.Deleted == 0 {
			return
		}
		once.Do(func() {
			deletedAtFailover.Store(p.Deleted)
			failedOver.Store(true)
			faultAt = time.Now()
			go func() {
				err := fault()
				doneAt = time.Now()
				faultDone <- err
			}()
		})
	}})
	runEnded := time.Now()
	if deletedAtFailover.Load() == 0 {
		t.Fatalf("the failover was never started (Run = %v, deleted %d)", err, rep.Deleted)
	}
	select {
	case ferr := <-faultDone:
		if ferr != nil {
			t.Fatalf("failover: %v", ferr)
		}
	case <-time.After(40 * time.Second):
		t.Fatal("failover did not finish")
	}
	if doneAt.After(runEnded) {
		t.Fatalf("the failover ended %v after the run: not a fault during the run", doneAt.Sub(runEnded))
	}
	mu.Lock()
	t.Logf("failover started after %d deletions, took %v, done %v before the run ended; errors the engine met: %v; Run = %v; deleted %d skipped %d",
		deletedAtFailover.Load(), doneAt.Sub(faultAt).Round(time.Millisecond), runEnded.Sub(doneAt).Round(time.Millisecond), seen, err, rep.Deleted, rep.Skipped)
	if seen["NOSCRIPT"] == 0 {
		t.Errorf("the engine never met the new master's empty script cache (NOSCRIPT): the failover did not reach its deletes")
	}
	if seen["CROSSSLOT"] > 0 {
		t.Errorf("the engine sent %d multi-key commands across slots", seen["CROSSSLOT"])
	}
	mu.Unlock()

	if err != nil || rep.Stopped != "" {
		for _, raw := range []string{"MOVED", "ASK ", "CROSSSLOT", "CLUSTERDOWN", "NOSCRIPT"} {
			if err != nil && strings.Contains(err.Error(), raw) {
				t.Errorf("Run error carries a raw Redis redirection/cluster error: %v", err)
			}
		}
		t.Errorf("Run = %v (stopped %q); want it to complete across the failover", err, rep.Stopped)
	}
	after := snapshot(t, admin, prefix)
	if left := countExpired(after); left != 0 {
		t.Errorf("%d expired sessions left after the run; want 0", left)
	}
	if rep.Deleted != expired {
		t.Errorf("Report.Deleted = %d; want exactly %d (every expired session, each counted once)", rep.Deleted, expired)
	}
	for _, x := range ss[expired:] {
		if after[prefix+x.id] != sessionValue(x) {
			t.Errorf("valid session %s was deleted or changed", x.id)
		}
	}
	checkOther()
}

// Fault 4: the backup of a backup-first run cannot be completed — the disk fills up, or the
// backup directory disappears under the writer (its path becomes a file). Nothing may be
// deleted, and no file with the backup's final name may exist.
func TestFaultBackupFailsMidBackup(t *testing.T) {
	const prefix = "f4:session:"
	const n = 2000
	// bulky: tokens of random bytes, so the backup compresses poorly (as real ones do) and fills
	// the disk first; otherwise the (uncompressed) key list does.
	setup := func(t *testing.T, bulky bool) (*redistest.Server, *Target) {
		s := redistest.Standalone(t)
		own := NewTarget(s.Client(), prefix, s.Addr())
		ctx := context.Background()
		_, err := s.Client().Pipelined(ctx, func(p redis.Pipeliner) error {
			for i := range n {
				tok := make([]byte, 4)
				if bulky {
					tok = make([]byte, 200)
					_, _ = rand.Read(tok)
				}
				v := fmt.Sprintf(`{"user_id":"auth0|%d","auth_method":"oauth2","created_at":"2025-11-26T09:00:00Z","expires_at":"2025-11-26T11:00:00Z","access_token":"%x"}`, i, tok)
				p.Set(ctx, fmt.Sprintf("%ss%05d%s", prefix, i, strings.Repeat("k", 40)), v, time.Hour)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return s, own
	}
	assertNothingDeleted := func(t *testing.T, own *Target, rep Report, err error) {
		t.Helper()
		t.Logf("Run = %v", err)
		if err == nil || rep.Stopped != "error" || rep.Deleted != 0 || rep.Backup != "" {
			t.Errorf("Run = %v, stopped %q, deleted %d, backup %q; want an error, nothing deleted, no backup named",
				err, rep.Stopped, rep.Deleted, rep.Backup)
		}
		if err != nil && (!strings.Contains(err.Error(), "backup: ") || strings.Contains(err.Error(), "backup: backup:")) {
			t.Errorf("error %q does not say (once) that the backup failed", err)
		}
		if left := countPrefix(t, own); left != n {
			t.Errorf("%d sessions left; want all %d", left, n)
		}
	}
	noFinal := func(t *testing.T, dirs ...string) {
		t.Helper()
		for _, d := range dirs {
			if _, err := os.Lstat(filepath.Join(d, "job.jsonl.gz")); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s/job.jsonl.gz exists (or cannot be checked: %v) after a failed backup", d, err)
			}
		}
	}

	for _, full := range []struct {
		name  string
		bulky bool
		want  string // in the error
	}{
		{"disk full/backup file", true, ".job.tmp: no space left on device"},
		{"disk full/key list", false, "key list: write"},
	} {
		t.Run(full.name, func(t *testing.T) {
			mnt := t.TempDir()
			if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=64k,mode=0700", "tmpfs", mnt).CombinedOutput(); err != nil {
				t.Fatalf("cannot mount a 64 KiB tmpfs to fill the disk (the suite runs as root, as CI does): %v %s", err, out)
			}
			t.Cleanup(func() {
				if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
					t.Errorf("umount %s: %v %s", mnt, err, out)
				}
			})
			_, own := setup(t, full.bulky)
			dir := filepath.Join(mnt, "backups")
			rep, err := engine(own).Run(context.Background(), RunSpec{Filter: Filter{All: true}, MaxValid: -1,
				Backup: &BackupSpec{Dir: dir, JobID: "job"}})
			assertNothingDeleted(t, own, rep, err)
			if err != nil && (!strings.Contains(err.Error(), full.want) || !strings.Contains(err.Error(), "no space left on device")) {
				t.Errorf("error %q does not name what failed (%q) and why (no space left on device)", err, full.want)
			}
			noFinal(t, dir)
			if entries, _ := os.ReadDir(dir); len(entries) != 0 {
				t.Errorf("backup dir holds %d files after a failed backup; want none (temporary file and key list removed)", len(entries))
			}
		})
	}

	// The disk fills up only when the backup is completed: everything written so far sat in the
	// writer's buffers. The round's file is then not complete, so nothing of it is deleted —
	// although a next round's empty files could still be created.
	t.Run("disk full at close", func(t *testing.T) {
		mnt := t.TempDir()
		if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=64k,mode=0700", "tmpfs", mnt).CombinedOutput(); err != nil {
			t.Fatalf("cannot mount a 64 KiB tmpfs to fill the disk (the suite runs as root, as CI does): %v %s", err, out)
		}
		t.Cleanup(func() {
			if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
				t.Errorf("umount %s: %v %s", mnt, err, out)
			}
		})
		dir := filepath.Join(mnt, "backups")
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		// Fill the disk, then free one page: room for the key list, not for the backup.
		filler, err := os.Create(filepath.Join(mnt, "filler"))
		if err != nil {
			t.Fatal(err)
		}
		page := make([]byte, 4096)
		var size int64
		for {
			if _, err := filler.Write(page); err != nil {
				break
			}
			size += int64(len(page))
		}
		if err := filler.Truncate(size - 4096); err != nil {
			t.Fatal(err)
		}
		filler.Close()
		s := redistest.Standalone(t)
		own := NewTarget(s.Client(), prefix, s.Addr())
		ctx := context.Background()
		const few = 20
		for i := range few {
			tok := make([]byte, 400)
			_, _ = rand.Read(tok)
			v := fmt.Sprintf(`{"user_id":"auth0|%d","auth_method":"oauth2","expires_at":"2025-11-26T11:00:00Z","access_token":"%x"}`, i, tok)
			if err := s.Client().Set(ctx, fmt.Sprintf("%ss%05d", prefix, i), v, time.Hour).Err(); err != nil {
				t.Fatal(err)
			}
		}
		rep, err := engine(own).Run(ctx, RunSpec{Filter: Filter{All: true}, MaxValid: -1, Backup: &BackupSpec{Dir: dir, JobID: "job"}})
		t.Logf("Run = %v", err)
		if err == nil || rep.Deleted != 0 || !strings.Contains(err.Error(), "no space left on device") {
			t.Errorf("Run = %v, deleted %d; want the backup's failure (no space left on device) and nothing deleted", err, rep.Deleted)
		}
		if left := countPrefix(t, own); left != few {
			t.Errorf("%d sessions left; want all %d", left, few)
		}
		noFinal(t, dir)
	})

	t.Run("dir replaced by a file", func(t *testing.T) {
		s, own := setup(t, false)
		dir := filepath.Join(t.TempDir(), "backups")
		moved := dir + ".moved"
		scans := 0
		var fired bool
		h := cmdHook{after: func(cmds []redis.Cmder) {
			if _, _, ok := scanReply(cmds); !ok || fired {
				return
			}
			if scans++; scans == 5 {
				fired = true
				if err := os.Rename(dir, moved); err != nil {
					t.Errorf("rename backup dir: %v", err)
				}
				if err := os.WriteFile(dir, nil, 0o600); err != nil {
					t.Errorf("replace backup dir by a file: %v", err)
				}
			}
		}}
		e := NewEngine(hookedTarget(t, s, prefix, h), EngineConfig{BatchSize: 100, MaxRate: 100000, RetryFor: faultRetryFor}).
			WithClock(func() time.Time { return testNow })
		rep, err := e.Run(context.Background(), RunSpec{Filter: Filter{All: true}, MaxValid: -1, Backup: &BackupSpec{Dir: dir, JobID: "job"}})
		if !fired {
			t.Fatal("the directory was never replaced")
		}
		assertNothingDeleted(t, own, rep, err)
		noFinal(t, moved)
		if st, err := os.Stat(dir); err != nil || st.IsDir() {
			t.Errorf("the file standing for the backup dir: %v, %v", st, err)
		}
	})
}

// Fault 5: users refresh their sessions while an unpaced cleanup of the expired ones runs: a
// session rewritten with a future expires_at (SET … XX: only while it exists) between the
// engine's read and its delete must be kept by the compare-and-delete. Some refreshes are aimed
// at batches the engine has just read, so the read→delete window is hit on every run.
func TestFaultConcurrentRefreshKeepsSessions(t *testing.T) {
	s := sharedStandalone(t)
	ctx := context.Background()
	prefix := uniquePrefix(t)
	own := NewTarget(s.Client(), prefix, s.Addr())
	const n, expired = 20000, 16000
	ss := population(n, expired, nil)
	put(t, own, ss...)
	checkOther := unrelated(t, own)

	// A known random subset of the expired sessions is refreshed.
	rng := mrand.New(mrand.NewPCG(1, uint64(time.Now().UnixNano())))
	subset := map[string]testSession{}
	for _, i := range rng.Perm(expired)[:2000] {
		subset[prefix+ss[i].id] = valid(ss[i])
	}
	var (
		mu        sync.Mutex
		refreshed = map[string]bool{} // a SET XX succeeded: the session existed and is now valid
	)
	writer := redis.NewClient(&redis.Options{Addr: s.Addr()})
	defer writer.Close()
	refresh := func(keys []string) {
		var ks []string
		for _, k := range keys {
			if _, ok := subset[k]; ok {
				ks = append(ks, k)
			}
		}
		if len(ks) == 0 {
			return
		}
		cmds := make([]*redis.StatusCmd, len(ks))
		_, _ = writer.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, k := range ks {
				cmds[i] = p.SetArgs(ctx, k, sessionValue(subset[k]), redis.SetArgs{Mode: "XX", TTL: time.Hour})
			}
			return nil
		})
		mu.Lock()
		for i, k := range ks {
			if cmds[i].Val() == "OK" {
				refreshed[k] = true
			}
		}
		mu.Unlock()
	}

	// The engine's reads are reported to the writer, which refreshes the subset keys among them
	// while the engine decides; the read waits (at most 20 + 50 ms) for that to happen.
	type read struct {
		keys []string
		done chan struct{}
	}
	justRead := make(chan read)
	h := cmdHook{after: func(cmds []redis.Cmder) {
		if cmds[0].Name() != "mget" {
			return
		}
		keys := make([]string, 0, len(cmds[0].Args())-1)
		for _, a := range cmds[0].Args()[1:] {
			keys = append(keys, a.(string))
		}
		r := read{keys, make(chan struct{})}
		select {
		case justRead <- r:
			select {
			case <-r.done:
			case <-time.After(50 * time.Millisecond):
			}
		case <-time.After(20 * time.Millisecond): // the writer is busy: go on
		}
	}}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		all := slices.Collect(func(yield func(string) bool) {
			for k := range subset {
				if !yield(k) {
					return
				}
			}
		})
		for {
			select {
			case <-done:
				return
			case r := <-justRead:
				refresh(r.keys)
				close(r.done)
			default:
				// And at random, all the time.
				refresh([]string{all[rng.IntN(len(all))]})
				time.Sleep(50 * time.Microsecond)
			}
		}
	})

	e := NewEngine(hookedTarget(t, s, prefix, h), EngineConfig{BatchSize: 1000, RetryFor: faultRetryFor}).
		WithClock(func() time.Time { return testNow })
	rep, err := e.Run(ctx, RunSpec{Filter: Filter{}, MaxValid: -1, Pause: -1, MaxRate: -1})
	close(done)
	wg.Wait()
	if err != nil {
		t.Fatalf("Run = %v", err)
	}

	after := snapshot(t, s.Client(), prefix)
	var lostRefreshed, leftExpired int
	for i, x := range ss {
		k := prefix + x.id
		switch {
		case refreshed[k]:
			if after[k] != sessionValue(subset[k]) {
				lostRefreshed++
			}
		case i < expired:
			if _, ok := after[k]; ok {
				leftExpired++
			}
		default:
			if after[k] != sessionValue(x) {
				t.Errorf("valid session %s was deleted or changed", x.id)
			}
		}
	}
	t.Logf("refreshed %d of %d; report deleted %d skipped %d matched %d", len(refreshed), len(subset), rep.Deleted, rep.Skipped, rep.Matched)
	if lostRefreshed > 0 {
		t.Errorf("%d refreshed sessions were deleted; want all kept (compare-and-delete)", lostRefreshed)
	}
	if leftExpired > 0 {
		t.Errorf("%d expired, never refreshed sessions are left; want 0", leftExpired)
	}
	if want := int64(expired - len(refreshed)); rep.Deleted != want {
		t.Errorf("Report.Deleted = %d; want %d (expired and never refreshed)", rep.Deleted, want)
	}
	if rep.Deleted+rep.Skipped != rep.Matched || rep.Skipped > int64(len(refreshed)) {
		t.Errorf("Report: deleted %d + skipped %d ≠ matched %d, or skipped > %d refreshed", rep.Deleted, rep.Skipped, rep.Matched, len(refreshed))
	}
	if rep.Skipped == 0 {
		t.Error("Report.Skipped = 0: no refresh fell between a read and its delete; the test did not exercise compare-and-delete")
	}
	checkOther()
}

// Fault 6: a key read as a string session becomes a hash before its compare-and-delete. The
// script must keep it (not a crash: GET on a hash is WRONGTYPE), and count it as changed.
func TestFaultTypeChangeBetweenReadAndDelete(t *testing.T) {
	targets(t, func(t *testing.T, tgt *Target) {
		ctx := context.Background()
		e := engine(tgt)
		o := e.opsFor(nil)
		if tgt.cluster == nil {
			o = e.opsFor(tgt.Client().(*redis.Client))
		}
		for _, mode := range []string{"v", "d", "vt"} {
			ss := population(3, 3, nil)
			for i := range ss {
				ss[i].id += mode
				ss[i].ttl = 0
			}
			put(t, tgt, ss...)
			keys := []string{tgt.Prefix() + ss[0].id, tgt.Prefix() + ss[1].id, tgt.Prefix() + ss[2].id}
			items, err := e.classify(ctx, o, Filter{Expired: true}, keys, true, false, testNow)
			if err != nil {
				t.Fatal(err)
			}
			expected := make([]string, len(items))
			for i, it := range items {
				expected[i] = it.val
				if mode == "d" {
					sum := sha1.Sum([]byte(it.val))
					expected[i] = hex.EncodeToString(sum[:])
				}
			}
			// The middle key becomes a hash with the same fields.
			if err := tgt.Client().Del(ctx, keys[1]).Err(); err != nil {
				t.Fatal(err)
			}
			if err := tgt.Client().HSet(ctx, keys[1], "user_id", ss[1].user, "expires_at", ss[1].expires.Format(time.RFC3339)).Err(); err != nil {
				t.Fatal(err)
			}
			res, err := o.cad(ctx, mode, keys, expected, nil)
			if err != nil {
				t.Fatalf("mode %q: cad = %v; want no error", mode, err)
			}
			if res.deleted != 2 || res.changed != 1 || string(res.flags[:3]) != "101" {
				t.Errorf("mode %q: cad = %+v; want 2 deleted, 1 changed, flags 101", mode, res)
			}
			if typ := tgt.Client().Type(ctx, keys[1]).Val(); typ != "hash" {
				t.Errorf("mode %q: the key that became a hash is now %q; want it kept", mode, typ)
			}
		}
	})

	// The same inside a Run: the hash appears right after the engine read the batch.
	t.Run("run", func(t *testing.T) {
		s := sharedStandalone(t)
		ctx := context.Background()
		prefix := uniquePrefix(t)
		own := NewTarget(s.Client(), prefix, s.Addr())
		ss := population(300, 200, nil)
		put(t, own, ss...)
		victim := prefix + ss[0].id
		var fired atomic.Bool // unpaced: several batches in flight
		h := cmdHook{after: func(cmds []redis.Cmder) {
			if cmds[0].Name() != "mget" || fired.Load() {
				return
			}
			for _, a := range cmds[0].Args()[1:] {
				if a == victim {
					fired.Store(true)
					s.Client().Del(ctx, victim)
					s.Client().HSet(ctx, victim, "user_id", "u")
				}
			}
		}}
		e := NewEngine(hookedTarget(t, s, prefix, h), EngineConfig{BatchSize: 50}).WithClock(func() time.Time { return testNow })
		rep, err := e.Run(ctx, RunSpec{Filter: Filter{}, MaxValid: -1})
		if !fired.Load() {
			t.Fatal("the type change was never injected")
		}
		if err != nil || rep.Deleted != 199 || rep.Skipped != 1 {
			t.Errorf("Run = deleted %d skipped %d, %v; want 199 deleted, 1 skipped", rep.Deleted, rep.Skipped, err)
		}
		if typ := s.Client().Type(ctx, victim).Val(); typ != "hash" {
			t.Errorf("the key that became a hash is now %q; want it kept", typ)
		}
		if left := countPrefix(t, own); left != 101 {
			t.Errorf("%d session keys left; want 100 valid + the hash", left)
		}
	})
}
