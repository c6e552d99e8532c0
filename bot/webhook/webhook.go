// Package webhook is the end-user notification sink (SPEC §13): after every executed run that
// deleted sessions it POSTs signed CloudEvents naming the user_ids signed out, so that the
// application can tell its own users — those who are not in Slack — why they must sign in
// again. The core (package bot) knows nothing of it.
package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/platform-team/sessionbot/bot"
	"github.com/platform-team/sessionbot/bot/remote"
	"github.com/platform-team/sessionbot/cleanup"
)

// The interface a receiver implements (SPEC §13).
const (
	// EventType is the CloudEvents type of every event.
	EventType = "com.sessionbot.sessions.revoked"
	// ContentType is CloudEvents' structured JSON mode.
	ContentType = "application/cloudevents+json"
	// SignatureHeader carries "sha256=" and the hex HMAC-SHA256 of the raw body, keyed with
	// NOTIFY_WEBHOOK_SECRET.
	SignatureHeader = "X-Sessionbot-Signature"
	// MaxUserIDs is the most user_ids one event carries; more go in further events.
	MaxUserIDs = 1000
)

// Event is one CloudEvents 1.0 event in structured JSON mode.
type Event struct {
	SpecVersion     string  `json:"specversion"` // "1.0"
	Type            string  `json:"type"`        // EventType
	Source          string  `json:"source"`      // "sessionbot/<target>"
	ID              string  `json:"id"`          // unique per event, the same on every retry
	Time            string  `json:"time"`        // RFC 3339: when the run finished
	Subject         string  `json:"subject"`     // the job id
	DataContentType string  `json:"datacontenttype"`
	Data            Revoked `json:"data"`
}

// Revoked is an event's data: which run signed out which users. It never carries tokens,
// usernames or e-mail addresses.
type Revoked struct {
	Job    string `json:"job"`
	Mode   string `json:"mode"` // execute, or all for a mass logout
	Scope  string `json:"scope"`
	Reason string `json:"reason"`
	// UserIDs are distinct user_ids of decodable sessions the run deleted, at most MaxUserIDs;
	// the run's events together name each such user exactly once.
	UserIDs []string `json:"user_ids"`
	Batch   int      `json:"batch"`   // 1…Batches
	Batches int      `json:"batches"` // events of this run
}

// DefaultRetry retries each event for about a minute.
var DefaultRetry = bot.Retry{Tries: 12, Budget: time.Minute, Attempt: 10 * time.Second, Base: time.Second, Max: 15 * time.Second}

// Sink POSTs the events of a run one after another. An event answered with a 5xx, 429 or 408,
// or not answered in time, is sent again with backoff within Retry; another 4xx is final. When an
// event is given up on, the run's later events are not sent: the receiver is down, and the
// failure (reported by the Fanout) says how many were lost.
type Sink struct {
	// Retry bounds the delivery of each event; New sets DefaultRetry.
	Retry bot.Retry
	// Client sends the events; New sets a plain http.Client (each attempt is bounded by
	// Retry.Attempt).
	Client *http.Client

	url    string
	secret remote.Secret
}

var _ bot.UserIDSink = (*Sink)(nil)

// New returns the sink for cfg, which must be enabled and valid (Config.Validate).
func New(cfg Config) (*Sink, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if !cfg.Enabled() {
		return nil, errors.New("webhook: NOTIFY_WEBHOOK_URL is not set")
	}
	return &Sink{Retry: DefaultRetry, Client: &http.Client{}, url: cfg.URL, secret: cfg.Secret}, nil
}

// WantsUserIDs implements bot.UserIDSink: the events name the users.
func (s *Sink) WantsUserIDs() bool { return true }

// Deliver implements bot.Sink: the events of a run that deleted sessions. A restore deletes
// nothing; neither does a run that stopped before deleting. A run whose user_ids nobody collected
// (a job whose replica died, reported by another) cannot name its users and sends nothing.
func (s *Sink) Deliver(ctx context.Context, o bot.JobOutcome) error {
	if o.Mode == "restore" || o.Report.Deleted == 0 || o.UserIDs == nil {
		return nil
	}
	events := events(o)
	for i, ev := range events {
		body, err := json.Marshal(ev)
		if err != nil {
			return err
		}
		if err := s.Retry.Do(ctx, classify, func(ctx context.Context) error { return s.post(ctx, body) }); err != nil {
			err = fmt.Errorf("webhook event %d of %d: %w", i+1, len(events), err)
			if rest := len(events) - i - 1; rest > 0 {
				err = fmt.Errorf("%w; the %d later events were not sent", err, rest)
			}
			return err
		}
	}
	return nil
}

// events are the events of o: its user_ids in batches of MaxUserIDs (one event when it has
// none: sessions were deleted, but none could be decoded to name a user).
func events(o bot.JobOutcome) []Event {
	batches := max(1, (len(o.UserIDs)+MaxUserIDs-1)/MaxUserIDs)
	source := "sessionbot"
	if o.Target != "" {
		source += "/" + o.Target
	}
	out := make([]Event, batches)
	for i := range out {
		ids := o.UserIDs[min(i*MaxUserIDs, len(o.UserIDs)):min((i+1)*MaxUserIDs, len(o.UserIDs))]
		out[i] = Event{
			SpecVersion: "1.0", Type: EventType, Source: source, ID: newID(),
			Time: o.At.UTC().Format(time.RFC3339), Subject: o.JobID, DataContentType: "application/json",
			Data: Revoked{
				Job: o.JobID, Mode: o.Mode, Scope: cleanup.InertLine(o.Scope), Reason: cleanup.InertLine(o.Reason),
				UserIDs: append([]string{}, ids...), Batch: i + 1, Batches: batches,
			},
		}
	}
	return out
}

// Sign is the X-Sessionbot-Signature of body: "sha256=" and the hex HMAC-SHA256 keyed with
// secret.
func Sign(secret, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

func (s *Sink) post(ctx context.Context, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", ContentType)
	req.Header.Set(SignatureHeader, Sign([]byte(s.secret.Reveal()), body))
	req.Header.Set("User-Agent", "sessionbot")
	resp, err := s.Client.Do(req)
	if err != nil {
		// The URL's path may be a capability: errors name the method, never the URL.
		if ue, ok := errors.AsType[*url.Error](err); ok {
			err = ue.Err
		}
		return fmt.Errorf("POST: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return nil
	}
	se := &statusError{code: resp.StatusCode}
	if secs, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && secs > 0 {
		se.after = time.Duration(secs) * time.Second
	}
	return se
}

// statusError is a receiver's answer other than 2xx.
type statusError struct {
	code  int
	after time.Duration // Retry-After
}

func (e *statusError) Error() string {
	return fmt.Sprintf("receiver answered %d %s", e.code, http.StatusText(e.code))
}

func classify(err error) bot.Verdict {
	if se, ok := errors.AsType[*statusError](err); ok {
		retry := se.code >= 500 || se.code == http.StatusTooManyRequests || se.code == http.StatusRequestTimeout
		return bot.Verdict{Retry: retry, After: se.after}
	}
	return bot.Verdict{Retry: remote.TransientNetError(err)}
}

// newID is a random UUID (version 4): unique per event, kept across its retries so that a
// receiver can drop a duplicate.
func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}
