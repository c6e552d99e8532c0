package slack

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/sethvargo/go-envconfig"

	"github.com/platform-team/sessionbot/bot/remote"
	"github.com/platform-team/sessionbot/cleanup"
)

// Config is what the Slack transport and Web API need (SPEC §8); the command name and the
// channels are in bot.Config, PagerDuty's settings in bot/pagerduty.
type Config struct {
	// AppToken is the app-level xapp-… token for Socket Mode (scope connections:write);
	// required by serve.
	AppToken remote.Secret `env:"SLACK_APP_TOKEN"`
	// BotToken is the xoxb-… bot token; required by serve.
	BotToken remote.Secret `env:"SLACK_BOT_TOKEN"`
	// APIURL is the Web API base; Validate makes it end in "/" as slack-go appends the method.
	APIURL string `env:"SLACK_API_URL, default=https://slack.com/api/"`
}

// LoadConfig reads Config from l (nil: the process environment) and validates it.
func LoadConfig(ctx context.Context, l envconfig.Lookuper) (Config, error) {
	var c Config
	if l == nil {
		l = envconfig.OsLookuper()
	}
	errs := cleanup.DecodeEnv(ctx, &c, func(k string) string { v, _ := l.Lookup(k); return v })
	return c, cleanup.JoinLines(append(errs, c.Validate())...)
}

// Validate reports every problem at once (joined), each naming its variable and never showing a
// secret's value. It also normalizes SLACK_API_URL, which gets its trailing "/".
func (c *Config) Validate() error {
	var errs []error
	checkToken := func(name string, s remote.Secret, prefix, what string) {
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

	if u, err := remote.CheckBaseURL("SLACK_API_URL", c.APIURL); err != nil {
		errs = append(errs, err)
	} else {
		if !strings.HasSuffix(u, "/") {
			u += "/"
		}
		c.APIURL = u
	}
	return errors.Join(errs...)
}
