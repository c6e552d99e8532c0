package pagerduty

import (
	"errors"
	"strings"

	"github.com/platform-team/sessionbot/bot/remote"
)

// Config is PagerDuty's part of the configuration (SPEC §8).
type Config struct {
	// RoutingKey is the Events API v2 integration key; empty disables PagerDuty.
	RoutingKey remote.Secret `env:"PAGERDUTY_ROUTING_KEY"`
	// EventsURL is the Events API base, without a trailing "/" (the client appends
	// /v2/enqueue and /v2/change/enqueue).
	EventsURL string `env:"PAGERDUTY_EVENTS_URL, default=https://events.pagerduty.com"`
}

// Enabled reports whether a routing key is configured.
func (c Config) Enabled() bool { return c.RoutingKey != "" }

// Validate reports every problem at once (joined), each naming its variable and never showing
// the routing key. It normalizes PAGERDUTY_EVENTS_URL, which loses its trailing "/".
func (c *Config) Validate() error {
	var errs []error
	if u, err := remote.CheckBaseURL("PAGERDUTY_EVENTS_URL", c.EventsURL); err != nil {
		errs = append(errs, err)
	} else {
		c.EventsURL = strings.TrimRight(u, "/")
	}
	if k := c.RoutingKey.Reveal(); k != "" && strings.TrimSpace(k) != k {
		errs = append(errs, errors.New("PAGERDUTY_ROUTING_KEY contains whitespace"))
	}
	return errors.Join(errs...)
}
