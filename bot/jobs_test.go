package bot

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/platform-team/sessionbot/bot/chat"
	"github.com/platform-team/sessionbot/cleanup"
)

// Procedure 1: expired sessions, no approval, Run by the requester.
func TestProcedure1ExpiredCleanup(t *testing.T) {
	h := newHarness(t)
	h.seedOthers()
	expired := h.seed(sessionSpec{n: 45, expired: true})
	valid := h.seed(sessionSpec{n: 105})

	h.command(alice, "cleanup")
	ref, m := h.chat.latest(-1)
	text := chat.FormatText(m)
	wantContains(t, "preview", text,
		"Found 150 total session keys",
		"45 sessions expired (will be deleted)",
		"105 sessions still valid (will be kept)",
		"Samples (redacted)")
	if got := actionIDs(m); strings.Join(got, ",") != "run,cancel" {
		t.Fatalf("preview buttons = %v; want [run cancel]", got)
	}
	if n := h.sessionCount(); n != 150 {
		t.Fatalf("after preview %d session keys; want 150 (a preview deletes nothing)", n)
	}

	h.press(alice, "run", button(t, m, "run"))
	final := h.chat.msg(ref)
	text = chat.FormatText(final)
	wantContains(t, "report", text, "Cleanup completed", "Deleted:   45", "Remaining: 105 session keys", "Keys outside the session prefix were not touched")
	if len(final.Buttons) != 0 {
		t.Errorf("report has buttons %v; want none", actionIDs(final))
	}
	if n := h.sessionCount(); n != 105 {
		t.Errorf("after run %d session keys; want 105", n)
	}
	h.assertOthersIntact()

	started := h.audited("Cleanup Started")
	if len(started) != 2 || !strings.Contains(started[0], "Mode: dry-run | Filters: expired_only") ||
		!strings.Contains(started[1], "User: "+alice+" (alice) | Mode: execute | Filters: expired_only") {
		t.Errorf("Cleanup Started lines = %q", started)
	}
	wantContains(t, "audit", strings.Join(h.audited("Sessions Scanned"), "\n"), "Total: 150 | Matched: 45 | Kept: 105")
	wantContains(t, "audit", strings.Join(h.audited("Cleanup Completed"), "\n"), "Deleted: 45 | Kept: 105 | Errors: 0")
	if len(h.audited("Request Created")) != 1 {
		t.Errorf("Request Created lines = %q; want 1", h.audited("Request Created"))
	}
	outs := h.notifier.all()
	if len(outs) != 1 || outs[0].Mode != "execute" || outs[0].Report.Deleted != 45 || len(outs[0].Approvals) != 0 || outs[0].Failed {
		t.Errorf("notifier got %+v; want one execute outcome with 45 deleted", outs)
	}
	// A second press after the decision does nothing but say so.
	h.press(carol, "run", button(t, m, "run"))
	wantContains(t, "second press", h.chat.lastEphemeral(carol), "already ran")
	if len(h.audited("Cleanup Started")) != 2 {
		t.Error("a second press started another job")
	}
	h.assertNoLeaks(append(expired, valid...)...)
}

