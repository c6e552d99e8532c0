// Package templates holds the message templates people read: the runbook's "Mass Logout
// Executed" notification, the user-facing sign-out notice and the command help. They are
// embedded and parsed once; a template that does not parse stops the program at start-up (and
// every test), never at 3 a.m. in the middle of an incident.
package templates

import (
	"embed"
	"strings"
	"text/template"
)

//go:embed *.tmpl
var files embed.FS

var all = template.Must(template.New("").Option("missingkey=error").ParseFS(files, "*.tmpl"))

// DefaultContact and DefaultOnCall are the runbook's support lines.
const (
	DefaultContact = "platform-team@company.com"
	DefaultOnCall  = "Check PagerDuty rotation"
)

// MassLogoutData fills the runbook's Mass Logout Executed template.
type MassLogoutData struct {
	Timestamp     string // RFC 3339, UTC
	AffectedUsers string // e.g. "All active users (12,345 sessions)"
	Reason        string // Slack mrkdwn: the caller makes the user's text inert (bot's userText)
	Contact       string // empty: SUPPORT_CONTACT (Configure), by default DefaultContact
	OnCall        string // empty: ONCALL_TEXT (Configure), by default DefaultOnCall
}

// MassLogout renders the runbook's notification (Timestamp, Affected Users, Reason, Action
// Required, Impact, Support), in Slack mrkdwn.
func MassLogout(d MassLogoutData) string {
	c := active.Load()
	if d.Contact == "" {
		d.Contact = c.contact
	}
	if d.OnCall == "" {
		d.OnCall = c.onCall
	}
	d.Reason = oneLine(d.Reason)
	return execute("mass_logout.tmpl", d)
}

// UserNoticeData fills the user-facing sign-out notice. It deliberately carries no reason:
// the incident's details are for the platform team, not for every user.
type UserNoticeData struct {
	Timestamp string
	Contact   string // empty: SUPPORT_CONTACT (Configure), by default DefaultContact
}

// UserNotice renders the notice posted to USER_NOTIFY_CHANNEL after a mass logout.
func UserNotice(d UserNoticeData) string {
	if d.Contact == "" {
		d.Contact = active.Load().contact
	}
	return execute("user_notice.tmpl", d)
}

// HelpData fills the command help.
type HelpData struct {
	Command   string // e.g. /sessions
	Threshold string // APPROVAL_THRESHOLD, formatted
	TTL       string // APPROVAL_TTL, formatted
	// Targets says which targets there are and which one a command without --target uses.
	Targets string
	// Target is the target Threshold is of; empty when there is only one.
	Target string
}

// Help renders the command help: every subcommand, filter and option with an example.
func Help(d HelpData) string { return execute("help.tmpl", d) }

func execute(name string, data any) string {
	var b strings.Builder
	if err := active.Load().tmpl.ExecuteTemplate(&b, name, data); err != nil {
		// Only a programming error (a field the template names but the data lacks) gets here;
		// the package tests execute every template, and Configure every override.
		panic("templates: " + name + ": " + err.Error())
	}
	return strings.TrimRight(b.String(), "\n")
}

// oneLine keeps user text from adding lines (and so fake sections) to a template.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// Paragraphs splits rendered text at blank lines.
func Paragraphs(s string) []string {
	var out []string
	for _, p := range strings.Split(s, "\n\n") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
