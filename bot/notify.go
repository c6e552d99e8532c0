package bot

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/platform-team/sessionbot/cleanup"
	"github.com/platform-team/sessionbot/templates"
)

// auditLog is the part of *cleanup.Auditor the notifier uses.
type auditLog interface {
	Log(cleanup.AuditEvent) error
}

var _ auditLog = (*cleanup.Auditor)(nil)

// DefaultNotifyTimeout bounds all the notifications of one run together.
const DefaultNotifyTimeout = 2 * time.Minute

// Announcer implements Notifier: after every executed destructive run it posts a summary to
// NOTIFY_CHANNEL; after a mass logout also the runbook's Mass Logout Executed template (and a
// notice to USER_NOTIFY_CHANNEL); after a --user-id cleanup a DM to each affected user when
// NOTIFY_AFFECTED_USERS is on; and, with a PagerDuty routing key, a change event, plus an alert
// when the run failed (resolved by the next successful run on the same target).
//
// JobFinished returns at once: notifications run in the background under their own timeout,
// detached from the job's context, so they can neither block nor undo the cleanup. Each failure
// (after the retries of Chat and PagerDuty) is reported in the job's thread, audited as
// Notification Failed and counted.
type Announcer struct {
	cfg     Config
	chat    Chat
	pd      *PagerDuty // nil: PagerDuty disabled
	audit   auditLog   // nil: no audit
	metrics *Metrics
	log     *slog.Logger
	now     func() time.Time
	timeout time.Duration
	secrets []string // never shown, even inside an error from a remote
	wg      sync.WaitGroup
}

var _ Notifier = (*Announcer)(nil)

// AnnouncerOption configures an Announcer.
type AnnouncerOption func(*Announcer)

// WithAnnouncerAudit sets where Notification Failed is audited.
func WithAnnouncerAudit(a *cleanup.Auditor) AnnouncerOption {
	return func(n *Announcer) {
		if a != nil {
			n.audit = a
		}
	}
}

// WithAnnouncerMetrics counts failed notifications in m.
func WithAnnouncerMetrics(m *Metrics) AnnouncerOption { return func(n *Announcer) { n.metrics = m } }

// WithAnnouncerLogger sets the logger (default slog.Default()).
func WithAnnouncerLogger(l *slog.Logger) AnnouncerOption { return func(n *Announcer) { n.log = l } }

// WithAnnouncerClock sets the clock of audit lines (tests).
func WithAnnouncerClock(now func() time.Time) AnnouncerOption {
	return func(n *Announcer) { n.now = now }
}

// WithAnnouncerTimeout bounds the notifications of one run (default DefaultNotifyTimeout).
func WithAnnouncerTimeout(d time.Duration) AnnouncerOption {
	return func(n *Announcer) { n.timeout = d }
}

// WithPagerDutyRetry overrides the PagerDuty retry bounds (tests keep them short).
func WithPagerDutyRetry(tries int, budget, base time.Duration) AnnouncerOption {
	return func(n *Announcer) {
		if n.pd != nil {
			n.pd.retry.Tries, n.pd.retry.Budget, n.pd.retry.Base = tries, budget, base
			n.pd.retry.Max = min(n.pd.retry.Max, budget)
		}
	}
}

// WithPagerDutyAttemptTimeout bounds each PagerDuty attempt (default 10 s): an attempt that takes
// longer counts as a timeout and is retried within the budget.
func WithPagerDutyAttemptTimeout(d time.Duration) AnnouncerOption {
	return func(n *Announcer) {
		if n.pd != nil && d > 0 {
			n.pd.retry.Attempt = d
		}
	}
}

