package bot

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/platform-team/sessionbot/bot/chat"
	"github.com/platform-team/sessionbot/cleanup"
	"github.com/platform-team/sessionbot/templates"
)

// -update rewrites the golden files (go test ./bot -run Golden -update). Another test file of
// the package may register the flag too, so it is registered once and read through flag.
func init() {
	if flag.Lookup("update") == nil {
		flag.Bool("update", false, "rewrite golden files under testdata/")
	}
}

func renderUpdate() bool {
	f := flag.Lookup("update")
	return f != nil && f.Value.String() == "true"
}

var goldenNow = time.Date(2025, 11, 26, 10, 0, 0, 0, time.UTC)

func goldenPlan(f cleanup.Filter, found, matched, valid, malformed int64) cleanup.Plan {
	return cleanup.Plan{
		Filter: f, Prefix: "session:", At: goldenNow,
		Found: found, Matched: matched, Valid: valid, Malformed: malformed, Kept: found - matched,
		ByAuthMethod: map[string]int64{"oauth2": matched - matched/3, "mtls_fallback": matched / 3},
		TTL:          cleanup.TTLHistogram{NoTTL: 2, Buckets: [5]int64{matched / 2, matched - matched/2 - 2, 0, 0, 0}},
		Samples: []cleanup.Sample{
			{ID: "a1b2c3d4…", UserID: "auth0|123456789", AuthMethod: "oauth2", CreatedAt: goldenNow.Add(-2 * time.Hour),
				LastActivity: goldenNow.Add(-90 * time.Minute), ExpiresAt: goldenNow.Add(-time.Hour), TTL: 5 * time.Minute},
			{ID: "9f8e7d6c…", UserID: "auth0|987654321", AuthMethod: "mtls_fallback", CreatedAt: goldenNow.Add(-3 * time.Hour),
				LastActivity: goldenNow.Add(-2 * time.Hour), ExpiresAt: goldenNow.Add(-30 * time.Minute), TTL: -1},
			{ID: "deadbeef…", TTL: -1, Malformed: true},
		},
		Bytes: matched * 534,
	}
}

func goldenRequest(f cleanup.Filter, plan cleanup.Plan, needs bool) *Request {
	f = f.Normalize()
	r := &Request{
		ID: "0123456789abcdef0123456789abcdef", Kind: "cleanup", Mode: "execute", Filter: f, Scope: f.Scope(),
		Reason: "cleanup after migration", Requester: Person{ID: "UALICE01", Name: "alice"}, Channel: "C0INCIDENT",
		Plan: plan, NeedsApproval: needs, Approvers: []string{"UBOB0001", "S0SECURITY"},
		CreatedAt: goldenNow, ExpiresAt: goldenNow.Add(15 * time.Minute),
		MaxValid: defaultPolicy.Decide(plan, cleanup.Options{}).MaxValid,
	}
	if f.All {
		r.Mode = "all"
		r.Reason = "incident 42: session secret leaked"
		r.Backup = true
	}
	return r
}

