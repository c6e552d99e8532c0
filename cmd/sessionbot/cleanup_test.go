package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/platform-team/sessionbot/cleanup"
	"github.com/platform-team/sessionbot/cleanup/redistest"
	"github.com/platform-team/sessionbot/internal/testkit"
)

// procedure1 is the runbook's Procedure 1 data: 150 sessions, 45 expired, 105 still valid,
// plus keys that are not sessions.
var procedure1 = cleanup.SeedSpec{Count: 150, Expired: 0.3, Malformed: -1, Unrelated: 20}

func TestCleanupProcedure1DryRunChangesNothing(t *testing.T) {
	tg := newTarget(t)
	tg.seed(procedure1)
	before := tg.snapshot()

	inv := tg.run("", "cleanup", "--dry-run")
	if inv.code != 0 {
		t.Fatalf("cleanup --dry-run: exit %d; stderr:\n%s", inv.code, inv.stderr)
	}
	wantLines(t, inv.stdout,
		"Found 150 total session keys",
		"45 sessions expired (will be deleted)",
		"105 sessions still valid (will be kept)")
	if strings.Contains(inv.stdout, "malformed sessions") {
		t.Errorf("malformed line shown with no malformed sessions:\n%s", inv.stdout)
	}
	sameKeys(t, before, tg.snapshot())

	lines := tg.auditLines()
	if len(lines) != 2 {
		t.Fatalf("audit log has %d lines; want 2 (Started, Scanned):\n%s", len(lines), strings.Join(lines, "\n"))
	}
	wantAudit(t, lines[0], `Cleanup Started \| User: alice \| Mode: dry-run \| Filters: expired_only$`)
	wantAudit(t, lines[1], `Sessions Scanned \| Total: 150 \| Matched: 45 \| Kept: 105$`)
}

func TestCleanupProcedure1Run(t *testing.T) {
	tg := newTarget(t)
	tg.seed(procedure1)
	tg.env["SUDO_USER"] = "carol"

	inv := tg.run("", "cleanup", "--reason", "expired sessions piling up")
	if inv.code != 0 {
		t.Fatalf("cleanup: exit %d; stderr:\n%s", inv.code, inv.stderr)
	}
	wantLines(t, inv.stdout,
		"Found 150 total session keys",
		"45 sessions expired (will be deleted)",
		"105 sessions still valid (will be kept)")
	for _, re := range []string{
		`(?m)^Cleanup completed in `,
		`(?m)^  scanned: +150$`,
		`(?m)^  deleted: +45$`,
		`(?m)^  kept: +105$`,
		`(?m)^  errors: +0$`,
		`(?m)^  backup: +none$`,
		`(?m)^  session keys remaining: +105$`,
		`(?m)^  redis-cli --scan --pattern "session:\*" \| wc -l   # expected: 105 \(only valid sessions remain\)$`,
	} {
		if !regexp.MustCompile(re).MatchString(inv.stdout) {
			t.Errorf("stdout does not match %s:\n%s", re, inv.stdout)
		}
	}
	if n := tg.count("session:*"); n != 105 {
		t.Errorf("%d session keys left; want 105", n)
	}
	if n := tg.count("cb:*") + tg.count("feature:*"); n == 0 {
		t.Error("unrelated keys were deleted")
	}
	lines := tg.auditLines()
	if len(lines) != 3 {
		t.Fatalf("audit log has %d lines; want 3:\n%s", len(lines), strings.Join(lines, "\n"))
	}
	wantAudit(t, lines[0], `Cleanup Started \| User: carol \| Mode: execute \| Filters: expired_only \| Reason: expired sessions piling up$`)
	wantAudit(t, lines[1], `Sessions Scanned \| Total: 150 \| Matched: 45 \| Kept: 105$`)
	wantAudit(t, lines[2], `Cleanup Completed \| Deleted: 45 \| Kept: 105 \| Errors: 0$`)
	// Audit lines also reach stderr (stdout stays the command's own output).
	if !strings.Contains(inv.stderr, "| Cleanup Completed | Deleted: 45 |") || strings.Contains(inv.stdout, "Cleanup Completed |") {
		t.Errorf("audit lines belong on stderr only; stdout:\n%s\nstderr:\n%s", inv.stdout, inv.stderr)
	}
}

