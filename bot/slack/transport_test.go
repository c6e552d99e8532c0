package slack

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slack-go/slack/socketmode"

	"github.com/platform-team/sessionbot/bot/chat"
	"github.com/platform-team/sessionbot/bot/remote"
	"github.com/platform-team/sessionbot/bot/slacktest"
)

// recordingHandler is a Handler that records what it is given; hold, when set, blocks every call
// until it is closed.
type recordingHandler struct {
	mu       sync.Mutex
	commands []chat.Command
	actions  []chat.Action
	hold     chan struct{}
}

var _ chat.Handler = (*recordingHandler)(nil)

func (h *recordingHandler) HandleCommand(ctx context.Context, c chat.Command) {
	h.wait(ctx)
	h.mu.Lock()
	defer h.mu.Unlock()
	h.commands = append(h.commands, c)
}

func (h *recordingHandler) HandleAction(ctx context.Context, a chat.Action) {
	h.wait(ctx)
	h.mu.Lock()
	defer h.mu.Unlock()
	h.actions = append(h.actions, a)
}

func (h *recordingHandler) wait(ctx context.Context) {
	if h.hold != nil {
		select {
		case <-h.hold:
		case <-ctx.Done():
		}
	}
}

func (h *recordingHandler) Commands() []chat.Command {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]chat.Command(nil), h.commands...)
}

func (h *recordingHandler) Actions() []chat.Action {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]chat.Action(nil), h.actions...)
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func testSlackConfig(srv *slacktest.Server) Config {
	return Config{
		AppToken: remote.Secret(srv.AppToken()),
		BotToken: remote.Secret(srv.BotToken()),
		APIURL:   srv.APIURL(),
	}
}

// runTransport starts a transport against srv. exited yields Run's error if Run returns by
// itself; stop cancels Run's context and returns its error.
func runTransport(t *testing.T, srv *slacktest.Server, cfg Config, h chat.Handler) (tr *Transport, exited func(time.Duration) error, stop func() error) {
	t.Helper()
	tr = NewTransport(cfg, "/sessions", WithTransportLogger(quietLogger()),
		WithSocketModeOptions(socketmode.OptionPingInterval(time.Minute)))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tr.Run(ctx, h) }()
	var mu sync.Mutex
	var finished bool
	var runErr error
	wait := func(d time.Duration) (error, bool) {
		mu.Lock()
		defer mu.Unlock()
		if finished {
			return runErr, true
		}
		select {
		case runErr = <-done:
			finished = true
			return runErr, true
		case <-time.After(d):
			return nil, false
		}
	}
	exited = func(d time.Duration) error {
		t.Helper()
		err, ok := wait(d)
		if !ok {
			t.Fatalf("Run did not return by itself within %v", d)
		}
		return err
	}
	stop = func() error {
		cancel()
		err, ok := wait(15 * time.Second)
		if !ok {
			return errors.New("Run did not return within 15s of cancel")
		}
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return tr, exited, stop
}

func TestSlackTransportAcksBeforeHandlingAndMapsCommand(t *testing.T) {
	srv := slacktest.New(t)
	h := &recordingHandler{hold: make(chan struct{})}
	tr, _, stop := runTransport(t, srv, testSlackConfig(srv), h)
	srv.WaitConnections(t, 1, 10*time.Second)
	slacktest.WaitFor(t, tr.Connected, 5*time.Second)

	env := srv.SlashCommand(slacktest.SlashCommand{UserID: "U0ALICE", UserName: "alice", ChannelID: "C0OPS", Command: "/sessions", Text: "cleanup --all --reason 'key leak'"})
	// The handler is still blocked: the ack must not wait for it.
	srv.WaitAck(t, env, 3*time.Second)
	if n := len(h.Commands()); n != 0 {
		t.Fatalf("handler finished before release: %d commands", n)
	}
	close(h.hold)
	slacktest.WaitFor(t, func() bool { return len(h.Commands()) == 1 }, 5*time.Second)
	got := h.Commands()[0]
	if got.EnvelopeID != env || got.UserID != "U0ALICE" || got.UserName != "alice" || got.ChannelID != "C0OPS" ||
		got.TeamID != slacktest.DefaultTeamID || got.Text != "cleanup --all --reason 'key leak'" || got.ResponseURL == "" {
		t.Errorf("HandleCommand got %+v", got)
	}
	if err := stop(); err != nil {
		t.Errorf("Run after cancel = %v; want nil", err)
	}
	if tr.Connected() {
		t.Error("Connected() = true after Run returned")
	}
}

func TestSlackTransportIgnoresOtherCommandsButAcksThem(t *testing.T) {
	srv := slacktest.New(t)
	h := &recordingHandler{}
	_, _, _ = runTransport(t, srv, testSlackConfig(srv), h)
	srv.WaitConnections(t, 1, 10*time.Second)

	other := srv.SlashCommand(slacktest.SlashCommand{UserID: "U0ALICE", ChannelID: "C0OPS", Command: "/deploy", Text: "prod"})
	srv.WaitAck(t, other, 3*time.Second)
	mine := srv.SlashCommand(slacktest.SlashCommand{UserID: "U0ALICE", ChannelID: "C0OPS", Command: "/sessions", Text: "stats"})
	srv.WaitAck(t, mine, 3*time.Second)
	slacktest.WaitFor(t, func() bool { return len(h.Commands()) == 1 }, 5*time.Second)
	if got := h.Commands(); len(got) != 1 || got[0].EnvelopeID != mine {
		t.Errorf("commands = %+v; want only the /sessions one", got)
	}
}

