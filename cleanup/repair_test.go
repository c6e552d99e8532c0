package cleanup

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// repairSessions are, at now: 10 still-valid orphans, 5 expired orphans, 10 sessions with a TTL
// (5 of them expired) and an orphan without expires_at. Redis expires what EXPIREAT sets by its
// own clock, so a repair is tested with the real time.
func repairSessions(now time.Time) (ss []testSession, noExpiry string) {
	for i := range 25 {
		s := testSession{
			id: fmt.Sprintf("r%04d%s", i, strings.Repeat("b", 27)), user: fmt.Sprintf("auth0|%d", i),
			method: "oauth2", created: now.Add(-time.Hour), expires: now.Add(time.Duration(i+1) * time.Hour),
		}
		switch {
		case i >= 10 && i < 15:
			s.expires = now.Add(-time.Minute)
		case i >= 15:
			s.ttl = time.Hour
			if i >= 20 {
				s.expires = now.Add(-time.Minute)
			}
		}
		ss = append(ss, s)
	}
	return ss, `{"user_id":"auth0|x","auth_method":"oauth2"}`
}

// TestRepairTTL: --orphans --repair-ttl gives every still-valid orphan the expiry its expires_at
// says (EXPIREAT, checked with PEXPIRETIME), deletes the expired orphans, and leaves keys with a
// TTL and malformed orphans as they were; the preview says so in the runbook's words first.
func TestRepairTTL(t *testing.T) {
	targets(t, func(t *testing.T, tgt *Target) {
		ctx := context.Background()
		now := time.Now().Truncate(time.Second)
		ss, noExpiry := repairSessions(now)
		put(t, tgt, ss...)
		c := tgt.Client()
		if err := c.Set(ctx, tgt.Prefix()+"no-expiry", noExpiry, 0).Err(); err != nil {
			t.Fatal(err)
		}
		check := unrelated(t, tgt)
		e := NewEngine(tgt, EngineConfig{BatchSize: 7}).WithClock(func() time.Time { return now })
		f := Filter{Orphans: true, RepairTTL: true}

		plan, err := e.Preview(ctx, f, nil)
		if err != nil {
			t.Fatal(err)
		}
		if plan.Found != 26 || plan.Repaired != 10 || plan.Matched != 5 || plan.Valid != 0 || plan.Malformed != 1 {
			t.Errorf("Preview = found %d repaired %d matched %d valid %d malformed %d; want 26 10 5 0 1",
				plan.Found, plan.Repaired, plan.Matched, plan.Valid, plan.Malformed)
		}
		want := []string{"Found 26 total session keys", "10 sessions will get a TTL (repaired)",
			"5 sessions expired (will be deleted)", "10 sessions (will be kept)", "1 malformed session (kept; only --all or --session-id remove them)"}
		if got := SummaryLines(plan, plain); strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("SummaryLines =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		if d := (Policy{Threshold: 0}).Decide(plan, Options{Filter: f}); d.NeedsApproval || d.Backup || d.MaxValid != 0 {
			t.Errorf("Policy.Decide(repair) = %+v; want no approval, no backup, bound 0", d)
		}

		rep, err := e.Run(ctx, RunSpec{Filter: f, MaxValid: 0})
		if err != nil || rep.Mode != ModeRepair || rep.Repaired != 10 || rep.Deleted != 5 || rep.DeletedValid != 0 || rep.Malformed != 1 {
			t.Fatalf("Run = mode %q repaired %d deleted %d (valid %d) malformed %d, %v; want repair 10 5 (0) 1",
				rep.Mode, rep.Repaired, rep.Deleted, rep.DeletedValid, rep.Malformed, err)
		}
		for i, s := range ss {
			k := tgt.Prefix() + s.id
			v, err := c.Get(ctx, k).Result()
			at, terr := c.PExpireTime(ctx, k).Result()
			switch {
			case i < 10:
				if err != nil || v != sessionValue(s) || terr != nil || at != time.Duration(s.expires.UnixMilli())*time.Millisecond {
					t.Errorf("repaired %s: value kept %v, PEXPIRETIME %v (%v); want unchanged, %v", s.id[:5], v == sessionValue(s), at, terr, s.expires)
				}
			case i < 15:
				if err != redis.Nil {
					t.Errorf("expired orphan %s: GET = %v; want deleted", s.id[:5], err)
				}
			default:
				ttl := c.PTTL(ctx, k).Val()
				if err != nil || v != sessionValue(s) || ttl <= 0 || ttl > time.Hour {
					t.Errorf("session with a TTL %s: value kept %v, PTTL %v; want untouched", s.id[:5], v == sessionValue(s), ttl)
				}
			}
		}
		if ttl := c.PTTL(ctx, tgt.Prefix()+"no-expiry").Val(); ttl != -1 {
			t.Errorf("malformed orphan: PTTL %v; want -1 (kept as it was)", ttl)
		}
		check()
	})
}

