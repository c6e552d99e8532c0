package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/platform-team/sessionbot/cleanup"
	"github.com/platform-team/sessionbot/cleanup/redistest"
)

// canary is embedded in every seeded token: it must never appear in any output.
const canary = "CANARY-7f3a9c-must-not-leak"

// invocation is one in-process run of the command line.
type invocation struct {
	code           int
	stdout, stderr string
}

// target is a real redis-server for one test plus the environment that points at it. Every
// test sets REDIS_URL explicitly: nothing here may ever reach a Redis on the default port.
type target struct {
	t      *testing.T
	srv    *redistest.Server
	client *redis.Client
	env    map[string]string
	audit  string
}

func newTarget(t *testing.T) *target {
	t.Helper()
	srv := redistest.Standalone(t)
	dir := t.TempDir()
	tg := &target{
		t: t, srv: srv, client: srv.Client(),
		audit: filepath.Join(dir, "audit.log"),
	}
	tg.env = map[string]string{
		"REDIS_URL":  srv.URL(),
		"BACKUP_DIR": filepath.Join(dir, "backups"),
		"AUDIT_LOG":  filepath.Join(dir, "audit.log"),
		"USER":       "alice",
		// No pacing: tests need no realism, only correctness.
		"BATCH_PAUSE":         "0s",
		"MAX_KEYS_PER_SECOND": "0",
	}
	return tg
}

// seed writes sessions with canary tokens; spec fields left zero take Seed's defaults.
func (tg *target) seed(spec cleanup.SeedSpec) cleanup.SeedResult {
	tg.t.Helper()
	spec.CanaryToken = canary
	if spec.Seed == 0 {
		spec.Seed = 42
	}
	res, err := cleanup.Seed(context.Background(), tg.client, spec)
	if err != nil {
		tg.t.Fatal(err)
	}
	return res
}

// run runs the command line with stdin as standard input.
func (tg *target) run(stdin string, args ...string) invocation {
	tg.t.Helper()
	return runWith(tg.t, tg.env, stdin, args...)
}

func runWith(t *testing.T, env map[string]string, stdin string, args ...string) invocation {
	t.Helper()
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	getenv := func(k string) string { return env[k] }
	err := run(ctx, args, getenv, strings.NewReader(stdin), &out, &errb)
	inv := invocation{code: exitCode(err), stdout: out.String(), stderr: errb.String()}
	for _, s := range []string{inv.stdout, inv.stderr} {
		if strings.Contains(s, canary) {
			t.Errorf("sessionbot %s: a session token reached the output:\n%s", strings.Join(args, " "), s)
		}
	}
	return inv
}

// count counts the keys matching pattern with SCAN.
func (tg *target) count(pattern string) int {
	tg.t.Helper()
	n := 0
	iter := tg.client.Scan(context.Background(), 0, pattern, 1000).Iterator()
	for iter.Next(context.Background()) {
		n++
	}
	if err := iter.Err(); err != nil {
		tg.t.Fatal(err)
	}
	return n
}

// snapshot is every key and value of the test server, to prove that nothing changed.
func (tg *target) snapshot() map[string]string {
	tg.t.Helper()
	ctx := context.Background()
	out := map[string]string{}
	iter := tg.client.Scan(ctx, 0, "*", 1000).Iterator()
	for iter.Next(ctx) {
		k := iter.Val()
		typ := tg.client.Type(ctx, k).Val()
		v := typ
		if typ == "string" {
			v = tg.client.Get(ctx, k).Val()
		}
		out[k] = v
	}
	return out
}

func (tg *target) auditLines() []string {
	tg.t.Helper()
	b, err := os.ReadFile(tg.audit)
	if err != nil {
		tg.t.Fatal(err)
	}
	if strings.Contains(string(b), canary) {
		tg.t.Errorf("a session token reached the audit log:\n%s", b)
	}
	return strings.Split(strings.TrimRight(string(b), "\n"), "\n")
}

// wantLines checks that every line of want appears, in order, as a whole line of got.
func wantLines(t *testing.T, got string, want ...string) {
	t.Helper()
	lines := strings.Split(got, "\n")
	i := 0
	for _, w := range want {
		for i < len(lines) && lines[i] != w {
			i++
		}
		if i == len(lines) {
			t.Errorf("output lacks the line %q (in order); got:\n%s", w, got)
			return
		}
	}
}

func sameKeys(t *testing.T, before, after map[string]string) {
	t.Helper()
	if len(before) != len(after) {
		t.Errorf("key count changed: %d before, %d after", len(before), len(after))
	}
	for k, v := range before {
		if after[k] != v {
			t.Errorf("key %q changed or vanished", k)
		}
	}
}
