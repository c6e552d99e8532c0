package bot

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/platform-team/sessionbot/cleanup"
	"github.com/platform-team/sessionbot/cleanup/redistest"
)

func sessionJSON(authMethod string, expires time.Time) string {
	created := expires.Add(-2 * time.Hour)
	return fmt.Sprintf(`{"user_id":"auth0|1","username":"a@example.com","auth_method":%q,`+
		`"created_at":%q,"last_activity":%q,"expires_at":%q,"access_token":"x"}`,
		authMethod, created.Format(time.RFC3339), created.Format(time.RFC3339), expires.Format(time.RFC3339))
}

// expireKeys makes the server(s) count n more expired keys: keys set with a 1 ms TTL are read
// until expired (lazily, on access). It waits for a condition, not a duration.
func expireKeys(t *testing.T, c redis.Cmdable, n int, expiredKeys func() int64) {
	t.Helper()
	ctx := context.Background()
	before := expiredKeys()
	for i := range n {
		c.Set(ctx, fmt.Sprintf("tmp:%d", i), "x", time.Millisecond)
	}
	deadline := time.Now().Add(5 * time.Second)
	for expiredKeys() < before+int64(n) {
		if time.Now().After(deadline) {
			t.Fatalf("server did not expire %d keys within 5s", n)
		}
		for i := range n {
			c.Get(ctx, fmt.Sprintf("tmp:%d", i))
		}
	}
}

// expiredKeysOf sums INFO stats expired_keys over servers.
func expiredKeysOf(t *testing.T, servers ...*redistest.Server) func() int64 {
	return func() int64 {
		t.Helper()
		var total int64
		for _, s := range servers {
			info, err := s.Client().Info(context.Background(), "stats").Result()
			if err != nil {
				t.Fatal(err)
			}
			n, _ := strconv.ParseInt(infoField(info, "expired_keys"), 10, 64)
			total += n
		}
		return total
	}
}

