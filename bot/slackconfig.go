package bot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"

	"github.com/sethvargo/go-envconfig"

	"github.com/platform-team/sessionbot/cleanup"
)

// Secret is a credential read from the environment. It prints, formats, logs and marshals as
// [redacted] so that a config dumped with %+v, slog or encoding/json never shows it; Reveal is
// the only way to the value, and is called only where the value is sent to its own service.
type Secret string

const redacted = "[redacted]"

// Reveal returns the secret value.
func (s Secret) Reveal() string { return string(s) }

// String implements fmt.Stringer.
func (s Secret) String() string { return redacted }

// GoString implements fmt.GoStringer (%#v).
func (s Secret) GoString() string { return `"` + redacted + `"` }

// Format implements fmt.Formatter so that every verb (%v, %+v, %s, %q, %x, %d…) is redacted.
func (s Secret) Format(f fmt.State, verb rune) {
	if verb == 'q' {
		_, _ = fmt.Fprintf(f, "%q", redacted)
		return
	}
	_, _ = f.Write([]byte(redacted))
}

// MarshalJSON implements json.Marshaler.
func (s Secret) MarshalJSON() ([]byte, error) { return json.Marshal(redacted) }

// MarshalText implements encoding.TextMarshaler (map keys, YAML, TOML encoders).
func (s Secret) MarshalText() ([]byte, error) { return []byte(redacted), nil }

// LogValue implements slog.LogValuer.
func (s Secret) LogValue() slog.Value { return slog.StringValue(redacted) }

// SlackConfig is what the Slack transport needs (SPEC §8); the command name and the channels
// are in Config, PagerDuty's settings in bot/pagerduty.
type SlackConfig struct {
	// AppToken is the app-level xapp-… token for Socket Mode (scope connections:write);
	// required by serve.
	AppToken Secret `env:"SLACK_APP_TOKEN"`
	// BotToken is the xoxb-… bot token; required by serve.
	BotToken Secret `env:"SLACK_BOT_TOKEN"`
	// APIURL is the Web API base; Validate makes it end in "/" as slack-go appends the method.
	APIURL string `env:"SLACK_API_URL, default=https://slack.com/api/"`
}

// LoadSlackConfig reads SlackConfig from l (nil: the process environment) and validates it.
func LoadSlackConfig(ctx context.Context, l envconfig.Lookuper) (SlackConfig, error) {
	var c SlackConfig
	if l == nil {
		l = envconfig.OsLookuper()
	}
	errs := cleanup.DecodeEnv(ctx, &c, lookupFunc(l))
	return c, cleanup.JoinLines(append(errs, c.Validate())...)
}

// Validate reports every problem at once (joined), each naming its variable and never showing a
// secret's value. It also normalizes SLACK_API_URL, which gets its trailing "/".
func (c *SlackConfig) Validate() error {
	var errs []error
	checkToken := func(name string, s Secret, prefix, what string) {
		v := strings.TrimSpace(s.Reveal())
		switch {
		case v == "":
			errs = append(errs, fmt.Errorf("%s is required (the %s, %s…)", name, what, prefix))
		case !strings.HasPrefix(v, prefix):
			errs = append(errs, fmt.Errorf("%s must start with %q (the %s); check that the two Slack tokens are not swapped", name, prefix, what))
		case v != s.Reveal() || strings.ContainsAny(v, " \t\r\n"):
			errs = append(errs, fmt.Errorf("%s contains whitespace", name))
		}
	}
	checkToken("SLACK_APP_TOKEN", c.AppToken, "xapp-", "app-level token with connections:write")
	checkToken("SLACK_BOT_TOKEN", c.BotToken, "xoxb-", "bot token")

	if u, err := CheckBaseURL("SLACK_API_URL", c.APIURL); err != nil {
		errs = append(errs, err)
	} else {
		if !strings.HasSuffix(u, "/") {
			u += "/"
		}
		c.APIURL = u
	}
	return errors.Join(errs...)
}

// CheckBaseURL checks the setting name, an http(s) URL of a service the bot calls, and returns it
// parsed and re-assembled. Its error names the variable and shows the value only when it cannot
// carry credentials.
func CheckBaseURL(name, raw string) (string, error) {
	shown := fmt.Sprintf(" %q", raw)
	if strings.Contains(raw, "@") {
		shown = "" // may carry credentials
	}
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("%s%s must be an http(s) URL", name, shown)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("%s must not carry credentials, a query or a fragment", name)
	}
	return u.String(), nil
}
