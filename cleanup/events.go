package cleanup

import "time"

// Typed audit events: one struct per kind of audit line. Each Event method writes the runbook's
// line with the event's fields in a fixed order; optional fields are left out when empty, as
// each field's comment says. Code outside this package fills these structs and never assembles
// a line with Event itself (TestAuditLinesAreTyped keeps it so), so a line's field set and
// order live here, once.
//
// Events that carry numbers take num, which spells them as the caller's other output does:
// the bot groups digits (1,234) as in its messages, the CLI writes them plain (1234).

// fields collects an event's fields in order.
type fields []AuditField

func (f *fields) add(name, value string) { *f = append(*f, AuditField{Name: name, Value: value}) }

// opt adds the field only when value is not empty.
func (f *fields) opt(name, value string) {
	if value != "" {
		f.add(name, value)
	}
}

func (f fields) event(t time.Time, name string) AuditEvent {
	return AuditEvent{Time: t, Event: name, Fields: f}
}

// Counts is what a run did, as its audit lines count it: a cleanup's Report writes Deleted,
// Kept and Errors; a restore's RestoreReport writes Restored, Skipped-Expired, Skipped-Exists,
// Skipped-Prefix and Errors.
type Counts interface {
	countFields(f *fields, num func(int64) string)
}

func (r Report) countFields(f *fields, num func(int64) string) {
	f.add("Deleted", num(r.Deleted))
	f.add("Kept", num(r.Kept))
	f.add("Errors", num(r.Errors))
}

func (r RestoreReport) countFields(f *fields, num func(int64) string) {
	f.add("Restored", num(r.Restored))
	f.add("Skipped-Expired", num(r.SkippedExpired))
	f.add("Skipped-Exists", num(r.SkippedExists))
	f.add("Skipped-Prefix", num(r.SkippedPrefix))
	f.add("Errors", num(r.Errors))
}

// CleanupStarted records that a run or a dry run starts, before it touches anything; for a
// destructive run it is the intent that must be on record first.
type CleanupStarted struct {
	User       string // who runs it
	Mode       string // dry-run, execute, all or restore
	Filters    string // the scope: Filter.Scope(), restore=<backup id> or backup=<file>
	ApprovedBy string // omitted when empty
	Requester  string // who asked, when another operator runs it; omitted when empty
	// Reason is omitted when empty, except on a job's line (Job set): a job states its reason
	// even when none was given.
	Reason   string
	Job      string // omitted when empty
	Request  string // omitted when empty
	Backup   string // whether the run writes a backup (yes, no, skipped (--no-backup)); omitted when empty
	BackupID string // the backup a restore reads; omitted when empty
}

// Event returns the audit line.
func (e CleanupStarted) Event(t time.Time) AuditEvent {
	var f fields
	f.add("User", e.User)
	f.add("Mode", e.Mode)
	f.add("Filters", e.Filters)
	f.opt("Approved-By", e.ApprovedBy)
	f.opt("Requester", e.Requester)
	if e.Reason != "" || e.Job != "" {
		f.add("Reason", e.Reason)
	}
	f.opt("Job", e.Job)
	f.opt("Request", e.Request)
	f.opt("Backup", e.Backup)
	f.opt("Backup-ID", e.BackupID)
	return f.event(t, EventCleanupStarted)
}

// CleanupResumed records that an interrupted job is continued by a new one, under the approval
// of the first, before it touches anything: it is the resumed job's intent.
type CleanupResumed struct {
	User    string // who pressed Resume
	Mode    string
	Filters string
	Job     string // the new job
	Resumes string // the job it continues
	Request string
	// DeletedValidBefore: still-valid sessions the earlier runs logged out; they count against
	// the bound (MaxValid says what is left of it; -1: unbounded, omitted).
	DeletedValidBefore int64
	MaxValid           int64
	Backup             string // the backup it extends (its id), or no; omitted when empty
}

// Event returns the audit line.
func (e CleanupResumed) Event(t time.Time, num func(int64) string) AuditEvent {
	var f fields
	f.add("User", e.User)
	f.add("Mode", e.Mode)
	f.add("Filters", e.Filters)
	f.add("Job", e.Job)
	f.add("Resumes", e.Resumes)
	f.opt("Request", e.Request)
	f.add("Valid-Deleted-Before", num(e.DeletedValidBefore))
	if e.MaxValid >= 0 {
		f.add("Max-Valid", num(e.MaxValid))
	}
	f.opt("Backup", e.Backup)
	return f.event(t, EventCleanupResumed)
}

// SessionsScanned records what a preview or a run found.
type SessionsScanned struct {
	Total, Matched, Kept int64
	Breakdown            *ScanBreakdown // a preview's still-valid and malformed counts; omitted when nil
	Job                  string         // omitted when empty
}

// ScanBreakdown splits a preview's keys further (SPEC §11: malformed keys are counted the same
// way in every preview, report and audit line).
type ScanBreakdown struct{ Valid, Malformed int64 }