func TestCleanupProcedure3AuthMethod(t *testing.T) {
	tg := newTarget(t)
	res := tg.seed(cleanup.SeedSpec{Count: 500, Malformed: -1, Unrelated: 10})
	if res.ByAuthMethod["basic_auth"] != 50 {
		t.Fatalf("seeded %d basic_auth sessions; want 50", res.ByAuthMethod["basic_auth"])
	}
	want := []string{
		"Found 500 total session keys",
		"50 sessions with auth_method=basic_auth (will be deleted)",
		"450 sessions with other auth methods (will be kept)",
	}
	inv := tg.run("", "cleanup", "--auth-method", "basic_auth", "--dry-run")
	if inv.code != 0 {
		t.Fatalf("dry run: exit %d; stderr:\n%s", inv.code, inv.stderr)
	}
	wantLines(t, inv.stdout, want...)

	inv = tg.run("", "cleanup", "--auth-method", "basic_auth")
	if inv.code != 0 {
		t.Fatalf("run: exit %d; stderr:\n%s", inv.code, inv.stderr)
	}
	wantLines(t, inv.stdout, want...)
	if n := tg.count("session:*"); n != 450 {
		t.Errorf("%d session keys left; want 450", n)
	}
	lines := tg.auditLines()
	wantAudit(t, lines[len(lines)-3], `Cleanup Started \| User: alice \| Mode: execute \| Filters: auth_method=basic_auth$`)
	wantAudit(t, lines[len(lines)-1], `Cleanup Completed \| Deleted: 50 \| Kept: 450 \| Errors: 0$`)
}

func TestCleanupOtherScopesAndMalformed(t *testing.T) {
	tg := newTarget(t)
	res := tg.seed(cleanup.SeedSpec{Count: 200, Malformed: 0.05})
	inv := tg.run("", "cleanup", "--orphans", "--dry-run")
	if inv.code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", inv.code, inv.stderr)
	}
	// Orphans whose value is not a JSON object are malformed: kept, as by every filter but
	// --all and --session-id, and counted on their own line.
	orphans := res.NoTTL - res.UndecodableNoTTL
	undecodable := res.MalformedByKind[cleanup.MalformedNotJSON] + res.MalformedByKind[cleanup.MalformedJSONArray] + res.MalformedByKind[cleanup.MalformedNotString]
	wantLines(t, inv.stdout,
		"Found 200 total session keys",
		itoa(orphans)+" sessions matching orphans (will be deleted)",
		itoa(200-orphans-undecodable)+" sessions (will be kept)",
		itoa(undecodable)+" malformed sessions (kept; only --all or --session-id remove them)")

	inv = tg.run("", "cleanup", "--dry-run")
	wantLines(t, inv.stdout,
		"Found 200 total session keys",
		itoa(res.Expired)+" sessions expired (will be deleted)",
		itoa(200-res.Expired-res.Malformed)+" sessions still valid (will be kept)",
		"10 malformed sessions (kept; only --all or --session-id remove them)")
}

// malformedMix is the runbook's 150 sessions (45 expired, 105 still valid) plus 5 malformed keys,
// one of each kind (a hash among them).
var malformedMix = cleanup.SeedSpec{Count: 155, Expired: 45.0 / 155, Malformed: 5.0 / 155, Unrelated: 10}

// The preview counts found = expired + still valid + malformed: malformed keys are neither
// "still valid" nor "expired" (SPEC §11, Counting).
func TestCleanupPreviewCountsMalformedApart(t *testing.T) {
	tg := newTarget(t)
	res := tg.seed(malformedMix)
	if res.Expired != 45 || res.Valid != 105 || res.Malformed != 5 {
		t.Fatalf("seeded %d expired, %d valid, %d malformed; want 45, 105, 5", res.Expired, res.Valid, res.Malformed)
	}
	inv := tg.run("", "cleanup", "--dry-run")
	if inv.code != 0 {
		t.Fatalf("cleanup --dry-run: exit %d; stderr:\n%s", inv.code, inv.stderr)
	}
	wantLines(t, inv.stdout,
		"Found 155 total session keys",
		"45 sessions expired (will be deleted)",
		"105 sessions still valid (will be kept)",
		"5 malformed sessions (kept; only --all or --session-id remove them)")
}

