package slacktest_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/slack-go/slack"

	"github.com/platform-team/sessionbot/bot/slacktest"
)

func TestMessagesArePostedUpdatedAndDeleted(t *testing.T) {
	srv := slacktest.New(t)
	api := newAPI(srv)
	ctx := context.Background()

	ch, ts, err := api.PostMessageContext(ctx, "#platform-incidents", slack.MsgOptionText("Mass Logout Executed", false))
	if err != nil {
		t.Fatalf("PostMessage: %v", err)
	}
	if want := srv.ChannelID("#platform-incidents"); ch != want || !strings.HasPrefix(ch, "C") {
		t.Errorf("channel = %q; want stable id %q", ch, want)
	}
	if ts != "1700000000.000100" {
		t.Errorf("first ts = %q; want 1700000000.000100", ts)
	}
	_, ts2, err := api.PostMessageContext(ctx, ch, slack.MsgOptionText("second", false), slack.MsgOptionTS(ts))
	if err != nil || ts2 <= ts {
		t.Fatalf("second PostMessage ts = %q, %v; want > %q", ts2, err, ts)
	}

	blocks := slack.MsgOptionBlocks(slack.NewSectionBlock(slack.NewTextBlockObject("mrkdwn", "45 sessions expired (will be deleted)", false, false), nil, nil))
	if _, _, _, err := api.UpdateMessageContext(ctx, ch, ts, slack.MsgOptionText("progress 50%", false), blocks); err != nil {
		t.Fatalf("UpdateMessage: %v", err)
	}
	m, ok := srv.Message("#platform-incidents", ts)
	if !ok || m.Text != "progress 50%" || !strings.Contains(string(m.Blocks), "45 sessions expired") || m.Updates != 1 || m.ChannelName != "platform-incidents" {
		t.Errorf("Message after update = %+v, %v", m, ok)
	}
	if msgs := srv.Messages(ch); len(msgs) != 2 || msgs[1].ThreadTS != ts {
		t.Errorf("Messages(%s) = %+v; want 2, the second in the thread", ch, msgs)
	}
	if n := len(srv.Calls("chat.update")); n != 1 {
		t.Errorf("Calls(chat.update) = %d; want 1", n)
	}
	if c := srv.Calls("chat.postMessage")[0]; c.Form.Get("token") != srv.BotToken() || c.Form.Get("channel") != "#platform-incidents" || c.Status != http.StatusOK {
		t.Errorf("recorded call = %+v", c)
	}

	_, _, _, err = api.UpdateMessageContext(ctx, ch, "1.000000", slack.MsgOptionText("x", false))
	if !isSlackError(err, "message_not_found") {
		t.Errorf("update of unknown ts: %v; want message_not_found", err)
	}
	if _, _, err := api.DeleteMessageContext(ctx, ch, ts2); err != nil {
		t.Fatalf("DeleteMessage: %v", err)
	}
	if msgs := srv.Messages(ch); len(msgs) != 1 {
		t.Errorf("Messages after delete = %d; want 1", len(msgs))
	}
	if m, _ := srv.Message(ch, ts2); !m.Deleted {
		t.Error("deleted message not marked Deleted")
	}

	if _, err := api.PostEphemeralContext(ctx, ch, "U123", slack.MsgOptionText("You are not an operator", false)); err != nil {
		t.Fatalf("PostEphemeral: %v", err)
	}
	if e := srv.Ephemerals("U123"); len(e) != 1 || e[0].Text != "You are not an operator" || e[0].Channel != ch {
		t.Errorf("Ephemerals(U123) = %+v", e)
	}
}

func TestInvalidBlocksAreRefusedLikeSlack(t *testing.T) {
	srv := slacktest.New(t)
	api := newAPI(srv)
	long := strings.Repeat("x", 76)
	tests := []struct {
		name   string
		blocks []slack.Block
	}{
		{"button text over 75", []slack.Block{slack.NewActionBlock("a", slack.NewButtonBlockElement("run", "v", slack.NewTextBlockObject("plain_text", long, false, false)))}},
		{"duplicate action_id", []slack.Block{slack.NewActionBlock("a",
			slack.NewButtonBlockElement("run", "v", slack.NewTextBlockObject("plain_text", "Run", false, false)),
			slack.NewButtonBlockElement("run", "v", slack.NewTextBlockObject("plain_text", "Run", false, false)))}},
		{"duplicate block_id", []slack.Block{
			slack.NewSectionBlock(slack.NewTextBlockObject("mrkdwn", "a", false, false), nil, nil, slack.SectionBlockOptionBlockID("x")),
			slack.NewSectionBlock(slack.NewTextBlockObject("mrkdwn", "b", false, false), nil, nil, slack.SectionBlockOptionBlockID("x"))}},
		{"header over 150", []slack.Block{slack.NewHeaderBlock(slack.NewTextBlockObject("plain_text", strings.Repeat("h", 151), false, false))}},
		{"empty section text", []slack.Block{slack.NewSectionBlock(slack.NewTextBlockObject("mrkdwn", "", false, false), nil, nil)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := api.PostMessage("C1", slack.MsgOptionBlocks(tt.blocks...))
			if !isSlackError(err, "invalid_blocks") {
				t.Errorf("PostMessage = %v; want invalid_blocks", err)
			}
		})
	}
	if n := len(srv.Messages("C1")); n != 0 {
		t.Errorf("refused messages were stored: %d", n)
	}
}

