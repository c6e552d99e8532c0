package main

import (
	"context"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/platform-team/sessionbot/cleanup"
	"github.com/platform-team/sessionbot/cleanup/redistest"
)

// seedState writes keys like the bot's own state into the target: a lease, a request, the
// pending index and a job in a Cluster's hash-tagged namespace.
func (tg *target) seedState() map[string]string {
	tg.t.Helper()
	ctx := context.Background()
	pipe := tg.client.Pipeline()
	pipe.Set(ctx, "sessionbot:lease:x", "job-20251126-7f3a9c2b", 0)
	pipe.Set(ctx, "sessionbot:request:0123456789abcdef0123456789abcdef", `{"id":"0123456789abcdef0123456789abcdef"}`, 0)
	pipe.ZAdd(ctx, "sessionbot:pending", redis.Z{Score: 1, Member: "0123456789abcdef0123456789abcdef"})
	pipe.Set(ctx, "sessionbot:{state}:job:job-20251126-7f3a9c2b", `{"id":"job-20251126-7f3a9c2b"}`, 0)
	if _, err := pipe.Exec(ctx); err != nil {
		tg.t.Fatal(err)
	}
	return tg.stateKeys()
}

// stateKeys is every sessionbot: key of the target with its value (or type).
func (tg *target) stateKeys() map[string]string {
	tg.t.Helper()
	out := map[string]string{}
	for k, v := range tg.snapshot() {
		if strings.HasPrefix(k, cleanup.StateNamespace) {
			out[k] = v
		}
	}
	return out
}

// SESSION_KEY_PREFIX=session would match sessionbot: keys: with the state in the target, every
// entry point refuses to start, naming the variable, and touches nothing (SPEC §12.4).
func TestStartupRefusesPrefixOverlappingState(t *testing.T) {
	tg := newTarget(t)
	tg.seed(cleanup.SeedSpec{Count: 20})
	tg.seedState()
	before := tg.snapshot()
	tg.env["SESSION_KEY_PREFIX"] = "session"
	backup := filepath.Join(t.TempDir(), "backup.jsonl.gz")
	refusal := regexp.MustCompile(`(?m)^sessionbot [a-z]+: SESSION_KEY_PREFIX: "session" would also match the bot's own state .*STATE_REDIS_URL$`)
	for _, args := range [][]string{
		{"serve"},
		{"console"},
		{"cleanup", "--dry-run"},
		{"cleanup", "--all", "--reason", "drill", "--yes"},
		{"stats"},
		{"backup", "--all", "--reason", "drill", "--out", backup},
		{"restore", backup, "--reason", "undo"},
		{"seed", "--count", "5", "--force"},
	} {
		inv := tg.run("", args...)
		if inv.code != exitUsage {
			t.Errorf("%q: exit %d; want %d", args, inv.code, exitUsage)
		}
		if !refusal.MatchString(inv.stderr) {
			t.Errorf("%q: stderr has no line refusing SESSION_KEY_PREFIX:\n%s", args, inv.stderr)
		}
	}
	sameKeys(t, before, tg.snapshot())
}

// With the state in STATE_REDIS_URL a prefix like "session" is allowed, and still no
// sessionbot: key in the target is ever a session: not by --session-id, not by --all.
func TestOverlappingPrefixNeverTouchesStateKeys(t *testing.T) {
	tg := newTarget(t)
	res := tg.seed(cleanup.SeedSpec{Count: 20})
	state := tg.seedState()
	other := redistest.Standalone(t)
	tg.env["SESSION_KEY_PREFIX"] = "session"
	tg.env["STATE_REDIS_URL"] = other.URL()

	inv := tg.run("", "cleanup", "--session-id", "bot:lease:x,bot:request:0123456789abcdef0123456789abcdef", "--yes")
	if inv.code != 0 {
		t.Fatalf("cleanup --session-id bot:lease:x: exit %d; stderr:\n%s", inv.code, inv.stderr)
	}
	wantLines(t, inv.stdout, "Found 0 total session keys", "Nothing to delete.")

	inv = tg.run("", "cleanup", "--dry-run")
	wantLines(t, inv.stdout, "Found "+itoa(res.Count)+" total session keys")

	inv = tg.run("", "cleanup", "--all", "--reason", "drill", "--yes")
	if inv.code != 0 {
		t.Fatalf("cleanup --all: exit %d; stderr:\n%s", inv.code, inv.stderr)
	}
	wantLines(t, inv.stdout, "Found "+itoa(res.Count)+" total session keys")
	if n := tg.count("session:*"); n != 0 {
		t.Errorf("%d session:* keys left after --all; want 0", n)
	}
	got := tg.stateKeys()
	sameKeys(t, state, got)
}
