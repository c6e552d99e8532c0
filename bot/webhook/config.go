package webhook

import (
	"errors"
	"strings"

	"github.com/platform-team/sessionbot/bot/remote"
)

// Config is the webhook sink's part of the configuration (SPEC §13).
type Config struct {
	// URL receives, after every executed run that deleted sessions, signed CloudEvents
	// (com.sessionbot.sessions.revoked) naming the user_ids signed out, so the application can
	// tell its own users; empty disables the webhook.
	URL string `env:"NOTIFY_WEBHOOK_URL"`
	// Secret keys the HMAC-SHA256 signature of every event (header X-Sessionbot-Signature:
	// sha256=<hex>); required with NOTIFY_WEBHOOK_URL, never printed.
	Secret remote.Secret `env:"NOTIFY_WEBHOOK_SECRET"`
}

// Enabled reports whether a receiver is configured.
func (c Config) Enabled() bool { return c.URL != "" }

// Validate reports every problem at once (joined), one line each naming its variable; it never
// shows the secret. It normalizes NOTIFY_WEBHOOK_URL.
func (c *Config) Validate() error {
	var errs []error
	if !c.Enabled() {
		if c.Secret != "" {
			errs = append(errs, errors.New("NOTIFY_WEBHOOK_SECRET: set, but NOTIFY_WEBHOOK_URL is not"))
		}
		return errors.Join(errs...)
	}
	if u, err := remote.CheckBaseURL("NOTIFY_WEBHOOK_URL", c.URL); err != nil {
		errs = append(errs, err)
	} else {
		c.URL = u
	}
	switch s := c.Secret.Reveal(); {
	case s == "":
		errs = append(errs, errors.New("NOTIFY_WEBHOOK_SECRET: required with NOTIFY_WEBHOOK_URL (it keys the X-Sessionbot-Signature HMAC the receiver checks)"))
	case strings.TrimSpace(s) != s:
		errs = append(errs, errors.New("NOTIFY_WEBHOOK_SECRET contains leading or trailing whitespace"))
	}
	return errors.Join(errs...)
}