// Event returns the audit line.
func (e SessionsScanned) Event(t time.Time, num func(int64) string) AuditEvent {
	var f fields
	f.add("Total", num(e.Total))
	f.add("Matched", num(e.Matched))
	f.add("Kept", num(e.Kept))
	if e.Breakdown != nil {
		f.add("Valid", num(e.Breakdown.Valid))
		f.add("Malformed", num(e.Breakdown.Malformed))
	}
	f.opt("Job", e.Job)
	return f.event(t, EventSessionsScanned)
}

// CleanupCompleted records a run that did all it was asked.
type CleanupCompleted struct {
	Deleted, Kept, Errors int64
	// A job's line (Job set) also states Skipped, Job and Duration, and Backup as "—" when none
	// was written; a line without a job names Backup only when one was written.
	Skipped  int64
	Job      string
	Duration string // as the job's report shows it
	Backup   string // the backup file
}

// Event returns the audit line.
func (e CleanupCompleted) Event(t time.Time, num func(int64) string) AuditEvent {
	var f fields
	f.add("Deleted", num(e.Deleted))
	f.add("Kept", num(e.Kept))
	f.add("Errors", num(e.Errors))
	if e.Job == "" {
		f.opt("Backup", e.Backup)
		return f.event(t, EventCleanupCompleted)
	}
	f.add("Skipped", num(e.Skipped))
	f.add("Job", e.Job)
	f.add("Duration", e.Duration)
	backup := e.Backup
	if backup == "" {
		backup = "—"
	}
	f.add("Backup", backup)
	return f.event(t, EventCleanupCompleted)
}

// CleanupFailed records a run (a restore included) that failed or stopped before doing all it
// was asked, with what it did until then.
type CleanupFailed struct {
	User    string // omitted when empty
	Mode    string
	Filters string
	Done    Counts // what the run did before it stopped; omitted when nil
	Job     string // omitted when empty
	Error   string
}

// Event returns the audit line.
func (e CleanupFailed) Event(t time.Time, num func(int64) string) AuditEvent {
	var f fields
	f.opt("User", e.User)
	f.add("Mode", e.Mode)
	f.add("Filters", e.Filters)
	if e.Done != nil {
		e.Done.countFields(&f, num)
	}
	f.opt("Job", e.Job)
	f.add("Error", e.Error)
	return f.event(t, EventCleanupFailed)
}

// RequestCreated records a previewed request waiting to be run or approved.
type RequestCreated struct {
	User     string
	Request  string
	Mode     string
	Filters  string
	Reason   string
	Approval string // "not required" or "required (<approvers>)"
	Backup   string // yes, no or skipped (--no-backup)
	// A restore request (BackupID set) states its backup and the sessions it would put back; a
	// cleanup request the sessions that match and how many of them are still valid.
	BackupID string
	Sessions int64
	Matched  int64
	Valid    int64
}

// Event returns the audit line.
func (e RequestCreated) Event(t time.Time, num func(int64) string) AuditEvent {
	var f fields
	f.add("User", e.User)
	f.add("Request", e.Request)
	f.add("Mode", e.Mode)
	f.add("Filters", e.Filters)
	f.add("Reason", e.Reason)
	f.add("Approval", e.Approval)
	f.add("Backup", e.Backup)
	if e.BackupID != "" {
		f.add("Backup-ID", e.BackupID)
		f.add("Sessions", num(e.Sessions))
	} else {
		f.add("Matched", num(e.Matched))
		f.add("Valid", num(e.Valid))
	}
	return f.event(t, EventRequestCreated)
}

// Approved records an approver's approval of a request.
type Approved struct {
	User      string // the approver
	Request   string
	Requester string
	Mode      string
	Filters   string
	Reason    string
	Approvals string // "1/2": approvals counted so far of those required (SPEC §13)
}

// Event returns the audit line.
func (e Approved) Event(t time.Time) AuditEvent {
	f := decision(e.User, e.Request, e.Requester, e.Mode, e.Filters, e.Reason)
	f.add("Approvals", e.Approvals)
	return f.event(t, EventApproved)
}

// Rejected records an approver's rejection of a request.
type Rejected struct {
	User      string // the approver
	Request   string
	Requester string
	Mode      string
	Filters   string
	Reason    string
}

// Event returns the audit line.
func (e Rejected) Event(t time.Time) AuditEvent {
	return decision(e.User, e.Request, e.Requester, e.Mode, e.Filters, e.Reason).event(t, EventRejected)
}

func decision(user, request, requester, mode, filters, reason string) fields {
	var f fields
	f.add("User", user)
	f.add("Request", request)
	f.add("Requester", requester)
	f.add("Mode", mode)
	f.add("Filters", filters)
	f.add("Reason", reason)
	return f
}

// Expired records a request that nobody ran or decided in time.
type Expired struct {
	Request   string
	Requester string
	Mode      string
	Filters   string
	Reason    string
	ExpiresAt time.Time
}

