package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/platform-team/sessionbot/bot/webhook"
	"github.com/platform-team/sessionbot/cleanup"
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
		{"NOTIFY_WEBHOOK_URL without NOTIFY_WEBHOOK_SECRET", map[string]string{"NOTIFY_WEBHOOK_URL": "https://app.example.com/hooks"},
			"NOTIFY_WEBHOOK_SECRET: required with NOTIFY_WEBHOOK_URL"},
		{"NOTIFY_WEBHOOK_URL not http(s)", map[string]string{"NOTIFY_WEBHOOK_URL": "app.example.com/hooks", "NOTIFY_WEBHOOK_SECRET": password},
			"NOTIFY_WEBHOOK_URL \"app.example.com/hooks\" must be an http(s) URL"},
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
					t.Errorf("%s shows a secret:\n%s", cmd, inv.stderr)
				}
			}
		})
	}
}

// The webhook is wired from the environment: a cleanup typed in the console on a real Redis
// reaches the receiver as a signed event naming the users it signed out.
func TestConsoleSendsTheWebhookFromTheEnvironment(t *testing.T) {
	const secret = "whsec-cmd-0123456789"
	var (
		mu     sync.Mutex
		events []webhook.Event
		bad    []string
	)
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var ev webhook.Event
		err := json.Unmarshal(body, &ev)
		mu.Lock()
		defer mu.Unlock()
		if r.Header.Get("X-Sessionbot-Signature") != webhook.Sign([]byte(secret), body) || err != nil {
			bad = append(bad, string(body))
		}
		events = append(events, ev)
	}))
	defer recv.Close()
	tg := consoleTarget(t)
	res := tg.seed(cleanup.SeedSpec{Count: 60, Expired: 0.5, Users: 15})
	tg.env["NOTIFY_WEBHOOK_URL"] = recv.URL + "/hooks/sessionbot"
	tg.env["NOTIFY_WEBHOOK_SECRET"] = secret
	inv := tg.run("/sessions cleanup\npress run\n", "console", "--as", "UOPS1")
	if inv.code != 0 {
		t.Fatalf("console: exit %d; stderr:\n%s", inv.code, inv.stderr)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(bad) > 0 || len(events) != 1 {
		t.Fatalf("receiver got %d events, %d badly signed; want 1 signed event\nconsole:\n%s", len(events), len(bad), inv.stdout)
	}
	d := events[0].Data
	if d.Mode != "execute" || d.Batch != 1 || d.Batches != 1 || len(d.UserIDs) == 0 || int64(len(d.UserIDs)) > res.Users {
		t.Errorf("event data = %+v; want the distinct users of the %d expired sessions deleted", d, res.Expired)
	}
	if strings.Contains(inv.stdout+inv.stderr, secret) {
		t.Error("the webhook secret is shown")
	}
}