func goldenCases() map[string]Message {
	expired := goldenRequest(cleanup.Filter{}, goldenPlan(cleanup.Filter{Expired: true}, 150, 45, 0, 7), false)
	basic := goldenRequest(cleanup.Filter{AuthMethod: "basic_auth"}, goldenPlan(cleanup.Filter{AuthMethod: "basic_auth"}, 500, 50, 20, 0), false)
	user := goldenRequest(cleanup.Filter{UserID: "auth0|123456789", OlderThan: 7 * 24 * time.Hour, OlderThanText: "7d"},
		goldenPlan(cleanup.Filter{UserID: "auth0|123456789"}, 1200, 3, 3, 0), false)
	all := goldenRequest(cleanup.Filter{All: true}, goldenPlan(cleanup.Filter{All: true}, 1234567, 1234567, 1000000, 0), true)
	big := goldenRequest(cleanup.Filter{OlderThan: 30 * 24 * time.Hour, OlderThanText: "30d"}, goldenPlan(cleanup.Filter{}, 90000, 5000, 4000, 12), true)
	big.NoBackup = true
	restore := &Request{
		ID: "fedcba9876543210fedcba9876543210", Kind: "restore", Mode: "restore", Scope: "restore=job-20251126-7f3a9c2b",
		Reason: "wrong target", BackupID: "job-20251126-7f3a9c2b", Requester: Person{ID: "UALICE01"},
		Restore:       &RestorePlan{Path: "backups/job-20251126-7f3a9c2b.jsonl.gz", Records: 1000, Expired: 100, Restorable: 890, OutsidePfx: 10},
		NeedsApproval: true, Approvers: []string{"UBOB0001"}, CreatedAt: goldenNow, ExpiresAt: goldenNow.Add(15 * time.Minute),
	}
	job := &Job{ID: "job-20251126-7f3a9c2b", RequestID: all.ID, Mode: "all", Scope: "all", Reason: all.Reason,
		Requester: all.Requester, Executor: all.Requester, Approvals: []Person{{ID: "UBOB0001", Name: "bob"}},
		Target: "127.0.0.1:6379", StartedAt: goldenNow.Add(time.Minute)}
	runJob := &Job{ID: "job-20251126-00000001", RequestID: expired.ID, Mode: "execute", Scope: "expired_only",
		Requester: expired.Requester, Executor: Person{ID: "UCAROL01"}, StartedAt: goldenNow.Add(time.Minute)}
	rep := cleanup.Report{Filter: cleanup.Filter{All: true}, Mode: "all", Start: goldenNow.Add(time.Minute),
		End: goldenNow.Add(time.Minute + 31500*time.Millisecond), Scanned: 1234600, Matched: 1234600, Deleted: 1234590,
		DeletedValid: 1000100, Kept: 10, Skipped: 10, Errors: 0, Backup: "backups/job-20251126-7f3a9c2b.jsonl.gz", Remaining: 42}
	small := cleanup.Report{Start: goldenNow.Add(time.Minute), End: goldenNow.Add(time.Minute + 1200*time.Millisecond),
		Scanned: 150, Matched: 45, Deleted: 44, Kept: 106, Skipped: 1, Malformed: 7, Remaining: 106}
	repairFilter := cleanup.Filter{Orphans: true, RepairTTL: true}
	repairPlan := goldenPlan(repairFilter, 150, 3, 0, 3)
	repairPlan.Repaired = 12
	repair := goldenRequest(repairFilter, repairPlan, false)
	repair.Mode = ModeRepair
	repaired := cleanup.Report{Filter: repairFilter, Mode: "repair", Start: goldenNow.Add(time.Minute), End: goldenNow.Add(time.Minute + 900*time.Millisecond),
		Scanned: 150, Matched: 3, Deleted: 3, Repaired: 12, Kept: 147, Malformed: 3, Remaining: 147}
	resumable := *all
	resumable.DecidedAt = goldenNow.Add(time.Minute)
	restored := newRestoreOutcome(cleanup.RestoreReport{Read: 1000, Restored: 890, SkippedExpired: 100, SkippedExists: 10},
		goldenNow, goldenNow.Add(2*time.Second))
	progress := &cleanup.Progress{Phase: "delete", Scanned: 600000, Matched: 600000, Deleted: 580000, Elapsed: 14 * time.Second}
	jobs := []*Job{
		{ID: "job-20251126-7f3a9c2b", Mode: "all", Scope: "all", Requester: Person{ID: "UALICE01"}, Status: StatusRunning,
			StartedAt: goldenNow.Add(-time.Minute), Progress: progress},
		{ID: "job-20251126-00000001", Mode: "execute", Scope: "expired_only", Requester: Person{ID: "UCAROL01"}, Status: StatusDone,
			StartedAt: goldenNow.Add(-time.Hour), Report: &small},
		{ID: "job-20251126-00000002", Mode: ModeRestore, Scope: "restore=job-20251126-7f3a9c2b", Requester: Person{ID: "UCAROL01"}, Status: StatusDone,
			StartedAt: goldenNow.Add(-30 * time.Minute), Report: &small},
	}
	// APPROVALS_REQUIRED=2: the card before any approval, after one, and the job they started.
	noneOfTwo := *all
	noneOfTwo.Required = 2
	oneOfTwo := noneOfTwo
	oneOfTwo.Approvals = []Person{{ID: "UBOB0001", Name: "bob"}}
	twoApproved := *job
	twoApproved.Approvals = []Person{{ID: "UBOB0001", Name: "bob"}, {ID: "UDAVE001", Name: "dave"}}
	doneJob := *job
	doneJob.Status = StatusDone
	stats := cleanup.Stats{Prefix: "session:", Total: 1500, Orphans: 12, Expired: 300, Malformed: 2,
		ByAuthMethod: map[string]int64{"oauth2": 1200, "mtls_fallback": 298, "": 2},
		TTL:          cleanup.TTLHistogram{NoTTL: 12, Buckets: [5]int64{50, 200, 500, 738, 0}}, Bytes: 801000, UsedMemory: 52428800, Nodes: 1, Complete: true}

	statsMax, statsNoInfo := stats, stats
	statsMax.MaxMemory = 256 << 20
	statsNoInfo.UsedMemory = 0

	return map[string]Message{
		"help":                 helpMessage(DefaultConfig(), &target{Target: Target{Name: "default", Policy: defaultPolicy}}, &targets{list: []*target{{}}}),
		"previewing":           previewingMessage("expired_only", Person{ID: "UALICE01"}),
		"preview_expired":      previewMessage(expired),
		"preview_auth_method":  previewMessage(basic),
		"preview_user_older":   previewMessage(user),
		"nothing_to_do":        nothingToDoMessage(goldenRequest(cleanup.Filter{}, cleanup.Plan{Found: 10, Kept: 10}, false)),
		"approval_all":         approvalMessage(all),
		"approval_threshold":   approvalMessage(big),
		"approval_restore":     approvalMessage(restore),
		"approval_elsewhere":   approvalElsewhereMessage(all, "C0APPROVAL"),
		"expired":              expiredMessage(all),
		"rejected":             rejectedMessage(all, Person{ID: "UBOB0001"}),
		"cancelled":            cancelledMessage(expired, Person{ID: "UALICE01"}),
		"running_all":          runningMessage(all, job, progress),
		"report_all":           reportMessage(all, job, cleanupOutcome{rep}, StatusDone, ""),
		"report_expired":       reportMessage(expired, runJob, cleanupOutcome{small}, StatusDone, ""),
		"report_failed":        reportMessage(all, job, cleanupOutcome{rep}, StatusFailed, "Failed after deleting 1,234,590 sessions: internal error (ref 0badc0de)"),
		"report_restore":       reportMessage(restore, runJob, restored, StatusDone, ""),
		"not_started":          notStartedMessage(all, "The audit log could not be written, so the job was not started. Nothing was deleted."),
		"status":               statusMessage(jobs, goldenNow),
		"status_empty":         statusMessage(nil, goldenNow),
		"stats":                statsMessage(stats),
		"stats_maxmemory":      statsMessage(statsMax),
		"stats_no_memory_info": statsMessage(statsNoInfo),
		"backups": backupsMessage([]backupRow{
			{Backup: cleanup.Backup{ID: job.ID, Size: 3 << 20, Modified: goldenNow.Add(-26 * time.Hour), Encrypted: true}, Job: &doneJob},
			{Backup: cleanup.Backup{ID: "job-20251120-0000beef", Size: 52000, Modified: goldenNow.Add(-6*24*time.Hour - 90*time.Minute)}},
		}, 5, goldenNow, "/sessions"),
		"backups_none":             backupsMessage(nil, 0, goldenNow, "/sessions"),
		"template_mass_logout":     {Text: "template", Lines: []string{templates.MassLogout(templates.MassLogoutData{Timestamp: "2025-11-26T10:00:00Z", AffectedUsers: "All active users", Reason: "Security incident\n*Fake section*"})}},
		"template_user_notice":     {Text: "template", Lines: []string{templates.UserNotice(templates.UserNoticeData{Timestamp: "2025-11-26T10:00:00Z"})}},
		"preview_progress":         previewProgressMessage("all", Person{ID: "UALICE01"}, *progress),
		"job_detail":               jobDetailMessage(jobs[1], goldenNow),
		"running_restore_start":    runningMessage(restore, runJob, nil),
		"approval_no_approvers":    approvalMessage(&Request{ID: all.ID, Kind: "cleanup", Mode: "all", Filter: all.Filter, Scope: "all", Plan: all.Plan, Requester: all.Requester, NeedsApproval: true, ExpiresAt: all.ExpiresAt}),
		"report_cancelled_local":   reportMessage(expired, runJob, cleanupOutcome{small}, StatusCancelled, "Cancelled after deleting 44 sessions; those stay deleted."),
		"approval_0_of_2":          approvalMessage(&noneOfTwo),
		"approval_1_of_2":          approvalMessage(&oneOfTwo),
		"waiting_elsewhere_1_of_2": approvalElsewhereMessage(&oneOfTwo, "C0APPROVAL"),
		"running_two_approvals":    runningMessage(all, &twoApproved, progress),
		"report_failed_resume": withResume(reportMessage(&resumable, job, cleanupOutcome{rep}, StatusFailed,
			"Interrupted after deleting 1,234,590 sessions: the bot was shutting down. The other sessions were not deleted; run a fresh preview to finish."), &resumable),
		"preview_repair": previewMessage(repair),
		"report_repair":  reportMessage(repair, runJob, cleanupOutcome{repaired}, StatusDone, ""),
	}
}

