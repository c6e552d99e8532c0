package cleanup

import (
	"context"
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/platform-team/sessionbot/cleanup/redistest"
	"github.com/redis/go-redis/v9"
)

var seedNow = time.Date(2025, 11, 26, 10, 0, 0, 0, time.UTC)

// seedCensus is what a scan of Redis finds, classified independently of Seed's own bookkeeping.
type seedCensus struct {
	sessions, expired, valid, noTTL, malformed, expiredNoTTL int64
	byMethod, expiredByMethod                                map[string]int64
	users                                                    map[string]bool
	values                                                   map[string]string // session id → value
	other                                                    map[string]bool
	bytes                                                    int64
	withCanary                                               int64
}

var (
	sessionIDRe = regexp.MustCompile(`^[0-9a-f]{32}$`)
	userIDRe    = regexp.MustCompile(`^auth0\|[0-9]{9}$`)
)

// census scans every node and classifies what it finds under prefix.
func census(t *testing.T, nodes []*redis.Client, prefix, canary string, now time.Time) seedCensus {
	t.Helper()
	ctx := context.Background()
	c := seedCensus{
		byMethod: map[string]int64{}, expiredByMethod: map[string]int64{},
		users: map[string]bool{}, values: map[string]string{}, other: map[string]bool{},
	}
	for _, node := range nodes {
		var cursor uint64
		for {
			keys, next, err := node.Scan(ctx, cursor, "*", 1000).Result()
			if err != nil {
				t.Fatal(err)
			}
			pipe := node.Pipeline()
			gets := make([]*redis.StringCmd, len(keys))
			pttls := make([]*redis.DurationCmd, len(keys))
			for i, k := range keys {
				gets[i], pttls[i] = pipe.Get(ctx, k), pipe.PTTL(ctx, k)
			}
			_, _ = pipe.Exec(ctx)
			for i, k := range keys {
				id, ok := strings.CutPrefix(k, prefix)
				if !ok {
					c.other[k] = true
					continue
				}
				c.sessions++
				if !sessionIDRe.MatchString(id) {
					t.Errorf("session key %q: id is not 32 hex characters", k)
				}
				if pttls[i].Val() == -1 {
					c.noTTL++
				} else if d := pttls[i].Val(); d < 29*time.Minute || d > 91*time.Minute {
					t.Errorf("PTTL %s = %v; want 30–90 min", k, d)
				}
				val, err := gets[i].Result()
				if err != nil {
					if !strings.HasPrefix(err.Error(), "WRONGTYPE") {
						t.Fatalf("GET %s: %v", k, err)
					}
					c.malformed++
					continue
				}
				c.values[id] = val
				c.bytes += int64(len(val))
				var s map[string]any
				if json.Unmarshal([]byte(val), &s) != nil {
					c.malformed++
					continue
				}
				if canary != "" && strings.Contains(val, canary) {
					c.withCanary++
				}
				expStr, _ := s["expires_at"].(string)
				exp, err := time.Parse(time.RFC3339, expStr)
				if err != nil {
					c.malformed++
					continue
				}
				method, _ := s["auth_method"].(string)
				uid, _ := s["user_id"].(string)
				if !userIDRe.MatchString(uid) {
					t.Errorf("%s: user_id %q; want auth0|<9 digits>", k, uid)
				}
				c.users[uid] = true
				c.byMethod[method]++
				for _, f := range []string{"username", "created_at", "last_activity", "access_token", "refresh_token", "token_expires_at"} {
					if _, ok := s[f]; !ok {
						t.Errorf("%s: no %s", k, f)
					}
				}
				if at, _ := s["access_token"].(string); !strings.HasPrefix(at, "eyJhbGc") || (canary != "" && !strings.Contains(at, canary)) {
					t.Errorf("%s: access_token %.20q…; want eyJhbGc… with the canary", k, at)
				}
				if rt, _ := s["refresh_token"].(string); !strings.HasPrefix(rt, "RT_"+canary) {
					t.Errorf("%s: refresh_token %.20q…; want RT_<canary>…", k, rt)
				}
				_, hasCert := s["cert_fingerprint"]
				if hasCert != (method == "mtls_fallback") {
					t.Errorf("%s: auth_method %s, cert_fingerprint present: %v", k, method, hasCert)
				}
				created, _ := time.Parse(time.RFC3339, s["created_at"].(string))
				if !created.Before(exp) {
					t.Errorf("%s: created_at %v not before expires_at %v", k, created, exp)
				}
				if exp.Before(now) {
					c.expired++
					c.expiredByMethod[method]++
					if pttls[i].Val() == -1 {
						c.expiredNoTTL++
					}
					if !created.Before(now) {
						t.Errorf("%s: expired session created in the future (%v)", k, created)
					}
				} else {
					c.valid++
				}
			}
			cursor = next
			if cursor == 0 {
				break
			}
		}
	}
	return c
}

