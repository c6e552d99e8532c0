package cleanup

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// SeedSpec describes synthetic sessions for demos, tests and benchmarks. Fractions are of Count;
// a zero fraction takes its default, a negative one means none.
type SeedSpec struct {
	Prefix string    // key prefix; default "session:"
	Count  int       // session keys to write
	Now    time.Time // "now" for expires_at and friends; zero: time.Now()
	Seed   int64     // the same spec and Seed write the same keys and values

	// AuthMethods weighs auth_method values; nil: oauth2 70, mtls_fallback 20, basic_auth 10.
	AuthMethods map[string]float64
	Expired     float64 // expires_at in the past; default 0.3
	NoTTL       float64 // keys without a Redis TTL (malformed ones included); default 0.1
	Malformed   float64 // values the default (expired) filter cannot evaluate; default 0
	Users       int     // distinct user_ids among well-formed sessions; default Count/3 (≥ 1)

	// Unrelated writes that many cb:* and feature:* string keys, plus a hash, a list and keys
	// that merely resemble the prefix ("sessions:index", "SESSION:…", "session"): none of them
	// may ever be touched by a cleanup.
	Unrelated int
	// CanaryToken, when set, is embedded in every access_token and refresh_token, so tests can
	// assert it never appears in any output.
	CanaryToken string
}

// The kinds of malformed session values Seed writes, as keys of SeedResult.MalformedByKind.
const (
	MalformedNotJSON     = "not_json"      // a truncated JSON object
	MalformedJSONArray   = "json_array"    // valid JSON, not an object
	MalformedNoExpiresAt = "no_expires_at" // a session object without expires_at (other fields fine)
	MalformedBadTime     = "bad_time"      // every time field unparseable
	MalformedNotString   = "not_string"    // a Redis hash, not a string: WRONGTYPE for GET
)

var malformedKinds = []string{MalformedNotJSON, MalformedJSONArray, MalformedNoExpiresAt, MalformedBadTime, MalformedNotString}

// SeedResult says exactly what Seed wrote, so tests can assert exact expectations.
type SeedResult struct {
	Prefix string
	Now    time.Time // seconds precision, as written in the sessions

	Count     int64 // session keys: Expired + Valid + Malformed
	Expired   int64 // well-formed, expires_at < Now (by at least a minute)
	Valid     int64 // well-formed, expires_at > Now (by at least five minutes)
	Malformed int64
	NoTTL     int64 // session keys without a TTL, malformed included; the others expire in 30–90 min

	ExpiredNoTTL int64 // of Expired, without a TTL
	// UndecodableNoTTL counts, of NoTTL, the values that are not JSON objects or not strings:
	// --orphans keeps them (only --all and --session-id remove malformed values).
	UndecodableNoTTL    int64
	ByAuthMethod        map[string]int64 // well-formed sessions by auth_method
	ExpiredByAuthMethod map[string]int64 // expired sessions by auth_method
	// MalformedByAuthMethod counts malformed values that still carry an auth_method (kinds
	// no_expires_at and bad_time): an --auth-method filter, which needs no expires_at, may
	// match the no_expires_at ones.
	MalformedByAuthMethod map[string]int64
	MalformedByKind       map[string]int64
	Users                 int64 // distinct user_ids among well-formed sessions (SeedUserID(0…Users-1))

	Unrelated     int64
	UnrelatedKeys []string
	Bytes         int64 // total length of the string session values written
	Duration      time.Duration
}

// seedBatch is the number of sessions written per pipeline round trip.
const seedBatch = 1000