// NewAnnouncer returns the notifier for cfg's channels, posting through chat; PagerDuty is on
// when sc has a routing key.
func NewAnnouncer(cfg Config, sc SlackConfig, chat Chat, opts ...AnnouncerOption) *Announcer {
	n := &Announcer{cfg: cfg, chat: chat, log: slog.Default(), now: time.Now, timeout: DefaultNotifyTimeout}
	n.pd = NewPagerDuty(sc, nil)
	for _, s := range []Secret{sc.AppToken, sc.BotToken, sc.PagerDutyRoutingKey} {
		if len(s) >= 8 {
			n.secrets = append(n.secrets, s.Reveal())
		}
	}
	for _, o := range opts {
		o(n)
	}
	if n.pd != nil {
		n.pd.log = n.log
	}
	return n
}

// JobFinished implements Notifier. It returns at once; Wait waits for the notifications.
func (n *Announcer) JobFinished(ctx context.Context, o JobOutcome) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), n.timeout)
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		defer cancel()
		n.notify(ctx, o)
	}()
}

// Wait waits for the notifications in flight (graceful shutdown, tests).
func (n *Announcer) Wait() { n.wg.Wait() }

func (n *Announcer) notify(ctx context.Context, o JobOutcome) {
	if o.At.IsZero() {
		o.At = n.now()
	}
	link := Permalink(o.Thread)
	massLogout := o.Mode == "all"
	loggedOut := o.Report.Deleted > 0 || !stoppedEarly(o)

	// The channel: the runbook's template for a mass logout (the summary in its thread), a
	// summary otherwise.
	summary := n.summaryMessage(o, link)
	if massLogout && loggedOut {
		ref, err := n.chat.Post(ctx, n.cfg.NotifyChannel, massLogoutMessage(o))
		if err != nil {
			n.failed(ctx, o, "slack", n.cfg.NotifyChannel, err)
			_, err = n.chat.Post(ctx, n.cfg.NotifyChannel, summary)
		} else {
			_, err = n.chat.Reply(ctx, ref, summary)
		}
		if err != nil {
			n.failed(ctx, o, "slack", n.cfg.NotifyChannel, err)
		}
		if n.cfg.UserNotifyChannel != "" {
			if _, err := n.chat.Post(ctx, n.cfg.UserNotifyChannel, userNoticeMessage(o)); err != nil {
				n.failed(ctx, o, "slack", n.cfg.UserNotifyChannel, err)
			}
		}
	} else if _, err := n.chat.Post(ctx, n.cfg.NotifyChannel, summary); err != nil {
		n.failed(ctx, o, "slack", n.cfg.NotifyChannel, err)
	}

	// Decided by the filter, never by the scope's text: --auth-method 'user_id=x' is no --user-id.
	if n.cfg.NotifyAffectedUsers && o.Mode == "execute" && o.Filter.UserID != "" && o.Report.Deleted > 0 {
		n.directMessages(ctx, o)
	}

	if n.pd != nil {
		n.pagerDuty(ctx, o, link)
	}
}

// directMessages tells each affected user, found by the e-mail in their session's username,
// that their sessions ended. The e-mail is never posted or logged; failures name the user_id.
func (n *Announcer) directMessages(ctx context.Context, o JobOutcome) {
	seen := map[string]bool{}
	for _, u := range o.AffectedUsers {
		email := strings.ToLower(strings.TrimSpace(u.Email))
		if seen[email] {
			continue
		}
		seen[email] = true
		label := "dm:" + u.UserID
		if email == "" || !strings.Contains(email, "@") {
			n.failed(ctx, o, "dm", label, fmt.Errorf("the session has no e-mail username to find the Slack user by"))
			continue
		}
		id, err := n.chat.LookupUserByEmail(ctx, email)
		if err != nil {
			n.failed(ctx, o, "dm", label, err)
			continue
		}
		if err := n.chat.DM(ctx, id, affectedUserMessage(o)); err != nil {
			n.failed(ctx, o, "dm", "dm:"+id, err)
		}
	}
}

