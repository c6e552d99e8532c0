package main

import (
	"context"
	"encoding/json"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestDemoRedisRunsTheEngine runs the command line against the console's embedded Redis
// (miniredis): every engine path a demo uses — preview, compare-and-delete (EVALSHA with
// redis.sha1hex), a mass logout with a backup, stats (INFO) and restore (SET NX) — must work there
// too. (miniredis cannot DUMP non-string keys, so the demo's malformed values are all strings.)
func TestDemoRedisRunsTheEngine(t *testing.T) {
	url, stop, err := startDemoRedis(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	dir := t.TempDir()
	env := map[string]string{
		"REDIS_URL": url, "USER": "alice",
		"BACKUP_DIR": filepath.Join(dir, "backups"), "AUDIT_LOG": filepath.Join(dir, "audit.log"),
	}

	inv := runWith(t, env, "", "cleanup", "--dry-run")
	if inv.code != 0 {
		t.Fatalf("dry run: exit %d; stderr:\n%s", inv.code, inv.stderr)
	}
	wantLines(t, inv.stdout,
		"Found 155 total session keys",
		"45 sessions expired (will be deleted)",
		"105 sessions still valid (will be kept)",
		"5 malformed sessions (kept; only --all or --session-id remove them)")
	if !strings.Contains(inv.stdout, "basic_auth") {
		t.Errorf("no basic_auth among the expired sample sessions:\n%s", inv.stdout)
	}

	inv = runWith(t, env, "", "stats", "--json")
	var st statsJSON
	if err := json.Unmarshal([]byte(inv.stdout), &st); err != nil || inv.code != 0 {
		t.Fatalf("stats --json: exit %d, %v; stderr:\n%s", inv.code, err, inv.stderr)
	}
	if st.Total != 155 || st.Orphans == 0 || st.Malformed != 5 || st.ByAuthMethod["basic_auth"] == 0 {
		t.Errorf("stats = %+v", st)
	}

	inv = runWith(t, env, "", "cleanup")
	if inv.code != 0 || !regexp.MustCompile(`(?m)^  deleted: +45$`).MatchString(inv.stdout) {
		t.Fatalf("cleanup: exit %d; stdout:\n%s\nstderr:\n%s", inv.code, inv.stdout, inv.stderr)
	}

	inv = runWith(t, env, "110\n", "cleanup", "--all", "--reason", "demo")
	if inv.code != 0 || !regexp.MustCompile(`(?m)^  session keys remaining: +0$`).MatchString(inv.stdout) {
		t.Fatalf("cleanup --all: exit %d; stdout:\n%s\nstderr:\n%s", inv.code, inv.stdout, inv.stderr)
	}
	m := regexp.MustCompile(`(?m)^  backup: +(\S+)$`).FindStringSubmatch(inv.stdout)
	if m == nil {
		t.Fatalf("no backup:\n%s", inv.stdout)
	}

	inv = runWith(t, env, "", "restore", m[1], "--reason", "demo", "--yes")
	if inv.code != 0 || !strings.Contains(inv.stdout, "Restored 110 sessions") {
		t.Fatalf("restore: exit %d; stdout:\n%s\nstderr:\n%s", inv.code, inv.stdout, inv.stderr)
	}
}
