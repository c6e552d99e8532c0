package slacktest_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/slack-go/slack"
	"github.com/slack-go/slack/socketmode"

	"github.com/platform-team/sessionbot/bot/slacktest"
)

const wait = 5 * time.Second

// bot is a real slack-go Socket Mode client connected to the fake.
type bot struct {
	api    *slack.Client
	client *socketmode.Client
	events chan socketmode.Event // slash commands and interactions only
	done   chan error            // RunContext's result
}

func newAPI(srv *slacktest.Server) *slack.Client {
	return slack.New(srv.BotToken(), slack.OptionAPIURL(srv.APIURL()), slack.OptionAppLevelToken(srv.AppToken()))
}

func startBot(t *testing.T, api *slack.Client) *bot {
	t.Helper()
	b := &bot{
		api:    api,
		client: socketmode.New(api),
		events: make(chan socketmode.Event, 100),
		done:   make(chan error, 1),
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { b.done <- b.client.RunContext(ctx) }()
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case e := <-b.client.Events:
				if e.Type == socketmode.EventTypeSlashCommand || e.Type == socketmode.EventTypeInteractive {
					select {
					case b.events <- e:
					case <-ctx.Done():
						return
					}
				}
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-b.done
	})
	return b
}

func (b *bot) next(t *testing.T) socketmode.Event {
	t.Helper()
	select {
	case e := <-b.events:
		return e
	case err := <-b.done:
		t.Fatalf("socketmode client stopped: %v", err)
	case <-time.After(wait):
		t.Fatalf("no event within %v", wait)
	}
	panic("unreachable")
}

func TestSlashCommandReachesSlackGoAndAckIsRecorded(t *testing.T) {
	srv := slacktest.New(t)
	b := startBot(t, newAPI(srv))
	srv.WaitConnections(t, 1, wait)

	id := srv.SlashCommand(slacktest.SlashCommand{
		UserID: "U123", UserName: "alice", ChannelID: "C0OPS", Command: "/sessions", Text: "cleanup --auth-method basic_auth",
	})
	e := b.next(t)
	if e.Type != socketmode.EventTypeSlashCommand {
		t.Fatalf("event type = %s; want %s", e.Type, socketmode.EventTypeSlashCommand)
	}
	cmd, ok := e.Data.(slack.SlashCommand)
	if !ok {
		t.Fatalf("event data is %T; want slack.SlashCommand", e.Data)
	}
	if e.Request.EnvelopeID != id {
		t.Errorf("envelope id = %q; want %q", e.Request.EnvelopeID, id)
	}
	want := slack.SlashCommand{TeamID: slacktest.DefaultTeamID, UserID: "U123", UserName: "alice", ChannelID: "C0OPS", Command: "/sessions", Text: "cleanup --auth-method basic_auth"}
	if cmd.TeamID != want.TeamID || cmd.UserID != want.UserID || cmd.UserName != want.UserName ||
		cmd.ChannelID != want.ChannelID || cmd.Command != want.Command || cmd.Text != want.Text {
		t.Errorf("slash command = %+v; want fields of %+v", cmd, want)
	}
	if !strings.HasPrefix(cmd.ResponseURL, srv.URL()+"/commands/") || cmd.TriggerID == "" || cmd.APIAppID != slacktest.AppID {
		t.Errorf("response_url %q, trigger_id %q, api_app_id %q not filled", cmd.ResponseURL, cmd.TriggerID, cmd.APIAppID)
	}
	if !e.Request.AcceptsResponsePayload {
		t.Error("accepts_response_payload = false; want true for slash commands")
	}

	if err := b.client.AckCtx(context.Background(), e.Request.EnvelopeID, map[string]string{"text": "working on it"}); err != nil {
		t.Fatalf("AckCtx: %v", err)
	}
	ack := srv.WaitAck(t, id, wait)
	if !strings.Contains(string(ack.Payload), "working on it") {
		t.Errorf("ack payload = %s; want the text sent", ack.Payload)
	}
	if n := srv.Acks(id); n != 1 {
		t.Errorf("Acks(%s) = %d; want 1", id, n)
	}

	err := slack.PostWebhookContext(context.Background(), cmd.ResponseURL, &slack.WebhookMessage{Text: "only you can see this", ResponseType: "ephemeral"})
	if err != nil {
		t.Fatalf("PostWebhook(response_url): %v", err)
	}
	posts := srv.ResponseURLPosts()
	if len(posts) != 1 || posts[0].Text != "only you can see this" || posts[0].ResponseType != "ephemeral" || posts[0].URL != cmd.ResponseURL {
		t.Errorf("ResponseURLPosts() = %+v; want one ephemeral post to %s", posts, cmd.ResponseURL)
	}
}