// Seed writes spec.Count synthetic sessions (and spec.Unrelated other keys) with per-key
// commands in pipelines of 1000, so it works on a Cluster too. Keys with the same id are
// overwritten. It returns what it wrote; on error (the first one, or ctx's) some keys are
// written and the result's counts may include sessions that were drawn but not written.
func Seed(ctx context.Context, c redis.UniversalClient, spec SeedSpec) (SeedResult, error) {
	start := time.Now()
	g, err := newSeeder(spec)
	if err != nil {
		return SeedResult{}, err
	}
	// One goroutine draws and encodes the next batch while this one writes the previous: the
	// draws stay in one sequence (deterministic) and encoding overlaps the round trip.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	batches := make(chan []seedEntry, 2)
	go func() {
		defer close(batches)
		for i := 0; i < spec.Count; {
			batch := make([]seedEntry, 0, seedBatch)
			for ; i < spec.Count && len(batch) < seedBatch; i++ {
				batch = append(batch, g.next())
			}
			select {
			case batches <- batch:
			case <-ctx.Done():
				return
			}
		}
	}()
	pipe := c.Pipeline()
	for batch := range batches {
		for _, e := range batch {
			e.queue(ctx, pipe)
		}
		if err = execSeed(ctx, pipe); err != nil {
			cancel()
			for range batches { // wait for the producer before reading g.res
			}
			return g.res, err
		}
	}
	if err := ctx.Err(); err != nil { // the producer stopped early
		return g.res, err
	}
	res := g.res
	if spec.Unrelated > 0 {
		keys, err := g.unrelated(ctx, pipe, spec.Unrelated)
		if err != nil {
			return res, err
		}
		res.UnrelatedKeys = keys
		res.Unrelated = int64(len(keys))
	}
	res.Users = min(int64(g.users), res.Expired+res.Valid)
	res.Duration = time.Since(start)
	return res, nil
}

// seedEntry is one session key to write: a string value, or a hash when hash is set.
type seedEntry struct {
	key  string
	val  []byte
	hash []any
	ttl  time.Duration // 0: no TTL
}

func (e seedEntry) queue(ctx context.Context, pipe redis.Pipeliner) {
	switch {
	case e.hash != nil:
		pipe.HSet(ctx, e.key, e.hash...)
		if e.ttl > 0 {
			pipe.PExpire(ctx, e.key, e.ttl)
		}
	case e.ttl > 0:
		pipe.Do(ctx, "SET", e.key, e.val, "PX", e.ttl.Milliseconds())
	default:
		pipe.Do(ctx, "SET", e.key, e.val)
	}
}

func execSeed(ctx context.Context, pipe redis.Pipeliner) error {
	if err := ctx.Err(); err != nil {
		pipe.Discard()
		return err
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("seed: %w", err)
	}
	return nil
}

// seeder draws sessions so that every category has an exact size: each draw picks a category
// with probability remaining-in-category / remaining-overall.
type seeder struct {
	spec  SeedSpec
	rng   *rand.Rand
	now   time.Time
	users int

	left       int // sessions left to draw
	malformed  int // malformed left
	wellFormed int // well-formed drawn so far
	wfLeft     int // well-formed left
	expired    int // expired left (of wfLeft)
	noTTL      int // no-TTL left (of left)
	methods    []string
	methodLeft []int
	scratch    []byte // encoding buffer reused across sessions

	res SeedResult
}

func newSeeder(spec SeedSpec) (*seeder, error) {
	if spec.Count < 0 || spec.Unrelated < 0 || spec.Users < 0 {
		return nil, errors.New("seed: Count, Unrelated and Users must not be negative")
	}
	if spec.Prefix == "" {
		spec.Prefix = "session:"
	}
	frac := func(name string, f, def float64) (float64, error) {
		switch {
		case f == 0:
			return def, nil
		case f < 0:
			return 0, nil
		case f > 1 || math.IsNaN(f):
			return 0, fmt.Errorf("seed: %s = %v; want a fraction in [0, 1]", name, f)
		}
		return f, nil
	}
	var errs []error
	expired, err := frac("Expired", spec.Expired, 0.3)
	errs = append(errs, err)
	noTTL, err := frac("NoTTL", spec.NoTTL, 0.1)
	errs = append(errs, err)
	malformed, err := frac("Malformed", spec.Malformed, 0)
	errs = append(errs, err)
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	n := spec.Count
	nMalformed := int(math.Round(float64(n) * malformed))
	nExpired := int(math.Round(float64(n) * expired))
	if nMalformed+nExpired > n {
		return nil, fmt.Errorf("seed: Expired (%v) + Malformed (%v) exceed 1", expired, malformed)
	}
	weights := spec.AuthMethods
	if weights == nil {
		weights = map[string]float64{"oauth2": 70, "mtls_fallback": 20, "basic_auth": 10}
	}
	methods, methodCounts, err := apportion(weights, n-nMalformed)
	if err != nil {
		return nil, err
	}
	users := spec.Users
	if users == 0 {
		users = max(n/3, 1)
	}
	now := spec.Now
	if now.IsZero() {
		now = time.Now()
	}
	now = now.UTC().Truncate(time.Second)

	g := &seeder{
		spec: spec, now: now, users: users,
		rng:  rand.New(rand.NewPCG(uint64(spec.Seed), 0x5e55_1011_b07)),
		left: n, malformed: nMalformed, wfLeft: n - nMalformed, expired: nExpired,
		noTTL:   int(math.Round(float64(n) * noTTL)),
		methods: methods, methodLeft: methodCounts,
	}
	g.res = SeedResult{
		Prefix: spec.Prefix, Now: now,
		ByAuthMethod:          make(map[string]int64),
		ExpiredByAuthMethod:   make(map[string]int64),
		MalformedByAuthMethod: make(map[string]int64),
		MalformedByKind:       make(map[string]int64),
	}
	return g, nil
}

