// Package slack is the Slack adapter: the Socket Mode transport (Transport: slash commands and
// button clicks in, each envelope acknowledged at once and handed to a chat.Handler), the Web
// API (Chat, a chat.Chat), the Block Kit rendering of a chat.Message, and the Slack settings
// (Config). It imports bot/chat, bot/remote, cleanup (settings decoding) and slack-go — never
// the core (bot), which knows it only as a chat.Chat and through the Handler it implements.
package slack

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	slackgo "github.com/slack-go/slack"
	"github.com/slack-go/slack/socketmode"

	"github.com/platform-team/sessionbot/bot/chat"
)

// Timing of the Socket Mode loop.
const (
	// ackTimeout bounds the wait for a slot in slack-go's 20-response queue: Slack wants the ack
	// within 3 s, and a later one is useless (the envelope is redelivered anyway).
	ackTimeout = 2500 * time.Millisecond
	// maxInFlight bounds the handlers running at once; acks never wait for it.
	maxInFlight = 64
	// shutdownGrace is how long Run waits for running handlers after ctx ends before it
	// cancels them.
	shutdownGrace = 10 * time.Second
)

// fatalSlackErrors end Run: retrying cannot fix a revoked or mis-scoped token. slack-go itself
// stops on the first four; it retries the others for ever.
var fatalSlackErrors = map[string]string{
	"invalid_auth":           "SLACK_APP_TOKEN is invalid",
	"account_inactive":       "the Slack app's account is inactive",
	"not_authed":             "SLACK_APP_TOKEN is missing",
	"token_revoked":          "SLACK_APP_TOKEN was revoked",
	"missing_scope":          "SLACK_APP_TOKEN lacks the connections:write scope",
	"not_allowed_token_type": "SLACK_APP_TOKEN is not an app-level (xapp-) token",
}

// Transport receives slash commands and button clicks over Socket Mode, acknowledges each
// envelope at once and hands it to a chat.Handler.
type Transport struct {
	cfg       Config
	command   string
	log       *slog.Logger
	metrics   Metrics
	smOpts    []socketmode.Option
	http      *http.Client
	connected atomic.Bool
	inFlight  chan struct{}
}

// TransportOption configures a Transport.
type TransportOption func(*Transport)

// WithTransportLogger sets the logger (default slog.Default()).
func WithTransportLogger(l *slog.Logger) TransportOption {
	return func(t *Transport) { t.log = l }
}

// Metrics is where the transport reports whether it is connected; *bot.Metrics is one (the
// sessionbot_slack_connected gauge). The adapter does not import the core, so it names only
// what it calls.
type Metrics interface {
	SetSlackConnected(up bool)
}

// WithTransportMetrics reports the connection state to m.
func WithTransportMetrics(m Metrics) TransportOption {
	return func(t *Transport) { t.metrics = m }
}

// WithSocketModeOptions passes options to the socketmode client (tests: OptionPingInterval).
func WithSocketModeOptions(o ...socketmode.Option) TransportOption {
	return func(t *Transport) { t.smOpts = append(t.smOpts, o...) }
}

// WithTransportHTTPClient sets the HTTP client of apps.connections.open.
func WithTransportHTTPClient(h *http.Client) TransportOption {
	return func(t *Transport) { t.http = h }
}

// NewTransport returns a transport for cfg that passes on the slash command named command
// (e.g. "/sessions") and ignores others.
func NewTransport(cfg Config, command string, opts ...TransportOption) *Transport {
	t := &Transport{cfg: cfg, command: command, log: slog.Default(), inFlight: make(chan struct{}, maxInFlight)}
	for _, o := range opts {
		o(t)
	}
	return t
}

// Connected reports whether the Socket Mode WebSocket is up (for /readyz).
func (t *Transport) Connected() bool { return t.connected.Load() }

func (t *Transport) setConnected(up bool) {
	if t.connected.Swap(up) != up {
		t.log.Info("slack socket mode", "connected", up)
	}
	if t.metrics != nil {
		t.metrics.SetSlackConnected(up)
	}
}

