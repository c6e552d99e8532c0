package bot

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/platform-team/sessionbot/cleanup"
	"github.com/platform-team/sessionbot/templates"
)

// Message builders. Everything a person reads is built here, from stored requests, plans and
// reports; none of them ever sees a token, a username or a full session id (plans and reports
// carry none), so nothing here can leak one.

// helpMessage is the command help; t is the target it quotes the threshold of (the one named, the
// channel's default or the first).
func helpMessage(cfg Config, t *target, ts *targets) Message {
	d := templates.HelpData{
		Command:   cfg.Command,
		Threshold: num(t.Policy.Threshold),
		TTL:       shortDuration(cfg.ApprovalTTL),
		Targets:   "the only target is `" + t.Name + "`",
	}
	if len(ts.list) > 1 {
		d.Target = t.Name
		d.Targets = "targets: " + ts.names() + "; commands in a channel without a default target must name one"
	}
	body := templates.Help(d)
	return Message{
		Text:  cfg.Command + " help",
		Title: "sessionbot: clean up OAuth2 sessions safely",
		Lines: templates.Paragraphs(body),
	}
}

func previewingMessage(scope string, who Person) Message {
	return Message{
		Text:    "Previewing cleanup " + userText(scope) + "…",
		Title:   "Previewing cleanup…",
		Lines:   []string{"Dry run of `" + userText(scope) + "` in progress. A preview never deletes anything."},
		Context: []string{"Requested by " + userRef(who.ID)},
	}
}

func previewProgressMessage(scope string, who Person, p cleanup.Progress) Message {
	m := previewingMessage(scope, who)
	m.Lines = append(m.Lines, fmt.Sprintf("Scanned %s keys, %s matching so far (%s).",
		num(p.Scanned), num(p.Matched), shortDuration(p.Elapsed)))
	return m
}

// planDetails are the lines under the summary: who is logged out, breakdown, TTLs, samples.
func planDetails(p cleanup.Plan) []string {
	var out []string
	out = append(out, fmt.Sprintf("*%s still-valid %s* would be logged out; about %s would be freed.",
		num(p.Valid), sessions(p.Valid), bytesText(p.Bytes)))
	if len(p.ByAuthMethod) > 0 {
		keys := slices.Sorted(maps.Keys(p.ByAuthMethod))
		slices.SortStableFunc(keys, func(a, b string) int { return int(p.ByAuthMethod[b] - p.ByAuthMethod[a]) })
		var parts []string
		for _, k := range keys {
			name := userText(k)
			if name == "" {
				name = "(unknown)"
			}
			parts = append(parts, fmt.Sprintf("%s %s", name, num(p.ByAuthMethod[k])))
		}
		out = append(out, "By auth_method: "+strings.Join(parts, " · "))
	}
	if p.Matched > 0 {
		out = append(out, "TTL: "+ttlText(p.TTL))
	}
	if len(p.Samples) > 0 {
		var b strings.Builder
		b.WriteString("Samples (redacted):")
		for _, s := range p.Samples {
			b.WriteString("\n")
			b.WriteString(sampleText(s))
		}
		out = append(out, b.String())
	}
	if len(p.Restarted) > 0 {
		out = append(out, "Rescanned after a restart: "+strings.Join(p.Restarted, ", "))
	}
	return out
}

func sampleText(s cleanup.Sample) string {
	if s.Malformed {
		return fmt.Sprintf("• `%s` malformed value · TTL %s", userText(s.ID), ttlValue(s.TTL))
	}
	return fmt.Sprintf("• `%s` %s · %s · created %s · last active %s · expires %s · TTL %s",
		userText(s.ID), orDash(userText(s.UserID)), orDash(userText(s.AuthMethod)),
		stamp(s.CreatedAt), stamp(s.LastActivity), stamp(s.ExpiresAt), ttlValue(s.TTL))
}

func ttlText(h cleanup.TTLHistogram) string {
	labels := []string{"≤10m", "≤30m", "≤1h", "≤24h", ">24h"}
	parts := []string{"no TTL " + num(h.NoTTL)}
	for i, l := range labels {
		parts = append(parts, l+" "+num(h.Buckets[i]))
	}
	return strings.Join(parts, " · ")
}