// apportion splits total among the weighted names exactly (largest remainder), names sorted.
func apportion(weights map[string]float64, total int) ([]string, []int, error) {
	names := make([]string, 0, len(weights))
	var sum float64
	for name, w := range weights {
		if name == "" || w < 0 || math.IsNaN(w) || math.IsInf(w, 0) {
			return nil, nil, fmt.Errorf("seed: AuthMethods[%q] = %v; want a non-empty name and a weight >= 0", name, w)
		}
		names = append(names, name)
		sum += w
	}
	if sum <= 0 {
		return nil, nil, errors.New("seed: AuthMethods weights sum to zero")
	}
	slices.Sort(names)
	counts := make([]int, len(names))
	rem := make([]float64, len(names))
	given := 0
	for i, name := range names {
		exact := float64(total) * weights[name] / sum
		counts[i] = int(exact)
		rem[i] = exact - float64(counts[i])
		given += counts[i]
	}
	for ; given < total; given++ {
		best := 0
		for i := range rem {
			if rem[i] > rem[best] {
				best = i
			}
		}
		counts[best]++
		rem[best] = -1
	}
	return names, counts, nil
}

// draw reports true with probability *k / n and, if so, takes one from *k.
func (g *seeder) draw(k *int, n int) bool {
	if *k > 0 && g.rng.IntN(n) < *k {
		*k--
		return true
	}
	return false
}

// next draws one session and counts it in g.res.
func (g *seeder) next() seedEntry {
	res := &g.res
	isMalformed := g.draw(&g.malformed, g.left)
	noTTL := g.draw(&g.noTTL, g.left)
	g.left--
	key := g.spec.Prefix + g.sessionID()
	var ttl time.Duration
	if noTTL {
		res.NoTTL++
	} else {
		ttl = 30*time.Minute + time.Duration(g.rng.Int64N(int64(time.Hour/time.Millisecond)))*time.Millisecond
	}
	res.Count++

	if isMalformed {
		return g.malformedSession(key, ttl)
	}
	expired := g.draw(&g.expired, g.wfLeft)
	g.wfLeft--
	method := g.drawMethod()
	u := g.wellFormed
	if u >= g.users {
		u = g.rng.IntN(g.users)
	}
	g.wellFormed++
	s := g.session(u, method, expired)
	val := g.sizedJSON(s)
	res.Bytes += int64(len(val))
	res.ByAuthMethod[method]++
	if expired {
		res.Expired++
		res.ExpiredByAuthMethod[method]++
		if noTTL {
			res.ExpiredNoTTL++
		}
	} else {
		res.Valid++
	}
	return seedEntry{key: key, val: val, ttl: ttl}
}

func (g *seeder) drawMethod() string {
	total := 0
	for _, n := range g.methodLeft {
		total += n
	}
	r := g.rng.IntN(total)
	for i, n := range g.methodLeft {
		if r < n {
			g.methodLeft[i]--
			return g.methods[i]
		}
		r -= n
	}
	panic("unreachable: method counts exhausted")
}

func (g *seeder) sessionID() string {
	var b [16]byte
	for i := range 2 {
		v := g.rng.Uint64()
		for j := range 8 {
			b[i*8+j] = byte(v >> (8 * j))
		}
	}
	return hex.EncodeToString(b[:])
}

