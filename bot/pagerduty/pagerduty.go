// Package pagerduty is the PagerDuty sink: after every executed destructive run a change event,
// and for a failed run an alert, resolved by the next successful run on the same target (SPEC
// §7, §11). It talks to the Events API v2 through github.com/PagerDuty/go-pagerduty; the core
// (package bot) knows nothing of it.
package pagerduty

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"
	"unicode/utf8"

	pd "github.com/PagerDuty/go-pagerduty"

	"github.com/platform-team/sessionbot/bot"
	"github.com/platform-team/sessionbot/bot/remote"
)

// events is the part of *pd.Client the sink uses.
type events interface {
	ManageEventWithContext(ctx context.Context, e *pd.V2Event) (*pd.V2EventResponse, error)
	CreateChangeEventWithContext(ctx context.Context, e pd.ChangeEvent) (*pd.ChangeEventResponse, error)
}

var _ events = (*pd.Client)(nil)

// maxDedupKey is the Events API's limit on dedup_key, in characters (the library checks none).
const maxDedupKey = 255

// Alert severities.
const (
	SeverityCritical = "critical"
	SeverityError    = "error"
)

// Sink sends change events and alerts to one Events API v2 integration. Each call is retried on
// 429, 5xx and timeouts within Retry (by default 4 tries within 30 s); a 400 is final.
type Sink struct {
	// Retry bounds the retries of each event; New sets bot.DefaultRetry.
	Retry  bot.Retry
	client events
	key    remote.Secret
	log    *slog.Logger
}

var _ bot.Sink = (*Sink)(nil)

// New returns the sink for cfg, which must have a routing key (Config.Enabled). log nil:
// slog.Default().
func New(cfg Config, log *slog.Logger) *Sink {
	if log == nil {
		log = slog.Default()
	}
	return &Sink{
		Retry:  bot.DefaultRetry,
		client: pd.NewClient("", pd.WithV2EventsAPIEndpoint(cfg.EventsURL)),
		key:    cfg.RoutingKey,
		log:    log,
	}
}

// Deliver implements bot.Sink: a change event for every run, then an alert when it failed
// (critical for a mass logout that logged out some users but not all), or the resolution of the
// target's alert when it completed. A run that was cancelled or bounded is neither. The error
// joins every event given up on.
func (s *Sink) Deliver(ctx context.Context, o bot.JobOutcome) error {
	var links []pd.ChangeEventLink
	link := bot.Permalink(o.Thread)
	if link != "" {
		links = []pd.ChangeEventLink{{Href: link, Text: "Slack thread of job " + o.JobID}}
	}
	source := "sessionbot"
	if o.Target != "" {
		source = "sessionbot/" + o.Target
	}
	summary, details, at := o.Summary(), o.Details(), o.At.UTC().Format(time.RFC3339)
	var errs []error
	change := pd.ChangeEvent{
		RoutingKey: s.key.Reveal(),
		Payload:    pd.ChangeEventPayload{Summary: summary, Source: source, Timestamp: at, CustomDetails: details},
		Links:      links,
	}
	errs = append(errs, s.send(ctx, "change event", func(ctx context.Context) error {
		_, err := s.client.CreateChangeEventWithContext(ctx, change)
		return err
	}))

	key := DedupKey(o.Target)
	switch {
	case o.Failed:
		severity := SeverityError
		if o.Mode == "all" && (o.Partial || o.Report.Deleted > 0) {
			severity = SeverityCritical // some users are logged out, others not
		}
		ev := &pd.V2Event{
			RoutingKey: s.key.Reveal(), Action: "trigger", DedupKey: key, Client: "sessionbot",
			Payload: &pd.V2Payload{Summary: summary, Source: source, Severity: severity, Timestamp: at,
				Component: "sessionbot", Class: "session-cleanup", Details: details},
		}
		if link != "" {
			ev.Links = []any{map[string]string{"href": link, "text": links[0].Text}}
			ev.ClientURL = link
		}
		errs = append(errs, s.send(ctx, "alert", func(ctx context.Context) error {
			_, err := s.client.ManageEventWithContext(ctx, ev)
			return err
		}))
	case o.StoppedEarly():
		// Cancelled or bounded: neither a failure nor the success that resolves one.
	default:
		// PagerDuty accepts resolving a key with no open alert and does nothing, which keeps
		// this correct across replicas and restarts without shared state.
		ev := &pd.V2Event{RoutingKey: s.key.Reveal(), Action: "resolve", DedupKey: key}
		errs = append(errs, s.send(ctx, "resolve", func(ctx context.Context) error {
			_, err := s.client.ManageEventWithContext(ctx, ev)
			return err
		}))
	}
	return errors.Join(errs...)
}

func (s *Sink) send(ctx context.Context, what string, f func(ctx context.Context) error) error {
	err := s.Retry.Do(ctx, classify, func(ctx context.Context) error {
		err := f(ctx)
		if _, ok := errors.AsType[*json.SyntaxError](err); ok {
			// Only a 2xx body is decoded: the event was accepted, its answer was just not
			// JSON. Sending it again would duplicate it.
			s.log.Warn("pagerduty: event accepted with an unreadable answer", "event", what, "err", err)
			return nil
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("pagerduty %s: %w", what, err)
	}
	return nil
}

func classify(err error) bot.Verdict {
	if ae, ok := errors.AsType[pd.APIError](err); ok {
		return bot.Verdict{Retry: ae.Temporary() || ae.StatusCode == http.StatusRequestTimeout}
	}
	if ae, ok := errors.AsType[pd.EventsAPIV2Error](err); ok {
		return bot.Verdict{Retry: ae.Temporary()}
	}
	// The client flattens transport errors into text ("error calling the API endpoint: …"), so
	// whatever is not an API answer is a network failure: retry it.
	return bot.Verdict{Retry: true}
}

// DedupKey is the stable alert key of failed cleanups on target:
// sessionbot/<target>/cleanup-failed, with a long target name shortened (and made unique by a
// hash) to fit PagerDuty's 255 characters.
func DedupKey(target string) string {
	if target == "" {
		target = "default"
	}
	const prefix, suffix = "sessionbot/", "/cleanup-failed"
	room := maxDedupKey - len(prefix) - len(suffix)
	if utf8.RuneCountInString(target) > room {
		sum := sha256.Sum256([]byte(target))
		h := hex.EncodeToString(sum[:6])
		target = firstRunes(target, room-len(h)-1) + "~" + h
	}
	return prefix + target + suffix
}

// firstRunes returns the first n runes of s.
func firstRunes(s string, n int) string {
	for i := range s {
		if n == 0 {
			return s[:i]
		}
		n--
	}
	return s
}