// Procedure 2: mass logout, two-person rule, backup, notification.
func TestProcedure2MassLogout(t *testing.T) {
	h := newHarness(t)
	h.seedOthers()
	ids := h.seed(sessionSpec{n: 30})
	ids = append(ids, h.seed(sessionSpec{n: 10, expired: true})...)
	if err := h.rdb.Set(context.Background(), "session:broken", "not json", 0).Err(); err != nil {
		t.Fatal(err)
	}

	h.command(alice, "cleanup --all")
	wantContains(t, "usage error", h.chat.lastEphemeral(alice), "--reason", "Nothing was done")
	if h.chat.postCount() != 0 {
		t.Fatal("a usage error posted a message")
	}

	h.command(alice, `cleanup --all --reason "incident 42: session secret leaked"`)
	ref, m := h.chat.latest(-1)
	text := chat.FormatText(m)
	wantContains(t, "approval request", text,
		"Approval needed: MASS LOGOUT",
		"Found 41 total session keys",
		"41 sessions will be deleted (ALL)",
		"Requested by: @"+alice,
		"Reason: incident 42: session secret leaked",
		"Approvers: @"+bob+", @"+dave,
		"Backup: yes",
		"Expires: ")
	if got := strings.Join(actionIDs(m), ","); got != "approve,reject,cancel" {
		t.Fatalf("approval buttons = %s; want approve,reject,cancel (never run)", got)
	}
	id := button(t, m, "approve")

	h.press(alice, "approve", id) // self-approval
	wantContains(t, "self-approval refusal", h.chat.lastEphemeral(alice), "two-person rule")
	h.press(carol, "approve", id) // operator, not approver
	wantContains(t, "non-approver refusal", h.chat.lastEphemeral(carol), "Only approvers")
	h.press(alice, "run", id) // run on an approval request
	wantContains(t, "run refusal", h.chat.lastEphemeral(alice), "needs an approver")
	if n := h.sessionCount(); n != 41 {
		t.Fatalf("refused presses changed Redis: %d session keys", n)
	}

	h.press(bob, "approve", id)
	final := chat.FormatText(h.chat.msg(ref))
	wantContains(t, "report", final, "Cleanup completed: all", "Deleted:   41", "Remaining: 0 session keys", "Approved by: @"+bob)
	if n := h.sessionCount(); n != 0 {
		t.Errorf("after mass logout %d session keys; want 0", n)
	}
	h.assertOthersIntact()

	// The backup exists, is private, and holds every session.
	outs := h.notifier.all()
	if len(outs) != 1 {
		t.Fatalf("notifier got %d outcomes; want 1", len(outs))
	}
	o := outs[0]
	if o.Mode != "all" || len(o.Approvals) != 1 || o.Approvals[0].ID != bob || o.Requester.ID != alice || o.Reason != "incident 42: session secret leaked" {
		t.Errorf("outcome = %+v", o)
	}
	want := filepath.Join(h.backupDir, o.JobID+".jsonl.gz")
	if o.Report.Backup != want {
		t.Errorf("backup = %q; want %q", o.Report.Backup, want)
	}
	if fi, err := os.Stat(want); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("backup file %s: %v, mode %v; want 0600", want, err, fi)
	}

	// Audit: requester, approver, executor on separate lines.
	wantContains(t, "audit", strings.Join(h.auditLines(), "\n"),
		"| Request Created | User: "+alice+" (alice) | Request: "+id+" | Mode: all | Filters: all | Reason: incident 42: session secret leaked | Approval: required",
		"| Approved | User: "+bob+" (bob) | Request: "+id+" | Requester: "+alice+" (alice) | Mode: all",
		"| Cleanup Started | User: "+alice+" (alice) | Mode: all | Filters: all | Approved-By: "+bob+" (bob) | Reason: incident 42: session secret leaked",
		"| Cleanup Completed | Deleted: 41 | Kept: 0 | Errors: 0",
		"| Refused | User: "+alice+" (alice) | Action: approve | Request: "+id+" | Why: self-approval",
		"| Refused | User: "+carol+" (carol) | Action: approve | Request: "+id+" | Why: not in APPROVERS",
	)
	// Pressing again after the decision is refused and audited.
	h.press(dave, "approve", id)
	wantContains(t, "late approval", h.chat.lastEphemeral(dave), "already ran")
	if len(h.audited("Approved")) != 1 || len(h.audited("Cleanup Started")) != 2 {
		t.Errorf("late approval changed something: Approved %q", h.audited("Approved"))
	}
	h.assertNoLeaks(ids...)
}

