package slack

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/platform-team/sessionbot/bot/chat"
	"github.com/platform-team/sessionbot/bot/slacktest"
)

func newTestChat(t *testing.T) (*slacktest.Server, *Chat) {
	t.Helper()
	srv := slacktest.New(t)
	return srv, NewChat(testSlackConfig(srv), WithChatLogger(quietLogger()), WithChatRetry(4, 5*time.Second, 5*time.Millisecond))
}

func TestSlackChatPostUpdateReply(t *testing.T) {
	srv, sc := newTestChat(t)
	ctx := context.Background()
	ref, err := sc.Post(ctx, "#sre-ops", chat.Message{Text: "preview", Title: "Preview", Buttons: []chat.Button{{ActionID: "run", Label: "Run", Value: "r1", Style: "primary"}}})
	if err != nil {
		t.Fatal(err)
	}
	if want := srv.ChannelID("#sre-ops"); ref.Channel != want || ref.TS == "" {
		t.Fatalf("Post(#sre-ops) = %+v; want the channel id %s and a ts", ref, want)
	}
	if err := sc.Update(ctx, ref, chat.Message{Text: "done", Lines: []string{"finished"}}); err != nil {
		t.Fatal(err)
	}
	m, _ := srv.Message(ref.Channel, ref.TS)
	if m.Text != "done" || strings.Contains(string(m.Blocks), `"actions"`) {
		t.Errorf("after Update: %+v; want the new text and no buttons left", m)
	}
	r, err := sc.Reply(ctx, ref, chat.Message{Text: "in thread"})
	if err != nil {
		t.Fatal(err)
	}
	if rm, _ := srv.Message(r.Channel, r.TS); rm.ThreadTS != ref.TS {
		t.Errorf("Reply thread_ts = %q; want %q", rm.ThreadTS, ref.TS)
	}
}

// Slack Web API calls are retried by slack-go's own retrying client (OptionRetryConfig): 429 with
// its Retry-After, 5xx, up to 4 attempts; an ok:false error or a 4xx is final.
func TestSlackChatRetries(t *testing.T) {
	for _, tt := range []struct {
		name      string
		fail      func(srv *slacktest.Server)
		wantCalls int
		wantErr   string
	}{
		{"429 with Retry-After", func(s *slacktest.Server) { s.FailNext("chat.update", 1, http.StatusTooManyRequests, time.Second) }, 2, ""},
		{"5xx twice", func(s *slacktest.Server) { s.FailNext("chat.update", 2, http.StatusServiceUnavailable, 0) }, 3, ""},
		{"5xx beyond the tries", func(s *slacktest.Server) { s.FailNext("chat.update", 9, http.StatusBadGateway, 0) }, 4, "502"},
		{"final error", func(s *slacktest.Server) { s.FailNextError("chat.update", 1, "message_not_found") }, 1, "message_not_found"},
		{"4xx", func(s *slacktest.Server) { s.FailNext("chat.update", 1, http.StatusForbidden, 0) }, 1, "403"},
		{"Retry-After beyond the budget", func(s *slacktest.Server) { s.FailNext("chat.update", 1, http.StatusTooManyRequests, 10*time.Second) }, 1, "rate limit"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv, sc := newTestChat(t)
			ref, err := sc.Post(context.Background(), "#sre-ops", chat.Message{Text: "x"})
			if err != nil {
				t.Fatal(err)
			}
			tt.fail(srv)
			start := time.Now()
			err = sc.Update(context.Background(), ref, chat.Message{Text: "progress"})
			calls := srv.Calls("chat.update")
			if len(calls) != tt.wantCalls {
				t.Errorf("chat.update calls = %d; want %d", len(calls), tt.wantCalls)
			}
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("Update = %v; want success", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("Update = %v; want an error containing %q", err, tt.wantErr)
			}
			if tt.name == "429 with Retry-After" && len(calls) == 2 {
				if gap := calls[1].Time.Sub(calls[0].Time); gap < 900*time.Millisecond {
					t.Errorf("retried after %v; want Retry-After (1s) honoured", gap)
				}
			}
			if time.Since(start) > 5*time.Second {
				t.Errorf("Update took %v; want within the budget", time.Since(start))
			}
		})
	}
}

func TestSlackChatCallerCancellationStopsRetrying(t *testing.T) {
	srv, sc := newTestChat(t)
	srv.FailNext("chat.postMessage", 100, http.StatusInternalServerError, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := sc.Post(ctx, "#sre-ops", chat.Message{Text: "x"})
	if err == nil {
		t.Fatal("Post succeeded against a failing Slack")
	}
	if n := len(srv.Calls("chat.postMessage")); n > 4 {
		t.Errorf("%d calls; want at most 4", n)
	}
}

func TestSlackChatEphemeral(t *testing.T) {
	srv, sc := newTestChat(t)
	ctx := context.Background()
	if err := sc.Ephemeral(ctx, "C0OPS", "U0EVE", "", chat.Message{Text: "not allowed"}); err != nil {
		t.Fatal(err)
	}
	if e := srv.Ephemerals("U0EVE"); len(e) != 1 || e[0].Text != "not allowed" {
		t.Errorf("ephemerals = %+v", e)
	}
	respURL := srv.URL() + "/commands/T0FAKETEAM/1000001/abcdefgh"
	if err := sc.Ephemeral(ctx, "C0OPS", "U0EVE", respURL, chat.Message{Text: "refused"}); err != nil {
		t.Fatal(err)
	}
	if p := srv.ResponseURLPosts(); len(p) != 1 || p[0].ResponseType != "ephemeral" || p[0].Text != "refused" {
		t.Errorf("response URL posts = %+v", p)
	}
	err := sc.Ephemeral(ctx, "C0OPS", "U0EVE", "https://evil.example/hook", chat.Message{Text: "secret preview"})
	if err == nil {
		t.Error("Ephemeral posted to a response_url outside Slack")
	}
}

func TestSlackChatDirectoryAndDM(t *testing.T) {
	srv, sc := newTestChat(t)
	ctx := context.Background()
	srv.AddUser("U0CAROL", "carol", "carol@example.com")
	srv.AddUserGroup("S0ONCALL", "U0ALICE", "U0BOB")

	id, err := sc.LookupUserByEmail(ctx, "carol@example.com")
	if err != nil || id != "U0CAROL" {
		t.Errorf("LookupUserByEmail = %q, %v; want U0CAROL", id, err)
	}
	if _, err := sc.LookupUserByEmail(ctx, "nobody@example.com"); ErrorCode(err) != "users_not_found" || strings.Contains(err.Error(), "nobody@") {
		t.Errorf("LookupUserByEmail(unknown) = %v; want users_not_found without the address", err)
	}
	members, err := sc.UserGroupMembers(ctx, "S0ONCALL")
	if err != nil || !slices.Equal(members, []string{"U0ALICE", "U0BOB"}) {
		t.Errorf("UserGroupMembers = %v, %v", members, err)
	}
	if err := sc.DM(ctx, "U0CAROL", chat.Message{Text: "hello"}); err != nil {
		t.Fatal(err)
	}
	if len(srv.Calls("conversations.open")) != 1 || len(srv.Messages(srv.ChannelID("U0CAROL"))) != 1 {
		t.Errorf("DM: conversations.open calls %d, DM messages %d; want 1 and 1",
			len(srv.Calls("conversations.open")), len(srv.Messages(srv.ChannelID("U0CAROL"))))
	}
}