func nothingToDoMessage(req *Request) Message {
	m := Message{
		Text:    "Nothing to delete for " + userText(req.Scope),
		Title:   "Dry-run preview: nothing to delete",
		Lines:   []string{codeBlock(cleanup.SummaryLines(req.Plan, num))},
		Context: []string{"Requested by " + userRef(req.Requester.ID) + " · scope `" + req.Scope + "`"},
	}
	m.Lines = append(m.Lines, planDetails(req.Plan)[1:]...)
	return onTarget(m, req.Target)
}

// previewMessage is a request that needs no approval: Run and Cancel.
func previewMessage(req *Request) Message {
	m := Message{
		Text:  fmt.Sprintf("Dry-run preview: %s sessions would be deleted (%s)", num(req.Plan.Matched), userText(req.Scope)),
		Title: "Dry-run preview: " + userText(req.Scope),
		Lines: append([]string{codeBlock(cleanup.SummaryLines(req.Plan, num))}, planDetails(req.Plan)...),
		Fields: []Field{
			{Label: "Requested by", Value: userRef(req.Requester.ID)},
			{Label: "Scope", Value: "`" + userText(req.Scope) + "`"},
			{Label: "Reason", Value: orDash(userText(req.Reason))},
			{Label: "Backup", Value: backupPlan(req)},
		},
		Context: []string{fmt.Sprintf("Nothing has been deleted. Run re-checks every session when it runs and stops past %s still-valid sessions. Expires %s.",
			num(req.MaxValid), stamp(req.ExpiresAt))},
		Buttons: []Button{
			{ActionID: "run", Label: "Run cleanup", Value: req.ID, Style: "primary",
				Confirm: fmt.Sprintf("Delete about %s sessions matching %s?", num(req.Plan.Matched), userText(req.Scope))},
			{ActionID: "cancel", Label: "Cancel", Value: req.ID},
		},
	}
	if req.Filter.RepairTTL {
		m.Text = fmt.Sprintf("Dry-run preview: %s sessions would get a TTL, %s expired would be deleted (%s)",
			num(req.Plan.Repaired), num(req.Plan.Matched), userText(req.Scope))
		m.Buttons[0].Label = "Run repair"
		m.Buttons[0].Confirm = fmt.Sprintf("Give about %s sessions their TTL and delete about %s expired ones?", num(req.Plan.Repaired), num(req.Plan.Matched))
	}
	return onTarget(m, req.Target)
}

// approvalMessage is a request that needs a second person: Approve, Reject and Cancel, never Run.
// When more than one approval is needed it shows how many were given, and by whom.
func approvalMessage(req *Request) Message {
	title := "Approval needed: cleanup of " + userText(req.Scope)
	what := fmt.Sprintf("%s sessions (%s still valid)", num(req.Plan.Matched), num(req.Plan.Valid))
	var lines []string
	switch {
	case req.Kind == KindRestore:
		title = "Approval needed: restore " + userText(req.BackupID)
		lines = restoreLines(req)
		what = fmt.Sprintf("%s sessions restored", num(req.Restore.Restorable))
	case req.Filter.All:
		title = ":rotating_light: Approval needed: MASS LOGOUT (all sessions)"
		lines = append([]string{codeBlock(cleanup.SummaryLines(req.Plan, num))}, planDetails(req.Plan)...)
		what = fmt.Sprintf("ALL %s sessions; every user is logged out", num(req.Plan.Matched))
	default:
		lines = append([]string{codeBlock(cleanup.SummaryLines(req.Plan, num))}, planDetails(req.Plan)...)
	}
	fields := []Field{
		{Label: "Requested by", Value: userRef(req.Requester.ID)},
		{Label: "Reason", Value: orDash(userText(req.Reason))},
		{Label: "Scope", Value: "`" + userText(req.Scope) + "`"},
		{Label: "Would affect", Value: what},
		{Label: "Backup", Value: backupPlan(req)},
		{Label: "Approvers", Value: approversText(req.Approvers)},
	}
	rule := "Two-person rule: an approver other than " + userRef(req.Requester.ID) +
		" must approve. Approve starts it at once; nothing has been changed yet."
	confirm := "Approve and start now: " + what + "?"
	if req.Required > 1 {
		fields = append(fields, Field{Label: "Approvals", Value: approvalsText(req)})
		rule = fmt.Sprintf("Two-person rule: %d approvers other than %s must approve; the job starts on the last approval. Nothing has been changed yet.",
			req.Required, userRef(req.Requester.ID))
		if n := len(req.Approvals) + 1; n < req.Required {
			confirm = fmt.Sprintf("Approve (%d of %d approvals; the job starts on the last): %s?", n, req.Required, what)
		}
	}
	return onTarget(Message{
		Text:    title + " — requested by " + req.Requester.ID,
		Title:   title,
		Lines:   lines,
		Fields:  append(fields, Field{Label: "Expires", Value: stamp(req.ExpiresAt)}),
		Context: []string{rule},
		Buttons: []Button{
			{ActionID: "approve", Label: "Approve", Value: req.ID, Style: "danger", Confirm: confirm},
			{ActionID: "reject", Label: "Reject", Value: req.ID},
			{ActionID: "cancel", Label: "Cancel request", Value: req.ID},
		},
	}, req.Target)
}

