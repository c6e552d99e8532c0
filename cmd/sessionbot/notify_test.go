package main

import (
	"strings"
	"testing"
)

// A sink's bad setting stops serve and the console at start-up with one line naming the variable,
// among all the other problems, and never shows a secret.
func TestNotifyConfigErrorsNameTheVariable(t *testing.T) {
	const password = "smtp-hunter2-secret"
	for _, tt := range []struct {
		name string
		env  map[string]string
		want string
	}{
		{"SMTP_URL scheme", map[string]string{"SMTP_URL": "http://ops:" + password + "@mail.example.com", "NOTIFY_EMAIL_FROM": "bot@example.com", "NOTIFY_EMAIL_TO": "a@example.com"},
			"SMTP_URL: the scheme must be smtp"},
		{"NOTIFY_EMAIL_TO without SMTP_URL", map[string]string{"NOTIFY_EMAIL_TO": "a@example.com,b@example.com"},
			"NOTIFY_EMAIL_TO: set, but SMTP_URL is not"},
		{"SMTP_URL without recipients", map[string]string{"SMTP_URL": "smtp://ops:" + password + "@mail.example.com:587", "NOTIFY_EMAIL_FROM": "bot@example.com"},
			"NOTIFY_EMAIL_TO: required with SMTP_URL"},
		{"PAGERDUTY_EVENTS_URL", map[string]string{"PAGERDUTY_EVENTS_URL": "events.pagerduty.com"}, "PAGERDUTY_EVENTS_URL"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			for _, cmd := range []string{"serve", "console"} {
				env := map[string]string{"REDIS_URL": "redis://127.0.0.1:1/0", "OPERATORS": "U0OPS", "APPROVERS": "U0APP"}
				for k, v := range tt.env {
					env[k] = v
				}
				inv := runWith(t, env, "", cmd)
				if inv.code != exitUsage {
					t.Errorf("%s: exit %d; want %d\n%s", cmd, inv.code, exitUsage, inv.stderr)
				}
				if !strings.Contains(inv.stderr, tt.want) {
					t.Errorf("%s: stderr lacks %q:\n%s", cmd, tt.want, inv.stderr)
				}
				if strings.Contains(inv.stdout+inv.stderr, password) {
					t.Errorf("%s shows the SMTP password:\n%s", cmd, inv.stderr)
				}
			}
		})
	}
}