// session draws one well-formed session of user u. Sessions slide: expires_at is last_activity
// plus one hour; valid ones expire 5–60 min after Now, expired ones 1 min–14 days before it.
func (g *seeder) session(u int, method string, expired bool) SeedSession {
	var last time.Time
	if expired {
		exp := g.now.Add(-time.Minute - g.seconds(14*24*time.Hour))
		last = exp.Add(-time.Hour)
	} else {
		last = g.now.Add(-g.seconds(55 * time.Minute))
	}
	created := last.Add(-g.seconds(72 * time.Hour))
	s := SeedSession{
		UserID:         SeedUserID(u),
		Username:       seedUsername(u),
		AuthMethod:     method,
		CreatedAt:      created,
		LastActivity:   last,
		ExpiresAt:      last.Add(time.Hour),
		AccessToken:    "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9." + g.spec.CanaryToken,
		RefreshToken:   "RT_" + g.spec.CanaryToken,
		TokenExpiresAt: last.Add(time.Hour),
	}
	if method != "mtls_fallback" {
		s.RefreshToken += g.token(24)
	} else {
		// Shorter tokens leave room for the certificate fields: still ~530 bytes.
		s.RefreshToken += g.token(8)
		s.CertCN = seedHosts[u%len(seedHosts)] + ".trading-platform.local"
		s.CertFingerprint = g.hex(32)
		s.CertNotAfter = created.Add(7 * 24 * time.Hour)
		s.CRLStatus = "valid"
	}
	return s
}

// sizedJSON encodes s with its access token padded so the value is 522–538 bytes (~530).
func (g *seeder) sizedJSON(s SeedSession) []byte {
	target := 522 + g.rng.IntN(17)
	base, end := encodeSession(g.scratch[:0], s)
	g.scratch = base
	pad := max(target-len(base), 8)
	if end < 0 { // no access token to pad
		return slices.Clone(base)
	}
	// Splice the padding (JSON-safe base64url) into the encoded access token.
	out := make([]byte, 0, len(base)+pad)
	out = append(out, base[:end]...)
	out = g.appendToken(out, pad*3/4)
	out = append(out, '.')
	out = g.appendToken(out, pad-pad*3/4-1)
	return append(out, base[end:]...)
}

// seconds is a uniform random whole number of seconds in [0, d).
func (g *seeder) seconds(d time.Duration) time.Duration {
	return time.Duration(g.rng.Int64N(int64(d/time.Second))) * time.Second
}

const base64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

// token is n random base64url characters.
func (g *seeder) token(n int) string {
	return string(g.appendToken(nil, n))
}

// appendToken appends n random base64url characters, six bits of a 64-bit draw each.
func (g *seeder) appendToken(b []byte, n int) []byte {
	var v uint64
	for i := range n {
		if i%10 == 0 {
			v = g.rng.Uint64()
		}
		b = append(b, base64URL[v&63])
		v >>= 6
	}
	return b
}

func (g *seeder) hex(n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(g.rng.Uint32())
	}
	return hex.EncodeToString(b)
}

// malformedSession writes one value the default filter cannot evaluate. Its user ids lie outside
// SeedUserID(0…Users-1), so --user-id counts stay exact.
func (g *seeder) malformedSession(key string, ttl time.Duration) seedEntry {
	res := &g.res
	kind := malformedKinds[g.rng.IntN(len(malformedKinds))]
	res.Malformed++
	res.MalformedByKind[kind]++
	if ttl == 0 && (kind == MalformedNotJSON || kind == MalformedJSONArray || kind == MalformedNotString) {
		res.UndecodableNoTTL++
	}
	u := g.users + g.rng.IntN(1000)
	method := g.methods[g.rng.IntN(len(g.methods))]
	s := g.session(u, method, false)
	var val []byte
	switch kind {
	case MalformedNotJSON:
		full := g.sizedJSON(s)
		val = full[:len(full)/2]
	case MalformedJSONArray:
		val, _ = json.Marshal([]string{s.UserID, s.AuthMethod, s.ExpiresAt.Format(time.RFC3339)})
	case MalformedNoExpiresAt:
		s.ExpiresAt = time.Time{}
		val = g.sizedJSON(s)
		res.MalformedByAuthMethod[method]++
	case MalformedBadTime:
		s.Override = map[string]any{
			"created_at":       "yesterday",
			"last_activity":    "2025-13-45T25:61:00Z",
			"expires_at":       "26/11/2025 11:00",
			"token_expires_at": 1764154800,
		}
		val = g.sizedJSON(s)
		res.MalformedByAuthMethod[method]++
	case MalformedNotString:
		return seedEntry{key: key, ttl: ttl, hash: []any{"user_id", s.UserID, "auth_method", s.AuthMethod,
			"expires_at", s.ExpiresAt.Format(time.RFC3339), "access_token", s.AccessToken + g.token(40)}}
	}
	res.Bytes += int64(len(val))
	return seedEntry{key: key, val: val, ttl: ttl}
}

