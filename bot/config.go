package bot

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/sethvargo/go-envconfig"

	"github.com/platform-team/sessionbot/cleanup"
)

// Config is the chat core's configuration (SPEC §8). The Slack transport's tokens and the
// PagerDuty settings live in their own structs; cmd composes them and validates all at once.
type Config struct {
	// Command is the slash command's name, shown in help and messages.
	Command string `env:"SLACK_COMMAND, default=/sessions"`
	// TeamID, when set, is the only workspace whose commands and clicks are accepted.
	TeamID string `env:"SLACK_TEAM_ID"`
	// Operators may use the command: user ids (U…, W…) and user-group ids (S…).
	Operators []string `env:"OPERATORS"`
	// Approvers may approve requests that need a second person.
	Approvers []string `env:"APPROVERS"`
	// ApprovalsRequired is how many distinct approvers, none of them the requester, must approve a request that needs approval; the job starts on the last approval. More than the users listed in APPROVERS needs a user group there.
	ApprovalsRequired int `env:"APPROVALS_REQUIRED, default=1"`
	// ApprovalTTL is how long a request (preview or approval request) stays actionable.
	ApprovalTTL time.Duration `env:"APPROVAL_TTL, default=15m"`
	// NotifyChannel receives the notification of every destructive run.
	NotifyChannel string `env:"NOTIFY_CHANNEL, default=#platform-incidents"`
	// ApprovalChannel receives approval requests; empty: the command's channel.
	ApprovalChannel string `env:"APPROVAL_CHANNEL"`
	// UserNotifyChannel, when set, receives the user-facing mass-logout notice.
	UserNotifyChannel string `env:"USER_NOTIFY_CHANNEL"`
	// NotifyAffectedUsers DMs users whose sessions a --user-id cleanup removed.
	NotifyAffectedUsers bool `env:"NOTIFY_AFFECTED_USERS, default=false"`
}

// LoadConfig reads Config from l (envconfig.OsLookuper() in production) and validates it. The
// Config is filled even when there are errors: a bad variable keeps its default, so that the
// caller can check the rest (one line per problem, each naming its variable).
func LoadConfig(ctx context.Context, l envconfig.Lookuper) (Config, error) {
	var c Config
	errs := cleanup.DecodeEnv(ctx, &c, lookupFunc(l))
	return c, cleanup.JoinLines(append(errs, c.Validate())...)
}

// lookupFunc adapts a Lookuper to the getenv form cleanup.DecodeEnv reads.
func lookupFunc(l envconfig.Lookuper) func(string) string {
	return func(k string) string {
		v, _ := l.Lookup(k)
		return v
	}
}

// DefaultConfig is the configuration with every default applied and nothing else set.
func DefaultConfig() Config {
	c, _ := LoadConfig(context.Background(), envconfig.MapLookuper(nil))
	return c
}

var (
	slackIDRe   = regexp.MustCompile(`^[UWS][A-Z0-9]{2,30}$`)
	teamIDRe    = regexp.MustCompile(`^[TE][A-Z0-9]{2,30}$`)
	channelIDRe = regexp.MustCompile(`^[CGD][A-Z0-9]{2,30}$`)
	channelName = regexp.MustCompile(`^#[a-z0-9][a-z0-9_\-.]{0,79}$`)
)

// Validate reports every problem at once, each naming its variable.
func (c Config) Validate() error {
	var errs []error
	bad := func(name, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: "+format, append([]any{name}, args...)...))
	}
	if !strings.HasPrefix(c.Command, "/") || len(c.Command) < 2 || strings.ContainsAny(c.Command, " \t") {
		bad("SLACK_COMMAND", "%q is not a slash command (want e.g. /sessions)", c.Command)
	}
	if c.TeamID != "" && !teamIDRe.MatchString(c.TeamID) {
		bad("SLACK_TEAM_ID", "%q is not a Slack team id (want T… in upper-case letters and digits)", c.TeamID)
	}
	for _, v := range []struct {
		name string
		ids  []string
	}{{"OPERATORS", c.Operators}, {"APPROVERS", c.Approvers}} {
		for _, id := range v.ids {
			id = strings.TrimSpace(id)
			if id == "" {
				continue
			}
			if !slackIDRe.MatchString(id) {
				bad(v.name, "%q is not a Slack user or user-group id (want U…, W… or S…, upper-case letters and digits)", id)
			}
		}
	}
	if err := c.validateApprovalsRequired(); err != nil {
		errs = append(errs, err)
	}
	if c.ApprovalTTL < time.Minute || c.ApprovalTTL > 24*time.Hour {
		bad("APPROVAL_TTL", "%s is out of range (1m to 24h)", c.ApprovalTTL)
	}
	if c.NotifyChannel == "" {
		bad("NOTIFY_CHANNEL", "must not be empty")
	}
	for _, v := range []struct{ name, ch string }{
		{"NOTIFY_CHANNEL", c.NotifyChannel},
		{"APPROVAL_CHANNEL", c.ApprovalChannel},
		{"USER_NOTIFY_CHANNEL", c.UserNotifyChannel},
	} {
		if v.ch != "" && !validChannel(v.ch) {
			bad(v.name, "%q is not a channel id (C…) or #name", v.ch)
		}
	}
	return errors.Join(errs...)
}

// validateApprovalsRequired checks that APPROVALS_REQUIRED approvals can be given: by as many
// listed users, unless a user group is listed (its size is known only at run time).
func (c Config) validateApprovalsRequired() error {
	if c.ApprovalsRequired < 1 {
		return fmt.Errorf("APPROVALS_REQUIRED: %d is out of range (at least 1)", c.ApprovalsRequired)
	}
	users := map[string]bool{}
	for _, id := range IDs(c.Approvers) {
		if strings.HasPrefix(id, "S") {
			return nil
		}
		users[id] = true
	}
	if c.ApprovalsRequired > 1 && c.ApprovalsRequired > len(users) {
		return fmt.Errorf("APPROVALS_REQUIRED: %d approvals can never be given by the %d users in APPROVERS (list more approvers, or a user group)",
			c.ApprovalsRequired, len(users))
	}
	return nil
}

func validChannel(s string) bool { return channelIDRe.MatchString(s) || channelName.MatchString(s) }

// IDs returns the non-empty, trimmed entries of a configured id list (OPERATORS, APPROVERS, a
// target's approvers or channels).
func IDs(list []string) []string {
	var out []string
	for _, s := range list {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// IsUserID reports whether s is a Slack user id (U…, W…) as OPERATORS and APPROVERS list them; a
// user-group id (S…) is not one.
func IsUserID(s string) bool { return slackIDRe.MatchString(s) && !strings.HasPrefix(s, "S") }
