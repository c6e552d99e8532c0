package bot_test

import (
	"context"
	"io"
	"log/slog"

	"github.com/platform-team/sessionbot/bot"
	"github.com/platform-team/sessionbot/bot/console"
	"github.com/platform-team/sessionbot/bot/pagerduty"
	"github.com/platform-team/sessionbot/bot/remote"
)

// The internal tests (package bot) drive the real adapters of bot/… end to end; those packages
// import bot, so they are built here, in the external test package, and handed over.
func init() {
	bot.PagerDutySinkForTest = func(routingKey, eventsURL string, retry bot.Retry) bot.NamedSink {
		cfg := pagerduty.Config{RoutingKey: remote.Secret(routingKey), EventsURL: eventsURL}
		if err := cfg.Validate(); err != nil {
			panic(err)
		}
		s := pagerduty.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
		s.Retry = retry
		return bot.NamedSink{Name: "pagerduty", Sink: s}
	}
	bot.RunDemoConsoleForTest = func(ctx context.Context, in io.Reader, out io.Writer, d bot.Deps) error {
		return console.Run(ctx, in, out, d, console.Options{DemoRedis: true})
	}
}
