package bot

import (
	"time"

	"github.com/platform-team/sessionbot/bot/chat"
	"github.com/platform-team/sessionbot/cleanup"
)

// The core speaks through the port of bot/chat, whose types it names on almost every line:
// these aliases keep its code readable (Message, not chat.Message). They are aliases, not new
// types: what a transport built on bot/chat alone hands over or implements is used here as it is,
// and nothing converts between the two.
type (
	Message    = chat.Message
	Field      = chat.Field
	Button     = chat.Button
	MessageRef = chat.MessageRef
	Chat       = chat.Chat
	Command    = chat.Command
	Action     = chat.Action
)

// Person is a Slack user as shown in messages and audit lines.
type Person struct{ ID, Name string }

// JobOutcome is a finished destructive run, handed to the Notifier and by it to every Sink.
type JobOutcome struct {
	JobID     string
	Mode      string         // execute, all, restore
	Filter    cleanup.Filter // what ran (zero for a restore); decides who is notified
	Scope     string         // cleanup.Filter.Scope()
	Reason    string
	Requester Person
	Approvals []Person // who approved, in order; none when no approval was needed
	Executor  Person
	Report    cleanup.Report
	Failed    bool   // the run stopped on an error
	Error     string // the failure, safe to show
	Partial   bool   // a mass logout that stopped part-way
	Target    string // Redis target name, for the PagerDuty dedup key
	Thread    MessageRef
	// AffectedUsers are the users whose sessions a --user-id cleanup (Filter.UserID) removed
	// (e-mail from the session's username), for DMs when NOTIFY_AFFECTED_USERS is on.
	AffectedUsers []AffectedUser
	// UserIDs are the distinct user_ids of the decodable sessions the run deleted, sorted; nil
	// unless a sink wants them (Notifier.WantsUserIDs).
	UserIDs []string
	At      time.Time
}

// AffectedUser is a user whose sessions were removed.
type AffectedUser struct{ UserID, Email string }