// TestRenderGolden pins every message people read; review the diff of testdata/render when
// wording changes.
func TestRenderGolden(t *testing.T) {
	for name, m := range goldenCases() {
		t.Run(name, func(t *testing.T) {
			if m.Text == "" {
				t.Errorf("%s: empty Text (the notification fallback must never be empty)", name)
			}
			got := chat.FormatText(m)
			path := filepath.Join("testdata", "render", name+".golden")
			if renderUpdate() {
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test ./bot -run Golden -update)", err)
			}
			if got != string(want) {
				t.Errorf("%s changed (go test ./bot -run Golden -update to accept):\n--- got\n%s\n--- want\n%s", name, got, want)
			}
		})
	}
}

// Approval-needing messages never carry run; previews never carry approve; a failed job's
// report carries only resume.
func TestRenderButtons(t *testing.T) {
	for name, m := range goldenCases() {
		ids := strings.Join(actionIDs(m), ",")
		switch {
		case strings.HasPrefix(name, "approval_") && name != "approval_elsewhere":
			if ids != "approve,reject,cancel" {
				t.Errorf("%s buttons = %s; want approve,reject,cancel", name, ids)
			}
		case strings.HasPrefix(name, "preview_") && name != "preview_progress":
			if ids != "run,cancel" {
				t.Errorf("%s buttons = %s; want run,cancel", name, ids)
			}
		case strings.HasPrefix(name, "running"):
			if ids != "cancel" {
				t.Errorf("%s buttons = %s; want cancel", name, ids)
			}
		case strings.HasSuffix(name, "_resume"):
			if ids != "resume" {
				t.Errorf("%s buttons = %s; want resume", name, ids)
			}
		default:
			if ids != "" {
				t.Errorf("%s has buttons %s; want none", name, ids)
			}
		}
		for _, b := range m.Buttons {
			if !requestIDRe.MatchString(b.Value) {
				t.Errorf("%s: button %s value %q is not an opaque request id", name, b.ActionID, b.Value)
			}
		}
	}
}