// approvalPingMessage mentions the approvers in a reply to the approval request's card, so that
// Slack notifies them (it does not for the card, an edited message).
func approvalPingMessage(req *Request) Message {
	card := approvalMessage(req)
	ask := approversText(req.Approvers) + ": " + card.Title + ", requested by " + userRef(req.Requester.ID) +
		". Approve or reject it on the request above, or in the direct message I sent you."
	return Message{Text: ask}
}

// approvalDMMessage is the approval request as sent to one approver: the card with its buttons,
// which act on the stored request wherever they are pressed.
func approvalDMMessage(req *Request) Message {
	m := approvalMessage(req)
	m.Text = "Your approval is requested: " + m.Title + " — requested by " + req.Requester.ID
	m.Context = append(m.Context, "Sent to you as an approver. This copy is not updated; the request in "+
		channelText(req.Ref.Channel)+" shows its current state.")
	return m
}

// approvalsText says how many of the approvals a request needs were given, and by whom:
// "1 of 2 approvals (by <@U…>)".
func approvalsText(req *Request) string {
	s := fmt.Sprintf("%d of %d approvals", len(req.Approvals), req.Required)
	if len(req.Approvals) > 0 {
		s += " (by " + peopleRefs(req.Approvals) + ")"
	}
	return s
}

// peopleRefs mentions people: "<@U1>, <@U2>".
func peopleRefs(ps []Person) string {
	refs := make([]string, len(ps))
	for i, p := range ps {
		refs[i] = userRef(p.ID)
	}
	return strings.Join(refs, ", ")
}

func restoreLines(req *Request) []string {
	r := req.Restore
	lines := []string{codeBlock([]string{
		fmt.Sprintf("Found %s sessions in backup %s", num(r.Records), req.BackupID),
		fmt.Sprintf("%s sessions will be restored", num(r.Restorable)),
		fmt.Sprintf("%s sessions expired since the backup (will be skipped)", num(r.Expired)),
	})}
	if r.OutsidePfx > 0 {
		lines = append(lines, fmt.Sprintf("%s keys outside the session prefix are in the file and will be skipped.", num(r.OutsidePfx)))
	}
	return append(lines, "Existing sessions with the same key are left as they are.")
}

// approvalElsewhereMessage replaces the preview in the command's channel when the approval
// request went to APPROVAL_CHANNEL.
func approvalElsewhereMessage(req *Request, channel string) Message {
	m := approvalMessage(req)
	m.Text = "Approval requested in " + channelText(channel)
	m.Buttons = nil
	m.Context = []string{"Approval requested in " + channelText(channel) + ". Nothing has been deleted."}
	return m
}

func decidedMessage(req *Request, title, why string) Message {
	nothing := "Nothing was deleted."
	if req.Kind == "restore" {
		nothing = "Nothing was restored."
	}
	base := approvalMessage(req)
	if !req.NeedsApproval {
		base = previewMessage(req)
	}
	return Message{
		Text:    title + " (" + userText(req.Scope) + ")",
		Title:   title,
		Lines:   append([]string{why}, base.Lines...),
		Fields:  base.Fields,
		Context: []string{nothing},
	}
}

func expiredMessage(req *Request) Message {
	return decidedMessage(req, "Expired: "+userText(req.Scope),
		fmt.Sprintf("This request expired at %s without being run. Run the command again for a fresh preview.", stamp(req.ExpiresAt)))
}