func TestCleanupAllConfirmation(t *testing.T) {
	tg := newTarget(t)
	tg.seed(procedure1)
	before := tg.snapshot()
	unrelated := tg.count("cb:*") + tg.count("feature:*")

	for _, stdin := range []string{"149\n", "", "yes\n", "1 50\n"} {
		inv := tg.run(stdin, "cleanup", "--all", "--reason", "session secret rotated")
		if inv.code != 1 {
			t.Errorf("typed %q: exit %d; want 1", stdin, inv.code)
		}
		if !strings.Contains(inv.stderr, "aborted, nothing deleted") {
			t.Errorf("typed %q: stderr lacks the abort line:\n%s", stdin, inv.stderr)
		}
		wantLines(t, inv.stdout, "Found 150 total session keys", "150 sessions will be deleted (ALL)")
		sameKeys(t, before, tg.snapshot())
	}
	if entries, _ := os.ReadDir(tg.env["BACKUP_DIR"]); len(entries) != 0 {
		t.Errorf("an aborted mass logout left files in BACKUP_DIR: %v", entries)
	}

	inv := tg.run("150\n", "cleanup", "--all", "--reason", "session secret rotated", "--as", "dave")
	if inv.code != 0 {
		t.Fatalf("typed 150: exit %d; stderr:\n%s", inv.code, inv.stderr)
	}
	if n := tg.count("session:*"); n != 0 {
		t.Errorf("%d session keys left after --all; want 0", n)
	}
	if n := tg.count("cb:*") + tg.count("feature:*"); n != unrelated || n == 0 {
		t.Errorf("unrelated keys: %d after, %d before", n, unrelated)
	}
	// A mass logout writes a backup first, private to its owner.
	m := regexp.MustCompile(`(?m)^  backup: +(\S+)$`).FindStringSubmatch(inv.stdout)
	if m == nil {
		t.Fatalf("report names no backup:\n%s", inv.stdout)
	}
	fi, err := os.Stat(m[1])
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 || filepath.Dir(m[1]) != tg.env["BACKUP_DIR"] || !strings.HasSuffix(m[1], ".jsonl.gz") {
		t.Errorf("backup %s mode %v; want 0600 in BACKUP_DIR", m[1], fi.Mode().Perm())
	}
	// It holds every session as it was before the run, with a TTL that was still running.
	backedUp := readBackup(t, m[1])
	for k, v := range before {
		if !strings.HasPrefix(k, "session:") {
			continue
		}
		r, ok := backedUp[k]
		if !ok || string(r.Value) != v {
			t.Errorf("backup record of %s… = %v (value %d bytes); want its value (%d bytes)", cleanup.ShortID(k), ok, len(r.Value), len(v))
		}
		if r.PTTL != cleanup.NoTTL && (r.PTTL <= 0 || r.PTTL > 90*time.Minute) {
			t.Errorf("backup record of %s…: PTTL %v; want none or the seeded 30–90 min", cleanup.ShortID(k), r.PTTL)
		}
	}
	if len(backedUp) != 150 {
		t.Errorf("backup holds %d records; want the 150 deleted sessions", len(backedUp))
	}
	lines := tg.auditLines()
	wantAudit(t, lines[2], `Cancelled \| User: alice \| Mode: all \| Filters: all \| Reason: not confirmed at the prompt$`)
	last := lines[len(lines)-3:]
	wantAudit(t, last[0], `Cleanup Started \| User: dave \(os user alice\) \| Mode: all \| Filters: all \| Reason: session secret rotated$`)
	wantAudit(t, last[1], `Sessions Scanned \| Total: 150 \| Matched: 150 \| Kept: 0$`)
	wantAudit(t, last[2], `Cleanup Completed \| Deleted: 150 \| Kept: 0 \| Errors: 0 \| Backup: `+regexp.QuoteMeta(m[1])+`$`)
}