// Event returns the audit line.
func (e Expired) Event(t time.Time) AuditEvent {
	var f fields
	f.add("Request", e.Request)
	f.add("Requester", e.Requester)
	f.add("Mode", e.Mode)
	f.add("Filters", e.Filters)
	f.add("Reason", e.Reason)
	f.add("Expired-At", e.ExpiresAt.UTC().Format("2006-01-02T15:04:05Z"))
	return f.event(t, EventExpired)
}

// Refused records something a person tried and was not allowed to do.
type Refused struct {
	User    string
	Action  string // the command or button
	Request string // omitted when empty
	Why     string
}

// Event returns the audit line.
func (e Refused) Event(t time.Time) AuditEvent {
	var f fields
	f.add("User", e.User)
	f.add("Action", e.Action)
	f.opt("Request", e.Request)
	f.add("Why", e.Why)
	return f.event(t, EventRefused)
}

// Cancelled records a request cancelled before it ran, a job stopped by a person, or a run not
// confirmed at the CLI's prompt.
type Cancelled struct {
	User      string
	Request   string // omitted when empty
	Requester string // omitted when empty
	Job       string // omitted when empty
	Mode      string
	Filters   string
	Reason    string // omitted when empty
	Done      Counts // what the job did before it stopped; omitted when nil
}

// Event returns the audit line.
func (e Cancelled) Event(t time.Time, num func(int64) string) AuditEvent {
	var f fields
	f.add("User", e.User)
	f.opt("Request", e.Request)
	f.opt("Requester", e.Requester)
	f.opt("Job", e.Job)
	f.add("Mode", e.Mode)
	f.add("Filters", e.Filters)
	f.opt("Reason", e.Reason)
	if e.Done != nil {
		e.Done.countFields(&f, num)
	}
	return f.event(t, EventCancelled)
}

// NotificationFailed records a notification given up on after its retries.
type NotificationFailed struct {
	Channel string // where it should have gone: a Slack channel, dm:<user>, pagerduty
	Error   string
	Job     string
}

// Event returns the audit line.
func (e NotificationFailed) Event(t time.Time) AuditEvent {
	var f fields
	f.add("Channel", e.Channel)
	f.add("Error", e.Error)
	f.add("Job", e.Job)
	return f.event(t, EventNotificationFailed)
}

// RestoreCompleted records a restore that read its whole backup. The bot and the CLI write the
// same fields; only the bot's restores run as jobs.
type RestoreCompleted struct {
	User     string
	Job      string // omitted when empty
	BackupID string
	Report   RestoreReport
}

// Event returns the audit line.
func (e RestoreCompleted) Event(t time.Time, num func(int64) string) AuditEvent {
	var f fields
	f.add("User", e.User)
	f.opt("Job", e.Job)
	f.add("Backup-ID", e.BackupID)
	e.Report.countFields(&f, num)
	return f.event(t, EventRestoreCompleted)
}

// BackupCompleted records the CLI's export of sessions to a backup file.
type BackupCompleted struct {
	User     string
	Filters  string
	Sessions int64
	File     string
	Reason   string // omitted when empty
}

// Event returns the audit line.
func (e BackupCompleted) Event(t time.Time, num func(int64) string) AuditEvent {
	var f fields
	f.add("User", e.User)
	f.add("Filters", e.Filters)
	f.add("Sessions", num(e.Sessions))
	f.add("File", e.File)
	f.opt("Reason", e.Reason)
	return f.event(t, EventBackupCompleted)
}

// On returns the event with the target it happened on as its last field (Target: NAME), so
// that every line of a bot or command line serving named targets (TARGETS_FILE) says which one.
// An empty target (a refusal before any target was chosen) and the single target the REDIS_*
// variables define (DefaultTargetName) leave the line as the runbook writes it.
func (e AuditEvent) On(target string) AuditEvent {
	if target == "" || target == DefaultTargetName {
		return e
	}
	e.Fields = append(append([]AuditField(nil), e.Fields...), AuditField{Name: "Target", Value: target})
	return e
}

// SymptomDetected records that the watcher saw one of the runbook's symptoms on a target cross
// its threshold and posted it (SPEC §13 "Watch and schedules"); at most one per symptom, target
// and WATCH_COOLDOWN.
type SymptomDetected struct {
	User      string // who saw it: the watcher
	Target    string
	Symptom   string // memory or orphans
	Seen      string // what was seen, as the post shows it ("85.2% of maxmemory", "1,234")
	Threshold string // the threshold it passed, likewise
	Trend     string // the change since the previous check; omitted when empty
	Channel   string // where it was posted
}

// Event returns the audit line.
func (e SymptomDetected) Event(t time.Time) AuditEvent {
	var f fields
	f.add("User", e.User)
	f.add("Target", e.Target)
	f.add("Symptom", e.Symptom)
	f.add("Seen", e.Seen)
	f.add("Threshold", e.Threshold)
	f.opt("Trend", e.Trend)
	f.add("Channel", e.Channel)
	return f.event(t, EventSymptomDetected)
}