func rejectedMessage(req *Request, by Person) Message {
	return decidedMessage(req, "Rejected: "+userText(req.Scope), "Rejected by "+userRef(by.ID)+".")
}

func cancelledMessage(req *Request, by Person) Message {
	return decidedMessage(req, "Cancelled: "+userText(req.Scope), "Cancelled by "+userRef(by.ID)+" before it ran.")
}

func runningMessage(req *Request, job *Job, p *cleanup.Progress) Message {
	title := "Running: " + userText(req.Scope)
	if req.Filter.All {
		title = ":rotating_light: Mass logout running"
	}
	if req.Kind == "restore" {
		title = "Restoring " + userText(req.BackupID)
	}
	line := "Starting…"
	switch {
	case p != nil && req.Kind == "restore":
		line = fmt.Sprintf("restore: read %s · restored %s · skipped %s · errors %s · %s",
			num(p.Scanned), num(p.Deleted), num(p.Skipped), num(p.Errors), shortDuration(p.Elapsed))
	case p != nil:
		line = fmt.Sprintf("%s: scanned %s · matched %s · deleted %s · skipped %s · errors %s · %s",
			orDash(p.Phase), num(p.Scanned), num(p.Matched), num(p.Deleted), num(p.Skipped), num(p.Errors), shortDuration(p.Elapsed))
	}
	return Message{
		Text:   title + " (" + job.ID + ")",
		Title:  title,
		Lines:  []string{line},
		Fields: jobFields(job),
		Context: []string{fmt.Sprintf("Job `%s` · previewed %s to delete (%s still valid) · started %s",
			job.ID, num(req.Plan.Matched), num(req.Plan.Valid), stamp(job.StartedAt))},
		Buttons: []Button{{ActionID: "cancel", Label: "Cancel job", Value: req.ID, Style: "danger",
			Confirm: "Stop job " + job.ID + "? Sessions already deleted stay deleted."}},
	}
}

func jobFields(job *Job) []Field {
	f := []Field{{Label: "Requested by", Value: userRef(job.Requester.ID)}}
	if len(job.Approvals) > 0 {
		f = append(f, Field{Label: "Approved by", Value: peopleRefs(job.Approvals)})
	} else {
		f = append(f, Field{Label: "Run by", Value: userRef(job.Executor.ID)})
	}
	f = append(f, Field{Label: "Reason", Value: orDash(userText(job.Reason))}, Field{Label: "Scope", Value: "`" + userText(job.Scope) + "`"})
	return onTarget(Message{Fields: f}, job.Target).Fields
}

// onTarget names the target m is about (SPEC §13: every message names its target); a request
// stored before targets were named has none, and its message stays as it was.
func onTarget(m Message, target string) Message {
	if target != "" {
		m.Fields = append(slices.Clip(m.Fields), Field{Label: "Target", Value: "`" + target + "`"})
	}
	return m
}

// reportMessage is the final report; it replaces the preview.
func reportMessage(req *Request, job *Job, out outcome, st Status, errText string) Message {
	var title string
	switch st {
	case StatusDone:
		title = ":white_check_mark: " + out.completedTitle(req)
	case StatusCancelled:
		title = ":octagonal_sign: Cancelled: " + userText(req.Scope)
	default:
		title = ":x: Failed: " + userText(req.Scope)
	}
	var lines []string
	if errText != "" {
		lines = append(lines, "*"+errText+"*")
	}
	lines = append(lines, out.reportLines(req)...)
	return Message{
		Text:    fmt.Sprintf("%s (job %s): %s %s", strings.TrimPrefix(title, ":white_check_mark: "), job.ID, out.verb(), num(out.changed())),
		Title:   title,
		Lines:   lines,
		Fields:  append(jobFields(job), Field{Label: "Job", Value: "`" + job.ID + "`"}),
		Context: []string{"Started " + stamp(job.StartedAt) + " · ended " + stamp(out.report().End)},
	}
}

