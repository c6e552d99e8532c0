package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/platform-team/sessionbot/cleanup"
)

// cliScenarios are the commands an operator runs (SPEC §9), measured end to end: the real
// binary from exec to exit, configuration, connection and audit log included. Targets: issue 11.
var cliScenarios = []struct {
	name    string
	args    []string
	wantDel func(cleanup.SeedResult) int64
	goal    goal
}{
	{"CLI: cleanup --dry-run (preview)", []string{"cleanup", "--dry-run"}, none,
		goal{minRatio: 1.8, maxP99: 2 * time.Millisecond, flatRSS: true}},
	{"CLI: cleanup --yes, pacing off", []string{"cleanup", "--yes", "--pause", "0", "--max-rate", "0"}, expired,
		goal{minRatio: 1.0, flatRSS: true}},
	{"CLI: cleanup --yes, default pacing", []string{"cleanup", "--yes"}, expired,
		goal{minRatio: 0.6, maxP99: time.Millisecond, flatRSS: true}},
	{"CLI: cleanup --all --yes (with backup)", []string{"cleanup", "--all", "--yes", "--reason", "bench"}, every,
		goal{minRatio: 0.8, flatRSS: true}},
	{"CLI: cleanup --all --yes --no-backup, pacing off", []string{"cleanup", "--all", "--yes", "--no-backup", "--reason", "bench", "--pause", "0", "--max-rate", "0"}, every,
		goal{flatRSS: true}},
}

// cli runs each CLI scenario over the n sessions, then over the n/10 of db 1 for the peak RSS
// flatness check, verifying both.
func (r *runner) cli() error {
	for _, sc := range cliScenarios {
		if !r.o.want(sc.name) {
			continue
		}
		if err := r.reset(); err != nil {
			return err
		}
		r.logf("%s…", sc.name)
		full, err := r.runCLI(r.full, sc.args)
		if err != nil {
			return fmt.Errorf("%s: %w", sc.name, err)
		}
		want := sc.wantDel(r.full.seed)
		r.verify(sc.name, r.full, want)
		tenth, err := r.runCLI(r.tenth, sc.args)
		if err != nil {
			return fmt.Errorf("%s at n/10: %w", sc.name, err)
		}
		r.verify(sc.name+" at n/10", r.tenth, sc.wantDel(r.tenth.seed))
		n := r.full.seed.Count
		r.rows = append(r.rows, row{Scenario: sc.name, Keys: n, Deleted: want, Wall: full.wall, KeysPerSec: perSec(n, full.wall),
			RSSMB: full.rssMB, TenthRSSMB: tenth.rssMB, P50: full.lat.p50, P99: full.lat.p99, Max: full.lat.max, goal: sc.goal})
	}
	return nil
}

// runCLI runs `sessionbot <args>` against d under the probe and checks that it considered every
// session of d (the runbook's "Found N total session keys").
func (r *runner) runCLI(d *db, args []string) (proc, error) {
	cmd := exec.CommandContext(r.ctx, r.bin, args...)
	cmd.Env = r.env(d.url)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	pr, err := r.p.process(cmd)
	if err != nil {
		return pr, fmt.Errorf("sessionbot %s: %w; its output ends with:\n%s", strings.Join(args, " "), err, tail(stderr.String()))
	}
	if want := fmt.Sprintf("Found %d total session keys\n", d.seed.Count); !strings.Contains(stdout.String(), want) {
		return pr, fmt.Errorf("sessionbot %s did not print %q:\n%s", strings.Join(args, " "), strings.TrimSpace(want), tail(stdout.String()))
	}
	return pr, nil
}

// env is the whole environment of a sessionbot child: only what the run needs, so that nothing
// from the caller's (a REDIS_CLUSTER_ADDRS, a BATCH_SIZE) changes what is measured; -env adds
// settings on purpose (e.g. MAX_KEYS_PER_SECOND=100000, to see what another pacing costs).
func (r *runner) env(redisURL string, extra ...string) []string {
	return append([]string{"PATH=" + os.Getenv("PATH"), "USER=sessionbench", "REDIS_URL=" + redisURL,
		"AUDIT_LOG=" + filepath.Join(r.dir, "audit.log"), "BACKUP_DIR=" + r.backupDir}, append(extra, r.o.env...)...)
}

// buildSessionbot builds the sessionbot binary once into dir (the bench runs inside the module,
// as `make bench` does).
func buildSessionbot(ctx context.Context, dir string) (string, error) {
	bin := filepath.Join(dir, "sessionbot")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/platform-team/sessionbot/cmd/sessionbot")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go build sessionbot: %w", err)
	}
	return bin, nil
}

// tail is the end of a child's output, for error messages.
func tail(s string) string {
	const keep = 2000
	if len(s) > keep {
		s = "…" + s[len(s)-keep:]
	}
	return strings.TrimSpace(s)
}