// Procedure 3: selective cleanup by auth method, with the runbook's numbers.
func TestProcedure3AuthMethod(t *testing.T) {
	h := newHarness(t)
	h.seedOthers()
	h.seed(sessionSpec{n: 50, authMethod: "basic_auth"})
	h.seed(sessionSpec{n: 400, authMethod: "oauth2"})
	h.seed(sessionSpec{n: 50, authMethod: "mtls_fallback"})

	h.command(carol, "cleanup --auth-method basic_auth")
	ref, m := h.chat.latest(-1)
	wantContains(t, "preview", chat.FormatText(m),
		"Found 500 total session keys",
		"50 sessions with auth_method=basic_auth (will be deleted)",
		"450 sessions with other auth methods (will be kept)",
		"By auth_method: basic_auth 50")
	// Another operator may run it.
	h.press(alice, "run", button(t, m, "run"))
	wantContains(t, "report", chat.FormatText(h.chat.msg(ref)), "Deleted:   50", "Run by: @"+alice)
	n, err := h.rdb.Eval(context.Background(), `
local n = 0
for _, k in ipairs(redis.call('KEYS', 'session:*')) do
  if string.find(redis.call('GET', k), '"basic_auth"', 1, true) then n = n + 1 end
end
return n`, nil).Int()
	if err != nil || n != 0 {
		t.Errorf("basic_auth sessions left = %d, %v; want 0", n, err)
	}
	if got := h.sessionCount(); got != 450 {
		t.Errorf("%d session keys left; want 450", got)
	}
	wantContains(t, "audit", strings.Join(h.audited("Cleanup Started"), "\n"), "User: "+alice+" (alice) | Mode: execute | Filters: auth_method=basic_auth | Requester: "+carol+" (carol) | Reason:  | Job: ")
	h.assertOthersIntact()
}

// Procedure 4: one user's sessions, then one session by id.
func TestProcedure4UserAndSession(t *testing.T) {
	h := newHarness(t)
	h.seedOthers()
	mine := h.seed(sessionSpec{n: 3, userID: "auth0|123456789", idPrefix: "u123"})
	others := h.seed(sessionSpec{n: 20})

	h.command(alice, `cleanup --user-id "auth0|123456789"`)
	ref, m := h.chat.latest(-1)
	wantContains(t, "preview", chat.FormatText(m),
		"Found 23 total session keys",
		"3 sessions matching user_id=auth0|123456789 (will be deleted)",
		"20 sessions (will be kept)")
	h.press(alice, "run", button(t, m, "run"))
	wantContains(t, "report", chat.FormatText(h.chat.msg(ref)), "Deleted:   3")
	for _, id := range mine {
		if h.rdb.Exists(context.Background(), "session:"+id).Val() != 0 {
			t.Errorf("session of the user survived")
		}
	}
	o := h.notifier.all()[0]
	if len(o.AffectedUsers) != 1 || o.AffectedUsers[0].UserID != "auth0|123456789" {
		t.Errorf("affected users = %+v", o.AffectedUsers)
	}

	h.command(alice, "cleanup --session-id "+others[0])
	ref, m = h.chat.latest(-1)
	// --session-id selects by key: no SCAN, so only the named keys are counted.
	wantContains(t, "preview", chat.FormatText(m), "1 session matching session_id=", "(will be deleted)")
	h.press(alice, "run", button(t, m, "run"))
	wantContains(t, "report", chat.FormatText(h.chat.msg(ref)), "Deleted:   1")
	if h.sessionCount() != 19 {
		t.Errorf("%d sessions left; want 19", h.sessionCount())
	}
	h.assertOthersIntact()
	h.assertNoLeaks(append(mine, others...)...)
}