// withResume adds to a failed job's report the Resume button (SPEC §13 "Resume") and what it
// does; it is shown while the request's approval is younger than APPROVAL_TTL.
func withResume(m Message, req *Request) Message {
	m.Context = append(m.Context, fmt.Sprintf("Resume continues this cleanup with the same filters and bound, without a new approval, until %s; after that, make a fresh request.",
		stamp(req.resumeDeadline())))
	m.Buttons = append(m.Buttons, Button{ActionID: "resume", Label: "Resume", Value: req.ID, Style: "primary",
		Confirm: "Continue " + userText(req.Scope) + " where it stopped, under its approval?"})
	return m
}

func (o cleanupOutcome) completedTitle(req *Request) string {
	return "Cleanup completed: " + userText(req.Scope)
}

func (o cleanupOutcome) reportLines(req *Request) []string {
	rep := o.rep
	deleted := fmt.Sprintf("Deleted:   %s (%s still valid)", num(rep.Deleted), num(rep.DeletedValid))
	if rep.Stopped == stoppedInterrupted {
		// From the last progress the dead replica stored: a lower bound.
		deleted = fmt.Sprintf("Deleted:   at least %s (as of the last progress report)", num(rep.Deleted))
	}
	rows := []string{
		fmt.Sprintf("Previewed: %s to delete (%s still valid) of %s", num(req.Plan.Matched), num(req.Plan.Valid), num(req.Plan.Found)),
		fmt.Sprintf("Actual:    %s matched of %s scanned", num(rep.Matched), num(rep.Scanned)),
		deleted,
		fmt.Sprintf("Kept:      %s", num(rep.Kept)),
		fmt.Sprintf("Skipped:   %s (changed since read)", num(rep.Skipped)),
		fmt.Sprintf("Malformed: %s", num(rep.Malformed)),
		fmt.Sprintf("Errors:    %s", num(rep.Errors)),
		fmt.Sprintf("Duration:  %s", shortDuration(rep.Duration())),
	}
	if rep.Remaining >= 0 {
		rows = append(rows, fmt.Sprintf("Remaining: %s session keys", num(rep.Remaining)))
	}
	lines := []string{codeBlock(rows)}
	if req.Filter.RepairTTL {
		lines = []string{codeBlock(cleanup.RepairLines(rep, num)), codeBlock(rows)}
	}
	switch {
	case rep.Backup != "":
		lines = append(lines, "Backup: `"+rep.Backup+"`")
	case req.Backup:
		lines = append(lines, "Backup: none written")
	case req.NoBackup:
		lines = append(lines, "Backup: skipped (--no-backup)")
	}
	if len(rep.Restarted) > 0 {
		lines = append(lines, "Rescanned after a node restart: "+strings.Join(rep.Restarted, ", "))
	}
	return append(lines, "Keys outside the session prefix were not touched.")
}

func (o restoreOutcome) completedTitle(req *Request) string {
	return "Restore completed: " + userText(req.BackupID)
}

func (o restoreOutcome) reportLines(req *Request) []string {
	return []string{codeBlock([]string{
		fmt.Sprintf("Previewed: %s to restore", num(req.Restore.Restorable)),
		fmt.Sprintf("Restored: %s", num(o.rr.Restored)),
		fmt.Sprintf("Skipped: %s (expired or already present)", num(o.rep.Skipped)),
		fmt.Sprintf("Errors: %s", num(o.rr.Errors)),
		fmt.Sprintf("Duration: %s", shortDuration(o.rep.Duration())),
	})}
}

// notStartedMessage replaces a request whose job could not start (its audit intent could not
// be written, or the bot is shutting down): nothing was deleted.
func notStartedMessage(req *Request, why string) Message {
	return decidedMessage(req, ":x: Not started: "+userText(req.Scope), "*"+why+"*")
}

func statusMessage(jobs []*Job, now time.Time) Message {
	if len(jobs) == 0 {
		return Message{Text: "No jobs yet.", Lines: []string{"No cleanup has run yet."}}
	}
	var lines []string
	for _, j := range jobs {
		lines = append(lines, jobLine(j, now))
	}
	return Message{Text: "Recent jobs", Title: "Recent jobs", Lines: lines}
}

