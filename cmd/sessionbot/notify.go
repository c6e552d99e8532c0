package main

import (
	"context"
	"log/slog"

	"github.com/platform-team/sessionbot/bot"
	"github.com/platform-team/sessionbot/bot/pagerduty"
)

// notifyConfig is what the notification sinks outside chat read from the environment: each
// adapter's own Config, composed. (The chat sinks' channels are bot.Config's.)
type notifyConfig struct {
	PagerDuty pagerduty.Config
}

// loadNotifyConfig reads and validates every sink's settings at once, one line per problem.
func loadNotifyConfig(ctx context.Context, getenv func(string) string) (notifyConfig, error) {
	var c notifyConfig
	errs := decodeEnv(ctx, &c.PagerDuty, getenv)
	errs = append(errs, c.PagerDuty.Validate())
	return c, joinLines(errs)
}

// sinks returns the configured sinks, to run beside the chat sinks.
func (c notifyConfig) sinks(log *slog.Logger) []bot.NamedSink {
	var out []bot.NamedSink
	if c.PagerDuty.Enabled() {
		out = append(out, bot.NamedSink{Name: "pagerduty", Sink: pagerduty.New(c.PagerDuty, log)})
	}
	return out
}

// secrets are the sinks' credentials, never to be shown in a reported failure.
func (c notifyConfig) secrets() []bot.Secret {
	return []bot.Secret{c.PagerDuty.RoutingKey}
}