// Run connects and serves until ctx ends (it then returns nil after running handlers finished,
// at most shutdownGrace later) or Slack rejects the app token (it returns an error naming the
// problem, never the token). Connection losses and Slack's disconnect requests are survived by
// reconnecting.
func (t *Transport) Run(ctx context.Context, h chat.Handler) error {
	sopts := []slackgo.Option{slackgo.OptionAPIURL(t.cfg.APIURL), slackgo.OptionAppLevelToken(t.cfg.AppToken.Reveal())}
	if t.http != nil {
		sopts = append(sopts, slackgo.OptionHTTPClient(t.http))
	}
	smOpts := append([]socketmode.Option{socketmode.OptionLog(slogPrinter{t.log})}, t.smOpts...)
	client := socketmode.New(slackgo.New(t.cfg.BotToken.Reveal(), sopts...), smOpts...)

	runCtx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	runDone := make(chan error, 1)
	go func() { runDone <- client.RunContext(runCtx) }()

	// Handlers outlive ctx by up to shutdownGrace so that a command being answered when SIGTERM
	// arrives still gets its answer; the core's own jobs have their own lifetime.
	handlerCtx, stopHandlers := context.WithCancel(context.WithoutCancel(ctx))
	defer stopHandlers()
	var handlers sync.WaitGroup

	var result error
	for done := false; !done; {
		select {
		case <-runCtx.Done():
			done = true
		case err := <-runDone:
			runDone <- err // read again below
			done = true
		case ev := <-client.Events:
			if err := t.event(runCtx, handlerCtx, client, ev, h, &handlers); err != nil {
				stop(err)
			}
		}
	}
	stop(context.Canceled) // keeps the cause of an earlier stop
	runErr := <-runDone
	t.setConnected(false)
	switch cause := context.Cause(runCtx); {
	case ctx.Err() != nil:
		// SIGTERM: a clean exit.
	case !errors.Is(cause, context.Canceled):
		result = cause // a fatal error seen in the events
	case runErr != nil:
		result = fatalError(runErr) // slack-go gave up (invalid_auth, 404, …)
	}

	waited := make(chan struct{})
	go func() { handlers.Wait(); close(waited) }()
	timer := time.NewTimer(shutdownGrace)
	defer timer.Stop()
	select {
	case <-waited:
	case <-timer.C:
		stopHandlers()
		<-waited
	}
	return result
}

// fatalError names why Slack refused the connection, without any token.
func fatalError(err error) error {
	if why, ok := fatalSlackErrors[err.Error()]; ok {
		return fmt.Errorf("slack socket mode: %s (%s)", why, err.Error())
	}
	if sc, ok := errors.AsType[slackgo.StatusCodeError](err); ok && sc.Code == http.StatusNotFound {
		return fmt.Errorf("slack socket mode: apps.connections.open not found (404): check SLACK_API_URL")
	}
	return fmt.Errorf("slack socket mode: %w", err)
}

// event handles one event of the socketmode client. It never blocks on a handler; it returns an
// error only for a fatal connection problem.
func (t *Transport) event(ctx, handlerCtx context.Context, client *socketmode.Client, ev socketmode.Event, h chat.Handler, wg *sync.WaitGroup) error {
	switch ev.Type {
	case socketmode.EventTypeConnected, socketmode.EventTypeHello:
		t.setConnected(true)
	case socketmode.EventTypeConnecting:
		t.setConnected(false)
	case socketmode.EventTypeIncomingError:
		t.setConnected(false)
		if e, ok := ev.Data.(*slackgo.IncomingEventError); ok {
			t.log.Warn("slack socket mode: connection lost, reconnecting", "err", e.ErrorObj)
		}
	case socketmode.EventTypeInvalidAuth:
		t.setConnected(false)
	case socketmode.EventTypeConnectionError:
		t.setConnected(false)
		if e, ok := ev.Data.(*slackgo.ConnectionErrorEvent); ok && e.ErrorObj != nil {
			if _, fatal := fatalSlackErrors[e.ErrorObj.Error()]; fatal {
				return fatalError(e.ErrorObj)
			}
			t.log.Warn("slack socket mode: cannot connect, retrying", "attempt", e.Attempt, "backoff", e.Backoff, "err", e.ErrorObj)
		}
	case socketmode.EventTypeErrorWriteFailed:
		if e, ok := ev.Data.(*socketmode.ErrorWriteFailed); ok {
			t.log.Warn("slack socket mode: ack not sent; Slack will redeliver", "err", e.Cause)
		}
	case socketmode.EventTypeErrorBadMessage:
		// slack-go could not parse the payload, so it hands no Request: ack it anyway from the
		// raw frame, or Slack would redeliver an envelope we cannot use again and again.
		if e, ok := ev.Data.(*socketmode.ErrorBadMessage); ok {
			var env struct {
				EnvelopeID string `json:"envelope_id"`
				Type       string `json:"type"`
			}
			if json.Unmarshal(e.Message, &env) == nil && env.EnvelopeID != "" {
				t.log.Warn("slack socket mode: unreadable envelope acked and dropped", "type", env.Type, "envelope", env.EnvelopeID, "err", e.Cause)
				go t.ack(ctx, client, env.EnvelopeID)
			}
		}
	case socketmode.EventTypeSlashCommand, socketmode.EventTypeInteractive, socketmode.EventTypeEventsAPI:
		if ev.Request == nil || ev.Request.EnvelopeID == "" {
			return nil
		}
		req := ev.Request
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Ack first: the handler may take seconds (a preview over millions of keys), and
			// Slack shows the user an error when the ack is later than 3 s.
			t.ack(ctx, client, req.EnvelopeID)
			if req.RetryAttempt > 0 {
				t.log.Info("slack redelivery", "envelope", req.EnvelopeID, "attempt", req.RetryAttempt, "reason", req.RetryReason)
			}
			t.dispatch(handlerCtx, ev, req.EnvelopeID, h)
		}()
	}
	return nil
}