func jobLine(j *Job, now time.Time) string {
	s := fmt.Sprintf("`%s` %s · %s · %s · by %s", j.ID, j.Status, j.Mode, "`"+userText(j.Scope)+"`", userRef(j.Requester.ID))
	if j.Target != "" {
		s += " · on `" + j.Target + "`"
	}
	// A restore's store keeps the sessions it put back where a cleanup keeps those it deleted.
	verb := "deleted"
	if j.Mode == ModeRestore {
		verb = "restored"
	}
	switch {
	case j.Report != nil:
		s += fmt.Sprintf(" · %s %s in %s", verb, num(j.Report.Deleted), shortDuration(j.Report.Duration()))
	case j.Progress != nil:
		s += fmt.Sprintf(" · %s %s so far (%s)", verb, num(j.Progress.Deleted), shortDuration(j.Progress.Elapsed))
	}
	if j.Status == StatusRunning {
		s += " · started " + shortDuration(now.Sub(j.StartedAt)) + " ago"
	}
	return s
}

func jobDetailMessage(j *Job, now time.Time) Message {
	lines := []string{jobLine(j, now)}
	if j.Error != "" {
		lines = append(lines, "Error: "+j.Error)
	}
	if j.Report != nil && j.Report.Backup != "" {
		lines = append(lines, "Backup: `"+j.Report.Backup+"`")
	}
	return Message{Text: "Job " + j.ID + ": " + string(j.Status), Title: "Job " + j.ID, Lines: lines, Fields: jobFields(j)}
}

// backupRow is a backup as `backups` lists it: Job is the job that wrote it, nil when that job
// is no longer stored.
type backupRow struct {
	cleanup.Backup
	Job *Job
}

// backupsMessage lists backups (the newest of total) with what a restore needs to know: the id
// to type, the job that wrote it, its size and age, and whether it is encrypted (a backup
// holds live tokens).
func backupsMessage(rows []backupRow, total int, now time.Time, command string) Message {
	if len(rows) == 0 {
		return Message{Text: "No backups.", Title: "Backups",
			Lines: []string{"BACKUP_DIR holds no backups. A backup is written before --all and large cleanups, or with --backup."}}
	}
	var lines []string
	for _, r := range rows {
		enc := "encrypted"
		if !r.Encrypted {
			enc = "*not encrypted* (holds live tokens)"
		}
		job := "job no longer stored"
		if j := r.Job; j != nil {
			job = fmt.Sprintf("%s `%s` by %s", j.Mode, userText(j.Scope), userRef(j.Requester.ID))
			if j.Status != "" {
				job += ", " + string(j.Status)
			}
		}
		lines = append(lines, fmt.Sprintf("`%s` · %s · %s · %s old · %s", userText(r.ID), job, bytesText(r.Size),
			ageText(now.Sub(r.Modified)), enc))
	}
	ctx := []string{"Restore one with `" + command + " restore BACKUP_ID --reason TEXT`; a restore needs approval."}
	if total > len(rows) {
		ctx = append(ctx, fmt.Sprintf("%s older %s not listed.", num(int64(total-len(rows))), plural(int64(total-len(rows)), "backup", "backups")))
	}
	return Message{Text: fmt.Sprintf("%d recent %s", len(rows), plural(int64(len(rows)), "backup", "backups")),
		Title: "Recent backups", Lines: lines, Context: ctx}
}

// ageText is how old something is, in days and hours beyond a day.
func ageText(d time.Duration) string {
	switch {
	case d < time.Minute:
		return "<1m"
	case d < 24*time.Hour:
		return shortDuration(d.Round(time.Minute))
	}
	days, hours := int(d/(24*time.Hour)), int(d%(24*time.Hour)/time.Hour)
	if hours == 0 {
		return fmt.Sprintf("%dd", days)
	}
	return fmt.Sprintf("%dd%dh", days, hours)
}

func statsMessage(s cleanup.Stats) Message {
	lines := []string{codeBlock([]string{
		fmt.Sprintf("Found %s total session %s", num(s.Total), plural(s.Total, "key", "keys")),
		fmt.Sprintf("%s %s expired", num(s.Expired), sessions(s.Expired)),
		fmt.Sprintf("%s %s without TTL (orphans)", num(s.Orphans), sessions(s.Orphans)),
		fmt.Sprintf("%s malformed %s", num(s.Malformed), sessions(s.Malformed)),
	})}
	if len(s.ByAuthMethod) > 0 {
		keys := slices.Sorted(maps.Keys(s.ByAuthMethod))
		var parts []string
		for _, k := range keys {
			parts = append(parts, fmt.Sprintf("%s %s", orDash(userText(k)), num(s.ByAuthMethod[k])))
		}
		lines = append(lines, "By auth_method: "+strings.Join(parts, " · "))
	}
	lines = append(lines, "TTL: "+ttlText(s.TTL), memoryText(s))
	if !s.Complete {
		lines = append(lines, "_Partial: the scan stopped early; counts cover the keys seen._")
	}
	return Message{Text: fmt.Sprintf("%s sessions (%s expired)", num(s.Total), num(s.Expired)), Title: "Session stats (" + s.Prefix + "*)", Lines: lines}
}