func (n *Announcer) pagerDuty(ctx context.Context, o JobOutcome, link string) {
	var links []PDLink
	if link != "" {
		links = []PDLink{{Href: link, Text: "Slack thread of job " + o.JobID}}
	}
	details := pdDetails(o, link)
	source := "sessionbot"
	if o.Target != "" {
		source = "sessionbot/" + o.Target
	}
	if err := n.pd.Change(ctx, pdSummary(o), source, o.At, details, links); err != nil {
		n.failed(ctx, o, "pagerduty", "pagerduty", err)
	}
	key := DedupKey(o.Target)
	if o.Failed {
		severity := SeverityError
		if o.Mode == "all" && (o.Partial || o.Report.Deleted > 0) {
			severity = SeverityCritical // some users are logged out, others not
		}
		if err := n.pd.Trigger(ctx, key, pdSummary(o), source, severity, o.At, details, links); err != nil {
			n.failed(ctx, o, "pagerduty", "pagerduty", err)
		}
		return
	}
	if stoppedEarly(o) {
		return // cancelled: neither a failure nor the success that resolves one
	}
	if err := n.pd.Resolve(ctx, key); err != nil {
		n.failed(ctx, o, "pagerduty", "pagerduty", err)
	}
}

// doneVerb says what a run did to the sessions its Report.Deleted counts: a restore put them back.
func doneVerb(o JobOutcome) string {
	if o.Mode == "restore" {
		return "restored"
	}
	return "deleted"
}

// stoppedEarly reports whether the run ended before doing all it was asked: failed, cancelled
// or bounded.
func stoppedEarly(o JobOutcome) bool { return o.Failed || o.Partial || o.Report.Stopped != "" }

// failed reports a notification given up on: in the job's thread, in the audit log and in the
// metrics. Reporting is best effort; a failure to report is logged.
func (n *Announcer) failed(ctx context.Context, o JobOutcome, kind, channel string, err error) {
	msg := truncate(n.redact(err.Error()), 500)
	n.log.Warn("notification failed", "job", o.JobID, "channel", channel, "err", msg)
	n.metrics.NotificationFailed(kind)
	if n.audit != nil {
		if aerr := n.audit.Log(cleanup.NotificationFailed{
			Channel: channel, Error: msg, Job: o.JobID}.Event(n.now())); aerr != nil {
			n.log.Error("audit of a failed notification failed", "job", o.JobID, "err", aerr)
		}
	}
	if o.Thread.Channel == "" || o.Thread.TS == "" {
		return
	}
	m := Message{
		Text:  fmt.Sprintf(":warning: Notification failed: %s", channel),
		Lines: []string{fmt.Sprintf(":warning: *Notification failed* (%s): `%s`", channel, msg), "The cleanup itself is not affected."},
	}
	if _, rerr := n.chat.Reply(ctx, o.Thread, m); rerr != nil {
		n.log.Error("cannot report a failed notification in the thread", "job", o.JobID, "err", n.redact(rerr.Error()))
	}
}

func (n *Announcer) redact(s string) string {
	for _, sec := range n.secrets {
		s = strings.ReplaceAll(s, sec, redacted)
	}
	return s
}

// Permalink is the web link of a message: https://slack.com/archives/<channel>/p<ts without
// the dot>. It is empty when ref does not name a channel id and a timestamp.
func Permalink(ref MessageRef) string {
	if ref.Channel == "" || ref.TS == "" || strings.HasPrefix(ref.Channel, "#") {
		return ""
	}
	return "https://slack.com/archives/" + ref.Channel + "/p" + strings.ReplaceAll(ref.TS, ".", "")
}