// unrelated writes n cb:*/feature:* keys, a hash, a list, and look-alikes of the prefix.
func (g *seeder) unrelated(ctx context.Context, pipe redis.Pipeliner, n int) ([]string, error) {
	var keys []string
	add := func(key string) error {
		if strings.HasPrefix(key, g.spec.Prefix) {
			return fmt.Errorf("seed: unrelated key %q starts with the session prefix %q", key, g.spec.Prefix)
		}
		keys = append(keys, key)
		return nil
	}
	services := []string{"payments-api", "auth0-idp", "ledger", "quotes", "risk-engine"}
	flags := []string{"new-login-flow", "mtls-fallback", "session-v2", "dark-mode", "trade-limits"}
	for i := range n {
		var key, val string
		if i%2 == 0 {
			key = "cb:" + services[i/2%len(services)] + ":" + strconv.Itoa(i)
			val = `{"state":"closed","failures":` + strconv.Itoa(g.rng.IntN(5)) + `,"opened_at":null}`
		} else {
			key = "feature:" + flags[i/2%len(flags)] + ":" + strconv.Itoa(i)
			val = []string{"on", "off"}[g.rng.IntN(2)]
		}
		if err := add(key); err != nil {
			return nil, err
		}
		var ttl time.Duration
		if i%3 == 0 {
			ttl = time.Hour
		}
		pipe.Set(ctx, key, val, ttl)
		if pipe.Len() >= seedBatch {
			if err := execSeed(ctx, pipe); err != nil {
				return nil, err
			}
		}
	}
	hashKey, listKey := "ratelimit:auth0-api", "queue:session-events"
	if err := errors.Join(add(hashKey), add(listKey)); err != nil {
		return nil, err
	}
	pipe.HSet(ctx, hashKey, "limit", 1000, "remaining", 997, "reset_at", g.now.Add(time.Minute).Format(time.RFC3339))
	pipe.RPush(ctx, listKey, `{"event":"login","user_id":"`+SeedUserID(0)+`"}`, `{"event":"logout","user_id":"`+SeedUserID(1)+`"}`)
	// Keys that resemble the prefix without starting with it.
	trimmed := strings.TrimSuffix(g.spec.Prefix, ":")
	for _, key := range []string{trimmed + "s:index", strings.ToUpper(g.spec.Prefix) + "0123456789abcdef", trimmed} {
		if key == "" || strings.HasPrefix(key, g.spec.Prefix) || slices.Contains(keys, key) {
			continue
		}
		keys = append(keys, key)
		pipe.Set(ctx, key, "not a session", 0)
	}
	if err := execSeed(ctx, pipe); err != nil {
		return nil, err
	}
	return keys, nil
}

// SeedUserID is the user_id Seed gives user n: "auth0|" and nine digits, distinct for every
// n < 900,000,000. With Count ≥ Users, users 0…Users-1 each own at least one well-formed session.
func SeedUserID(n int) string {
	v := 100_000_000 + uint64(n)*2_654_435_761%900_000_000
	return "auth0|" + strconv.FormatUint(v, 10)
}

var (
	seedFirst = []string{"john", "jane", "alex", "maria", "wei", "fatima", "liam", "olga", "raj", "chloe", "kenji", "amara"}
	seedLast  = []string{"doe", "smith", "garcia", "chen", "khan", "muller", "rossi", "tanaka", "okafor", "silva", "novak"}
	seedHosts = []string{"admin", "ops-console", "trader-desk", "batch-runner", "svc-settlement"}
)