func (t *Transport) ack(ctx context.Context, client *socketmode.Client, envelopeID string) {
	actx, cancel := context.WithTimeout(ctx, ackTimeout)
	defer cancel()
	if err := client.AckCtx(actx, envelopeID, nil); err != nil {
		t.log.Warn("slack socket mode: ack failed; Slack will redeliver", "envelope", envelopeID, "err", err)
	}
}

// dispatch maps the envelope to Commands and Actions and calls the handler, within the
// in-flight bound.
func (t *Transport) dispatch(ctx context.Context, ev socketmode.Event, envelopeID string, h chat.Handler) {
	var calls []func()
	switch data := ev.Data.(type) {
	case slackgo.SlashCommand:
		if data.Command != t.command {
			t.log.Info("slack: ignoring another command", "command", data.Command)
			return
		}
		c := CommandFrom(data, envelopeID)
		calls = append(calls, func() { h.HandleCommand(ctx, c) })
	case slackgo.InteractionCallback:
		for _, a := range ActionsFrom(data, envelopeID) {
			calls = append(calls, func() { h.HandleAction(ctx, a) })
		}
	}
	for _, call := range calls {
		select {
		case t.inFlight <- struct{}{}:
		case <-ctx.Done():
			return
		}
		func() {
			defer func() { <-t.inFlight }()
			defer func() {
				if r := recover(); r != nil {
					t.log.Error("slack: handler panicked", "envelope", envelopeID, "panic", r)
				}
			}()
			call()
		}()
	}
}

// CommandFrom maps a slash command, as slack-go parses it, to the Command handed to the core
// (the core's fuzz tests feed it arbitrary text).
func CommandFrom(s slackgo.SlashCommand, envelopeID string) chat.Command {
	return chat.Command{
		EnvelopeID:  envelopeID,
		TeamID:      s.TeamID,
		UserID:      s.UserID,
		UserName:    s.UserName,
		ChannelID:   s.ChannelID,
		Text:        slackUnescape.Replace(s.Text),
		ResponseURL: s.ResponseURL,
	}
}

// slackUnescape undoes the escaping Slack applies to slash-command text: it sends &, < and > as
// &amp;, &lt; and &gt; (and nothing else). One pass, so "&amp;lt;" — a literal "&lt;" typed by
// the user — becomes "&lt;", not "<".
var slackUnescape = strings.NewReplacer("&amp;", "&", "&lt;", "<", "&gt;", ">")

// ActionsFrom returns one Action per button of a block_actions payload (other interactions are
// ignored). Slack sends one action per click; should a payload carry more, the second and later
// get the envelope id suffixed with #2, #3… so the core's once-per-envelope rule still lets each
// be handled once.
func ActionsFrom(cb slackgo.InteractionCallback, envelopeID string) []chat.Action {
	if cb.Type != slackgo.InteractionTypeBlockActions {
		return nil
	}
	channel := cb.Channel.ID
	if channel == "" {
		channel = cb.Container.ChannelID
	}
	ts := cb.Container.MessageTs
	if ts == "" {
		ts = cb.Message.Timestamp
	}
	team := cb.Team.ID
	if team == "" {
		team = cb.User.TeamID
	}
	var out []chat.Action
	for i, ba := range cb.ActionCallback.BlockActions {
		id := envelopeID
		if i > 0 {
			id += "#" + strconv.Itoa(i+1)
		}
		out = append(out, chat.Action{
			EnvelopeID:  id,
			TeamID:      team,
			UserID:      cb.User.ID,
			UserName:    cb.User.Name,
			ChannelID:   channel,
			MessageTS:   ts,
			ActionID:    ba.ActionID,
			Value:       ba.Value,
			ResponseURL: cb.ResponseURL,
		})
	}
	return out
}

// slogPrinter routes slack-go's internal log lines (debug only) to slog.
type slogPrinter struct{ l *slog.Logger }

func (p slogPrinter) Output(_ int, s string) error {
	p.l.Debug("slack-go", "msg", s)
	return nil
}