func massLogoutMessage(o JobOutcome) Message {
	affected := fmt.Sprintf("All active users (%s sessions invalidated)", num(o.Report.Deleted))
	if stoppedEarly(o) {
		affected = fmt.Sprintf("Part of the active users: %s sessions invalidated before the run stopped; the others are still signed in",
			num(o.Report.Deleted))
	}
	text := templates.MassLogout(templates.MassLogoutData{
		Timestamp:     o.At.UTC().Format(time.RFC3339),
		AffectedUsers: affected,
		Reason:        userText(o.Reason),
	})
	ctx := []string{"Job `" + o.JobID + "` · requested by " + notifyPersonRef(o.Requester) + notifyApprovedBy(o.Approver)}
	if o.Target != "" {
		ctx = append(ctx, "Target: `"+o.Target+"`")
	}
	return Message{
		Text:    ":warning: Mass Logout Executed: all users must re-authenticate",
		Lines:   []string{text},
		Context: ctx,
	}
}

func userNoticeMessage(o JobOutcome) Message {
	return Message{
		Text:  ":lock: Please sign in again",
		Lines: []string{templates.UserNotice(templates.UserNoticeData{Timestamp: o.At.UTC().Format(time.RFC3339)})},
	}
}

func affectedUserMessage(o JobOutcome) Message {
	return Message{
		Text: ":lock: Your sessions were ended; please sign in again",
		Lines: []string{
			":lock: *Your sessions were ended*",
			fmt.Sprintf("At %s the platform team ended your active sessions. The next time you open the application you will be asked to sign in again.",
				o.At.UTC().Format(time.RFC3339)),
			"Nothing else changed: no data was lost, only sign-in state.",
			"Questions? Contact " + templates.DefaultContact + ".",
		},
	}
}

func (n *Announcer) summaryMessage(o JobOutcome, link string) Message {
	r := o.Report
	what := "Session cleanup"
	if o.Mode == "all" {
		what = "Mass logout"
	} else if o.Mode == "restore" {
		what = "Session restore"
	}
	head := fmt.Sprintf(":white_check_mark: *%s completed*", what)
	text := fmt.Sprintf("%s completed: %s deleted", what, num(r.Deleted))
	if o.Mode == "restore" {
		text = fmt.Sprintf("%s completed: %s restored", what, num(r.Deleted))
	}
	switch {
	case o.Failed:
		head = fmt.Sprintf(":x: *%s failed*", what)
		text = fmt.Sprintf("%s failed after it %s %s", what, doneVerb(o), num(r.Deleted))
	case stoppedEarly(o):
		head = fmt.Sprintf(":octagonal_sign: *%s stopped early*", what)
		text = fmt.Sprintf("%s stopped early after it %s %s", what, doneVerb(o), num(r.Deleted))
	}
	lines := []string{head + " — job `" + o.JobID + "`"}
	lines = append(lines, fmt.Sprintf("*Mode:* %s · *Scope:* `%s`", o.Mode, notifyDash(userText(o.Scope))))
	if o.Mode != "restore" {
		lines = append(lines, fmt.Sprintf("*Deleted:* %s (%s still valid) · *Kept:* %s · *Skipped:* %s · *Errors:* %s · *Duration:* %s",
			num(r.Deleted), num(r.DeletedValid), num(r.Kept), num(r.Skipped), num(r.Errors),
			r.Duration().Round(time.Millisecond)))
	}
	if o.Failed {
		lines = append(lines, "*Error:* "+notifyDash(o.Error))
	} else if r.Stopped != "" {
		lines = append(lines, "*Stopped:* "+r.Stopped)
	}
	lines = append(lines, "*Reason:* "+notifyDash(userText(o.Reason)))
	people := "*Requested by:* " + notifyPersonRef(o.Requester)
	if o.Approver != nil {
		people += " · *Approved by:* " + notifyPersonRef(*o.Approver)
	}
	if o.Executor.ID != "" {
		people += " · *Executed by:* " + notifyPersonRef(o.Executor)
	}
	lines = append(lines, people)
	var ctx []string
	if o.Target != "" {
		ctx = append(ctx, "Target: `"+o.Target+"`")
	}
	if link != "" {
		ctx = append(ctx, "Job thread: "+link)
	}
	return Message{Text: text, Lines: lines, Context: ctx}
}

