package cleanup

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/platform-team/sessionbot/cleanup/redistest"
	"github.com/redis/go-redis/v9"
)

// canary is put in every token field of test sessions; no output may ever contain it.
const canary = "CANARY-TOKEN-7f3e9a"

var testNow = time.Date(2025, 11, 26, 10, 0, 0, 0, time.UTC)

// targets runs fn against a standalone redis-server and a 3-master Cluster, each test on its own
// key prefix so one server of each kind serves the whole package.
func targets(t *testing.T, fn func(t *testing.T, tgt *Target)) {
	t.Helper()
	t.Run("standalone", func(t *testing.T) {
		s := sharedStandalone(t)
		fn(t, NewTarget(s.Client(), uniquePrefix(t), s.Addr()))
	})
	t.Run("cluster", func(t *testing.T) {
		c := sharedCluster(t)
		fn(t, NewTarget(c.Client(), uniquePrefix(t), "cluster"))
	})
}

var (
	sharedMu   sync.Mutex
	standalone *redistest.Server
	cluster    *redistest.Cluster
	prefixSeq  int
)

func TestMain(m *testing.M) {
	code := m.Run()
	if standalone != nil {
		standalone.Stop()
	}
	if cluster != nil {
		cluster.Stop()
	}
	os.Exit(code)
}

func sharedStandalone(t *testing.T) *redistest.Server {
	t.Helper()
	sharedMu.Lock()
	defer sharedMu.Unlock()
	if standalone == nil {
		s, err := redistest.Start(redistest.Options{})
		if err != nil {
			t.Fatal(err)
		}
		standalone = s
	}
	return standalone
}

func sharedCluster(t *testing.T) *redistest.Cluster {
	t.Helper()
	sharedMu.Lock()
	defer sharedMu.Unlock()
	if cluster == nil {
		c, err := redistest.StartCluster(redistest.ClusterOptions{})
		if err != nil {
			t.Fatal(err)
		}
		cluster = c
	}
	return cluster
}

// uniquePrefix is a session prefix private to one test; it ends in "session:" so the runbook's
// key shape holds.
func uniquePrefix(t *testing.T) string {
	sharedMu.Lock()
	defer sharedMu.Unlock()
	prefixSeq++
	return fmt.Sprintf("t%d:session:", prefixSeq)
}

type testSession struct {
	id, user, method string
	created, expires time.Time
	ttl              time.Duration // 0: no TTL
}

func sessionValue(s testSession) string {
	m := map[string]any{
		"user_id": s.user, "username": strings.ReplaceAll(s.user, "|", ".") + "@example.com",
		"auth_method": s.method,
		"created_at":  s.created.Format(time.RFC3339), "last_activity": s.created.Add(time.Minute).Format(time.RFC3339),
		"expires_at":   s.expires.Format(time.RFC3339),
		"access_token": "eyJhbGc." + canary, "refresh_token": "RT_" + canary,
		"token_expires_at": s.expires.Format(time.RFC3339),
	}
	if s.method == "mtls_fallback" {
		m["cert_fingerprint"] = canary
	}
	b, _ := json.Marshal(m)
	return string(b)
}

