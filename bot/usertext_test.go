package bot

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/platform-team/sessionbot/bot/chat"
	"github.com/platform-team/sessionbot/bot/slacktest"
)

func TestUserText(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"cleanup after migration", "cleanup after migration"},
		{"user_id=auth0|123456789", "user_id=auth0|123456789"},
		{"basic_auth", "basic_auth"},
		{"<@U0SECOFF1> approved", "&lt;@U0SECOFF1&gt; approved"},
		{"<!channel> & <!here>", "&lt;!channel&gt; &amp; &lt;!here&gt;"},
		{"&lt;@U1&gt;", "&amp;lt;@U1&amp;gt;"},
		{"x` *APPROVED* `", "xˋ ∗APPROVED∗ ˋ"},
		{"_it_ ~st~ a_b", "＿it＿ ∼st∼ a_b"},
		{"a\nb\u202ec\u2066d", "a bcd"},
		{"see http://evil.example/x", "see http∶//evil․example/x"},
		{"<https://evil.example|y>", "&lt;https∶//evil․example|y&gt;"},
		{"www.evil.example and evil.example.", "www․evil․example and evil․example․"},
		{"auth0|jane.doe v1.2 31.5s", "auth0|jane.doe v1.2 31.5s"},
	} {
		if got := userText(tt.in); got != tt.want {
			t.Errorf("userText(%q) = %q; want %q", tt.in, got, tt.want)
		}
		if got := chat.PlainText(userText(tt.in)); strings.ContainsAny(got, "\n\u202e") {
			t.Errorf("chat.PlainText(userText(%q)) = %q keeps a line break or an override", tt.in, got)
		}
	}
}

// hostileTexts are what a requester (as --reason and --user-id) or a session's data (its
// user_id) may carry to make the bot's messages lie: a mention, a broadcast, a link, a way out of
// a code span, formatting, a new line and a bidi override. Each forbidden string must reach no
// mrkdwn text Slack receives.
var hostileTexts = []struct {
	name, text string
	forbidden  []string
}{
	{"mention", "<@U0SECOFF1> already approved this", []string{"<@U0SECOFF1>"}},
	{"broadcast", "<!channel> <!here> <!subteam^S0SEC|@security> urgent", []string{"<!channel>", "<!here>", "<!subteam"}},
	{"channel", "see <#C0PRIV|secret-channel>", []string{"<#C0PRIV"}},
	{"link", "<http://evil.example/login|click to approve>", []string{"<http", "evil.example"}},
	{"bare url", "http://evil.example/login www.evil.example evil.example", []string{"://evil", "www.evil", "evil.example"}},
	{"code span", "x` *APPROVED by security* `", []string{"*APPROVED", "security*", "x`"}},
	{"formatting", "_italic_ ~strike~ *bold*", []string{"_italic_", "~strike~", "*bold*"}},
	{"typed entities", "&lt;@U0SECOFF1&gt; &amp;", []string{"<@U0SECOFF1", "&lt;@U0SECOFF1&gt;"}},
	{"line and override", "drill\n*Approved-By:* U0VP \u202e)desrever(", []string{"\n*Approved-By", "\u202e"}},
}

// deliberate is every <…> the bot itself writes in these flows: mentions of the two users, of
// the channel (the approver's DM points at the request), and times as date tokens (stamp),
// whose fallback is a UTC time, nothing a user wrote.
var deliberate = regexp.MustCompile(`^<(@(U0E2EALICE|U0E2EBOB01)|#C[0-9A-F]+|!date\^[0-9]+\^\{date_short_pretty\} \{time\}\|\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ)>$`)

