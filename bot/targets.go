package bot

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/platform-team/sessionbot/cleanup"
)

// Target is one Redis deployment the bot serves (SPEC §13 "Targets"): a request records its
// target's name, and its job runs on exactly that target's engine, under that target's lease.
type Target struct {
	// Name is shown in every message, audit line and metric, and names backups and PagerDuty
	// dedup keys.
	Name   string
	Engine *cleanup.Engine
	// Policy decides approval, backup and bound of the target's requests.
	Policy cleanup.Policy
	// Approvers may approve the target's requests; empty: APPROVERS.
	Approvers []string
	// Channels are channel ids whose commands default to this target.
	Channels []string
}

// target is a Target with what the bot keeps per target.
type target struct {
	Target
	// previews holds one token per preview or stats scan running on the target (SPEC §12.7).
	previews chan struct{}
}

// targets is the registry of the bot's targets: by name, and by the channels that default to
// one. It is built once, in New, and never changes.
type targets struct {
	list      []*target
	byName    map[string]*target
	byChannel map[string]*target
	// named: the targets were configured by name (Deps.Targets), not derived from Deps.Engine.
	named bool
}

var targetNameRe = regexp.MustCompile(`^[a-z0-9-]{1,32}$`)

func newTargets(list []Target, cfg Config) (*targets, error) {
	ts := &targets{byName: map[string]*target{}, byChannel: map[string]*target{}}
	var errs []error
	for _, t := range list {
		bad := func(format string, args ...any) {
			errs = append(errs, fmt.Errorf("target %s: "+format, append([]any{t.Name}, args...)...))
		}
		switch {
		case t.Engine == nil:
			bad("Engine is required")
		case ts.byName[t.Name] != nil:
			bad("named twice")
		}
		if err := t.Policy.Validate(); err != nil {
			bad("%v", err)
		}
		for _, id := range IDs(t.Approvers) {
			if !slackIDRe.MatchString(id) {
				bad("approvers: %q is not a Slack user or user-group id (want U…, W… or S…, upper-case letters and digits)", id)
			}
		}
		for _, ch := range IDs(t.Channels) {
			if !validChannel(ch) {
				bad("channels: %q is not a channel id (C…) or #name", ch)
			}
		}
		if len(t.Approvers) == 0 {
			t.Approvers = cfg.Approvers
		}
		tt := &target{Target: t, previews: make(chan struct{}, MaxPreviews)}
		ts.list = append(ts.list, tt)
		ts.byName[t.Name] = tt
		for _, ch := range IDs(t.Channels) {
			ts.byChannel[ch] = tt
		}
	}
	return ts, errors.Join(errs...)
}

// names lists the targets' names, for messages that ask for one (plain: refusals show their text
// inert, code spans included).
func (ts *targets) names() string {
	return strings.Join(ts.nameList(), ", ")
}

// nameList lists the targets' names.
func (ts *targets) nameList() []string {
	out := make([]string, len(ts.list))
	for i, t := range ts.list {
		out[i] = t.Name
	}
	return out
}

// resolve picks the target of a command: the one named by --target, else the channel's default,
// else the only one. The error is for the person who typed the command, and lists the names.
func (ts *targets) resolve(name, channel string) (*target, error) {
	if name != "" {
		if t := ts.byName[name]; t != nil {
			return t, nil
		}
		return nil, userErrorf("Unknown target %q; the targets are %s", short(name, 40), ts.names())
	}
	if t := ts.byChannel[channel]; t != nil {
		return t, nil
	}
	if len(ts.list) == 1 {
		return ts.list[0], nil
	}
	return nil, userErrorf("This channel has no default target: name one with --target NAME (%s)", ts.names())
}

// of returns the target a request or job recorded; one stored before targets were named ("")
// belongs to the only target.
func (ts *targets) of(name string) (*target, error) {
	if name == "" && len(ts.list) == 1 {
		return ts.list[0], nil
	}
	if t := ts.byName[name]; t != nil {
		return t, nil
	}
	return nil, fmt.Errorf("target %q is no longer configured", name)
}

// approvers is everyone who approves on some target: who may use the command's read-only parts
// without being an operator.
func (ts *targets) approvers() []string {
	var out []string
	for _, t := range ts.list {
		out = append(out, IDs(t.Approvers)...)
	}
	return out
}

// jobIDPrefix starts the job ids (and so the backup file names) of t's jobs: a named target's
// name is in them; the single-target default keeps the plain job-… ids.
func (ts *targets) jobIDPrefix(t *target) string {
	if !ts.named || t.Name == cleanup.DefaultTargetName || !targetNameRe.MatchString(t.Name) {
		return "job-"
	}
	return "job-" + t.Name + "-"
}
