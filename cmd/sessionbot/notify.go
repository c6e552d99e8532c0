package main

import (
	"context"
	"log/slog"

	"github.com/platform-team/sessionbot/bot"
	"github.com/platform-team/sessionbot/bot/email"
	"github.com/platform-team/sessionbot/bot/pagerduty"
	"github.com/platform-team/sessionbot/bot/remote"
	"github.com/platform-team/sessionbot/bot/webhook"
	"github.com/platform-team/sessionbot/cleanup"
)

// notifyConfig is what the notification sinks outside chat read from the environment: each
// adapter's own Config, composed. (The chat sinks' channels are bot.Config's.)
type notifyConfig struct {
	PagerDuty pagerduty.Config
	Email     email.Config
	Webhook   webhook.Config
}

// loadNotifyConfig reads and validates every sink's settings at once, one line per problem.
func loadNotifyConfig(ctx context.Context, getenv func(string) string) (notifyConfig, error) {
	var c notifyConfig
	var errs []error
	for _, target := range []any{&c.PagerDuty, &c.Email, &c.Webhook} {
		errs = append(errs, cleanup.DecodeEnv(ctx, target, getenv)...)
	}
	errs = append(errs, c.PagerDuty.Validate(), c.Email.Validate(), c.Webhook.Validate())
	return c, cleanup.JoinLines(errs...)
}

// enabled reports whether any sink outside chat is configured.
func (c notifyConfig) enabled() bool {
	return c.PagerDuty.Enabled() || c.Email.Enabled() || c.Webhook.Enabled()
}

// sinks returns the configured sinks, to run beside the chat sinks.
func (c notifyConfig) sinks(log *slog.Logger) ([]bot.NamedSink, error) {
	var out []bot.NamedSink
	if c.PagerDuty.Enabled() {
		out = append(out, bot.NamedSink{Name: "pagerduty", Sink: pagerduty.New(c.PagerDuty, log)})
	}
	if c.Email.Enabled() {
		s, err := email.New(c.Email)
		if err != nil {
			return nil, err
		}
		out = append(out, bot.NamedSink{Name: "email", Sink: s})
	}
	if c.Webhook.Enabled() {
		s, err := webhook.New(c.Webhook)
		if err != nil {
			return nil, err
		}
		out = append(out, bot.NamedSink{Name: "webhook", Sink: s})
	}
	return out, nil
}

// secrets are the sinks' credentials, never to be shown in a reported failure.
func (c notifyConfig) secrets() []remote.Secret {
	return append([]remote.Secret{c.PagerDuty.RoutingKey, c.Webhook.Secret}, c.Email.Secrets()...)
}
