// Package chat is the port between the bot's core and its transports: what the core says
// (Message, with the text rules of its fields), what a transport must do for it (Chat), and what
// a transport hands it (Command, Action, to a Handler). The Slack adapter (bot/slack) and the
// console (bot/console) implement Chat; the core (bot) implements Handler. It is a leaf: it
// imports only the standard library, so that the core and the adapters depend on it and not on
// each other.
package chat

import (
	"context"
	"errors"
)

// Message is what the bot says, independent of transport. The Slack adapter renders it as Block
// Kit (with Text as the notification fallback); the console prints it as plain text.
type Message struct {
	Text    string   // one-line fallback / notification text; never empty
	Title   string   // header
	Lines   []string // body paragraphs; *bold* and `code` are allowed
	Fields  []Field  // label/value pairs
	Context []string // small print under the body
	Buttons []Button
}

// Field is a label/value pair in a message.
type Field struct{ Label, Value string }

// Button is an interactive button. ActionID is one of run, cancel, approve, reject; Value is an
// opaque request or job id, never trusted data.
type Button struct {
	ActionID string
	Label    string
	Value    string
	Style    string // "", "primary" or "danger"
	Confirm  string // when set, a confirmation dialog with this text precedes the action
}

// MessageRef locates a posted message so it can be updated or replied to in its thread.
type MessageRef struct{ Channel, TS string }

// ErrNotInChannel is wrapped by Chat.Post's error when the bot may not post in the channel: it
// is not a member, or cannot see it (a private channel it was not invited to).
var ErrNotInChannel = errors.New("the bot is not in this channel")

// Chat is everything the core asks of a transport.
type Chat interface {
	// Post posts m to channel (an id or #name) and returns where it landed. When the bot may
	// not post there, the error wraps ErrNotInChannel.
	Post(ctx context.Context, channel string, m Message) (MessageRef, error)
	// Reply posts m in the thread of ref.
	Reply(ctx context.Context, ref MessageRef, m Message) (MessageRef, error)
	// Update replaces the message at ref.
	Update(ctx context.Context, ref MessageRef, m Message) error
	// Ephemeral shows m to user only, in channel (or through responseURL when set).
	Ephemeral(ctx context.Context, channel, user, responseURL string, m Message) error
	// DM sends m to user directly.
	DM(ctx context.Context, user string, m Message) error
	// LookupUserByEmail returns the user id for an e-mail address.
	LookupUserByEmail(ctx context.Context, email string) (string, error)
	// UserGroupMembers returns the user ids in a user group (S…).
	UserGroupMembers(ctx context.Context, group string) ([]string, error)
}

// Command is a slash command as received, after the transport acknowledged it.
type Command struct {
	EnvelopeID  string // transport delivery id; redeliveries carry the same one
	TeamID      string
	UserID      string
	UserName    string
	ChannelID   string
	Text        string // everything after the command name
	ResponseURL string
}

// Action is a button press as received, after the transport acknowledged it.
type Action struct {
	EnvelopeID  string
	TeamID      string
	UserID      string
	UserName    string
	ChannelID   string
	MessageTS   string
	ActionID    string // run, cancel, approve, reject
	Value       string // opaque request/job id from the button
	ResponseURL string
}

// Handler is the core as a transport sees it. Both methods are called after the delivery was
// acknowledged, each in its own goroutine; a redelivered envelope is passed again with the same
// EnvelopeID, and the handler handles it once.
type Handler interface {
	HandleCommand(ctx context.Context, c Command)
	HandleAction(ctx context.Context, a Action)
}