func TestBlockActionParsesAsInteractionCallback(t *testing.T) {
	srv := slacktest.New(t)
	api := newAPI(srv)
	client := socketmode.New(api)
	h := socketmode.NewSocketmodeHandler(client)
	h.HandleDefault(func(*socketmode.Event, *socketmode.Client) {}) // quiet the log
	got := make(chan slack.InteractionCallback, 1)
	h.HandleInteractionBlockAction("run", func(e *socketmode.Event, c *socketmode.Client) {
		_ = c.AckCtx(context.Background(), e.Request.EnvelopeID, nil)
		got <- e.Data.(slack.InteractionCallback)
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = h.RunEventLoopContext(ctx)
	}()
	t.Cleanup(func() { cancel(); <-done })
	srv.WaitConnections(t, 1, wait)

	ch, ts, err := api.PostMessage("#ops", slack.MsgOptionText("preview", false), slack.MsgOptionBlocks(
		slack.NewSectionBlock(slack.NewTextBlockObject("mrkdwn", "Found 150 total session keys", false, false), nil, nil),
		// A context block's elements carry "text" as a string, unlike a button's object.
		slack.NewContextBlock("small-print", slack.NewTextBlockObject("mrkdwn", "Requested by alice", false, false)),
		slack.NewActionBlock("preview-actions",
			slack.NewButtonBlockElement("run", "req-42", slack.NewTextBlockObject("plain_text", "Run", false, false)).WithStyle(slack.StylePrimary),
			slack.NewButtonBlockElement("cancel", "req-42", slack.NewTextBlockObject("plain_text", "Cancel", false, false)),
		),
	))
	if err != nil {
		t.Fatalf("PostMessage: %v", err)
	}
	id := srv.PressButton("U456", ch, ts, "run")

	var cb slack.InteractionCallback
	select {
	case cb = <-got:
	case <-time.After(wait):
		t.Fatal("HandleInteractionBlockAction(\"run\") did not fire")
	}
	if cb.Type != slack.InteractionTypeBlockActions {
		t.Errorf("type = %q; want block_actions", cb.Type)
	}
	if len(cb.ActionCallback.BlockActions) != 1 {
		t.Fatalf("BlockActions = %+v; want 1", cb.ActionCallback.BlockActions)
	}
	a := cb.ActionCallback.BlockActions[0]
	if a.ActionID != "run" || a.Value != "req-42" || a.BlockID != "preview-actions" || a.Text.Text != "Run" || a.Type != "button" {
		t.Errorf("action = %+v; want run/req-42 in block preview-actions", a)
	}
	if cb.User.ID != "U456" || cb.Team.ID != slacktest.DefaultTeamID || cb.Channel.ID != ch || cb.Container.ChannelID != ch ||
		cb.Container.MessageTs != ts || cb.Message.Timestamp != ts || cb.Message.Text != "preview" || len(cb.Message.Blocks.BlockSet) != 3 {
		t.Errorf("callback context = user %q team %q channel %q container %+v message ts %q text %q blocks %d",
			cb.User.ID, cb.Team.ID, cb.Channel.ID, cb.Container, cb.Message.Timestamp, cb.Message.Text, len(cb.Message.Blocks.BlockSet))
	}
	if !strings.HasPrefix(cb.ResponseURL, srv.URL()+"/actions/") || cb.TriggerID == "" {
		t.Errorf("response_url %q / trigger_id %q not filled", cb.ResponseURL, cb.TriggerID)
	}
	srv.WaitAck(t, id, wait)
}

func TestDisconnectAndDropMakeTheClientReconnect(t *testing.T) {
	srv := slacktest.New(t)
	b := startBot(t, newAPI(srv))
	srv.WaitConnections(t, 1, wait)

	srv.Disconnect("refresh_requested")
	slacktest.WaitFor(t, func() bool {
		return slices.Equal(srv.LiveConnectionIDs(), []int{2})
	}, wait)

	srv.DropConnections()
	slacktest.WaitFor(t, func() bool {
		return slices.Equal(srv.LiveConnectionIDs(), []int{3})
	}, wait)

	if n := len(srv.Calls("apps.connections.open")); n != 3 {
		t.Errorf("apps.connections.open calls = %d; want 3", n)
	}
	id := srv.SlashCommand(slacktest.SlashCommand{UserID: "U1", ChannelID: "C1", Command: "/sessions", Text: "stats"})
	if e := b.next(t); e.Request.EnvelopeID != id {
		t.Errorf("after reconnect got envelope %q; want %q", e.Request.EnvelopeID, id)
	}
}

func TestRedeliverIncrementsRetryAttempt(t *testing.T) {
	srv := slacktest.New(t)
	b := startBot(t, newAPI(srv))
	srv.WaitConnections(t, 1, wait)

	id := srv.SlashCommand(slacktest.SlashCommand{UserID: "U1", ChannelID: "C1", Command: "/sessions", Text: "stats"})
	first := b.next(t)
	srv.Redeliver(id)
	second := b.next(t)
	if second.Request.EnvelopeID != id || first.Request.RetryAttempt != 0 || second.Request.RetryAttempt != 1 || second.Request.RetryReason != "timeout" {
		t.Errorf("redelivery = id %q attempt %d reason %q (first attempt %d); want %q, 1, timeout, 0",
			second.Request.EnvelopeID, second.Request.RetryAttempt, second.Request.RetryReason, first.Request.RetryAttempt, id)
	}
	for _, e := range []socketmode.Event{first, second} {
		if err := b.client.AckCtx(context.Background(), e.Request.EnvelopeID, nil); err != nil {
			t.Fatal(err)
		}
	}
	slacktest.WaitFor(t, func() bool { return srv.Acks(id) == 2 }, wait)
	if a := srv.AckList(id)[0]; a.Payload != nil {
		t.Errorf("ack without payload recorded payload %s", a.Payload)
	}
}

func TestEnvelopesAreRoutedAcrossReplicas(t *testing.T) {
	srv := slacktest.New(t)
	b1 := startBot(t, newAPI(srv))
	srv.WaitConnections(t, 1, wait)
	b2 := startBot(t, newAPI(srv))
	srv.WaitConnections(t, 2, wait)

	srv.SetRoute(slacktest.Connection(1))
	id := srv.SlashCommand(slacktest.SlashCommand{UserID: "U1", ChannelID: "C1", Command: "/sessions", Text: "stats"})
	if e := b2.next(t); e.Request.EnvelopeID != id {
		t.Errorf("replica 2 got %q; want %q", e.Request.EnvelopeID, id)
	}
	srv.SetRoute(slacktest.Connection(0))
	srv.Redeliver(id) // a retry may reach the other replica
	if e := b1.next(t); e.Request.EnvelopeID != id || e.Request.RetryAttempt != 1 {
		t.Errorf("replica 1 got %q attempt %d; want %q attempt 1", e.Request.EnvelopeID, e.Request.RetryAttempt, id)
	}
	env, _ := srv.Envelope(id)
	if len(env.ConnIDs) != 2 || env.ConnIDs[0] == env.ConnIDs[1] {
		t.Errorf("ConnIDs = %v; want two different connections", env.ConnIDs)
	}

	srv.SetRoute(slacktest.RoundRobin)
	srv.SlashCommand(slacktest.SlashCommand{UserID: "U1", ChannelID: "C1", Command: "/sessions", Text: "a"})
	srv.SlashCommand(slacktest.SlashCommand{UserID: "U1", ChannelID: "C1", Command: "/sessions", Text: "b"})
	texts := map[string]bool{}
	for _, b := range []*bot{b1, b2} {
		texts[b.next(t).Data.(slack.SlashCommand).Text] = true
	}
	if !texts["a"] || !texts["b"] {
		t.Errorf("round robin delivered %v; want a and b on different replicas", texts)
	}

	srv.SetRoute(slacktest.RandomConnection)
	const n = 40
	for range n {
		srv.SlashCommand(slacktest.SlashCommand{UserID: "U1", ChannelID: "C1", Command: "/sessions"})
	}
	perReplica := map[int]int{}
	for range n {
		select {
		case <-b1.events:
			perReplica[1]++
		case <-b2.events:
			perReplica[2]++
		case <-time.After(wait):
			t.Fatalf("random routing: only %v of %d envelopes arrived", perReplica, n)
		}
	}
	if perReplica[1] == 0 || perReplica[2] == 0 {
		t.Errorf("random routing over %d envelopes gave %v; want both replicas used", n, perReplica)
	}
}

func TestWrongAppTokenStopsTheClient(t *testing.T) {
	srv := slacktest.New(t)
	api := slack.New(srv.BotToken(), slack.OptionAPIURL(srv.APIURL()), slack.OptionAppLevelToken("xapp-wrong"))
	b := startBot(t, api)
	select {
	case err := <-b.done:
		b.done <- err // for the cleanup
		if err == nil || err.Error() != "invalid_auth" {
			t.Errorf("RunContext = %v; want invalid_auth", err)
		}
	case <-time.After(wait):
		t.Fatal("RunContext did not return on invalid_auth")
	}
}

// TestRawProtocol checks the wire format without slack-go: hello, pings,
// single-use tickets, and acks recorded from raw frames.
func TestRawProtocol(t *testing.T) {
	srv := slacktest.New(t, slacktest.WithPingInterval(10*time.Millisecond))
	req, _ := http.NewRequest(http.MethodPost, srv.APIURL()+"apps.connections.open", nil)
	req.Header.Set("Authorization", "Bearer "+srv.AppToken())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var open struct {
		OK  bool   `json:"ok"`
		URL string `json:"url"`
	}
	err = json.NewDecoder(resp.Body).Decode(&open)
	resp.Body.Close()
	if err != nil || !open.OK || !strings.HasPrefix(open.URL, "ws://127.0.0.1") {
		t.Fatalf("apps.connections.open = %+v, %v; want ok and a ws:// loopback url", open, err)
	}

	conn, _, err := websocket.DefaultDialer.Dial(open.URL, http.Header{"Origin": {"https://api.slack.com"}})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer conn.Close()
	pinged := make(chan struct{}, 1)
	conn.SetPingHandler(func(string) error {
		select {
		case pinged <- struct{}{}:
		default:
		}
		return nil
	})
	var hello struct {
		Type           string `json:"type"`
		NumConnections int    `json:"num_connections"`
	}
	if err := conn.ReadJSON(&hello); err != nil || hello.Type != "hello" || hello.NumConnections != 1 {
		t.Fatalf("first frame = %+v, %v; want hello with num_connections 1", hello, err)
	}
	srv.WaitConnections(t, 1, wait)
	frames := make(chan map[string]any, 10)
	go func() { // reading also runs the ping handler
		for {
			var f map[string]any
			if conn.ReadJSON(&f) != nil {
				close(frames)
				return
			}
			frames <- f
		}
	}()
	select {
	case <-pinged:
	case <-time.After(wait):
		t.Fatal("no WebSocket ping")
	}

	if _, _, err := websocket.DefaultDialer.Dial(open.URL, nil); err == nil {
		t.Error("second dial with the same ticket succeeded; want refused")
	}

	id := srv.SlashCommand(slacktest.SlashCommand{UserID: "U1", ChannelID: "C1", Command: "/sessions"})
	f := <-frames
	if f["envelope_id"] != id || f["type"] != "slash_commands" || f["retry_attempt"] != float64(0) {
		t.Errorf("envelope frame = %v; want slash_commands %s attempt 0", f, id)
	}
	if err := conn.WriteJSON(map[string]any{"envelope_id": id, "payload": map[string]string{"text": "ok"}}); err != nil {
		t.Fatal(err)
	}
	if a := srv.WaitAck(t, id, wait); string(a.Payload) != `{"text":"ok"}` {
		t.Errorf("ack payload = %s", a.Payload)
	}

	srv.Disconnect("warning")
	if f := <-frames; f["type"] != "disconnect" || f["reason"] != "warning" {
		t.Errorf("frame = %v; want disconnect warning", f)
	}
	srv.DropConnections()
	for range frames { // drained until the read fails
	}
}

func TestWrongTokensAreRefused(t *testing.T) {
	srv := slacktest.New(t)
	ctx := context.Background()
	_, _, err := slack.New("xapp-nope", slack.OptionAPIURL(srv.APIURL()), slack.OptionAppLevelToken("xapp-nope")).StartSocketModeContext(ctx)
	if err == nil || err.Error() != "invalid_auth" {
		t.Errorf("apps.connections.open with wrong token: %v; want invalid_auth", err)
	}
	_, err = slack.New("xoxb-nope", slack.OptionAPIURL(srv.APIURL())).AuthTestContext(ctx)
	var se slack.SlackErrorResponse
	if !errors.As(err, &se) || se.Err != "invalid_auth" {
		t.Errorf("auth.test with wrong token: %v; want invalid_auth", err)
	}
}
