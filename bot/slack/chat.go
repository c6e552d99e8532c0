package slack

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	slackgo "github.com/slack-go/slack"

	"github.com/platform-team/sessionbot/bot/chat"
	"github.com/platform-team/sessionbot/bot/remote"
)

// slackWebAPI is the part of *slackgo.Client that Chat uses.
type slackWebAPI interface {
	PostMessageContext(ctx context.Context, channelID string, options ...slackgo.MsgOption) (string, string, error)
	UpdateMessageContext(ctx context.Context, channelID, timestamp string, options ...slackgo.MsgOption) (string, string, string, error)
	PostEphemeralContext(ctx context.Context, channelID, userID string, options ...slackgo.MsgOption) (string, error)
	OpenConversationContext(ctx context.Context, params *slackgo.OpenConversationParameters) (*slackgo.Channel, bool, bool, error)
	GetUserByEmailContext(ctx context.Context, email string) (*slackgo.User, error)
	GetUserGroupMembersContext(ctx context.Context, userGroup string, options ...slackgo.GetUserGroupMembersOption) ([]string, error)
}

var _ slackWebAPI = (*slackgo.Client)(nil)

// Chat implements chat.Chat over the Slack Web API. Retries are slack-go's own (its retrying HTTP
// client, OptionRetryConfig): rate limiting (429, honouring Retry-After up to the budget), 5xx and
// transient network errors (timeouts included), at most 4 attempts with jittered exponential
// backoff; other errors (channel_not_found, invalid_blocks, …) are returned at once.
type Chat struct {
	api        slackWebAPI
	retry      slackRetryPolicy
	log        *slog.Logger
	httpClient *http.Client
	// A response_url must point at *.slack.com over HTTPS, or at the configured API host (the
	// fake in tests): the bot never sends message content to a URL a payload merely claims.
	apiHost   string
	apiScheme string
}

var _ chat.Chat = (*Chat)(nil)

// slackRetryPolicy bounds the Web API's retries: tries attempts in all, backoff from base, and
// no wait longer than maxWait (a Retry-After beyond it fails the call at once rather than
// holding a job's progress for minutes).
type slackRetryPolicy struct {
	tries         int
	base, maxWait time.Duration
}

// defaultSlackRetry: 4 attempts, backoff from 500 ms, waits up to 30 s.
var defaultSlackRetry = slackRetryPolicy{tries: 4, base: 500 * time.Millisecond, maxWait: 30 * time.Second}

// slackAttemptTimeout bounds one Web API attempt (the HTTP client's timeout); a timed-out
// attempt is retried.
const slackAttemptTimeout = 10 * time.Second

// config is the policy as slack-go's RetryConfig.
func (p slackRetryPolicy) config() slackgo.RetryConfig {
	cfg := slackgo.RetryConfig{
		MaxRetries:         p.tries - 1,
		RetryAfterDuration: min(5*time.Second, p.maxWait),
		RetryAfterJitter:   250 * time.Millisecond, // replicas rate-limited together do not retry together
		BackoffInitial:     p.base,
		BackoffMax:         min(8*time.Second, p.maxWait),
		BackoffJitter:      p.base / 2,
	}
	cfg.Handlers = []slackgo.RetryHandler{
		netErrorRetry{},
		boundedWait{slackgo.NewRateLimitErrorRetryHandler(cfg), p.maxWait},
		slackgo.NewServerErrorRetryHandler(cfg),
	}
	return cfg
}

// netErrorRetry retries a request that got no response because of a transient network error
// (remote.TransientNetError: timeouts, resets, refused connections, a response cut short).
type netErrorRetry struct{}

func (netErrorRetry) ShouldRetry(state *slackgo.RetryState, req *http.Request, resp *http.Response, err error) (bool, time.Duration) {
	if resp != nil || err == nil || !remote.TransientNetError(err) || req.Context().Err() != nil {
		return false, 0
	}
	if req.Body != nil && req.GetBody == nil {
		return false, 0 // a streamed body cannot be sent again
	}
	return true, state.Backoff.Duration()
}