func TestCleanupUsageErrorsTouchNothing(t *testing.T) {
	tg := newTarget(t)
	tg.seed(procedure1)
	before := tg.snapshot()
	for _, args := range [][]string{
		{"cleanup", "--all"},
		{"cleanup", "--all", "--expired", "--reason", "x"},
		{"cleanup", "--bogus"},
		{"cleanup", "--older-than", "soon"},
		{"cleanup", "--user_id", "auth0|1"},
		{"stats", "--yaml"},
		{"restore"},
		{"seed"},
		{"frobnicate"},
	} {
		inv := tg.run("150\n", args...)
		if inv.code != 2 {
			t.Errorf("%q: exit %d; want 2", args, inv.code)
		}
		if n := strings.Count(inv.stderr, "\n"); n != 1 {
			t.Errorf("%q: stderr has %d lines; want one:\n%s", args, n, inv.stderr)
		}
		if inv.stdout != "" {
			t.Errorf("%q: stdout not empty:\n%s", args, inv.stdout)
		}
	}
	sameKeys(t, before, tg.snapshot())
	if _, err := os.Stat(tg.audit); !os.IsNotExist(err) {
		t.Errorf("usage errors wrote an audit log (%v)", err)
	}
	inv := tg.run("", "cleanup", "--all")
	if want := `sessionbot cleanup: --all (mass logout) needs --reason "TEXT" (see sessionbot cleanup --help)` + "\n"; inv.stderr != want {
		t.Errorf("--all without --reason: stderr %q; want %q", inv.stderr, want)
	}
}

func TestCleanupOverThresholdAsksAndBacksUp(t *testing.T) {
	tg := newTarget(t)
	res := tg.seed(cleanup.SeedSpec{Count: 100, Malformed: -1})
	tg.env["APPROVAL_THRESHOLD"] = "10"
	valid := res.ByAuthMethod["oauth2"] - res.ExpiredByAuthMethod["oauth2"]

	inv := tg.run("", "cleanup", "--auth-method", "oauth2")
	if inv.code != 1 || !strings.Contains(inv.stderr, "aborted, nothing deleted") {
		t.Fatalf("end of input at the prompt: exit %d; stderr:\n%s", inv.code, inv.stderr)
	}
	if !strings.Contains(inv.stderr, "Type "+itoa(res.ByAuthMethod["oauth2"])+" to confirm") {
		t.Errorf("prompt does not ask for the count:\n%s", inv.stderr)
	}
	if n := tg.count("session:*"); n != 100 {
		t.Fatalf("%d session keys after an aborted run; want 100", n)
	}

	inv = tg.run("", "cleanup", "--auth-method", "oauth2", "--yes")
	if inv.code != 0 {
		t.Fatalf("--yes: exit %d; stderr:\n%s", inv.code, inv.stderr)
	}
	if !strings.Contains(inv.stdout, itoa(valid)+" of them still valid") || !strings.Contains(inv.stdout, "Writing a backup to ") {
		t.Errorf("over-threshold run neither warned about logouts nor wrote a backup:\n%s", inv.stdout)
	}
	if n := tg.count("session:*"); int64(n) != 100-res.ByAuthMethod["oauth2"] {
		t.Errorf("%d session keys left; want %d", n, 100-res.ByAuthMethod["oauth2"])
	}
}

// APPROVAL_THRESHOLD is the most still-valid sessions a run logs out without asking for the
// count and writing a backup: exactly that many need neither, one more needs both.
func TestCleanupThresholdBoundary(t *testing.T) {
	tg := newTarget(t)
	res := tg.seed(cleanup.SeedSpec{Count: 100, Malformed: -1})
	valid := res.ByAuthMethod["oauth2"] - res.ExpiredByAuthMethod["oauth2"]

	tg.env["APPROVAL_THRESHOLD"] = itoa(valid - 1)
	inv := tg.run("", "cleanup", "--auth-method", "oauth2")
	if inv.code != 1 || !strings.Contains(inv.stderr, "aborted, nothing deleted") {
		t.Errorf("%d still valid, threshold %d: exit %d; want the prompt and an abort; stderr:\n%s", valid, valid-1, inv.code, inv.stderr)
	}
	if n := tg.count("session:*"); n != 100 {
		t.Fatalf("%d session keys after an aborted run; want 100", n)
	}

	tg.env["APPROVAL_THRESHOLD"] = itoa(valid)
	inv = tg.run("", "cleanup", "--auth-method", "oauth2")
	if inv.code != 0 || strings.Contains(inv.stderr, "to confirm") || strings.Contains(inv.stdout, "Writing a backup") {
		t.Errorf("%d still valid, threshold %d: exit %d; want no prompt and no backup; stdout:\n%s\nstderr:\n%s", valid, valid, inv.code, inv.stdout, inv.stderr)
	}
	if n := tg.count("session:*"); int64(n) != 100-res.ByAuthMethod["oauth2"] {
		t.Errorf("%d session keys left; want %d", n, 100-res.ByAuthMethod["oauth2"])
	}
	if entries, _ := os.ReadDir(tg.env["BACKUP_DIR"]); len(entries) != 0 {
		t.Errorf("a run at the threshold wrote %v to BACKUP_DIR", entries)
	}
}