func TestDirectory(t *testing.T) {
	srv := slacktest.New(t)
	srv.AddUser("U123", "alice", "alice@example.com")
	srv.AddUserGroup("S0OPS", "U123", "U456")
	api := newAPI(srv)
	ctx := context.Background()

	u, err := api.GetUserByEmailContext(ctx, "alice@example.com")
	if err != nil || u.ID != "U123" || u.Name != "alice" || u.Profile.Email != "alice@example.com" {
		t.Errorf("GetUserByEmail = %+v, %v", u, err)
	}
	if _, err := api.GetUserByEmailContext(ctx, "nobody@example.com"); !isSlackError(err, "users_not_found") {
		t.Errorf("GetUserByEmail(unknown) = %v; want users_not_found", err)
	}
	if u, err := api.GetUserInfoContext(ctx, "U123"); err != nil || u.Name != "alice" || u.TeamID != slacktest.DefaultTeamID {
		t.Errorf("GetUserInfo = %+v, %v", u, err)
	}
	if _, err := api.GetUserInfoContext(ctx, "U999"); !isSlackError(err, "user_not_found") {
		t.Errorf("GetUserInfo(unknown) = %v; want user_not_found", err)
	}
	members, err := api.GetUserGroupMembersContext(ctx, "S0OPS")
	if err != nil || strings.Join(members, ",") != "U123,U456" {
		t.Errorf("GetUserGroupMembers = %v, %v", members, err)
	}
	ch, _, _, err := api.OpenConversationContext(ctx, &slack.OpenConversationParameters{Users: []string{"U123"}})
	if err != nil || !strings.HasPrefix(ch.ID, "D") || ch.ID != srv.ChannelID("U123") {
		t.Fatalf("OpenConversation = %+v, %v", ch, err)
	}
	if _, _, err := api.PostMessageContext(ctx, ch.ID, slack.MsgOptionText("your sessions were removed", false)); err != nil {
		t.Fatal(err)
	}
	if msgs := srv.Messages(srv.ChannelID("U123")); len(msgs) != 1 {
		t.Errorf("DM messages = %+v; want 1", msgs)
	}
	at, err := api.AuthTestContext(ctx)
	if err != nil || at.UserID != slacktest.BotUserID || at.TeamID != slacktest.DefaultTeamID {
		t.Errorf("AuthTest = %+v, %v", at, err)
	}
}

func TestFaultInjection(t *testing.T) {
	srv := slacktest.New(t)
	api := newAPI(srv)
	ctx := context.Background()

	srv.FailNext("chat.postMessage", 1, http.StatusTooManyRequests, 2*time.Second)
	_, _, err := api.PostMessageContext(ctx, "C1", slack.MsgOptionText("x", false))
	var rl *slack.RateLimitedError
	if !errors.As(err, &rl) || rl.RetryAfter != 2*time.Second {
		t.Errorf("after FailNext 429: %v; want *slack.RateLimitedError with RetryAfter 2s", err)
	}

	srv.FailNext("chat.update", 2, http.StatusInternalServerError, 0)
	for range 2 {
		_, _, _, err = api.UpdateMessageContext(ctx, "C1", "1", slack.MsgOptionText("x", false))
		var sc slack.StatusCodeError
		if !errors.As(err, &sc) || sc.Code != http.StatusInternalServerError {
			t.Errorf("after FailNext 500: %v; want StatusCodeError 500", err)
		}
	}
	srv.FailNextError("chat.postMessage", 1, "channel_not_found")
	if _, _, err = api.PostMessageContext(ctx, "C1", slack.MsgOptionText("x", false)); !isSlackError(err, "channel_not_found") {
		t.Errorf("after FailNextError: %v", err)
	}
	if _, _, err = api.PostMessageContext(ctx, "C1", slack.MsgOptionText("x", false)); err != nil {
		t.Errorf("faults did not run out: %v", err)
	}
	calls := srv.Calls("chat.postMessage")
	if len(calls) != 3 || calls[0].Status != http.StatusTooManyRequests || calls[2].Status != http.StatusOK {
		t.Errorf("calls = %+v; want 429, error, ok", calls)
	}

	srv.Delay("users.info", time.Minute)
	tctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := api.GetUserInfoContext(tctx, "U1"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("delayed users.info: %v; want deadline exceeded", err)
	}
}

func TestEveryRequestByteIsCaptured(t *testing.T) {
	srv := slacktest.New(t)
	b := startBot(t, newAPI(srv))
	srv.WaitConnections(t, 1, wait)
	const canary = "CANARY tok=abc&x/y"

	if _, _, err := b.api.PostMessage("C1", slack.MsgOptionText("leak "+canary, false)); err != nil {
		t.Fatal(err)
	}
	id := srv.SlashCommand(slacktest.SlashCommand{UserID: "U1", ChannelID: "C1", Command: "/sessions"})
	e := b.next(t)
	if err := b.client.AckCtx(context.Background(), e.Request.EnvelopeID, map[string]string{"text": canary}); err != nil {
		t.Fatal(err)
	}
	srv.WaitAck(t, id, wait)
	if err := slack.PostWebhook(e.Data.(slack.SlashCommand).ResponseURL, &slack.WebhookMessage{Text: canary}); err != nil {
		t.Fatal(err)
	}
	if got := srv.RequestsContaining(canary); len(got) != 3 {
		t.Errorf("RequestsContaining(canary) found %d bodies; want 3 (form post, ack, response_url):\n%s", len(got), strings.Join(got, "\n"))
	}
	if got := srv.RequestsContaining(srv.AppToken()); len(got) != 0 {
		t.Errorf("app token appears in bodies: %q (it belongs in the Authorization header)", got)
	}
}

func isSlackError(err error, code string) bool {
	var se slack.SlackErrorResponse
	return errors.As(err, &se) && se.Err == code
}