// boundedWait refuses a retry whose wait (Retry-After) exceeds max.
type boundedWait struct {
	slackgo.RetryHandler
	max time.Duration
}

func (h boundedWait) ShouldRetry(state *slackgo.RetryState, req *http.Request, resp *http.Response, err error) (bool, time.Duration) {
	retry, wait := h.RetryHandler.ShouldRetry(state, req, resp, err)
	if retry && wait > h.max {
		return false, 0
	}
	return retry, wait
}

// ChatOption configures a Chat.
type ChatOption func(*Chat)

// WithChatLogger sets the logger (default slog.Default()).
func WithChatLogger(l *slog.Logger) ChatOption { return func(c *Chat) { c.log = l } }

// WithChatRetry overrides the retry bounds: attempts, the longest wait and the first backoff
// step. Tests use it to keep injected failures fast.
func WithChatRetry(tries int, maxWait, base time.Duration) ChatOption {
	return func(c *Chat) { c.retry = slackRetryPolicy{tries: tries, base: base, maxWait: maxWait} }
}

// WithChatHTTPClient sets the HTTP client of the Web API calls.
func WithChatHTTPClient(h *http.Client) ChatOption {
	return func(c *Chat) { c.httpClient = h }
}

// NewChat returns a Chat that talks to the Web API at cfg.APIURL with the bot token.
func NewChat(cfg Config, opts ...ChatOption) *Chat {
	c := &Chat{retry: defaultSlackRetry, log: slog.Default(), httpClient: &http.Client{Timeout: slackAttemptTimeout}}
	for _, o := range opts {
		o(c)
	}
	// OptionRetryConfig wraps the HTTP client, so it comes after OptionHTTPClient.
	c.api = slackgo.New(cfg.BotToken.Reveal(), slackgo.OptionAPIURL(cfg.APIURL),
		slackgo.OptionHTTPClient(c.httpClient), slackgo.OptionRetryConfig(c.retry.config()))
	if u, err := url.Parse(cfg.APIURL); err == nil {
		c.apiHost, c.apiScheme = u.Host, u.Scheme
	}
	return c
}

func msgOptions(m chat.Message) []slackgo.MsgOption {
	text, blocks := renderMessage(m)
	return []slackgo.MsgOption{slackgo.MsgOptionText(text, false), slackgo.MsgOptionBlocks(blocks...)}
}

// Post implements Chat. channel may be an id or a #name; the returned ref carries the id.
func (c *Chat) Post(ctx context.Context, channel string, m chat.Message) (chat.MessageRef, error) {
	var ref chat.MessageRef
	err := c.call(ctx, "chat.postMessage", func(ctx context.Context) error {
		ch, ts, err := c.api.PostMessageContext(ctx, channel, msgOptions(m)...)
		ref = chat.MessageRef{Channel: ch, TS: ts}
		return err
	})
	if code := ErrorCode(err); code == "not_in_channel" || code == "channel_not_found" {
		err = notInChannel{err}
	}
	return ref, err
}

// notInChannel marks a chat.postMessage error as chat.ErrNotInChannel; its text is unchanged.
type notInChannel struct{ error }

func (e notInChannel) Is(target error) bool { return target == chat.ErrNotInChannel }
func (e notInChannel) Unwrap() error        { return e.error }

// Reply implements Chat.
func (c *Chat) Reply(ctx context.Context, ref chat.MessageRef, m chat.Message) (chat.MessageRef, error) {
	var out chat.MessageRef
	err := c.call(ctx, "chat.postMessage", func(ctx context.Context) error {
		ch, ts, err := c.api.PostMessageContext(ctx, ref.Channel, append(msgOptions(m), slackgo.MsgOptionTS(ref.TS))...)
		out = chat.MessageRef{Channel: ch, TS: ts}
		return err
	})
	return out, err
}

