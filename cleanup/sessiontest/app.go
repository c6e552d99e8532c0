// Package sessiontest plays an application that keeps using its sessions while a cleanup runs —
// refreshing them, logging users in and out, writing sessions it holds in memory back — and
// checks the safety invariants of SPEC §12 afterwards, from what is left in Redis, the run's
// report and its backup files alone. It is shared by the engine's and the bot's tests.
package sessiontest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/platform-team/sessionbot/cleanup"
)

// Config shapes the population and the traffic.
type Config struct {
	Prefix   string
	Now      time.Time // the engine's clock: what "expired" and "older than" mean
	Seed     uint64
	Sessions int // initial sessions (plus a few malformed keys)
	// Role sizes, drawn from the sessions the filter matches at the start (disjoint):
	Hot       int // rewritten over and over (SET XX KEEPTTL, new last_activity) during the run
	Unmatch   int // changed once so that they no longer match the filter
	Logout    int // deleted by the application (DEL)
	WriteBack int // written back with plain SET after the cleanup deleted them (an in-flight request)
	// Creators log new matching sessions in during the run (one every few ms each).
	Creators int
	// Writers is the number of goroutines rewriting the hot sessions.
	Writers int
	// RefreshEvery paces the writers: each hot session is rewritten at most this often, as an
	// application touches a session per request (the report: about every 10 ms).
	// 0: as fast as the writers go.
	RefreshEvery time.Duration
}

// Users is the number of distinct user ids in the population; user 0 is UserID(0).
const Users = 20

// UserID is the user_id of user n.
func UserID(n int) string { return fmt.Sprintf("auth0|%09d", 100000+n) }

// App is a running population and its traffic.
type App struct {
	c   redis.UniversalClient
	cfg Config
	f   cleanup.Filter
	rng *rand.Rand

	mu           sync.Mutex
	births       map[string]int    // times each key came into existence
	writerDeaths map[string]int    // times the application deleted it (DEL answered 1)
	last         map[string]string // last value written to each key
	bornDuring   map[string]bool   // created or written back during the run
	base         map[string]cleanup.SeedSession
	unrelated    map[string]string
	unmatched    int
	unmatchedKey map[string]bool // changed so that it no longer matches (SET XX answered OK)
	malformed    int             // malformed keys written by Populate
	roles        struct{ hot, unmatch, logout, writeBack []string }

	stop   context.CancelFunc
	wg     sync.WaitGroup
	errs   []error
	writes int64
}

// New prepares an application of sessions under cfg.Prefix whose traffic is shaped for f (the
// filter of the cleanup that will run).
func New(c redis.UniversalClient, f cleanup.Filter, cfg Config) *App {
	return &App{
		c: c, cfg: cfg, f: f.Normalize(), rng: rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15)),
		births: map[string]int{}, writerDeaths: map[string]int{}, last: map[string]string{},
		bornDuring: map[string]bool{}, base: map[string]cleanup.SeedSession{}, unrelated: map[string]string{},
		unmatchedKey: map[string]bool{},
	}
}

// SeedFromEnv returns SESSIONBOT_SEED when set (to replay a failure), else a fresh seed.
func SeedFromEnv() uint64 {
	if s := os.Getenv("SESSIONBOT_SEED"); s != "" {
		if n, err := strconv.ParseUint(s, 10, 64); err == nil {
			return n
		}
	}
	return rand.Uint64()
}

func (a *App) session(i int) cleanup.SeedSession {
	methods := []string{"oauth2", "oauth2", "oauth2", "oauth2", "oauth2", "oauth2", "oauth2", "mtls_fallback", "mtls_fallback", "basic_auth"}
	now := a.cfg.Now
	s := cleanup.SeedSession{
		UserID: UserID(i % Users), Username: fmt.Sprintf("user%d@example.com", i%Users),
		AuthMethod: methods[a.rng.IntN(len(methods))],
		CreatedAt:  now.Add(-time.Duration(1+a.rng.IntN(20*24)) * time.Hour),
		ExpiresAt:  now.Add(time.Duration(1+a.rng.IntN(3600)) * time.Second),
		// A canary: no output may ever contain a token.
		AccessToken: "eyJhbGc.CANARY-TOKEN-7f3e9a", RefreshToken: "RT_CANARY-TOKEN-7f3e9a",
	}
	if a.rng.IntN(10) < 3 {
		s.ExpiresAt = now.Add(-time.Duration(1+a.rng.IntN(3600)) * time.Second)
	}
	s.LastActivity = s.CreatedAt
	return s
}

// Populate writes the initial sessions, a few malformed keys and keys the cleanup must never
// touch (other prefixes, the bot's state namespace). Roles are drawn from the keys the filter
// matches now.
func (a *App) Populate(ctx context.Context) error {
	p := a.cfg.Prefix
	pipe := a.c.Pipeline()
	var matching []string
	for i := range a.cfg.Sessions {
		k := fmt.Sprintf("%ss%06d-%016x", p, i, a.rng.Uint64())
		s := a.session(i)
		v := string(cleanup.SessionJSON(s))
		ttl := time.Hour
		if a.rng.IntN(10) == 0 {
			ttl = 0 // an orphan
		}
		pipe.Set(ctx, k, v, ttl)
		a.births[k]++
		a.last[k] = v
		a.base[k] = s
		pttl := ttl
		if ttl == 0 {
			pttl = -1
		}
		ss, ok := cleanup.DecodeSession([]byte(v))
		if acts(a.f.Decide(ss, ok, pttl, a.cfg.Now)) {
			matching = append(matching, k)
		}
	}
	malformed := []string{"not json {", `[1,2]`, `{"user_id":"u"}`, `{"expires_at":"yesterday"}`}
	for i, v := range malformed {
		k := fmt.Sprintf("%smalformed-%d", p, i)
		pipe.Set(ctx, k, v, time.Hour)
		a.births[k]++
		a.last[k] = v
	}
	pipe.HSet(ctx, p+"malformed-hash", "user_id", "u")
	a.births[p+"malformed-hash"]++
	a.malformed = len(malformed) + 1
	root := strings.TrimSuffix(p, "session:")
	for _, k := range []string{root + "cb:payments", root + "feature:flags", root + "sessions", root + "xsession:1", cleanup.StateNamespace + "lease:" + root, cleanup.StateNamespace + "{state}:job:" + root} {
		a.unrelated[k] = "keep-" + k
		pipe.Set(ctx, k, a.unrelated[k], 0)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("populate: %w", err)
	}
	a.rng.Shuffle(len(matching), func(i, j int) { matching[i], matching[j] = matching[j], matching[i] })
	take := func(n int) []string {
		n = min(n, len(matching))
		out := matching[:n]
		matching = matching[n:]
		return out
	}
	a.roles.hot = take(a.cfg.Hot)
	if !a.f.All {
		a.roles.unmatch = take(a.cfg.Unmatch)
	}
	a.roles.logout = take(a.cfg.Logout)
	a.roles.writeBack = take(a.cfg.WriteBack)
	return nil
}

// acts reports whether a run acts on a key decided v: deletes it, or repairs its TTL.
func acts(v cleanup.Verdict) bool { return v == cleanup.Delete || v == cleanup.Repair }
