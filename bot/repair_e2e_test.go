package bot

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/platform-team/sessionbot/bot/slacktest"
	"github.com/platform-team/sessionbot/cleanup"
)

// TestE2ERepairTTL drives `/sessions cleanup --orphans --repair-ttl` through Socket Mode against
// a real redis-server: the preview says how many sessions get a TTL and how many expired ones
// are deleted, Run needs no approval, every still-valid orphan then expires at its expires_at,
// expired orphans are gone, and keys that had a TTL (or cannot be decoded) are untouched.
func TestE2ERepairTTL(t *testing.T) {
	e := newE2E(t, e2eOptions{})
	ctx := context.Background()

	// What Redis holds before: each session key's value and PTTL.
	type before struct {
		val  string
		pttl time.Duration
	}
	keys := map[string]before{}
	iter := e.rdb.Scan(ctx, 0, "session:*", 1000).Iterator()
	for iter.Next(ctx) {
		k := iter.Val()
		v, _ := e.rdb.Get(ctx, k).Result() // "" for the hash Seed writes
		keys[k] = before{val: v, pttl: e.rdb.PTTL(ctx, k).Val()}
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	var repairs, expired int
	for _, b := range keys {
		s, ok := cleanup.DecodeSession([]byte(b.val))
		switch {
		case b.pttl != -1 || !ok || !s.Has.Contains(cleanup.FieldExpiresAt):
		case s.ExpiresAt.After(now.Add(time.Minute)):
			repairs++
		case s.ExpiresAt.Before(now.Add(-time.Minute)):
			expired++
		}
	}
	if repairs == 0 || expired == 0 {
		t.Fatalf("seeded %d still-valid and %d expired orphans; the test needs both", repairs, expired)
	}

	e.command(e2eAlice, "cleanup --orphans --repair-ttl")
	preview := e.awaitButton("run")
	wantContains(t, "preview", string(preview.Blocks),
		" sessions will get a TTL (repaired)", " expired (will be deleted)", "Run repair")
	if strings.Contains(string(preview.Blocks), `"action_id":"approve"`) {
		t.Errorf("a repair asks for approval: %s", preview.Blocks)
	}
	e.press(e2eAlice, preview.TS, "run")
	var report slacktest.Message
	slacktest.WaitFor(t, func() bool {
		m, ok := e.slack.Message(e.ops, preview.TS)
		report = m
		return ok && strings.Contains(string(m.Blocks), "Cleanup completed")
	}, e2eWait)
	wantContains(t, "report", string(report.Blocks), " got a TTL (repaired)", " expired (deleted)")

	for k, b := range keys {
		s, ok := cleanup.DecodeSession([]byte(b.val))
		v, err := e.rdb.Get(ctx, k).Result()
		switch {
		case b.pttl == -1 && ok && s.Has.Contains(cleanup.FieldExpiresAt) && !s.ExpiresAt.Before(now):
			at := e.rdb.ExpireTime(ctx, k).Val()
			if err != nil || v != b.val || at != time.Duration(s.ExpiresAt.Unix())*time.Second {
				t.Errorf("still-valid orphan %.16s: value kept %v, EXPIRETIME %v; want unchanged, %v", k, v == b.val, at, s.ExpiresAt.Unix())
			}
		case b.pttl == -1 && ok && s.Has.Contains(cleanup.FieldExpiresAt):
			if n := e.rdb.Exists(ctx, k).Val(); n != 0 {
				t.Errorf("expired orphan %.16s survives; want deleted", k)
			}
		default:
			pttl := e.rdb.PTTL(ctx, k).Val()
			if e.rdb.Exists(ctx, k).Val() != 1 || v != b.val || (b.pttl == -1) != (pttl == -1) {
				t.Errorf("%.16s (PTTL %v before, %v after) was touched; want it as it was", k, b.pttl, pttl)
			}
		}
	}
	completed := e.audited(cleanup.EventCleanupCompleted)
	if len(completed) != 1 || !strings.Contains(strings.Join(e.audited(cleanup.EventCleanupStarted), "\n"), "Mode: repair") {
		t.Errorf("audit: Cleanup Completed %q, Cleanup Started %q; want one run in Mode: repair", completed, e.audited(cleanup.EventCleanupStarted))
	}
	e.assertNoLeaks()
}