func checkCensus(t *testing.T, res SeedResult, c seedCensus) {
	t.Helper()
	for _, x := range []struct {
		name      string
		got, want int64
	}{
		{"sessions", c.sessions, res.Count},
		{"expired", c.expired, res.Expired},
		{"valid", c.valid, res.Valid},
		{"malformed", c.malformed, res.Malformed},
		{"no TTL", c.noTTL, res.NoTTL},
		{"expired without TTL", c.expiredNoTTL, res.ExpiredNoTTL},
		{"distinct users", int64(len(c.users)), res.Users},
		{"unrelated keys", int64(len(c.other)), res.Unrelated},
	} {
		if x.got != x.want {
			t.Errorf("Redis holds %d %s; SeedResult says %d", x.got, x.name, x.want)
		}
	}
	for m, n := range res.ByAuthMethod {
		if c.byMethod[m] != n {
			t.Errorf("Redis holds %d %s sessions; SeedResult.ByAuthMethod says %d", c.byMethod[m], m, n)
		}
		if c.expiredByMethod[m] != res.ExpiredByAuthMethod[m] {
			t.Errorf("Redis holds %d expired %s sessions; SeedResult says %d", c.expiredByMethod[m], m, res.ExpiredByAuthMethod[m])
		}
	}
	for _, k := range res.UnrelatedKeys {
		if !c.other[k] {
			t.Errorf("unrelated key %q is missing", k)
		}
	}
}

func TestSeedStandalone(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Standalone(t)
	const canary = "CANARY-7f3a9c"
	spec := SeedSpec{Count: 3000, Now: seedNow, Seed: 42, Malformed: 0.05, Unrelated: 40, CanaryToken: canary}
	res, err := Seed(ctx, srv.Client(), spec)
	if err != nil {
		t.Fatal(err)
	}
	// Exact category sizes from the fractions.
	want := SeedResult{Count: 3000, Expired: 900, Valid: 1950, Malformed: 150, NoTTL: 300, Users: 1000, Unrelated: 45}
	if res.Count != want.Count || res.Expired != want.Expired || res.Valid != want.Valid ||
		res.Malformed != want.Malformed || res.NoTTL != want.NoTTL || res.Users != want.Users || res.Unrelated != want.Unrelated {
		t.Errorf("Seed counts = %+v; want %+v", res, want)
	}
	wantMethods := map[string]int64{"oauth2": 1995, "mtls_fallback": 570, "basic_auth": 285}
	for m, n := range wantMethods {
		if res.ByAuthMethod[m] != n {
			t.Errorf("ByAuthMethod[%s] = %d; want %d", m, res.ByAuthMethod[m], n)
		}
	}
	for _, kind := range malformedKinds {
		if res.MalformedByKind[kind] == 0 {
			t.Errorf("MalformedByKind[%s] = 0; want some of every kind", kind)
		}
	}
	c := census(t, []*redis.Client{srv.Client()}, "session:", canary, seedNow)
	checkCensus(t, res, c)
	wellFormed := res.Expired + res.Valid
	if c.withCanary < wellFormed {
		t.Errorf("%d values carry the canary token; want all %d well-formed ones", c.withCanary, wellFormed)
	}
	if avg := res.Bytes / int64(len(c.values)); avg < 500 || avg > 560 {
		t.Errorf("average value size %d bytes; want ~530", avg)
	}
	if c.bytes != res.Bytes {
		t.Errorf("Redis holds %d value bytes; SeedResult.Bytes = %d", c.bytes, res.Bytes)
	}
	for _, k := range res.UnrelatedKeys {
		if strings.HasPrefix(k, "session:") {
			t.Errorf("unrelated key %q has the session prefix", k)
		}
	}
	for _, k := range []string{"sessions:index", "SESSION:0123456789abcdef", "session", "ratelimit:auth0-api", "queue:session-events"} {
		if !c.other[k] {
			t.Errorf("look-alike or typed key %q missing", k)
		}
	}
	for u := range 3 {
		if !c.users[SeedUserID(u)] {
			t.Errorf("user %s owns no session", SeedUserID(u))
		}
	}
}