func TestSamplerStandalone(t *testing.T) {
	srv := redistest.Standalone(t)
	c := srv.Client()
	ctx := context.Background()
	now := time.Now()
	set := func(key, val string, ttl time.Duration) {
		t.Helper()
		if err := c.Set(ctx, key, val, ttl).Err(); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 3 {
		set(fmt.Sprintf("session:valid%d", i), sessionJSON("oauth2", now.Add(time.Hour)), time.Hour)
	}
	for i := range 2 {
		set(fmt.Sprintf("session:old%d", i), sessionJSON("saml", now.Add(-time.Hour)), 48*time.Hour)
	}
	set("session:orphan", sessionJSON("basic_auth", now.Add(time.Hour)), 0)
	set("session:broken", "not json", 5*time.Minute)
	set("cb:unrelated", "x", 0)

	eng := cleanup.NewEngine(cleanup.NewTarget(c, "session:", srv.Addr()), cleanup.EngineConfig{BatchSize: 100})
	var mu sync.Mutex
	ops := map[string]int{}
	eng.ObserveCommands(func(op string, _ time.Duration) {
		mu.Lock()
		ops[op]++
		mu.Unlock()
	})
	m := NewMetrics("v")
	s := &sampler{eng: eng, m: m, nodes: map[string]nodeExpiry{}}
	s.sample(ctx, 0)
	// Keys and TTLs only: SCAN and PTTL, never a value.
	mu.Lock()
	if len(ops) != 2 || ops["scan"] == 0 || ops["ttl"] == 0 {
		t.Errorf("the sampler's Redis round trips = %v; want only scan and ttl", ops)
	}
	mu.Unlock()

	for _, tt := range []struct {
		name, labels string
		want         float64
	}{
		{"sessionbot_redis_up", "", 1},
		{"sessionbot_sessions", "", 7},
		{"sessionbot_sessions_orphaned", "", 1},
		// Need the values: left to full scans (/sessions stats).
		{"sessionbot_sessions_expired", "", 0},
		{"sessionbot_sessions_malformed", "", 0},
		{"sessionbot_sessions_bytes", "", 0},
		{"sessionbot_sessions_by_auth_method", "auth_method=other", 0},
		{"sessionbot_sessions_sample_complete", "", 1},
		{"sessionbot_sessions_by_ttl", "bucket=none", 1},
		{"sessionbot_sessions_by_ttl", "bucket=le_10m", 1},
		{"sessionbot_sessions_by_ttl", "bucket=le_1h", 3},
		{"sessionbot_sessions_by_ttl", "bucket=gt_24h", 2},
		{"sessionbot_redis_latency_seconds", "", 1},
		{"sessionbot_redis_expired_keys_total", "", 0},
	} {
		if got := value(t, m, tt.name, tt.labels); got != tt.want {
			t.Errorf("after first sample: %s{%s} = %v; want %v", tt.name, tt.labels, got, tt.want)
		}
	}
	// A full scan (what /sessions stats publishes) sets them.
	st, err := eng.Stats(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	m.SetSessionStats(st)
	for _, tt := range []struct {
		name, labels string
		want         float64
	}{
		{"sessionbot_sessions_expired", "", 2},
		{"sessionbot_sessions_malformed", "", 1},
		{"sessionbot_sessions_by_auth_method", "auth_method=oauth2", 3},
		{"sessionbot_sessions_by_auth_method", "auth_method=saml", 2},
	} {
		if got := value(t, m, tt.name, tt.labels); got != tt.want {
			t.Errorf("after a full scan: %s{%s} = %v; want %v", tt.name, tt.labels, got, tt.want)
		}
	}
	if v := value(t, m, "sessionbot_sessions_bytes", ""); v <= 0 {
		t.Errorf("sessions_bytes after a full scan = %v; want > 0", v)
	}

	// A budget smaller than the keyspace gives a partial sample, flagged as such.
	// (The engine checks the budget between SCAN batches, so batches must be smaller than it.)
	small := &sampler{eng: cleanup.NewEngine(eng.Target(), cleanup.EngineConfig{BatchSize: 1}), m: m, nodes: map[string]nodeExpiry{}}
	small.sample(ctx, 2)
	if v := value(t, m, "sessionbot_sessions_sample_complete", ""); v != 0 {
		t.Errorf("with maxKeys=2: sample_complete = %v; want 0", v)
	}
	if v := value(t, m, "sessionbot_sessions", ""); v >= 7 {
		t.Errorf("with maxKeys=2: sessions = %v; want fewer than 7", v)
	}

	// Expired keys are counted from the first sample on, across a server restart.
	expireKeys(t, c, 4, expiredKeysOf(t, srv))
	s.sample(ctx, 0)
	if v := value(t, m, "sessionbot_redis_expired_keys_total", ""); v != 4 {
		t.Errorf("expired_keys_total = %v; want 4", v)
	}
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	expireKeys(t, c, 3, expiredKeysOf(t, srv))
	s.sample(ctx, 0)
	if v := value(t, m, "sessionbot_redis_expired_keys_total", ""); v != 7 {
		t.Errorf("expired_keys_total after restart = %v; want 7 (4 + 3 since restart)", v)
	}

	// Redis gone: redis_up drops, the last sample's numbers and timestamp stay.
	srv.Kill()
	sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	s.sample(sctx, 0)
	if v := value(t, m, "sessionbot_redis_up", ""); v != 0 {
		t.Errorf("redis_up with the server killed = %v; want 0", v)
	}
}

func TestSamplerReturnsOnCancel(t *testing.T) {
	h := newHarness(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	done := make(chan struct{})
	go func() {
		h.bot.RunSessionSampler(ctx, time.Hour, 10)
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("RunSessionSampler did not return after its context ended")
	}
}

func TestSamplerCluster(t *testing.T) {
	cl := redistest.NewCluster(t)
	c := cl.Client()
	ctx := context.Background()
	for i := range 30 {
		if err := c.Set(ctx, fmt.Sprintf("session:s%d", i), sessionJSON("oauth2", time.Now().Add(time.Hour)), time.Hour).Err(); err != nil {
			t.Fatal(err)
		}
	}
	eng := cleanup.NewEngine(cleanup.NewTarget(c, "session:", "cluster"), cleanup.EngineConfig{BatchSize: 100})
	m := NewMetrics("v")
	s := &sampler{eng: eng, m: m, nodes: map[string]nodeExpiry{}}
	s.sample(ctx, 0)
	if v := value(t, m, "sessionbot_sessions", ""); v != 30 {
		t.Errorf("sessions on cluster = %v; want 30", v)
	}
	if len(s.nodes) != 3 {
		t.Errorf("expired_keys read from %d masters; want 3", len(s.nodes))
	}
	// Keys expiring on all masters are summed.
	expireKeys(t, c, 20, expiredKeysOf(t, cl.Masters()...))
	s.sample(ctx, 0)
	if v := value(t, m, "sessionbot_redis_expired_keys_total", ""); v != 20 {
		t.Errorf("expired_keys_total on cluster = %v; want 20", v)
	}
	if v := value(t, m, "sessionbot_redis_up", ""); v != 1 {
		t.Errorf("redis_up = %v; want 1", v)
	}
}

// With two replicas on one target, the sessions are scanned by one of them only, the holder of
// the sampler lease; both still report that Redis is up. When the holder stops, the other takes
// over once the lease has run out.
func TestSamplerRunsOnOneOfTwoReplicas(t *testing.T) {
	h := newHarness(t)
	h.seed(sessionSpec{n: 7})
	var ms [2]*Metrics
	var bots [2]*Bot
	for i := range bots {
		ms[i] = NewMetrics("v")
		d := h.deps()
		d.Metrics = ms[i]
		bots[i] = h.newBot(d)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stops := [2]context.CancelFunc{}
	done := [2]chan struct{}{make(chan struct{}), make(chan struct{})}
	for i, b := range bots {
		rctx, stop := context.WithCancel(ctx)
		stops[i] = stop
		go func() {
			defer close(done[i])
			b.RunSessionSampler(rctx, 100*time.Millisecond, 0)
		}()
	}
	sampled := func(i int) bool { return value(t, ms[i], "sessionbot_sessions_sampled_timestamp_seconds", "") > 0 }
	redisUp := func(i int) bool { return value(t, ms[i], "sessionbot_redis_up", "") == 1 }
	deadline := time.Now().Add(10 * time.Second)
	for !(redisUp(0) && redisUp(1) && (sampled(0) || sampled(1))) {
		if time.Now().After(deadline) {
			t.Fatal("the replicas did not sample within 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	holder := 0
	if sampled(1) {
		holder = 1
	}
	other := 1 - holder
	// Five more samples of the other replica (each one PING): it never scans.
	pings := value(t, ms[other], "sessionbot_redis_latency_seconds", "")
	for value(t, ms[other], "sessionbot_redis_latency_seconds", "") < pings+5 {
		if time.Now().After(deadline) {
			t.Fatal("the other replica stopped sampling")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if sampled(other) {
		t.Fatalf("both replicas scanned the sessions")
	}
	if v := value(t, ms[holder], "sessionbot_sessions", ""); v != 7 {
		t.Errorf("sessions on the lease holder = %v; want 7", v)
	}

	// The holder stops; the lease runs out (3 intervals) and the other replica takes over.
	stops[holder]()
	<-done[holder]
	deadline = time.Now().Add(10 * time.Second)
	for !sampled(other) {
		if time.Now().After(deadline) {
			t.Fatal("the other replica did not take over the sampling within 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done[other]
}