// Update implements Chat with chat.update (a response_url would allow only 5 posts).
func (c *Chat) Update(ctx context.Context, ref chat.MessageRef, m chat.Message) error {
	return c.call(ctx, "chat.update", func(ctx context.Context) error {
		_, _, _, err := c.api.UpdateMessageContext(ctx, ref.Channel, ref.TS, msgOptions(m)...)
		return err
	})
}

// Ephemeral implements Chat. With a responseURL (one of the command's or click's 5 uses) the
// message is posted there, which works even where the bot is not a channel member; otherwise
// with chat.postEphemeral. A response URL that fails is not retried through chat.postEphemeral:
// the caller reports the failure.
func (c *Chat) Ephemeral(ctx context.Context, channel, user, responseURL string, m chat.Message) error {
	if responseURL != "" {
		if err := c.checkResponseURL(responseURL); err != nil {
			return err
		}
		return c.call(ctx, "response_url", func(ctx context.Context) error {
			_, _, err := c.api.PostMessageContext(ctx, channel,
				append(msgOptions(m), slackgo.MsgOptionResponseURL(responseURL, slackgo.ResponseTypeEphemeral))...)
			return err
		})
	}
	return c.call(ctx, "chat.postEphemeral", func(ctx context.Context) error {
		_, err := c.api.PostEphemeralContext(ctx, channel, user, msgOptions(m)...)
		return err
	})
}

func (c *Chat) checkResponseURL(raw string) error {
	u, err := url.Parse(raw)
	if err == nil {
		host := u.Hostname()
		if (u.Scheme == "https" && (host == "slack.com" || strings.HasSuffix(host, ".slack.com"))) ||
			(u.Scheme == c.apiScheme && u.Host == c.apiHost) {
			return nil
		}
	}
	return errors.New("slack response_url: not a Slack URL; refusing to post there")
}

// DM implements Chat: conversations.open, then chat.postMessage in the IM.
func (c *Chat) DM(ctx context.Context, user string, m chat.Message) error {
	var im string
	err := c.call(ctx, "conversations.open", func(ctx context.Context) error {
		ch, _, _, err := c.api.OpenConversationContext(ctx, &slackgo.OpenConversationParameters{Users: []string{user}})
		if err == nil {
			im = ch.ID
		}
		return err
	})
	if err != nil {
		return err
	}
	_, err = c.Post(ctx, im, m)
	return err
}

// LookupUserByEmail implements Chat with users.lookupByEmail. The e-mail never appears in the
// returned error.
func (c *Chat) LookupUserByEmail(ctx context.Context, email string) (string, error) {
	var id string
	err := c.call(ctx, "users.lookupByEmail", func(ctx context.Context) error {
		u, err := c.api.GetUserByEmailContext(ctx, email)
		if err == nil {
			id = u.ID
		}
		return err
	})
	return id, err
}

// UserGroupMembers implements Chat with usergroups.users.list.
func (c *Chat) UserGroupMembers(ctx context.Context, group string) ([]string, error) {
	var ids []string
	err := c.call(ctx, "usergroups.users.list", func(ctx context.Context) error {
		var err error
		ids, err = c.api.GetUserGroupMembersContext(ctx, group)
		return err
	})
	return ids, err
}

// call runs one Web API method (slack-go retries it) and names the method in its error.
func (c *Chat) call(ctx context.Context, method string, f func(ctx context.Context) error) error {
	if err := f(ctx); err != nil {
		c.log.Debug("slack call failed", "method", method, "err", err)
		return fmt.Errorf("slack %s: %w", method, err)
	}
	return nil
}

// ErrorCode returns Slack's error code (channel_not_found, …) from an error of Chat, or "".
func ErrorCode(err error) string {
	if se, ok := errors.AsType[slackgo.SlackErrorResponse](err); ok {
		return se.Err
	}
	return ""
}