// memoryText says how much memory the sessions take, and how much Redis uses of its maxmemory.
func memoryText(s cleanup.Stats) string {
	nodes := fmt.Sprintf("%d %s", s.Nodes, plural(int64(s.Nodes), "node", "nodes"))
	switch {
	case s.UsedMemory == 0:
		return fmt.Sprintf("Session keys use about %s on %s; Redis does not report its memory use.", bytesText(s.Bytes), nodes)
	case s.MaxMemory == 0:
		return fmt.Sprintf("Session keys use about %s; Redis uses %s on %s, no maxmemory set.", bytesText(s.Bytes), bytesText(s.UsedMemory), nodes)
	}
	return fmt.Sprintf("Session keys use about %s; Redis uses %s of %s maxmemory (%.0f%%) on %s.", bytesText(s.Bytes),
		bytesText(s.UsedMemory), bytesText(s.MaxMemory), 100*float64(s.UsedMemory)/float64(s.MaxMemory), nodes)
}

// Formatting helpers.

func num(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

func plural(n int64, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func sessions(n int64) string { return plural(n, "session", "sessions") }

func bytesText(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func shortDuration(d time.Duration) string {
	switch {
	case d <= 0:
		return "0s"
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	}
	// Drop only zero units: 1h20m0s → 1h20m, 1h0m0s → 1h; 1h20m40s stays whole.
	s := d.Round(time.Second).String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// stamp shows a time in a Slack message as a date token: each reader sees it in their own time
// zone, and clients that cannot render it (notifications, the console) show the UTC fallback.
// Audit lines, the CLI and PagerDuty keep UTC; they do not use stamp.
func stamp(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return fmt.Sprintf("<!date^%d^{date_short_pretty} {time}|%s>", t.Unix(), t.UTC().Format("2006-01-02 15:04:05Z"))
}

func ttlValue(d time.Duration) string {
	if d < 0 {
		return "none"
	}
	return shortDuration(d)
}

func orDash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}

// userRef mentions a user (<@U…>, which Slack shows as a name) or a user group
// (<!subteam^S…>, shown as @group-handle). A mention notifies only in a newly posted message,
// never in an edit: notifyApprovers posts the one meant to reach approvers.
func userRef(id string) string {
	switch {
	case id == "":
		return "—"
	case id == scheduleActor.ID || id == watchActor.ID:
		return "sessionbot (" + id + ")"
	case strings.HasPrefix(id, "S"):
		return "<!subteam^" + id + ">"
	default:
		return "<@" + id + ">"
	}
}

func approversText(list []string) string {
	if len(list) == 0 {
		return "none configured (set APPROVERS)"
	}
	parts := make([]string, len(list))
	for i, id := range list {
		parts[i] = userRef(id)
	}
	return strings.Join(parts, ", ")
}

func channelText(ch string) string {
	if strings.HasPrefix(ch, "#") {
		return ch
	}
	return "<#" + ch + ">"
}

// codeBlock shows lines literally: each goes through userText, as they may quote a scope or a
// backup id.
func codeBlock(lines []string) string {
	inert := make([]string, len(lines))
	for i, l := range lines {
		inert[i] = userText(l)
	}
	return "```\n" + strings.Join(inert, "\n") + "\n```"
}

func backupPlan(req *Request) string {
	switch {
	case req.Kind == "restore":
		return "not needed (restore adds sessions back)"
	case req.Backup:
		return "yes, written to BACKUP_DIR before anything is deleted"
	case req.NoBackup:
		return "*skipped (--no-backup)*"
	case req.Filter.RepairTTL:
		return "none (a repair deletes only expired sessions)"
	default:
		return "none (not required; --backup forces one)"
	}
}
