package bot

import (
	"fmt"
	"strings"
	"time"

	"github.com/platform-team/sessionbot/bot/chat"
	"github.com/platform-team/sessionbot/templates"
)

// How a finished run is described to the sinks: one home for the words every sink shares.

// maxSummary is the longest Summary: PagerDuty's limit on an event's summary.
const maxSummary = 1024

// StoppedEarly reports whether the run ended before doing all it was asked: failed, cancelled
// or bounded.
func (o JobOutcome) StoppedEarly() bool { return o.Failed || o.Partial || o.Report.Stopped != "" }

// MassLogoutExecuted reports whether o is a mass logout that logged users out — all of them, or
// some before it stopped: what the runbook's Mass Logout Executed notice is sent for.
func (o JobOutcome) MassLogoutExecuted() bool {
	return o.Mode == "all" && (o.Report.Deleted > 0 || !o.StoppedEarly())
}

// MassLogoutNotice fills the runbook's Mass Logout Executed template for o. Its Reason is as
// typed: each sink makes it inert for its medium (userText in Slack, cleanup.InertLine in plain
// text).
func (o JobOutcome) MassLogoutNotice() templates.MassLogoutData {
	affected := fmt.Sprintf("All active users (%s sessions invalidated)", num(o.Report.Deleted))
	if o.StoppedEarly() {
		affected = fmt.Sprintf("Part of the active users: %s sessions invalidated before the run stopped; the others are still signed in",
			num(o.Report.Deleted))
	}
	return templates.MassLogoutData{
		Timestamp:     o.At.UTC().Format(time.RFC3339),
		AffectedUsers: affected,
		Reason:        o.Reason,
	}
}

// doneVerb says what a run did to the sessions its Report.Deleted counts: a restore put them back.
func doneVerb(o JobOutcome) string {
	if o.Mode == "restore" {
		return "restored"
	}
	return "deleted"
}

// Summary is o in one line of at most 1,024 characters (what a pager shows): mode, target,
// counts and reason.
func (o JobOutcome) Summary() string {
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
	case o.StoppedEarly():
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
	return chat.Truncate(s+". Reason: "+chat.OneLine(notifyDash(o.Reason)), maxSummary)
}

// Details is o as named fields (PagerDuty's custom_details): who, what, the counts and the link
// to the job's Slack thread.
func (o JobOutcome) Details() map[string]any {
	r := o.Report
	d := map[string]any{
		"job_id":        o.JobID,
		"mode":          o.Mode,
		"scope":         o.Scope,
		"target":        o.Target,
		"reason":        o.Reason,
		"requester":     PersonText(o.Requester),
		"approver":      "none (no approval needed)",
		"executor":      PersonText(o.Executor),
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
	if len(o.Approvals) > 0 {
		names := make([]string, len(o.Approvals))
		for i, p := range o.Approvals {
			names[i] = PersonText(p)
		}
		d["approver"] = strings.Join(names, ", ")
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
	if link := Permalink(o.Thread); link != "" {
		d["slack_message"] = link
	}
	return d
}

// Permalink is the web link of a message: https://slack.com/archives/<channel>/p<ts without
// the dot>. It is empty when ref does not name a channel id and a timestamp.
func Permalink(ref MessageRef) string {
	if ref.Channel == "" || ref.TS == "" || strings.HasPrefix(ref.Channel, "#") {
		return ""
	}
	return "https://slack.com/archives/" + ref.Channel + "/p" + strings.ReplaceAll(ref.TS, ".", "")
}

func notifyPersonRef(p Person) string {
	if p.ID == "" {
		return notifyDash(userText(p.Name))
	}
	return "<@" + p.ID + ">"
}

// PersonText spells a person for plain text: "U123 (alice)", the id or the name alone when the
// other is unknown.
func PersonText(p Person) string {
	switch {
	case p.ID == "":
		return notifyDash(p.Name)
	case p.Name == "":
		return p.ID
	}
	return p.ID + " (" + p.Name + ")"
}

func notifyApprovedBy(approvals []Person) string {
	if len(approvals) == 0 {
		return ""
	}
	return " · approved by " + notifyPeopleRef(approvals)
}

// notifyPeopleRef names each person (mentions), comma-separated.
func notifyPeopleRef(people []Person) string {
	refs := make([]string, len(people))
	for i, p := range people {
		refs[i] = notifyPersonRef(p)
	}
	return strings.Join(refs, ", ")
}

func notifyDash(s string) string {
	if strings.TrimSpace(s) == "" {
		return "–"
	}
	return s
}