func TestNum(t *testing.T) {
	for in, want := range map[int64]string{0: "0", 999: "999", 1000: "1,000", 1234567: "1,234,567", -1500: "-1,500"} {
		if got := num(in); got != want {
			t.Errorf("num(%d) = %q; want %q", in, got, want)
		}
	}
}

// TestSlackTimesAreDateTokens: a time in a Slack message is a <!date^…> token, so that each
// reader sees their own time zone, with the UTC time as the fallback; the console and the
// plain_text header show the fallback. The Slack adapter keeps such a token in the blocks
// (bot/slack's TestDateTokensAndGroupMentionsReachTheBlocks, with this shape).
func TestSlackTimesAreDateTokens(t *testing.T) {
	req := goldenRequest(cleanup.Filter{All: true}, goldenPlan(cleanup.Filter{All: true}, 10, 10, 10, 0), true)
	at := req.ExpiresAt
	token := fmt.Sprintf("<!date^%d^{date_short_pretty} {time}|%s>", at.Unix(), at.UTC().Format("2006-01-02 15:04:05Z"))
	if got := stamp(at); got != token {
		t.Fatalf("stamp(%v) = %q; want %q", at, got, token)
	}
	m := approvalMessage(req)
	card := strings.Join(m.Lines, "\n")
	for _, f := range m.Fields {
		card += "\n" + f.Value
	}
	if !strings.Contains(card, token) {
		t.Errorf("approval card lacks the date token %s: %s", token, card)
	}
	if !strings.Contains(card, "<!subteam^S0SECURITY>") {
		t.Errorf("approval card lacks the group mention: %s", card)
	}
	text := chat.FormatText(m)
	if !strings.Contains(text, "Expires: 2025-11-26 10:15:00Z") || strings.Contains(text, "<!date") {
		t.Errorf("console text of the card does not show the UTC fallback alone:\n%s", text)
	}
}