// A repair never clobbers a concurrent change: a session that got a TTL or was rewritten
// between the read and the EXPIREAT is read again and decided again (compare-and-set).
func TestRepairChangedMeanwhile(t *testing.T) {
	targets(t, func(t *testing.T, tgt *Target) {
		ctx := context.Background()
		now := time.Now().Truncate(time.Second)
		ss, _ := repairSessions(now)
		ss = ss[:4] // valid orphans
		put(t, tgt, ss...)
		c := tgt.Client()
		e := NewEngine(tgt, EngineConfig{BatchSize: 50}).WithClock(func() time.Time { return now })
		f := Filter{Orphans: true, RepairTTL: true}
		o := e.opsFor(nil)
		if tgt.cluster == nil {
			o = e.opsFor(tgt.Client().(*redis.Client))
		}
		keys := make([]string, len(ss))
		for i, s := range ss {
			keys[i] = tgt.Prefix() + s.id
		}
		items, err := e.classify(ctx, o, f, keys, true, false, now)
		if err != nil {
			t.Fatal(err)
		}
		for i := range items {
			if items[i].verdict != Repair {
				t.Fatalf("%s decided %v; want Repair", ss[i].id[:5], items[i].verdict)
			}
		}
		// Meanwhile: the application gives ss[0] a TTL of its own, extends ss[1] (still without
		// a TTL), and ss[2]'s user logs out (expired, still without a TTL); ss[3] is unchanged.
		if err := c.Expire(ctx, keys[0], 10*time.Minute).Err(); err != nil {
			t.Fatal(err)
		}
		extended, loggedOut := ss[1], ss[2]
		extended.expires = now.Add(30 * time.Hour)
		loggedOut.expires = now.Add(-time.Second)
		put(t, tgt, extended, loggedOut)

		r := &runner{e: e, f: f, spec: RunSpec{Filter: f}, now: now, st: &scanState{}, users: map[string]string{}}
		del := make([]*item, len(items))
		for i := range items {
			del[i] = &items[i]
		}
		if err := r.settle(ctx, o, del); err != nil {
			t.Fatal(err)
		}
		if got := c.PTTL(ctx, keys[0]).Val(); got <= 0 || got > 10*time.Minute {
			t.Errorf("ss[0] got a TTL meanwhile: PTTL %v; want the application's (≤ 10m)", got)
		}
		if got := c.PExpireTime(ctx, keys[1]).Val(); got != time.Duration(extended.expires.UnixMilli())*time.Millisecond {
			t.Errorf("ss[1] extended meanwhile: PEXPIRETIME %v; want its new expires_at %v", got, extended.expires)
		}
		if n := c.Exists(ctx, keys[2]).Val(); n != 0 {
			t.Error("ss[2] expired meanwhile: still there; want deleted as an expired orphan")
		}
		if got := c.PExpireTime(ctx, keys[3]).Val(); got != time.Duration(ss[3].expires.UnixMilli())*time.Millisecond {
			t.Errorf("ss[3] unchanged: PEXPIRETIME %v; want %v", got, ss[3].expires)
		}
		if r.c.repaired.Load() != 2 || r.c.deleted.Load() != 1 || r.c.skipped.Load() != 1 || r.c.deletedValid.Load() != 0 {
			t.Errorf("repaired %d, deleted %d, skipped %d, deleted valid %d; want 2, 1, 1, 0",
				r.c.repaired.Load(), r.c.deleted.Load(), r.c.skipped.Load(), r.c.deletedValid.Load())
		}
	})
}

// What a preview saw is not what a repair acts on: the run reads every orphan again, so a
// session changed between the preview and the run is repaired, deleted or kept as it is then.
func TestRepairRunAfterChangesSincePreview(t *testing.T) {
	targets(t, func(t *testing.T, tgt *Target) {
		ctx := context.Background()
		now := time.Now().Truncate(time.Second)
		ss, _ := repairSessions(now)
		ss = ss[:3] // valid orphans
		put(t, tgt, ss...)
		c := tgt.Client()
		e := NewEngine(tgt, EngineConfig{BatchSize: 50}).WithClock(func() time.Time { return now })
		f := Filter{Orphans: true, RepairTTL: true}
		plan, err := e.Preview(ctx, f, nil)
		if err != nil || plan.Repaired != 3 || plan.Matched != 0 {
			t.Fatalf("Preview = repaired %d, matched %d, %v; want 3, 0", plan.Repaired, plan.Matched, err)
		}
		// Between preview and run: ss[0] gets a TTL from the application, ss[1] expires.
		if err := c.Expire(ctx, tgt.Prefix()+ss[0].id, 5*time.Minute).Err(); err != nil {
			t.Fatal(err)
		}
		expired := ss[1]
		expired.expires = now.Add(-time.Minute)
		put(t, tgt, expired)

		rep, err := e.Run(ctx, RunSpec{Filter: f, MaxValid: 0})
		if err != nil || rep.Repaired != 1 || rep.Deleted != 1 || rep.DeletedValid != 0 {
			t.Fatalf("Run = repaired %d, deleted %d (valid %d), %v; want 1, 1 (0)", rep.Repaired, rep.Deleted, rep.DeletedValid, err)
		}
		if ttl := c.PTTL(ctx, tgt.Prefix()+ss[0].id).Val(); ttl <= 0 || ttl > 5*time.Minute {
			t.Errorf("ss[0]: PTTL %v; want the application's 5m kept", ttl)
		}
		if c.Exists(ctx, tgt.Prefix()+ss[1].id).Val() != 0 {
			t.Error("ss[1] expired since the preview: still there; want deleted")
		}
		if got := c.PExpireTime(ctx, tgt.Prefix()+ss[2].id).Val(); got != time.Duration(ss[2].expires.UnixMilli())*time.Millisecond {
			t.Errorf("ss[2]: PEXPIRETIME %v; want its expires_at %v", got, ss[2].expires)
		}
	})
}
