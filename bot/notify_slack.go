package bot

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/platform-team/sessionbot/templates"
)

// The sinks that speak through Chat. Their settings are Config's NOTIFY_CHANNEL,
// USER_NOTIFY_CHANNEL and NOTIFY_AFFECTED_USERS (SPEC §8); SlackSinks composes them.

// SlackSinks returns the chat sinks cfg configures: the NOTIFY_CHANNEL summary always, the
// USER_NOTIFY_CHANNEL notice when it is set, DMs when NOTIFY_AFFECTED_USERS is on.
func SlackSinks(cfg Config, chat Chat) []NamedSink {
	sinks := []NamedSink{{Name: "slack", Sink: &ChannelSink{Chat: chat, Channel: cfg.NotifyChannel}}}
	if cfg.UserNotifyChannel != "" {
		sinks = append(sinks, NamedSink{Name: "slack", Sink: &UserNoticeSink{Chat: chat, Channel: cfg.UserNotifyChannel}})
	}
	if cfg.NotifyAffectedUsers {
		sinks = append(sinks, NamedSink{Name: "dm", Sink: &DirectMessageSink{Chat: chat}})
	}
	return sinks
}

// ChannelSink posts every executed destructive run to a channel (NOTIFY_CHANNEL): a summary,
// and for a mass logout first the runbook's Mass Logout Executed template, with the summary in
// its thread.
type ChannelSink struct {
	Chat    Chat
	Channel string
}

var _ Sink = (*ChannelSink)(nil)

// Deliver implements Sink.
func (s *ChannelSink) Deliver(ctx context.Context, o JobOutcome) error {
	summary := summaryMessage(o)
	if !o.MassLogoutExecuted() {
		if _, err := s.Chat.Post(ctx, s.Channel, summary); err != nil {
			return &DeliveryError{Channel: s.Channel, Err: err}
		}
		return nil
	}
	var errs []error
	ref, err := s.Chat.Post(ctx, s.Channel, massLogoutMessage(o))
	if err != nil {
		errs = append(errs, &DeliveryError{Channel: s.Channel, Err: err})
		_, err = s.Chat.Post(ctx, s.Channel, summary)
	} else {
		_, err = s.Chat.Reply(ctx, ref, summary)
	}
	if err != nil {
		errs = append(errs, &DeliveryError{Channel: s.Channel, Err: err})
	}
	return errors.Join(errs...)
}

// UserNoticeSink posts the user-facing sign-in notice to a channel (USER_NOTIFY_CHANNEL) after a
// mass logout. It carries no reason: the incident's details are for the platform team.
type UserNoticeSink struct {
	Chat    Chat
	Channel string
}

var _ Sink = (*UserNoticeSink)(nil)

// Deliver implements Sink.
func (s *UserNoticeSink) Deliver(ctx context.Context, o JobOutcome) error {
	if !o.MassLogoutExecuted() {
		return nil
	}
	if _, err := s.Chat.Post(ctx, s.Channel, userNoticeMessage(o)); err != nil {
		return &DeliveryError{Channel: s.Channel, Err: err}
	}
	return nil
}

// DirectMessageSink tells each user whose sessions a --user-id cleanup removed, found by the
// e-mail in their session's username, that their sessions ended (NOTIFY_AFFECTED_USERS). The
// e-mail is never posted or logged; failures name the user_id.
type DirectMessageSink struct {
	Chat Chat
}

var _ Sink = (*DirectMessageSink)(nil)

// Deliver implements Sink.
func (s *DirectMessageSink) Deliver(ctx context.Context, o JobOutcome) error {
	// Decided by the filter, never by the scope's text: --auth-method 'user_id=x' is no --user-id.
	if o.Mode != "execute" || o.Filter.UserID == "" || o.Report.Deleted == 0 {
		return nil
	}
	var errs []error
	seen := map[string]bool{}
	for _, u := range o.AffectedUsers {
		email := strings.ToLower(strings.TrimSpace(u.Email))
		if seen[email] {
			continue
		}
		seen[email] = true
		label := "dm:" + u.UserID
		if email == "" || !strings.Contains(email, "@") {
			errs = append(errs, &DeliveryError{Channel: label, Err: errors.New("the session has no e-mail username to find the Slack user by")})
			continue
		}
		id, err := s.Chat.LookupUserByEmail(ctx, email)
		if err != nil {
			errs = append(errs, &DeliveryError{Channel: label, Err: err})
			continue
		}
		if err := s.Chat.DM(ctx, id, affectedUserMessage(o)); err != nil {
			errs = append(errs, &DeliveryError{Channel: "dm:" + id, Err: err})
		}
	}
	return errors.Join(errs...)
}

func massLogoutMessage(o JobOutcome) Message {
	d := o.MassLogoutNotice()
	d.Reason = userText(d.Reason)
	ctx := []string{"Job `" + o.JobID + "` · requested by " + notifyPersonRef(o.Requester) + notifyApprovedBy(o.Approvals)}
	if o.Target != "" {
		ctx = append(ctx, "Target: `"+o.Target+"`")
	}
	return Message{
		Text:    ":warning: Mass Logout Executed: all users must re-authenticate",
		Lines:   []string{templates.MassLogout(d)},
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
				stamp(o.At)),
			"Nothing else changed: no data was lost, only sign-in state.",
			"Questions? Contact " + templates.DefaultContact + ".",
		},
	}
}

func summaryMessage(o JobOutcome) Message {
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
	case o.StoppedEarly():
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
	if len(o.Approvals) > 0 {
		people += " · *Approved by:* " + notifyPeopleRef(o.Approvals)
	}
	if o.Executor.ID != "" {
		people += " · *Executed by:* " + notifyPersonRef(o.Executor)
	}
	lines = append(lines, people)
	var ctx []string
	if o.Target != "" {
		ctx = append(ctx, "Target: `"+o.Target+"`")
	}
	if link := Permalink(o.Thread); link != "" {
		ctx = append(ctx, "Job thread: "+link)
	}
	return Message{Text: text, Lines: lines, Context: ctx}
}