// pdSummary names mode, counts and reason in at most 1024 characters.
func pdSummary(o JobOutcome) string {
	r := o.Report
	var s string
	switch {
	case o.Failed && o.Mode == "all":
		s = fmt.Sprintf("sessionbot: mass logout FAILED part-way on %s: %s sessions deleted before it stopped (errors %d): %s",
			notifyDash(o.Target), num(r.Deleted), r.Errors, notifyDash(o.Error))
	case o.Failed:
		run := "cleanup"
		if o.Mode == "restore" {
			run = "restore"
		}
		s = fmt.Sprintf("sessionbot: %s FAILED on %s (mode %s, scope %s): %s %s before it stopped (errors %d): %s",
			run, notifyDash(o.Target), o.Mode, notifyDash(o.Scope), num(r.Deleted), doneVerb(o), r.Errors, notifyDash(o.Error))
	case stoppedEarly(o):
		s = fmt.Sprintf("sessionbot: %s on %s (scope %s) stopped early (%s): %s sessions %s, %d errors",
			o.Mode, notifyDash(o.Target), notifyDash(o.Scope), notifyDash(r.Stopped), num(r.Deleted), doneVerb(o), r.Errors)
	case o.Mode == "all":
		s = fmt.Sprintf("sessionbot: mass logout on %s: %s sessions deleted, %s kept, %d errors",
			notifyDash(o.Target), num(r.Deleted), num(r.Kept), r.Errors)
	case o.Mode == "restore":
		s = fmt.Sprintf("sessionbot: restore on %s (scope %s): %s sessions restored, %s skipped, %d errors",
			notifyDash(o.Target), notifyDash(o.Scope), num(r.Deleted), num(r.Skipped), r.Errors)
	default:
		s = fmt.Sprintf("sessionbot: %s on %s (scope %s): %s sessions deleted, %s kept, %d errors",
			o.Mode, notifyDash(o.Target), notifyDash(o.Scope), num(r.Deleted), num(r.Kept), r.Errors)
	}
	return truncate(s+". Reason: "+oneLine(notifyDash(o.Reason)), maxPDSummary)
}

func pdDetails(o JobOutcome, link string) map[string]any {
	r := o.Report
	d := map[string]any{
		"job_id":        o.JobID,
		"mode":          o.Mode,
		"scope":         o.Scope,
		"target":        o.Target,
		"reason":        o.Reason,
		"requester":     notifyPersonText(o.Requester),
		"approver":      "none (no approval needed)",
		"executor":      notifyPersonText(o.Executor),
		"scanned":       r.Scanned,
		"matched":       r.Matched,
		"deleted":       r.Deleted,
		"deleted_valid": r.DeletedValid,
		"kept":          r.Kept,
		"skipped":       r.Skipped,
		"malformed":     r.Malformed,
		"errors":        r.Errors,
		"duration":      r.Duration().Round(time.Millisecond).String(),
		"failed":        o.Failed,
	}
	if o.Approver != nil {
		d["approver"] = notifyPersonText(*o.Approver)
	}
	if o.Failed {
		d["error"] = o.Error
		d["partial"] = o.Partial
	}
	if r.Stopped != "" {
		d["stopped"] = r.Stopped
	}
	if r.Backup != "" {
		d["backup"] = r.Backup
	}
	if link != "" {
		d["slack_message"] = link
	}
	return d
}

func notifyPersonRef(p Person) string {
	if p.ID == "" {
		return notifyDash(userText(p.Name))
	}
	return "<@" + p.ID + ">"
}

func notifyPersonText(p Person) string {
	switch {
	case p.ID == "":
		return notifyDash(p.Name)
	case p.Name == "":
		return p.ID
	}
	return p.ID + " (" + p.Name + ")"
}

func notifyApprovedBy(p *Person) string {
	if p == nil {
		return ""
	}
	return " · approved by " + notifyPersonRef(*p)
}

func notifyDash(s string) string {
	if strings.TrimSpace(s) == "" {
		return "–"
	}
	return s
}