func TestSlackTransportMapsBlockActions(t *testing.T) {
	srv := slacktest.New(t)
	h := &recordingHandler{}
	_, _, _ = runTransport(t, srv, testSlackConfig(srv), h)
	srv.WaitConnections(t, 1, 10*time.Second)

	env := srv.BlockAction(slacktest.BlockAction{UserID: "U0BOB", UserName: "bob", ChannelID: "C0OPS",
		MessageTS: "1700000000.000100", ActionID: "approve", BlockID: actionsBlockID, Value: "req-42"})
	srv.WaitAck(t, env, 3*time.Second)
	slacktest.WaitFor(t, func() bool { return len(h.Actions()) == 1 }, 5*time.Second)
	want := chat.Action{EnvelopeID: env, TeamID: slacktest.DefaultTeamID, UserID: "U0BOB", UserName: "bob", ChannelID: "C0OPS",
		MessageTS: "1700000000.000100", ActionID: "approve", Value: "req-42"}
	got := h.Actions()[0]
	got.ResponseURL = ""
	if got != want {
		t.Errorf("HandleAction got %+v; want %+v", got, want)
	}
}

func TestSlackTransportAcksRedeliveriesAndPassesThemOn(t *testing.T) {
	srv := slacktest.New(t)
	h := &recordingHandler{}
	_, _, _ = runTransport(t, srv, testSlackConfig(srv), h)
	srv.WaitConnections(t, 1, 10*time.Second)

	env := srv.SlashCommand(slacktest.SlashCommand{UserID: "U0ALICE", ChannelID: "C0OPS", Command: "/sessions", Text: "stats"})
	srv.WaitAck(t, env, 3*time.Second)
	srv.Redeliver(env)
	slacktest.WaitFor(t, func() bool { return srv.Acks(env) == 2 }, 3*time.Second)
	// Deduplication is the core's job (state in Redis, shared by replicas): the transport
	// passes the redelivery on with the same envelope id.
	slacktest.WaitFor(t, func() bool { return len(h.Commands()) == 2 }, 5*time.Second)
	for _, c := range h.Commands() {
		if c.EnvelopeID != env {
			t.Errorf("EnvelopeID = %q; want %q", c.EnvelopeID, env)
		}
	}
}

func TestSlackTransportReconnectsAfterDisconnectAndDrop(t *testing.T) {
	srv := slacktest.New(t)
	h := &recordingHandler{}
	tr, _, _ := runTransport(t, srv, testSlackConfig(srv), h)
	srv.WaitConnections(t, 1, 10*time.Second)
	slacktest.WaitFor(t, tr.Connected, 5*time.Second)

	for i, breakIt := range []func(){func() { srv.Disconnect("refresh_requested") }, srv.DropConnections} {
		before := len(srv.Calls("apps.connections.open"))
		breakIt()
		slacktest.WaitFor(t, func() bool { return len(srv.Calls("apps.connections.open")) > before }, 10*time.Second)
		srv.WaitConnections(t, 1, 10*time.Second)
		slacktest.WaitFor(t, tr.Connected, 10*time.Second)
		env := srv.SlashCommand(slacktest.SlashCommand{UserID: "U0ALICE", ChannelID: "C0OPS", Command: "/sessions", Text: "stats"})
		srv.WaitAck(t, env, 3*time.Second)
		slacktest.WaitFor(t, func() bool { return len(h.Commands()) == i+1 }, 5*time.Second)
	}
}

func TestSlackTransportStopsOnFatalAuthErrors(t *testing.T) {
	for _, code := range []string{"invalid_auth", "token_revoked", "missing_scope", "not_allowed_token_type"} {
		t.Run(code, func(t *testing.T) {
			srv := slacktest.New(t)
			srv.FailNextError("apps.connections.open", 10, code)
			cfg := testSlackConfig(srv)
			_, exited, _ := runTransport(t, srv, cfg, &recordingHandler{})
			err := exited(10 * time.Second)
			if err == nil || !strings.Contains(err.Error(), code) {
				t.Fatalf("Run = %v; want an error naming %s", err, code)
			}
			if strings.Contains(err.Error(), cfg.AppToken.Reveal()) || strings.Contains(err.Error(), cfg.BotToken.Reveal()) {
				t.Errorf("Run error shows a token: %v", err)
			}
			if n := len(srv.Calls("apps.connections.open")); n != 1 {
				t.Errorf("apps.connections.open called %d times; want 1 (a fatal error is not retried)", n)
			}
		})
	}
}

func TestSlackTransportWrongAppTokenIsFatal(t *testing.T) {
	srv := slacktest.New(t)
	cfg := testSlackConfig(srv)
	cfg.AppToken = "xapp-1-A0FAKEAPP1-1-wrongwrongwrong"
	_, exited, _ := runTransport(t, srv, cfg, &recordingHandler{})
	err := exited(10 * time.Second)
	if err == nil || !strings.Contains(err.Error(), "SLACK_APP_TOKEN") || strings.Contains(err.Error(), "wrongwrong") {
		t.Fatalf("Run = %v; want an error naming SLACK_APP_TOKEN without its value", err)
	}
}