func seedUsername(n int) string {
	f, l := seedFirst[n%len(seedFirst)], seedLast[n/len(seedFirst)%len(seedLast)]
	return f + "." + l + strconv.Itoa(n) + "@example.com"
}

// SeedSession is one session value in the runbook's schema, for SessionJSON. Empty strings and
// zero times are omitted from the JSON, so tests can craft sessions missing a field.
type SeedSession struct {
	UserID       string
	Username     string
	AuthMethod   string
	CreatedAt    time.Time
	LastActivity time.Time
	ExpiresAt    time.Time

	AccessToken    string
	RefreshToken   string
	TokenExpiresAt time.Time

	// mTLS fallback fields.
	CertCN          string
	CertFingerprint string
	CertNotAfter    time.Time
	CRLStatus       string

	// Override replaces fields by JSON name, in place (e.g. {"expires_at": "not a time"} or
	// {"user_id": 42}); names not in the schema are appended, sorted.
	Override map[string]any
}

// SessionJSON encodes s as a JSON object with the runbook's field order (user_id, username,
// auth_method, created_at, last_activity, expires_at, access_token, refresh_token,
// token_expires_at, cert_cn, cert_fingerprint, cert_not_after, crl_status); times in RFC 3339,
// UTC, whole seconds.
func SessionJSON(s SeedSession) []byte {
	b, _ := encodeSession(make([]byte, 0, 600), s)
	return b
}

// encodeSession appends s as SessionJSON does to dst. tokenEnd is the offset of the access
// token's closing quote, -1 when there is none (empty or overridden).
func encodeSession(dst []byte, s SeedSession) (b []byte, tokenEnd int) {
	e := sessionEncoder{b: append(dst, '{'), override: s.Override, tokenEnd: -1}
	e.str("user_id", s.UserID)
	e.str("username", s.Username)
	e.str("auth_method", s.AuthMethod)
	e.time("created_at", s.CreatedAt)
	e.time("last_activity", s.LastActivity)
	e.time("expires_at", s.ExpiresAt)
	e.str("access_token", s.AccessToken)
	e.str("refresh_token", s.RefreshToken)
	e.time("token_expires_at", s.TokenExpiresAt)
	e.str("cert_cn", s.CertCN)
	e.str("cert_fingerprint", s.CertFingerprint)
	e.time("cert_not_after", s.CertNotAfter)
	e.str("crl_status", s.CRLStatus)
	if len(s.Override) > len(e.used) {
		var extra []string
		for name := range s.Override {
			if !slices.Contains(e.used, name) {
				extra = append(extra, name)
			}
		}
		slices.Sort(extra)
		for _, name := range extra {
			e.value(name, s.Override[name])
		}
	}
	return append(e.b, '}'), e.tokenEnd
}

type sessionEncoder struct {
	b        []byte
	override map[string]any
	used     []string // overridden schema fields
	tokenEnd int      // offset of access_token's closing quote, or -1
}

func (e *sessionEncoder) key(name string) {
	if len(e.b) > 1 {
		e.b = append(e.b, ',')
	}
	e.b = appendJSONString(e.b, name)
	e.b = append(e.b, ':')
}

func (e *sessionEncoder) overridden(name string) bool {
	v, ok := e.override[name]
	if ok {
		e.used = append(e.used, name)
		e.value(name, v)
	}
	return ok
}

func (e *sessionEncoder) value(name string, v any) {
	e.key(name)
	b, err := json.Marshal(v)
	if err != nil {
		b, _ = json.Marshal(fmt.Sprint(v))
	}
	e.b = append(e.b, b...)
}

func (e *sessionEncoder) str(name, v string) {
	if e.overridden(name) || v == "" {
		return
	}
	e.key(name)
	e.b = appendJSONString(e.b, v)
	if name == "access_token" {
		e.tokenEnd = len(e.b) - 1
	}
}

func (e *sessionEncoder) time(name string, t time.Time) {
	if e.overridden(name) || t.IsZero() {
		return
	}
	e.key(name)
	e.b = append(e.b, '"')
	e.b = t.UTC().AppendFormat(e.b, time.RFC3339)
	e.b = append(e.b, '"')
}

// appendJSONString appends s quoted; plain ASCII (the seeded values) skips encoding/json.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s)
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