// put stores sessions under tgt's prefix.
func put(t *testing.T, tgt *Target, ss ...testSession) {
	t.Helper()
	ctx := context.Background()
	_, err := tgt.Client().Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, s := range ss {
			p.Set(ctx, tgt.Prefix()+s.id, sessionValue(s), s.ttl)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// population makes n sessions: expired ones first, each with an id "s<i>".
func population(n, expired int, method func(i int) string) []testSession {
	ss := make([]testSession, n)
	for i := range ss {
		s := testSession{
			id: fmt.Sprintf("s%04d%s", i, strings.Repeat("a", 27)), user: fmt.Sprintf("auth0|%d", 1000+i%37),
			method: "oauth2", created: testNow.Add(-2 * time.Hour), expires: testNow.Add(time.Hour), ttl: time.Hour,
		}
		if method != nil {
			s.method = method(i)
		}
		if i < expired {
			s.expires = testNow.Add(-time.Minute)
		}
		ss[i] = s
	}
	return ss
}

// unrelated writes keys the engine must never touch and returns a check that they survived.
func unrelated(t *testing.T, tgt *Target) func() {
	t.Helper()
	ctx := context.Background()
	c := tgt.Client()
	p := strings.TrimSuffix(tgt.Prefix(), "session:")
	keys := []string{p + "cb:payments", p + "feature:flags", p + "sessions", p + "session", p + "sessionbot:state", p + "xsession:1"}
	for _, k := range keys {
		if err := c.Set(ctx, k, "keep", 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	return func() {
		t.Helper()
		for _, k := range keys {
			if v, err := c.Get(ctx, k).Result(); err != nil || v != "keep" {
				t.Errorf("unrelated key %q: got %q, %v; want it untouched", k, v, err)
			}
		}
	}
}

func countPrefix(t *testing.T, tgt *Target) int64 {
	t.Helper()
	n, err := NewEngine(tgt, EngineConfig{}).CountKeys(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func engine(tgt *Target) *Engine {
	return NewEngine(tgt, EngineConfig{BatchSize: 50}).WithClock(func() time.Time { return testNow })
}

// Procedure 1 with the runbook's numbers: 150 sessions, 45 expired.
func TestProcedure1Expired(t *testing.T) {
	targets(t, func(t *testing.T, tgt *Target) {
		put(t, tgt, population(150, 45, nil)...)
		check := unrelated(t, tgt)
		e := engine(tgt)
		ctx := context.Background()

		plan, err := e.Preview(ctx, Filter{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if plan.Found != 150 || plan.Matched != 45 || plan.Kept != 105 || plan.Valid != 0 {
			t.Errorf("Preview = found %d matched %d kept %d valid %d; want 150 45 105 0", plan.Found, plan.Matched, plan.Kept, plan.Valid)
		}
		if len(plan.Samples) != 5 || plan.ByAuthMethod["oauth2"] != 45 || plan.TTL.Buckets[2] != 45 {
			t.Errorf("Preview samples %d, by method %v, ttl %+v", len(plan.Samples), plan.ByAuthMethod, plan.TTL)
		}
		if countPrefix(t, tgt) != 150 {
			t.Fatal("preview changed something")
		}

		rep, err := e.Run(ctx, RunSpec{Filter: Filter{}, MaxValid: ValidBound(plan.Valid), Verify: true})
		if err != nil {
			t.Fatal(err)
		}
		if rep.Deleted != 45 || rep.DeletedValid != 0 || rep.Remaining != 105 || rep.Stopped != "" {
			t.Errorf("Run = deleted %d valid %d remaining %d stopped %q; want 45 0 105", rep.Deleted, rep.DeletedValid, rep.Remaining, rep.Stopped)
		}
		check()
		if n := countPrefix(t, tgt); n != 105 {
			t.Errorf("session keys left = %d; want 105", n)
		}
	})
}

// Procedure 3: by auth method, valid and expired alike.
func TestProcedure3AuthMethod(t *testing.T) {
	targets(t, func(t *testing.T, tgt *Target) {
		ss := population(500, 100, func(i int) string {
			if i%10 == 3 {
				return "basic_auth"
			}
			return "oauth2"
		})
		put(t, tgt, ss...)
		check := unrelated(t, tgt)
		e := engine(tgt)
		ctx := context.Background()
		f := Filter{AuthMethod: "basic_auth"}
		plan, err := e.Preview(ctx, f, nil)
		if err != nil {
			t.Fatal(err)
		}
		if plan.Matched != 50 || plan.Kept != 450 || plan.Valid != 40 {
			t.Errorf("Preview = matched %d kept %d valid %d; want 50 450 40", plan.Matched, plan.Kept, plan.Valid)
		}
		rep, err := e.Run(ctx, RunSpec{Filter: f, MaxValid: ValidBound(plan.Valid)})
		if err != nil || rep.Deleted != 50 || rep.DeletedValid != 40 {
			t.Errorf("Run = deleted %d valid %d, %v; want 50 40", rep.Deleted, rep.DeletedValid, err)
		}
		check()
		for _, s := range ss {
			n, _ := tgt.Client().Exists(ctx, tgt.Prefix()+s.id).Result()
			if want := int64(1); s.method == "basic_auth" {
				want = 0
				if n != want {
					t.Errorf("%s (basic_auth) still exists", s.id)
				}
			} else if n != want {
				t.Errorf("%s (%s) was deleted", s.id, s.method)
			}
		}
	})
}

// Procedure 4: by user, with glob characters that must stay literal.
func TestProcedure4UserAndSession(t *testing.T) {
	targets(t, func(t *testing.T, tgt *Target) {
		ctx := context.Background()
		mk := func(id, user string) testSession {
			return testSession{id: id, user: user, method: "oauth2", created: testNow.Add(-time.Hour), expires: testNow.Add(time.Hour), ttl: time.Hour}
		}
		put(t, tgt, mk("a1", "auth0|123"), mk("a2", "auth0|123"), mk("b1", "auth0|1234"), mk("c1", "auth0|*"), mk("*", "auth0|9"), mk("x?", "auth0|9"))
		check := unrelated(t, tgt)
		e := engine(tgt)

		rep, err := e.Run(ctx, RunSpec{Filter: Filter{UserID: "auth0|123"}, MaxValid: -1})
		if err != nil || rep.Deleted != 2 {
			t.Fatalf("user auth0|123: deleted %d, %v; want 2", rep.Deleted, err)
		}
		if len(rep.Users) != 1 || rep.Users[0].UserID != "auth0|123" || rep.Users[0].Username != "auth0.123@example.com" {
			t.Errorf("Users = %+v", rep.Users)
		}
		rep, err = e.Run(ctx, RunSpec{Filter: Filter{UserID: "auth0|*"}, MaxValid: -1})
		if err != nil || rep.Deleted != 1 {
			t.Fatalf("user auth0|* (literal): deleted %d, %v; want 1", rep.Deleted, err)
		}
		if n, _ := tgt.Client().Exists(ctx, tgt.Prefix()+"b1").Result(); n != 1 {
			t.Error("auth0|1234 was deleted by a filter on another user")
		}
		plan, err := e.Preview(ctx, Filter{SessionIDs: []string{"*", "nope"}}, nil)
		if err != nil || plan.Matched != 1 || plan.Found != 1 {
			t.Errorf("Preview --session-id '*' = found %d matched %d, %v; want 1 1", plan.Found, plan.Matched, err)
		}
		rep, err = e.Run(ctx, RunSpec{Filter: Filter{SessionIDs: []string{"*"}}, MaxValid: -1})
		if err != nil || rep.Deleted != 1 {
			t.Fatalf("session '*': deleted %d, %v; want 1", rep.Deleted, err)
		}
		for _, id := range []string{"b1", "x?"} {
			if n, _ := tgt.Client().Exists(ctx, tgt.Prefix()+id).Result(); n != 1 {
				t.Errorf("%s was deleted by --session-id '*'", id)
			}
		}
		check()
	})
}

// malformed writes one key of every malformed kind and returns how many.
func malformed(t *testing.T, tgt *Target) int {
	t.Helper()
	ctx := context.Background()
	c := tgt.Client()
	p := tgt.Prefix()
	vals := map[string]string{
		"m-notjson": "not json {", "m-array": `[1,2]`, "m-noexp": `{"user_id":"u","auth_method":"oauth2"}`,
		"m-badtime": `{"expires_at":"yesterday","auth_method":"oauth2"}`, "m-binary": "\xff\xfe\x00",
	}
	for k, v := range vals {
		if err := c.Set(ctx, p+k, v, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.HSet(ctx, p+"m-hash", "user_id", "u").Err(); err != nil {
		t.Fatal(err)
	}
	return len(vals) + 1
}

func TestMalformedKeptByContentFilters(t *testing.T) {
	targets(t, func(t *testing.T, tgt *Target) {
		ctx := context.Background()
		put(t, tgt, population(20, 5, nil)...)
		nm := malformed(t, tgt)
		e := engine(tgt)
		plan, err := e.Preview(ctx, Filter{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if plan.Found != int64(20+nm) || plan.Matched != 5 || plan.Malformed != int64(nm) {
			t.Errorf("Preview = found %d matched %d malformed %d; want %d 5 %d", plan.Found, plan.Matched, plan.Malformed, 20+nm, nm)
		}
		rep, err := e.Run(ctx, RunSpec{Filter: Filter{}, MaxValid: -1})
		if err != nil || rep.Deleted != 5 || rep.Malformed != int64(nm) {
			t.Errorf("Run = deleted %d malformed %d, %v", rep.Deleted, rep.Malformed, err)
		}
		// auth_method needs only auth_method: m-noexp now matches, m-badtime too.
		plan, err = e.Preview(ctx, Filter{AuthMethod: "oauth2"}, nil)
		if err != nil || plan.Matched != 15+2 {
			t.Errorf("Preview auth_method = matched %d, %v; want 17", plan.Matched, err)
		}
	})
}

// Procedure 2: mass logout removes every session key, malformed and non-string ones included,
// and nothing else.
func TestProcedure2All(t *testing.T) {
	targets(t, func(t *testing.T, tgt *Target) {
		ctx := context.Background()
		put(t, tgt, population(300, 90, nil)...)
		nm := malformed(t, tgt)
		check := unrelated(t, tgt)
		e := engine(tgt)
		plan, err := e.Preview(ctx, Filter{All: true}, nil)
		// Valid counts logouts: decodable sessions not past a well-formed expires_at. Every
		// malformed key — not a string, not a JSON object, or without a usable expires_at — is
		// counted as malformed, as the default preview counts it, and as no logout.
		if err != nil || plan.Matched != int64(300+nm) || plan.Valid != 210 || plan.Malformed != int64(nm) {
			t.Fatalf("Preview --all = matched %d valid %d malformed %d, %v; want %d 210 %d", plan.Matched, plan.Valid, plan.Malformed, err, 300+nm, nm)
		}
		for _, backup := range []bool{false, true} {
			t.Run(fmt.Sprintf("backup=%v", backup), func(t *testing.T) {
				put(t, tgt, population(300, 90, nil)...)
				nm := malformed(t, tgt)
				spec := RunSpec{Filter: Filter{All: true}, MaxValid: -1, Verify: true}
				dir := t.TempDir()
				if backup {
					spec.Backup = &BackupSpec{Dir: dir, JobID: "job1"}
				}
				rep, err := e.Run(ctx, spec)
				if err != nil || rep.Deleted != int64(300+nm) || rep.Remaining != 0 {
					t.Fatalf("Run --all = deleted %d remaining %d, %v; want %d 0", rep.Deleted, rep.Remaining, err, 300+nm)
				}
				check()
				if !backup {
					return
				}
				if rep.Backup != filepath.Join(dir, "job1.jsonl.gz") {
					t.Errorf("Backup = %q", rep.Backup)
				}
				st, err := os.Stat(rep.Backup)
				if err != nil || st.Mode().Perm() != 0o600 {
					t.Fatalf("backup file: %v %v; want mode 0600", st, err)
				}
				entries, _ := os.ReadDir(dir)
				if len(entries) != 1 {
					t.Errorf("backup dir holds %d files; want only the backup (no key list left)", len(entries))
				}
				f, _ := os.Open(rep.Backup)
				defer f.Close()
				n := 0
				err = ReadBackup(f, nil, func(r BackupRecord) error {
					n++
					if !strings.HasPrefix(r.Key, tgt.Prefix()) {
						t.Errorf("backup holds %q outside the prefix", r.Key)
					}
					return nil
				})
				if err != nil || n != 300+nm {
					t.Errorf("backup records = %d, %v; want %d", n, err, 300+nm)
				}
			})
		}
	})
}

func TestOrphans(t *testing.T) {
	targets(t, func(t *testing.T, tgt *Target) {
		ctx := context.Background()
		ss := population(40, 0, nil)
		for i := range ss {
			if i%4 == 0 {
				ss[i].ttl = 0
			}
		}
		put(t, tgt, ss...)
		e := engine(tgt)
		rep, err := e.Run(ctx, RunSpec{Filter: Filter{Orphans: true}, MaxValid: -1})
		if err != nil || rep.Deleted != 10 {
			t.Fatalf("Run --orphans = deleted %d, %v; want 10", rep.Deleted, err)
		}
		if n := countPrefix(t, tgt); n != 30 {
			t.Errorf("left %d; want 30", n)
		}
	})
}

// A session refreshed between read and delete is kept: compare-and-delete.
func TestRefreshedBetweenReadAndDeleteIsKept(t *testing.T) {
	targets(t, func(t *testing.T, tgt *Target) {
		ctx := context.Background()
		ss := population(10, 10, nil)
		put(t, tgt, ss...)
		e := engine(tgt)
		o := e.opsFor(nil)
		if tgt.cluster == nil {
			o = e.opsFor(tgt.Client().(*redis.Client))
		}
		items, err := e.classify(ctx, o, Filter{Expired: true}, []string{tgt.Prefix() + ss[0].id, tgt.Prefix() + ss[1].id}, true, false, testNow)
		if err != nil {
			t.Fatal(err)
		}
		// The user comes back: the session is rewritten with a new expiry.
		refreshed := ss[0]
		refreshed.expires = testNow.Add(time.Hour)
		put(t, tgt, refreshed)
		res, err := o.cad(ctx, "v", []string{items[0].key, items[1].key}, []string{items[0].val, items[1].val}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if res.deleted != 1 || res.changed != 1 || string(res.flags) != "01" {
			t.Errorf("cad = %+v; want 1 deleted, 1 changed, flags 01", res)
		}
		if n, _ := tgt.Client().Exists(ctx, items[0].key).Result(); n != 1 {
			t.Error("refreshed session was deleted")
		}
	})
}

func TestBoundStopsRun(t *testing.T) {
	targets(t, func(t *testing.T, tgt *Target) {
		ctx := context.Background()
		put(t, tgt, population(200, 0, nil)...)
		e := engine(tgt)
		for _, backup := range []bool{false, true} {
			spec := RunSpec{Filter: Filter{AuthMethod: "oauth2"}, MaxValid: 30}
			if backup {
				spec.Backup = &BackupSpec{Dir: t.TempDir(), JobID: "bound"}
			}
			rep, err := e.Run(ctx, spec)
			if !errors.Is(err, ErrBoundReached) || rep.Stopped != "bound" {
				t.Fatalf("backup=%v: Run = %v, stopped %q; want ErrBoundReached", backup, err, rep.Stopped)
			}
			want := int64(30)
			if backup {
				want = 0 // the bound is checked in the backup phase, before anything is deleted
			}
			if rep.DeletedValid > want || (backup && rep.Deleted != 0) {
				t.Errorf("backup=%v: deleted %d valid %d; want at most %d", backup, rep.Deleted, rep.DeletedValid, want)
			}
		}
	})
}

func TestBackupFailureDeletesNothing(t *testing.T) {
	targets(t, func(t *testing.T, tgt *Target) {
		ctx := context.Background()
		put(t, tgt, population(100, 0, nil)...)
		notADir := filepath.Join(t.TempDir(), "file")
		if err := os.WriteFile(notADir, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		rep, err := engine(tgt).Run(ctx, RunSpec{Filter: Filter{All: true}, MaxValid: -1, Backup: &BackupSpec{Dir: notADir, JobID: "j"}})
		if err == nil || rep.Deleted != 0 || rep.Stopped != "error" {
			t.Fatalf("Run with unwritable backup = deleted %d stopped %q, %v; want an error and 0 deleted", rep.Deleted, rep.Stopped, err)
		}
		if n := countPrefix(t, tgt); n != 100 {
			t.Errorf("left %d; want all 100", n)
		}
	})
}

func TestCancelMidRun(t *testing.T) {
	targets(t, func(t *testing.T, tgt *Target) {
		put(t, tgt, population(3000, 0, nil)...)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		e := NewEngine(tgt, EngineConfig{BatchSize: 50, MaxRate: 5000}).WithClock(func() time.Time { return testNow })
		rep, err := e.Run(ctx, RunSpec{Filter: Filter{All: true}, MaxValid: -1, Progress: func(p Progress) {
			if p.Deleted > 0 {
				cancel()
			}
		}})
		if !errors.Is(err, context.Canceled) || rep.Stopped != "cancelled" {
			t.Fatalf("Run = %v stopped %q; want cancelled", err, rep.Stopped)
		}
		left := countPrefix(t, tgt)
		if rep.Deleted == 0 || left == 0 || rep.Deleted+left != 3000 {
			t.Errorf("deleted %d + left %d; want a partial run adding up to 3000", rep.Deleted, left)
		}
	})
}

func TestGlobCharactersInPrefix(t *testing.T) {
	s := sharedStandalone(t)
	ctx := context.Background()
	c := s.Client()
	for _, k := range []string{"g[1]:a", "g1:a", "g]:a", "gX:a"} {
		c.Set(ctx, k, `{"expires_at":"2000-01-01T00:00:00Z"}`, 0)
	}
	e := NewEngine(NewTarget(c, "g[1]:", "x"), EngineConfig{})
	rep, err := e.Run(ctx, RunSpec{Filter: Filter{All: true}, MaxValid: -1})
	if err != nil || rep.Deleted != 1 {
		t.Fatalf("deleted %d, %v; want only g[1]:a", rep.Deleted, err)
	}
	for _, k := range []string{"g1:a", "g]:a", "gX:a"} {
		if n, _ := c.Exists(ctx, k).Result(); n != 1 {
			t.Errorf("%s deleted by prefix g[1]:", k)
		}
	}
}

func TestStats(t *testing.T) {
	targets(t, func(t *testing.T, tgt *Target) {
		ss := population(60, 20, nil)
		for i := range ss {
			if i%6 == 0 {
				ss[i].ttl = 0
			}
		}
		put(t, tgt, ss...)
		nm := malformed(t, tgt)
		st, err := engine(tgt).Stats(context.Background(), 0)
		if err != nil {
			t.Fatal(err)
		}
		if st.Total != int64(60+nm) || st.Expired != 20 || st.Orphans != 10+int64(nm) || st.Malformed != int64(nm) || !st.Complete {
			t.Errorf("Stats = %+v", st)
		}
		ks, err := engine(tgt).KeyStats(context.Background(), 0)
		if err != nil || !ks.KeysOnly || ks.Total != st.Total || ks.Orphans != st.Orphans || ks.TTL != st.TTL ||
			ks.Expired != 0 || ks.Malformed != 0 || len(ks.ByAuthMethod) != 0 || ks.Bytes != 0 || !ks.Complete {
			t.Errorf("KeyStats = %+v, %v; want the keys and TTLs of Stats %+v and nothing that needs a value", ks, err, st)
		}
		if st.UsedMemory <= 0 || st.MaxMemory != 0 {
			t.Errorf("Stats memory = used %d, maxmemory %d; want used > 0 and no maxmemory (the test servers set none)", st.UsedMemory, st.MaxMemory)
		}
		st, err = engine(tgt).Stats(context.Background(), 10)
		if err != nil || st.Complete {
			t.Errorf("Stats(budget 10) = complete %v, %v; want incomplete", st.Complete, err)
		}

		// With maxmemory on every master, Stats reports their sum.
		ctx := context.Background()
		ms, err := tgt.masters(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range ms {
			if err := m.ConfigSet(ctx, "maxmemory", "1gb").Err(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = m.ConfigSet(context.Background(), "maxmemory", "0").Err() })
		}
		if st, err = engine(tgt).Stats(ctx, 0); err != nil || st.MaxMemory != int64(len(ms))<<30 {
			t.Errorf("Stats maxmemory = %d, %v; want %d", st.MaxMemory, err, int64(len(ms))<<30)
		}
	})
}

func TestBackupOnlyDeletesNothing(t *testing.T) {
	targets(t, func(t *testing.T, tgt *Target) {
		put(t, tgt, population(120, 30, nil)...)
		dir := t.TempDir()
		rep, err := engine(tgt).Backup(context.Background(), Filter{}, &BackupSpec{Dir: dir, JobID: "b"}, nil)
		if err != nil || rep.Matched != 30 || rep.Backup != filepath.Join(dir, "b.jsonl.gz") {
			t.Fatalf("Backup = matched %d file %q, %v; want 30 expired sessions", rep.Matched, rep.Backup, err)
		}
		if n := countPrefix(t, tgt); n != 120 {
			t.Errorf("left %d; want 120", n)
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 1 {
			t.Errorf("dir holds %d files; want 1", len(entries))
		}
	})
}

// --session-id with stale ids: expired, malformed and absent keys never count toward the bound
// (SPEC §12.3), so every listed key that exists is deleted and the run completes.
func TestSessionIDStaleIDsAreNoLogouts(t *testing.T) {
	targets(t, func(t *testing.T, tgt *Target) {
		ctx := context.Background()
		for _, tc := range []struct{ live, expired, absent int }{{5, 10, 20}, {5, 20, 0}} {
			ss := population(tc.live+tc.expired, tc.expired, nil)
			for i := range ss {
				ss[i].id = fmt.Sprintf("%s-%d-%d", ss[i].id, tc.expired, tc.absent)
			}
			put(t, tgt, ss...)
			var ids []string
			for _, s := range ss {
				ids = append(ids, s.id)
			}
			for i := range tc.absent {
				ids = append(ids, fmt.Sprintf("absent-%d", i))
			}
			e := engine(tgt)
			f := Filter{SessionIDs: ids}
			plan, err := e.Preview(ctx, f, nil)
			if err != nil || plan.Matched != int64(len(ss)) || plan.Valid != int64(tc.live) {
				t.Fatalf("Preview = matched %d valid %d, %v; want %d %d", plan.Matched, plan.Valid, err, len(ss), tc.live)
			}
			rep, err := e.Run(ctx, RunSpec{Filter: f, MaxValid: ValidBound(plan.Valid)})
			if err != nil || rep.Stopped != "" || rep.Deleted != int64(len(ss)) || rep.DeletedValid != int64(tc.live) {
				t.Errorf("%+v: Run = stopped %q deleted %d (valid %d), %v; want completed, %d deleted (%d valid)",
					tc, rep.Stopped, rep.Deleted, rep.DeletedValid, err, len(ss), tc.live)
			}
		}
	})
}

// The bound is exact: a run allowed n still-valid logouts deletes n and stops, whatever the
// expired sessions around them.
func TestBoundCountsOnlyValidSessions(t *testing.T) {
	targets(t, func(t *testing.T, tgt *Target) {
		ctx := context.Background()
		put(t, tgt, population(100, 60, func(int) string { return "basic_auth" })...)
		e := engine(tgt)
		rep, err := e.Run(ctx, RunSpec{Filter: Filter{AuthMethod: "basic_auth"}, MaxValid: 25})
		// Expired sessions in the batches it reached are deleted too; they are no logouts.
		if !errors.Is(err, ErrBoundReached) || rep.DeletedValid != 25 || rep.Deleted-rep.DeletedValid > 60 {
			t.Errorf("Run = deleted %d (valid %d), %v; want exactly 25 valid, ErrBoundReached", rep.Deleted, rep.DeletedValid, err)
		}
	})
}

// The engine reports every round trip it makes to its observer, by operation: what a metric
// of the cleanup's own Redis latency is built from (runbook Problem 3).
func TestCommandObserver(t *testing.T) {
	targets(t, func(t *testing.T, tgt *Target) {
		put(t, tgt, population(50, 20, nil)...)
		var mu sync.Mutex
		seen := map[string]int{}
		e := engine(tgt)
		e.ObserveCommands(func(op string, d time.Duration) {
			if d <= 0 {
				t.Errorf("observed %s with duration %v", op, d)
			}
			mu.Lock()
			seen[op]++
			mu.Unlock()
		})
		ctx := context.Background()
		if _, err := e.Preview(ctx, Filter{}, nil); err != nil {
			t.Fatal(err)
		}
		rep, err := e.Run(ctx, RunSpec{Filter: Filter{}, MaxValid: 0})
		if err != nil || rep.Deleted != 20 {
			t.Fatalf("Run = %d deleted, %v; want 20", rep.Deleted, err)
		}
		mu.Lock()
		defer mu.Unlock()
		for _, op := range []string{"scan", "read", "cad"} {
			if seen[op] == 0 {
				t.Errorf("no %s round trip observed; saw %v", op, seen)
			}
		}
	})
}

// Stats reads the limit the runbook's memory symptom is measured against: INFO maxmemory,
// summed over masters, 0 when a server has none.
func TestStatsMaxMemory(t *testing.T) {
	for args, want := range map[string]int64{"100mb": 100 << 20, "0": 0} {
		s := redistest.Standalone(t, "--maxmemory", args)
		st, err := NewEngine(NewTarget(s.Client(), "session:", "x"), EngineConfig{}).Stats(context.Background(), 0)
		if err != nil {
			t.Fatal(err)
		}
		if st.MaxMemory != want || st.UsedMemory <= 0 {
			t.Errorf("maxmemory %s: Stats MaxMemory %d, UsedMemory %d; want %d and > 0", args, st.MaxMemory, st.UsedMemory, want)
		}
	}
}