// A run logs out at most the previewed still-valid count + 10% + 10 (SPEC §11). Here 100 more
// sessions start matching while the operator reads the prompt: the run stops at the bound,
// fails, says why, and the audit log records the failure.
func TestCleanupStopsAtValidBound(t *testing.T) {
	tg := newTarget(t)
	tg.env["APPROVAL_THRESHOLD"] = "10"
	ldap := func(n int, seed int64) {
		tg.seed(cleanup.SeedSpec{Count: n, Seed: seed, AuthMethods: map[string]float64{"ldap": 1}, Expired: -1})
	}
	ldap(20, 1)
	p := tg.runToPrompt("cleanup", "--auth-method", "ldap", "--reason", "bound drill")
	ldap(100, 2)
	if n := tg.count("session:*"); n != 120 {
		t.Fatalf("%d session keys; want 120", n)
	}
	inv := p.answer("20\n")
	if inv.code != 1 || !strings.Contains(inv.stderr, "more still-valid sessions match than were previewed") {
		t.Errorf("exit %d; want 1 and the bound named; stderr:\n%s", inv.code, inv.stderr)
	}
	if deleted, bound := 120-int64(tg.count("session:*")), cleanup.ValidBound(20); deleted > bound {
		t.Errorf("deleted %d still-valid sessions; want at most %d (20 previewed + 10%% + 10)", deleted, bound)
	}
	lines := tg.auditLines()
	wantAudit(t, lines[len(lines)-1], `Cleanup Failed \| User: alice \| Mode: execute \| Filters: auth_method=ldap \| Deleted: \d+ \| .*more still-valid sessions match than were previewed`)
}

func TestCleanupRefusesWithoutAuditLog(t *testing.T) {
	tg := newTarget(t)
	tg.seed(procedure1)
	before := tg.snapshot()
	tg.env["AUDIT_LOG"] = filepath.Join(t.TempDir(), "missing-dir", "audit.log")
	inv := tg.run("150\n", "cleanup", "--all", "--reason", "x")
	if inv.code != 1 || !strings.Contains(inv.stderr, "cannot open the audit log, nothing done") {
		t.Errorf("exit %d; stderr:\n%s", inv.code, inv.stderr)
	}
	sameKeys(t, before, tg.snapshot())
}

func TestConfigErrorsListedTogether(t *testing.T) {
	env := map[string]string{
		"REDIS_URL":             "redis://:hunter2@127.0.0.1:1/0",
		"REDIS_CLUSTER_ADDRS":   "127.0.0.1:2",
		"BATCH_SIZE":            "lots",
		"BATCH_PAUSE":           "-5ms",
		"MAX_KEYS_PER_SECOND":   "fast",
		"APPROVAL_THRESHOLD":    "1e3",
		"BACKUP_AGE_RECIPIENTS": "not-a-key",
		"AUDIT_SYSLOG_ADDR":     "carrier-pigeon://x",
	}
	inv := runWith(t, env, "", "cleanup", "--dry-run")
	if inv.code != 2 {
		t.Errorf("exit %d; want 2", inv.code)
	}
	for _, v := range []string{"REDIS_URL, REDIS_CLUSTER_ADDRS", "BATCH_SIZE", "BATCH_PAUSE", "MAX_KEYS_PER_SECOND",
		"APPROVAL_THRESHOLD", "BACKUP_AGE_RECIPIENTS", "AUDIT_SYSLOG_ADDR"} {
		if !regexp.MustCompile(`(?m)^sessionbot cleanup: ` + regexp.QuoteMeta(v)).MatchString(inv.stderr) {
			t.Errorf("no line starting with %s:\n%s", v, inv.stderr)
		}
	}
	if strings.Contains(inv.stderr, "hunter2") {
		t.Errorf("a Redis password was printed:\n%s", inv.stderr)
	}
	if inv.stdout != "" {
		t.Errorf("stdout not empty:\n%s", inv.stdout)
	}
}

