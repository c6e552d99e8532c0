package cleanup

import (
	"testing"
	"time"
)

// grouped spells numbers as the bot does; plain (summary_test.go) as the CLI does.
func grouped(n int64) string {
	s := plain(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// TestTypedEvents pins each event type to the exact line it writes, with and without its
// optional fields: these are the lines the bot and the CLI write today.
func TestTypedEvents(t *testing.T) {
	t0 := auditT0
	restored := RestoreReport{Read: 1200, Restored: 1050, SkippedExpired: 140, SkippedExists: 7, SkippedPrefix: 3, Errors: 0}
	tests := []struct {
		name string
		ev   AuditEvent
		want string
	}{
		{
			name: "started: bot job approved",
			ev: CleanupStarted{User: "U1 (alice)", Mode: "all", Filters: "all", ApprovedBy: "U2 (bob)", Reason: "INC-42",
				Job: "job-1", Request: "r1", Backup: "yes"}.Event(t0),
			want: "Cleanup Started | User: U1 (alice) | Mode: all | Filters: all | Approved-By: U2 (bob) | Reason: INC-42 | Job: job-1 | Request: r1 | Backup: yes",
		},
		{
			name: "resumed: a mass logout under its approval",
			ev: CleanupResumed{User: "U3 (carol)", Mode: "all", Filters: "all", Job: "job-2", Resumes: "job-1", Request: "r1",
				DeletedValidBefore: 1500, MaxValid: -1, Backup: "job-1"}.Event(t0, grouped),
			want: "Cleanup Resumed | User: U3 (carol) | Mode: all | Filters: all | Job: job-2 | Resumes: job-1 | Request: r1 | Valid-Deleted-Before: 1,500 | Backup: job-1",
		},
		{
			name: "resumed: bounded, no backup",
			ev: CleanupResumed{User: "U3 (carol)", Mode: "execute", Filters: "auth_method=basic_auth", Job: "job-3", Resumes: "job-2",
				DeletedValidBefore: 40, MaxValid: 25}.Event(t0, plain),
			want: "Cleanup Resumed | User: U3 (carol) | Mode: execute | Filters: auth_method=basic_auth | Job: job-3 | Resumes: job-2 | Valid-Deleted-Before: 40 | Max-Valid: 25",
		},
		{
			name: "started: bot job run by another operator, no reason",
			ev: CleanupStarted{User: "U1 (alice)", Mode: "execute", Filters: "expired_only", Requester: "U3 (carol)",
				Job: "job-1", Request: "r1", Backup: "no"}.Event(t0),
			want: "Cleanup Started | User: U1 (alice) | Mode: execute | Filters: expired_only | Requester: U3 (carol) | Reason:  | Job: job-1 | Request: r1 | Backup: no",
		},
		{
			name: "started: bot restore job",
			ev: CleanupStarted{User: "U3 (carol)", Mode: "restore", Filters: "restore=job-0", ApprovedBy: "U4 (dave)", Reason: "rollback",
				Job: "job-1", Request: "r1", Backup: "no", BackupID: "job-0"}.Event(t0),
			want: "Cleanup Started | User: U3 (carol) | Mode: restore | Filters: restore=job-0 | Approved-By: U4 (dave) | Reason: rollback | Job: job-1 | Request: r1 | Backup: no | Backup-ID: job-0",
		},
		{
			name: "started: dry run",
			ev:   CleanupStarted{User: "alice", Mode: "dry-run", Filters: "expired_only"}.Event(t0),
			want: "Cleanup Started | User: alice | Mode: dry-run | Filters: expired_only",
		},
		{
			name: "started: CLI with reason and --no-backup",
			ev:   CleanupStarted{User: "alice", Mode: "all", Filters: "all", Reason: "drill", Backup: "skipped (--no-backup)"}.Event(t0),
			want: "Cleanup Started | User: alice | Mode: all | Filters: all | Reason: drill | Backup: skipped (--no-backup)",
		},
		{
			name: "scanned: CLI",
			ev:   SessionsScanned{Total: 1000, Matched: 150, Kept: 850}.Event(t0, plain),
			want: "Sessions Scanned | Total: 1000 | Matched: 150 | Kept: 850",
		},
		{
			name: "scanned: bot preview",
			ev:   SessionsScanned{Total: 1500, Matched: 150, Kept: 1350, Breakdown: &ScanBreakdown{Valid: 0, Malformed: 7}}.Event(t0, grouped),
			want: "Sessions Scanned | Total: 1,500 | Matched: 150 | Kept: 1,350 | Valid: 0 | Malformed: 7",
		},
		{
			name: "scanned: bot job",
			ev:   SessionsScanned{Total: 150, Matched: 45, Kept: 105, Job: "job-1"}.Event(t0, grouped),
			want: "Sessions Scanned | Total: 150 | Matched: 45 | Kept: 105 | Job: job-1",
		},
		{
			name: "completed: CLI",
			ev:   CleanupCompleted{Deleted: 150, Kept: 850}.Event(t0, plain),
			want: "Cleanup Completed | Deleted: 150 | Kept: 850 | Errors: 0",
		},
		{
			name: "completed: CLI with backup",
			ev:   CleanupCompleted{Deleted: 1500, Backup: "b/cli-1.jsonl.gz"}.Event(t0, plain),
			want: "Cleanup Completed | Deleted: 1500 | Kept: 0 | Errors: 0 | Backup: b/cli-1.jsonl.gz",
		},
		{
			name: "completed: bot job without backup",
			ev:   CleanupCompleted{Deleted: 45, Kept: 105, Skipped: 1, Job: "job-1", Duration: "1.2s"}.Event(t0, grouped),
			want: "Cleanup Completed | Deleted: 45 | Kept: 105 | Errors: 0 | Skipped: 1 | Job: job-1 | Duration: 1.2s | Backup: —",
		},
		{
			name: "completed: bot job with backup",
			ev:   CleanupCompleted{Deleted: 1234, Job: "job-1", Duration: "3s", Backup: "b/job-1.jsonl.gz"}.Event(t0, grouped),
			want: "Cleanup Completed | Deleted: 1,234 | Kept: 0 | Errors: 0 | Skipped: 0 | Job: job-1 | Duration: 3s | Backup: b/job-1.jsonl.gz",
		},
		{
			name: "failed: bot job",
			ev: CleanupFailed{Mode: "all", Filters: "all", Done: Report{Deleted: 1200, Kept: 3, Errors: 1}, Job: "job-1",
				Error: "Interrupted after deleting 1,200 sessions"}.Event(t0, grouped),
			want: "Cleanup Failed | Mode: all | Filters: all | Deleted: 1,200 | Kept: 3 | Errors: 1 | Job: job-1 | Error: Interrupted after deleting 1,200 sessions",
		},
		{
			name: "failed: bot job that never started",
			ev: CleanupFailed{User: "U1 (alice)", Mode: "all", Filters: "all", Done: Report{}, Job: "job-1",
				Error: "not started"}.Event(t0, grouped),
			want: "Cleanup Failed | User: U1 (alice) | Mode: all | Filters: all | Deleted: 0 | Kept: 0 | Errors: 0 | Job: job-1 | Error: not started",
		},
		{
			name: "failed: CLI",
			ev: CleanupFailed{User: "alice", Mode: "execute", Filters: "auth_method=ldap", Done: Report{Deleted: 10, Kept: 5, Errors: 1},
				Error: "bound reached"}.Event(t0, plain),
			want: "Cleanup Failed | User: alice | Mode: execute | Filters: auth_method=ldap | Deleted: 10 | Kept: 5 | Errors: 1 | Error: bound reached",
		},
		{
			name: "failed: restore",
			ev: CleanupFailed{User: "alice", Mode: "restore", Filters: "backup=b/x.jsonl.gz", Done: restored,
				Error: "Redis refused some keys"}.Event(t0, plain),
			want: "Cleanup Failed | User: alice | Mode: restore | Filters: backup=b/x.jsonl.gz | Restored: 1050 | Skipped-Expired: 140 | Skipped-Exists: 7 | Skipped-Prefix: 3 | Errors: 0 | Error: Redis refused some keys",
		},
		{
			name: "request created: cleanup",
			ev: RequestCreated{User: "U1 (alice)", Request: "r1", Mode: "all", Filters: "all", Reason: "INC-42",
				Approval: "required (U2,S3)", Backup: "yes", Matched: 1500, Valid: 1400}.Event(t0, grouped),
			want: "Request Created | User: U1 (alice) | Request: r1 | Mode: all | Filters: all | Reason: INC-42 | Approval: required (U2,S3) | Backup: yes | Matched: 1,500 | Valid: 1,400",
		},
		{
			name: "request created: restore",
			ev: RequestCreated{User: "U1 (alice)", Request: "r1", Mode: "restore", Filters: "restore=job-0", Reason: "rollback",
				Approval: "required (U2)", Backup: "no", BackupID: "job-0", Sessions: 20}.Event(t0, grouped),
			want: "Request Created | User: U1 (alice) | Request: r1 | Mode: restore | Filters: restore=job-0 | Reason: rollback | Approval: required (U2) | Backup: no | Backup-ID: job-0 | Sessions: 20",
		},
		{
			name: "approved",
			ev:   Approved{User: "U2 (bob)", Request: "r1", Requester: "U1 (alice)", Mode: "all", Filters: "all", Reason: "INC-42", Approvals: "1/2"}.Event(t0),
			want: "Approved | User: U2 (bob) | Request: r1 | Requester: U1 (alice) | Mode: all | Filters: all | Reason: INC-42 | Approvals: 1/2",
		},
		{
			name: "rejected",
			ev:   Rejected{User: "U2 (bob)", Request: "r1", Requester: "U1 (alice)", Mode: "all", Filters: "all"}.Event(t0),
			want: "Rejected | User: U2 (bob) | Request: r1 | Requester: U1 (alice) | Mode: all | Filters: all | Reason: ",
		},
		{
			name: "expired",
			ev: Expired{Request: "r1", Requester: "U1 (alice)", Mode: "execute", Filters: "orphans", Reason: "memory",
				ExpiresAt: time.Date(2025, 11, 26, 11, 15, 0, 500, time.FixedZone("CET", 3600))}.Event(t0),
			want: "Expired | Request: r1 | Requester: U1 (alice) | Mode: execute | Filters: orphans | Reason: memory | Expired-At: 2025-11-26T10:15:00Z",
		},
		{
			name: "refused: a command",
			ev:   Refused{User: "U9", Action: "cleanup", Why: "not in OPERATORS"}.Event(t0),
			want: "Refused | User: U9 | Action: cleanup | Why: not in OPERATORS",
		},
		{
			name: "refused: a button",
			ev:   Refused{User: "U1 (alice)", Action: "approve", Request: "r1", Why: "self-approval"}.Event(t0),
			want: "Refused | User: U1 (alice) | Action: approve | Request: r1 | Why: self-approval",
		},
		{
			name: "cancelled: request",
			ev:   Cancelled{User: "U1 (alice)", Request: "r1", Requester: "U1 (alice)", Mode: "execute", Filters: "expired_only"}.Event(t0, grouped),
			want: "Cancelled | User: U1 (alice) | Request: r1 | Requester: U1 (alice) | Mode: execute | Filters: expired_only",
		},
		{
			name: "cancelled: job",
			ev:   Cancelled{User: "U3 (carol)", Job: "job-1", Mode: "execute", Filters: "expired_only", Done: Report{Deleted: 1001, Kept: 2}}.Event(t0, grouped),
			want: "Cancelled | User: U3 (carol) | Job: job-1 | Mode: execute | Filters: expired_only | Deleted: 1,001 | Kept: 2 | Errors: 0",
		},
		{
			name: "cancelled: restore job",
			ev:   Cancelled{User: "shutdown", Job: "job-1", Mode: "restore", Filters: "restore=job-0", Done: restored}.Event(t0, grouped),
			want: "Cancelled | User: shutdown | Job: job-1 | Mode: restore | Filters: restore=job-0 | Restored: 1,050 | Skipped-Expired: 140 | Skipped-Exists: 7 | Skipped-Prefix: 3 | Errors: 0",
		},
		{
			name: "cancelled: CLI prompt",
			ev:   Cancelled{User: "alice", Mode: "all", Filters: "all", Reason: "not confirmed at the prompt"}.Event(t0, plain),
			want: "Cancelled | User: alice | Mode: all | Filters: all | Reason: not confirmed at the prompt",
		},
		{
			name: "notification failed",
			ev:   NotificationFailed{Channel: "pagerduty", Error: "retries exhausted", Job: "job-1"}.Event(t0),
			want: "Notification Failed | Channel: pagerduty | Error: retries exhausted | Job: job-1",
		},
		{
			name: "restore completed: bot job",
			ev:   RestoreCompleted{User: "U3 (carol)", Job: "job-1", BackupID: "job-0", Report: restored}.Event(t0, grouped),
			want: "Restore Completed | User: U3 (carol) | Job: job-1 | Backup-ID: job-0 | Restored: 1,050 | Skipped-Expired: 140 | Skipped-Exists: 7 | Skipped-Prefix: 3 | Errors: 0",
		},
		{
			name: "restore completed: CLI",
			ev:   RestoreCompleted{User: "alice", BackupID: "incident", Report: restored}.Event(t0, plain),
			want: "Restore Completed | User: alice | Backup-ID: incident | Restored: 1050 | Skipped-Expired: 140 | Skipped-Exists: 7 | Skipped-Prefix: 3 | Errors: 0",
		},
		{
			name: "backup completed",
			ev:   BackupCompleted{User: "alice", Filters: "all", Sessions: 150, File: "b/x.jsonl.gz.age", Reason: "forensics"}.Event(t0, plain),
			want: "Backup Completed | User: alice | Filters: all | Sessions: 150 | File: b/x.jsonl.gz.age | Reason: forensics",
		},
		{
			name: "backup completed without reason",
			ev:   BackupCompleted{User: "alice", Filters: "expired_only", Sessions: 0, File: "b/x.jsonl.gz"}.Event(t0, plain),
			want: "Backup Completed | User: alice | Filters: expired_only | Sessions: 0 | File: b/x.jsonl.gz",
		},
		{
			name: "symptom detected",
			ev: SymptomDetected{User: "watch", Target: "default", Symptom: "orphans", Seen: "1,234", Threshold: "1,000",
				Trend: "+234 since 2025-11-26 09:55:00Z", Channel: "C0OPS"}.Event(t0),
			want: "Symptom Detected | User: watch | Target: default | Symptom: orphans | Seen: 1,234 | Threshold: 1,000 | Trend: +234 since 2025-11-26 09:55:00Z | Channel: C0OPS",
		},
		{
			name: "symptom detected: first check",
			ev:   SymptomDetected{User: "watch", Target: "default", Symptom: "memory", Seen: "85.0% of maxmemory", Threshold: "80%", Channel: "#ops"}.Event(t0),
			want: "Symptom Detected | User: watch | Target: default | Symptom: memory | Seen: 85.0% of maxmemory | Threshold: 80% | Channel: #ops",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := "2025-11-26T10:00:00Z | " + tt.want
			if got := tt.ev.String(); got != want {
				t.Errorf("line =\n  %s\nwant\n  %s", got, want)
			}
		})
	}
}