// User text is inert in Slack (SPEC §12.6): for each hostile text used as --reason, as
// --user-id and as a session's user_id, the preview, its report, the approval request of a mass
// logout, its report and the Mass Logout template and summary in #platform-incidents are
// checked in what the fake Slack received: no mention, broadcast or link forms, no way out of a
// code span or into formatting, no line break or override; and the audit stays one event a line.
func TestUserTextIsInertInSlack(t *testing.T) {
	for _, tt := range hostileTexts {
		t.Run(tt.name, func(t *testing.T) {
			e := newE2E(t, e2eOptions{sessions: 20})
			ctx := context.Background()
			v, _ := json.Marshal(map[string]any{"user_id": tt.text, "auth_method": "oauth2",
				"created_at": time.Now().Add(-time.Hour).UTC().Format(time.RFC3339),
				"expires_at": time.Now().Add(time.Hour).UTC().Format(time.RFC3339)})
			if err := e.rdb.Set(ctx, "session:hostile-0001", v, time.Hour).Err(); err != nil {
				t.Fatal(err)
			}

			// Slack sends slash-command text with &, < and > escaped; the transport undoes it.
			escape := strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace
			e.command(e2eAlice, escape(fmt.Sprintf("cleanup --user-id '%s' --reason '%s'", tt.text, tt.text)))
			preview := e.awaitButton("run")
			e.press(e2eAlice, preview.TS, "run")
			e.awaitBlocks(preview.TS, "Cleanup completed")
			e.command(e2eAlice, escape(fmt.Sprintf("cleanup --all --reason '%s'", tt.text)))
			req := e.awaitButton("approve")
			e.press(e2eBob, req.TS, "approve")
			e.awaitIncident()
			e.awaitBlocks(req.TS, "Cleanup completed")

			var shown bool
			for _, text := range e.mrkdwnTexts() {
				for _, f := range tt.forbidden {
					if strings.Contains(text, f) {
						t.Errorf("Slack received %q in:\n%s", f, text)
					}
				}
				for _, m := range regexp.MustCompile(`<[^>]*>`).FindAllString(text, -1) {
					if !deliberate.MatchString(m) {
						t.Errorf("Slack received the live form %q in:\n%s", m, text)
					}
				}
				shown = shown || strings.Contains(text, userText(tt.text))
			}
			if !shown {
				t.Errorf("the text %q is shown nowhere (want it as %q)", tt.text, userText(tt.text))
			}
			audit, err := os.ReadFile(e.auditPath)
			if err != nil {
				t.Fatal(err)
			}
			event := regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ \| [A-Z][a-z]+( [A-Z][a-z]+)? \| `)
			for _, l := range strings.Split(strings.TrimSpace(string(audit)), "\n") {
				if !event.MatchString(l) || strings.Contains(l, "\u202e") {
					t.Errorf("audit line is not one whole event in stored order: %q", l)
				}
			}
		})
	}
}

// awaitBlocks waits until the blocks of message ts in #sre-ops contain want.
func (e *e2eEnv) awaitBlocks(ts, want string) {
	e.t.Helper()
	slacktest.WaitFor(e.t, func() bool {
		m, ok := e.slack.Message(e.ops, ts)
		return ok && strings.Contains(string(m.Blocks), want)
	}, e2eWait)
}

// mrkdwnTexts returns every text Slack parses as mrkdwn in the messages it received: each
// call's fallback text and every mrkdwn text object of its blocks.
func (e *e2eEnv) mrkdwnTexts() []string {
	e.t.Helper()
	var out []string
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if v["type"] == "mrkdwn" {
				if s, ok := v["text"].(string); ok {
					out = append(out, s)
				}
			}
			for _, c := range v {
				walk(c)
			}
		case []any:
			for _, c := range v {
				walk(c)
			}
		}
	}
	for _, method := range []string{"chat.postMessage", "chat.update", "chat.postEphemeral"} {
		for _, c := range e.slack.Calls(method) {
			out = append(out, c.Form.Get("text"))
			if b := c.Form.Get("blocks"); b != "" {
				var blocks any
				if err := json.Unmarshal([]byte(b), &blocks); err != nil {
					e.t.Fatalf("%s blocks are not JSON: %v", method, err)
				}
				walk(blocks)
			}
		}
	}
	return out
}