func TestSeedDeterministic(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Standalone(t)
	spec := SeedSpec{Count: 500, Now: seedNow, Seed: 7, Malformed: 0.1}
	a, b := spec, spec
	a.Prefix, b.Prefix = "a:", "b:"
	if _, err := Seed(ctx, srv.Client(), a); err != nil {
		t.Fatal(err)
	}
	if _, err := Seed(ctx, srv.Client(), b); err != nil {
		t.Fatal(err)
	}
	ca := census(t, []*redis.Client{srv.Client()}, "a:", "", seedNow)
	cb := census(t, []*redis.Client{srv.Client()}, "b:", "", seedNow)
	if len(ca.values) == 0 || len(ca.values) != len(cb.values) {
		t.Fatalf("%d and %d string values; want equal and non-zero", len(ca.values), len(cb.values))
	}
	for id, v := range ca.values {
		if cb.values[id] != v {
			t.Fatalf("session %s differs between two seeds with the same Seed", id)
		}
	}
	c := spec
	c.Seed = 8
	res, err := Seed(ctx, srv.Client(), c)
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := srv.Client().DBSize(ctx).Result(); n != 1000+res.Count {
		t.Errorf("DBSIZE = %d after a third seed with another Seed; want %d (no collisions)", n, 1000+res.Count)
	}
}

func TestSeedCluster(t *testing.T) {
	ctx := context.Background()
	cl := redistest.NewCluster(t)
	res, err := Seed(ctx, cl.Client(), SeedSpec{Count: 2000, Now: seedNow, Seed: 1, Malformed: 0.02, Unrelated: 10})
	if err != nil {
		t.Fatal(err)
	}
	var nodes []*redis.Client
	for _, m := range cl.Masters() {
		n, err := m.Client().DBSize(ctx).Result()
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			t.Errorf("master %s holds no keys", m.Addr())
		}
		nodes = append(nodes, m.Client())
	}
	checkCensus(t, res, census(t, nodes, "session:", "", seedNow))
}