// More still-valid sessions than APPROVAL_THRESHOLD need approval and write a backup, unless
// --no-backup; the bound on still-valid deletions applies.
func TestThresholdNeedsApprovalAndBackup(t *testing.T) {
	h := newHarness(t, func(_ *harness, d *Deps) { d.Policy.Threshold = 10 })
	ids := h.seed(sessionSpec{n: 30, authMethod: "oauth2"})

	h.command(alice, "cleanup --auth-method oauth2 --no-backup")
	_, m := h.chat.latest(-1)
	wantContains(t, "approval", chat.FormatText(m), "Approval needed", "30 sessions with auth_method=oauth2 (will be deleted)", "Backup: *skipped (--no-backup)*")
	wantContains(t, "audit", strings.Join(h.audited("Request Created"), ""), "Backup: skipped (--no-backup)")

	h.command(alice, "cleanup --auth-method oauth2")
	ref, m := h.chat.latest(-1)
	wantContains(t, "approval", chat.FormatText(m), "Backup: yes")
	h.press(dave, "approve", button(t, m, "approve"))
	o := h.notifier.all()[0]
	if o.Report.Deleted != 30 || o.Report.Backup == "" {
		t.Errorf("report = %+v; want 30 deleted with a backup", o.Report)
	}
	wantContains(t, "report", chat.FormatText(h.chat.msg(ref)), "Backup: `"+o.Report.Backup+"`")

	// The backup holds the 30 deleted sessions, each with its value and its running TTL.
	f, err := os.Open(o.Report.Backup)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	backedUp := map[string]bool{}
	err = cleanup.ReadBackup(f, nil, func(r cleanup.BackupRecord) error {
		backedUp[r.Key] = true
		if !strings.Contains(string(r.Value), `"auth_method":"oauth2"`) || r.PTTL <= 0 || r.PTTL > 2*time.Hour {
			t.Errorf("backup record of %s…: value %d bytes, PTTL %v; want the session and its TTL", cleanup.ShortID(r.Key), len(r.Value), r.PTTL)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("ReadBackup: %v", err)
	}
	for _, id := range ids {
		if !backedUp["session:"+id] {
			t.Errorf("deleted session %s… is not in the backup", cleanup.ShortID(id))
		}
	}
	if len(backedUp) != len(ids) {
		t.Errorf("backup holds %d records; want the %d deleted sessions", len(backedUp), len(ids))
	}
	if fi, err := os.Stat(o.Report.Backup); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("backup file: %v, %v; want mode 0600", fi, err)
	}
}

// APPROVAL_THRESHOLD is the most still-valid sessions a run may log out without approval:
// exactly that many get a Run button and no backup, one more needs an approver and a backup.
// Expired sessions never count.
func TestApprovalThresholdBoundary(t *testing.T) {
	h := newHarness(t, func(_ *harness, d *Deps) { d.Policy.Threshold = 10 })
	h.seed(sessionSpec{n: 10, authMethod: "basic_auth"})
	h.seed(sessionSpec{n: 11, authMethod: "mtls_fallback"})
	h.seed(sessionSpec{n: 30, authMethod: "ldap", expired: true})
	tests := []struct {
		filter   string
		approval bool
	}{
		{"--auth-method basic_auth", false},
		{"--auth-method mtls_fallback", true},
		{"--auth-method ldap", false},
	}
	for _, tt := range tests {
		h.command(alice, "cleanup "+tt.filter)
		_, m := h.chat.latest(-1)
		created := h.audited("Request Created")
		if len(created) == 0 {
			t.Fatalf("cleanup %s: no Request Created line", tt.filter)
		}
		line := created[len(created)-1]
		want, approval, backup := []string{"run", "cancel"}, "Approval: not required", "Backup: no"
		if tt.approval {
			want, approval, backup = []string{"approve", "reject", "cancel"}, "Approval: required", "Backup: yes"
		}
		if got := actionIDs(m); !slices.Equal(got, want) {
			t.Errorf("cleanup %s: buttons %q; want %q", tt.filter, got, want)
		}
		if !strings.Contains(line, approval) || !strings.Contains(line, backup) {
			t.Errorf("cleanup %s: Request Created = %q; want %q and %q", tt.filter, line, approval, backup)
		}
	}
}

// A run stops at previewed still-valid + 10% + 10 when sessions appeared after the preview.
func TestRunStopsAtValidBound(t *testing.T) {
	h := newHarness(t)
	h.seed(sessionSpec{n: 5, authMethod: "basic_auth"})
	h.command(alice, "cleanup --auth-method basic_auth")
	ref, m := h.chat.latest(-1)
	h.seed(sessionSpec{n: 100, authMethod: "basic_auth", idPrefix: "late"})
	h.press(alice, "run", button(t, m, "run"))
	text := chat.FormatText(h.chat.msg(ref))
	wantContains(t, "report", text, "Failed", "Stopped: more still-valid sessions match than the 5 previewed (limit 15)")
	if n := h.sessionCount(); n < 105-15 {
		t.Errorf("%d sessions left; the run deleted more than the bound of 15", n)
	}
	if len(h.audited("Cleanup Failed")) != 1 {
		t.Errorf("Cleanup Failed lines = %q", h.audited("Cleanup Failed"))
	}
}

// A run that needed no approval never logs out more still-valid sessions than
// APPROVAL_THRESHOLD, however many match by the time it runs (SPEC §12.3). (35 keys: one SCAN
// batch, so exactly the threshold is deleted.)
func TestUnapprovedRunStopsAtThreshold(t *testing.T) {
	h := newHarness(t, func(_ *harness, d *Deps) { d.Policy.Threshold = 8 })
	h.seed(sessionSpec{n: 5, authMethod: "basic_auth"})
	h.command(alice, "cleanup --auth-method basic_auth")
	ref, m := h.chat.latest(-1)
	h.seed(sessionSpec{n: 30, authMethod: "basic_auth", idPrefix: "late"})
	h.press(alice, "run", button(t, m, "run"))
	report := chat.FormatText(h.chat.msg(ref))
	wantContains(t, "report", report, "Stopped: more still-valid sessions match than the 5 previewed (limit 8)")
	if n := h.sessionCount(); n != 35-8 {
		t.Errorf("%d sessions left of 35; want 27 (APPROVAL_THRESHOLD=8 logged out):\n%s", n, report)
	}
}

// One destructive job per target: a held lease refuses a second start.
func TestLeaseRefusesSecondJob(t *testing.T) {
	h := newHarness(t)
	h.seed(sessionSpec{n: 5, expired: true})
	h.command(alice, "cleanup")
	_, m := h.chat.latest(-1)
	if err := h.rdb.Set(context.Background(), "sessionbot:lease:test-target", "job-20250101-deadbeef", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	h.press(alice, "run", button(t, m, "run"))
	wantContains(t, "refusal", h.chat.lastEphemeral(alice), "Another cleanup is running: job-20250101-deadbeef")
	if h.sessionCount() != 5 {
		t.Error("a refused run deleted sessions")
	}
	// The request is still pending: once the other job is done, Run works.
	h.rdb.Del(context.Background(), "sessionbot:lease:test-target")
	h.press(alice, "run", button(t, m, "run"))
	if h.sessionCount() != 0 {
		t.Errorf("%d sessions left after run; want 0", h.sessionCount())
	}
}

// A destructive run refuses to start when its audit intent cannot be written.
func TestAuditFailureRefusesToStart(t *testing.T) {
	h := newHarness(t)
	h.seed(sessionSpec{n: 5})
	h.command(alice, "cleanup --all --reason drill")
	ref, m := h.chat.latest(-1)
	_ = h.auditor.Close() // every Log now fails
	h.press(bob, "approve", button(t, m, "approve"))
	if n := h.sessionCount(); n != 5 {
		t.Fatalf("%d sessions left; nothing may be deleted without an audit record", n)
	}
	wantContains(t, "message", chat.FormatText(h.chat.msg(ref)), "Not started", "audit log could not be written")
	wantContains(t, "ephemeral", h.chat.lastEphemeral(bob), "audit log could not be written")
}

// Cancel stops a running job; what was deleted stays deleted and the report says so.
func TestCancelRunningJob(t *testing.T) {
	h := newHarness(t)
	ref, slow := h.slowJob(400)
	h.pressOn(slow, carol, "cancel", button(t, h.chat.msg(ref), "cancel"), "env-cancel")
	slow.Wait()
	wantContains(t, "cancel ack", h.chat.lastEphemeral(carol), "Cancelling job")
	wantContains(t, "report", chat.FormatText(h.chat.msg(ref)), "Cancelled", "those stay deleted")
	wantContains(t, "audit", strings.Join(h.audited("Cancelled"), ""), "User: "+carol+" (carol)")
	if n := h.sessionCount(); n == 0 || n == 400 {
		t.Errorf("%d sessions left; want a partial run", n)
	}
}

// Restore: a mass logout's backup is put back after a second person approves.
func TestRestoreFromBackup(t *testing.T) {
	h := newHarness(t)
	h.seedOthers()
	ids := h.seed(sessionSpec{n: 20})
	id, _ := h.requestAll()
	h.press(bob, "approve", id)
	jobID := h.notifier.all()[0].JobID
	if h.sessionCount() != 0 {
		t.Fatal("mass logout left sessions")
	}

	h.command(carol, "restore "+jobID+" --reason 'wrong environment'")
	ref, m := h.chat.latest(-1)
	wantContains(t, "restore request", chat.FormatText(m), "Approval needed: restore "+jobID,
		"Found 20 sessions in backup", "20 sessions will be restored", "Reason: wrong environment")
	if got := strings.Join(actionIDs(m), ","); got != "approve,reject,cancel" {
		t.Fatalf("restore buttons = %s", got)
	}
	if h.sessionCount() != 0 {
		t.Fatal("the restore preview wrote sessions")
	}
	h.press(carol, "approve", button(t, m, "approve"))
	wantContains(t, "self-approval", h.chat.lastEphemeral(carol), "two-person rule")
	h.press(dave, "approve", button(t, m, "approve"))
	wantContains(t, "report", chat.FormatText(h.chat.msg(ref)), "Restore completed", "Restored: 20")
	if n := h.sessionCount(); n != 20 {
		t.Errorf("%d sessions after restore; want 20", n)
	}
	wantContains(t, "audit", strings.Join(h.auditLines(), "\n"),
		"| Cleanup Started | User: "+carol+" (carol) | Mode: restore | Filters: restore="+jobID+" | Approved-By: "+dave+" (dave)",
		"| Restore Completed | User: "+carol+" (carol) | Job: ",
		"Restored: 20")
	h.assertOthersIntact()
	h.assertNoLeaks(ids...)
}

// A backup that cannot be written stops the run before anything is deleted; the failure is
// reported, audited and handed to the notifier (PagerDuty alert).
func TestBackupFailureDeletesNothing(t *testing.T) {
	h := newHarness(t, func(h *harness, d *Deps) {
		blocker := filepath.Join(t.TempDir(), "not-a-dir")
		if err := os.WriteFile(blocker, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		d.Backup.Dir = filepath.Join(blocker, "backups")
	})
	h.seed(sessionSpec{n: 8})
	id, ref := h.requestAll()
	h.press(bob, "approve", id)
	if n := h.sessionCount(); n != 8 {
		t.Fatalf("%d sessions left; a failed backup must delete nothing", n)
	}
	wantContains(t, "report", chat.FormatText(h.chat.msg(ref)), ":x: Failed: all", "internal error (ref ")
	o := h.notifier.all()
	if len(o) != 1 || !o[0].Failed || o[0].Report.Deleted != 0 || o[0].Partial {
		t.Errorf("outcome = %+v; want failed, nothing deleted, not partial", o)
	}
	wantContains(t, "audit", strings.Join(h.audited("Cleanup Failed"), ""), "Mode: all | Filters: all | Deleted: 0")
	if len(h.audited("Cleanup Completed")) != 0 {
		t.Error("a failed run was audited as completed")
	}
}

// Shutting down stops a running job; it still gets its report and audit line, as a failure
// (nobody asked for the run to stop half-way: the notifier must raise an alert).
func TestCloseStopsRunningJob(t *testing.T) {
	h := newHarness(t)
	h.seed(sessionSpec{n: 300, expired: true})
	d := h.deps()
	d.Engine = cleanup.NewEngine(cleanup.NewTarget(h.rdb, "session:", "test-target"), cleanup.EngineConfig{BatchSize: 10, MaxRate: 40})
	slow := h.newBot(d)
	slow.HandleCommand(context.Background(), Command{EnvelopeID: "close-cmd", TeamID: team, UserID: alice, ChannelID: chan1, Text: "cleanup"})
	slow.Wait()
	ref, m := h.chat.latest(-1)
	h.pressOn(slow, alice, "run", button(t, m, "run"), "close-run")
	progressed := regexp.MustCompile(`· deleted [1-9]`)
	h.chat.waitFor(t, func() bool { return progressed.MatchString(chat.FormatText(h.chat.msg(ref))) })
	slow.Close()
	wantContains(t, "report", chat.FormatText(h.chat.msg(ref)), "Failed", "Interrupted after deleting", "the bot was shutting down")
	wantContains(t, "audit", strings.Join(h.audited("Cleanup Failed"), ""), "Interrupted after deleting")
	if o := h.notifier.all(); len(o) != 1 || !o[0].Failed {
		t.Errorf("outcomes = %+v; want one failed run (PagerDuty alert)", o)
	}
	if h.sessionCount() == 0 {
		t.Error("the job ran to the end despite Close")
	}
	// Commands after Close are not run.
	slow.HandleCommand(context.Background(), Command{EnvelopeID: "late", TeamID: team, UserID: alice, ChannelID: chan1, Text: "cleanup"})
	_, late := h.chat.latest(-1)
	wantContains(t, "late command", chat.FormatText(late), "shutting down")
}