func TestHelpTeaches(t *testing.T) {
	for _, cmd := range commands {
		inv := runWith(t, nil, "", cmd.name, "--help")
		if inv.code != 0 || !strings.Contains(inv.stdout, "sessionbot "+cmd.name) || !strings.Contains(inv.stdout, "Example") {
			t.Errorf("%s --help: exit %d, stdout:\n%s", cmd.name, inv.code, inv.stdout)
		}
	}
	inv := runWith(t, nil, "", "help")
	for _, cmd := range commands {
		if !strings.Contains(inv.stdout, "  "+cmd.name+" ") {
			t.Errorf("help does not list %s:\n%s", cmd.name, inv.stdout)
		}
	}
}

// wantAudit checks one audit line: an RFC 3339 UTC second, then the event and its fields.
func wantAudit(t *testing.T, line, re string) {
	t.Helper()
	if !regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ \| ` + re).MatchString(line) {
		t.Errorf("audit line %q does not match %s", line, re)
	}
}

// A mass logout removes malformed sessions too, a hash included, and backs them all up.
func TestCleanupAllRemovesMalformed(t *testing.T) {
	tg := newTarget(t)
	tg.seed(cleanup.SeedSpec{Count: 100, Malformed: 0.1, Unrelated: 10})
	inv := tg.run("", "cleanup", "--all", "--reason", "drill", "--yes")
	if inv.code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", inv.code, inv.stderr)
	}
	wantLines(t, inv.stdout, "Found 100 total session keys", "100 sessions will be deleted (ALL)")
	if n := tg.count("session:*"); n != 0 || strings.Contains(inv.stdout, "WARNING") {
		t.Errorf("%d session keys left; stdout:\n%s", n, inv.stdout)
	}
	if !regexp.MustCompile(`(?m)^  deleted: +100$`).MatchString(inv.stdout) {
		t.Errorf("report:\n%s", inv.stdout)
	}
}

// Ctrl-C at the confirmation prompt aborts at once, even though standard input stays open.
func TestCleanupInterruptAtPrompt(t *testing.T) {
	tg := newTarget(t)
	tg.seed(procedure1)
	before := tg.snapshot()
	pr, pw := io.Pipe()
	defer pw.Close()
	ctx, cancel := context.WithCancel(context.Background())
	var out, errb testkit.SyncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"cleanup", "--all", "--reason", "x"}, func(k string) string { return tg.env[k] }, pr, &out, &errb)
	}()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(errb.String(), "to confirm") {
		if time.Now().After(deadline) {
			t.Fatalf("no prompt; stderr:\n%s", errb.String())
		}
		runtime.Gosched()
	}
	cancel()
	select {
	case err := <-done:
		if exitCode(err) != 1 || !strings.Contains(errb.String(), "aborted, nothing deleted") {
			t.Errorf("exit %d; stderr:\n%s", exitCode(err), errb.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("run did not return after Ctrl-C at the prompt")
	}
	sameKeys(t, before, tg.snapshot())
}

// readBackup decodes a plain backup file by key.
func readBackup(t *testing.T, path string) map[string]cleanup.BackupRecord {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]cleanup.BackupRecord{}
	err = cleanup.ReadBackup(f, nil, func(r cleanup.BackupRecord) error {
		if _, dup := out[r.Key]; dup {
			t.Errorf("%s… backed up twice", cleanup.ShortID(r.Key))
		}
		out[r.Key] = r
		return nil
	})
	if err != nil {
		t.Fatalf("ReadBackup(%s): %v", path, err)
	}
	return out
}

// prompted is a command line running in the background, stopped at its confirmation prompt.
type prompted struct {
	t     *testing.T
	stdin *io.PipeWriter
	done  chan invocation
}

// runToPrompt starts the command line and returns once it asks to type a count, so that the
// test can change Redis while the operator would be reading.
func (tg *target) runToPrompt(args ...string) *prompted {
	tg.t.Helper()
	pr, pw := io.Pipe()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	p := &prompted{t: tg.t, stdin: pw, done: make(chan invocation, 1)}
	var out, errb testkit.SyncBuffer
	go func() {
		err := run(ctx, args, func(k string) string { return tg.env[k] }, pr, &out, &errb)
		p.done <- invocation{code: exitCode(err), stdout: out.String(), stderr: errb.String()}
	}()
	tg.t.Cleanup(func() {
		cancel()
		pw.Close()
	})
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(errb.String(), "to confirm") {
		select {
		case inv := <-p.done:
			tg.t.Fatalf("sessionbot %s ended without a prompt: exit %d; stderr:\n%s", strings.Join(args, " "), inv.code, inv.stderr)
		case <-time.After(time.Millisecond):
		}
		if time.Now().After(deadline) {
			tg.t.Fatalf("sessionbot %s: no prompt; stderr:\n%s", strings.Join(args, " "), errb.String())
		}
	}
	return p
}

// answer types line at the prompt and waits for the command to end.
func (p *prompted) answer(line string) invocation {
	p.t.Helper()
	if _, err := io.WriteString(p.stdin, line); err != nil {
		p.t.Fatal(err)
	}
	select {
	case inv := <-p.done:
		if strings.Contains(inv.stdout, canary) || strings.Contains(inv.stderr, canary) {
			p.t.Errorf("a session token reached the output:\n%s\n%s", inv.stdout, inv.stderr)
		}
		return inv
	case <-time.After(60 * time.Second):
		p.t.Fatal("the command did not end within 60s of the answer")
		return invocation{}
	}
}

// A key list left in BACKUP_DIR by a run that crashed names session keys: the next run removes
// it before doing anything (SPEC §12.8).
func TestStaleKeyListsAreRemovedAtStart(t *testing.T) {
	tg := newTarget(t)
	tg.seed(procedure1)
	dir := tg.env["BACKUP_DIR"]
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	stale := filepath.Join(dir, ".cli-20261126T100000Z-abcdef.keys")
	if err := os.WriteFile(stale, []byte("session:a1b2c3d4e5f6g7h8"), 0o600); err != nil {
		t.Fatal(err)
	}
	inv := tg.run("", "cleanup", "--dry-run")
	if inv.code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", inv.code, inv.stderr)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("stale key list still there (%v)", err)
	}
	if !strings.Contains(inv.stderr, "Removed 1 key list") {
		t.Errorf("stderr does not say the key list was removed:\n%s", inv.stderr)
	}
}

// Runbook Scenario 1 ("TTL not set correctly"): --orphans --repair-ttl gives every still-valid
// orphan its TTL from expires_at and deletes only the expired ones, without a prompt.
func TestCleanupRepairTTL(t *testing.T) {
	tg := newTarget(t)
	tg.seed(cleanup.SeedSpec{Count: 200, Expired: 0.3, NoTTL: 0.4, Malformed: -1, Unrelated: 20})
	ctx := context.Background()
	orphans := func() (valid, expired int) {
		iter := tg.client.Scan(ctx, 0, "session:*", 1000).Iterator()
		for iter.Next(ctx) {
			k := iter.Val()
			if tg.client.PTTL(ctx, k).Val() != -1 {
				continue
			}
			s, ok := cleanup.DecodeSession([]byte(tg.client.Get(ctx, k).Val()))
			if ok && s.ExpiresAt.Before(time.Now()) {
				expired++
			} else {
				valid++
			}
		}
		return valid, expired
	}
	valid, expired := orphans()
	if valid == 0 || expired == 0 {
		t.Fatalf("seeded %d still-valid and %d expired orphans; want both", valid, expired)
	}
	total := tg.count("session:*")

	inv := tg.run("", "cleanup", "--orphans", "--repair-ttl")
	if inv.code != 0 {
		t.Fatalf("cleanup --orphans --repair-ttl: exit %d; stderr:\n%s", inv.code, inv.stderr)
	}
	wantLines(t, inv.stdout,
		itoa(int64(valid))+" sessions will get a TTL (repaired)",
		itoa(int64(expired))+" sessions expired (will be deleted)",
		"  "+itoa(int64(valid))+" sessions got a TTL (repaired)",
		"  "+itoa(int64(expired))+" sessions expired (deleted)")
	if strings.Contains(inv.stdout, "Type the number") || strings.Contains(inv.stdout, "backup to") {
		t.Errorf("a repair asked for confirmation or wrote a backup:\n%s", inv.stdout)
	}
	if v, e := orphans(); v != 0 || e != 0 {
		t.Errorf("after the repair: %d still-valid and %d expired orphans; want none", v, e)
	}
	if n := tg.count("session:*"); n != total-expired {
		t.Errorf("%d session keys left; want %d (only expired orphans deleted)", n, total-expired)
	}
	lines := tg.auditLines()
	wantAudit(t, lines[0], `Cleanup Started \| User: alice \| Mode: repair \| Filters: orphans$`)
	wantAudit(t, lines[len(lines)-1], `Cleanup Completed \| Deleted: `+itoa(int64(expired))+` \| Kept: `)

	inv = tg.run("", "cleanup", "--repair-ttl")
	if inv.code != 2 || !strings.Contains(inv.stderr, "--repair-ttl works only with --orphans") {
		t.Errorf("cleanup --repair-ttl: exit %d, stderr %q; want 2 and a usage error", inv.code, inv.stderr)
	}
}

// `cleanup --all --yes` asks nobody after its preview, so its backup's first round is the
// preview: every session is read once (one MGET a batch), not once to preview and again to
// back up. The preview is still shown and audited before anything is deleted, and a mass
// logout that finds nothing leaves no backup file behind.
func TestCleanupAllYesReadsEachSessionOnce(t *testing.T) {
	tg := newTarget(t)
	seeded := tg.seed(cleanup.SeedSpec{Count: 1000, Unrelated: 10})
	ctx := context.Background()
	if err := tg.client.ConfigResetStat(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	inv := tg.run("", "cleanup", "--all", "--reason", "drill", "--yes")
	if inv.code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", inv.code, inv.stderr)
	}
	wantLines(t, inv.stdout, "Found 1000 total session keys", "1000 sessions will be deleted (ALL)")
	if n := tg.count("session:*"); n != 0 {
		t.Errorf("%d session keys left", n)
	}
	// 1000 keys in batches of 100: 10 MGETs read them all once; a second pass would be 20.
	if calls, err := redistest.CommandCalls(ctx, tg.client, "mget"); err != nil || calls == 0 || calls > 12 {
		t.Errorf("%d MGET calls (%v) for %d sessions in batches of 100; want about 10 (each session read once)", calls, err, seeded.Count)
	}
	lines := tg.auditLines()
	scanned, completed := -1, -1
	for i, l := range lines {
		switch {
		case strings.Contains(l, "| Sessions Scanned |"):
			scanned = i
		case strings.Contains(l, "| Cleanup Completed |"):
			completed = i
		}
	}
	if scanned < 0 || completed < scanned {
		t.Errorf("audit: want Sessions Scanned, then Cleanup Completed:\n%s", strings.Join(lines, "\n"))
	}
	if !strings.Contains(lines[completed], "Backup: ") {
		t.Errorf("Cleanup Completed names no backup: %s", lines[completed])
	}

	// Nothing left: nothing to delete, and no backup file of nothing.
	before, _ := os.ReadDir(tg.env["BACKUP_DIR"])
	inv = tg.run("", "cleanup", "--all", "--reason", "drill", "--yes")
	if inv.code != 0 || !strings.Contains(inv.stdout, "Nothing to delete (the empty backup was removed).") {
		t.Fatalf("exit %d; stdout:\n%s", inv.code, inv.stdout)
	}
	if after, _ := os.ReadDir(tg.env["BACKUP_DIR"]); len(after) != len(before) {
		t.Errorf("backup dir holds %d entries after a mass logout of nothing; want %d as before", len(after), len(before))
	}
}