func TestSeedDefaultsAndNone(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Standalone(t)
	res, err := Seed(ctx, srv.Client(), SeedSpec{Count: 100, Prefix: "s:", Expired: -1, NoTTL: -1, Users: 5,
		AuthMethods: map[string]float64{"basic_auth": 1}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Expired != 0 || res.Valid != 100 || res.NoTTL != 0 || res.ByAuthMethod["basic_auth"] != 100 || res.Users != 5 {
		t.Errorf("Seed = %+v; want 100 valid basic_auth sessions of 5 users, all with a TTL", res)
	}
	if time.Since(res.Now) > time.Minute {
		t.Errorf("Now = %v; want time.Now() by default", res.Now)
	}
	checkCensus(t, res, census(t, []*redis.Client{srv.Client()}, "s:", "", res.Now))
}

func TestSeedCancelled(t *testing.T) {
	srv := redistest.Standalone(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Seed(ctx, srv.Client(), SeedSpec{Count: 5000}); err == nil {
		t.Error("Seed with a cancelled context succeeded; want an error")
	}
}

func TestSeedInvalid(t *testing.T) {
	for _, tt := range []struct {
		name string
		spec SeedSpec
	}{
		{"negative count", SeedSpec{Count: -1}},
		{"fraction above 1", SeedSpec{Count: 10, Expired: 1.5}},
		{"expired plus malformed above 1", SeedSpec{Count: 10, Expired: 0.8, Malformed: 0.5}},
		{"zero weights", SeedSpec{Count: 10, AuthMethods: map[string]float64{"oauth2": 0}}},
		{"negative weight", SeedSpec{Count: 10, AuthMethods: map[string]float64{"oauth2": -1}}},
		{"prefix shadows unrelated keys", SeedSpec{Count: 1, Prefix: "cb:", Unrelated: 2}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			// An unusable client: validation must fail before any command is sent, except for
			// the prefix check, which the closed client also answers with an error.
			c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
			_ = c.Close()
			if _, err := Seed(context.Background(), c, tt.spec); err == nil {
				t.Errorf("Seed(%+v) succeeded; want an error", tt.spec)
			}
		})
	}
}

func TestSeedSessionJSON(t *testing.T) {
	at := func(h int) time.Time { return seedNow.Add(time.Duration(h) * time.Hour) }
	for _, tt := range []struct {
		name string
		s    SeedSession
		want string
	}{
		{"empty", SeedSession{}, `{}`},
		{"oauth2", SeedSession{UserID: "auth0|123456789", Username: "john.doe@example.com", AuthMethod: "oauth2",
			CreatedAt: at(0), LastActivity: at(0).Add(30 * time.Minute), ExpiresAt: at(1),
			AccessToken: "eyJhbGc...", RefreshToken: "RT_abc123...", TokenExpiresAt: at(1)},
			`{"user_id":"auth0|123456789","username":"john.doe@example.com","auth_method":"oauth2",` +
				`"created_at":"2025-11-26T10:00:00Z","last_activity":"2025-11-26T10:30:00Z","expires_at":"2025-11-26T11:00:00Z",` +
				`"access_token":"eyJhbGc...","refresh_token":"RT_abc123...","token_expires_at":"2025-11-26T11:00:00Z"}`},
		{"mtls", SeedSession{AuthMethod: "mtls_fallback", CertCN: "admin.trading-platform.local", CertFingerprint: "abc123",
			CertNotAfter: at(7 * 24), CRLStatus: "valid"},
			`{"auth_method":"mtls_fallback","cert_cn":"admin.trading-platform.local","cert_fingerprint":"abc123",` +
				`"cert_not_after":"2025-12-03T10:00:00Z","crl_status":"valid"}`},
		{"override and extra", SeedSession{UserID: "u", ExpiresAt: at(1),
			Override: map[string]any{"expires_at": "soon", "zz": 1, "aa": nil, "username": `a"b`}},
			`{"user_id":"u","username":"a\"b","expires_at":"soon","aa":null,"zz":1}`},
		{"escaping and zone", SeedSession{UserID: "<x>\n", CreatedAt: time.Date(2025, 1, 1, 12, 0, 0, 5e8, time.FixedZone("X", 3600))},
			`{"user_id":"\u003cx\u003e\n","created_at":"2025-01-01T11:00:00Z"}`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := string(SessionJSON(tt.s))
			if got != tt.want {
				t.Errorf("SessionJSON(%s) =\n%s\nwant\n%s", tt.name, got, tt.want)
			}
			if !json.Valid([]byte(got)) {
				t.Errorf("SessionJSON(%s) is not valid JSON", tt.name)
			}
		})
	}
}

// BenchmarkSeed1M seeds 1,000,000 sessions per iteration into a fresh redis-server:
// go test -run XXX -bench Seed1M -benchtime 1x ./cleanup
func BenchmarkSeed1M(b *testing.B) {
	const n = 1_000_000
	for b.Loop() {
		b.StopTimer()
		srv := redistest.Standalone(b)
		b.StartTimer()
		res, err := Seed(context.Background(), srv.Client(), SeedSpec{Count: n, Seed: 1, Unrelated: 1000})
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		b.ReportMetric(float64(n)/res.Duration.Seconds(), "sessions/s")
		srv.Stop()
		b.StartTimer()
	}
}

// BenchmarkSeedDraw measures drawing and encoding one session, without Redis.
func BenchmarkSeedDraw(b *testing.B) {
	g, err := newSeeder(SeedSpec{Count: 1 << 30, Malformed: 0.01})
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		_ = g.next()
	}
}
