package bot

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

	"github.com/PagerDuty/go-pagerduty"
)

// pagerDutyEvents is the part of *pagerduty.Client the notifier uses.
type pagerDutyEvents interface {
	ManageEventWithContext(ctx context.Context, e *pagerduty.V2Event) (*pagerduty.V2EventResponse, error)
	CreateChangeEventWithContext(ctx context.Context, e pagerduty.ChangeEvent) (*pagerduty.ChangeEventResponse, error)
}

var _ pagerDutyEvents = (*pagerduty.Client)(nil)

// PagerDuty limits the Events API v2 enforces (the library checks none of them).
const (
	maxPDSummary  = 1024
	maxPDDedupKey = 255
)

// PagerDuty severities.
const (
	SeverityCritical = "critical"
	SeverityError    = "error"
)

// PagerDuty sends change events and alerts to one Events API v2 integration. Calls are retried
// on 429, 5xx and timeouts (4 tries within 30 s); a 400 is final.
type PagerDuty struct {
	client pagerDutyEvents
	key    Secret
	retry  retryPolicy
	log    *slog.Logger
}

// NewPagerDuty returns a client for cfg's routing key and events URL, or nil when no routing key
// is set (PagerDuty disabled).
func NewPagerDuty(cfg SlackConfig, log *slog.Logger) *PagerDuty {
	if !cfg.PagerDutyEnabled() {
		return nil
	}
	if log == nil {
		log = slog.Default()
	}
	return &PagerDuty{
		client: pagerduty.NewClient("", pagerduty.WithV2EventsAPIEndpoint(cfg.PagerDutyEventsURL)),
		key:    cfg.PagerDutyRoutingKey,
		retry:  defaultRetry,
		log:    log,
	}
}

// PDLink is a link shown on a PagerDuty event.
type PDLink struct{ Href, Text string }

// Change sends a change event (POST /v2/change/enqueue).
func (p *PagerDuty) Change(ctx context.Context, summary, source string, at time.Time, details map[string]any, links []PDLink) error {
	ev := pagerduty.ChangeEvent{
		RoutingKey: p.key.Reveal(),
		Payload: pagerduty.ChangeEventPayload{
			Summary:       truncate(summary, maxPDSummary),
			Source:        source,
			Timestamp:     at.UTC().Format(time.RFC3339),
			CustomDetails: details,
		},
	}
	for _, l := range links {
		ev.Links = append(ev.Links, pagerduty.ChangeEventLink{Href: l.Href, Text: l.Text})
	}
	return p.send(ctx, "change event", func(ctx context.Context) error {
		_, err := p.client.CreateChangeEventWithContext(ctx, ev)
		return err
	})
}

// Trigger opens (or updates) the alert dedupKey (POST /v2/enqueue, event_action trigger).
func (p *PagerDuty) Trigger(ctx context.Context, dedupKey, summary, source, severity string, at time.Time, details map[string]any, links []PDLink) error {
	ev := &pagerduty.V2Event{
		RoutingKey: p.key.Reveal(),
		Action:     "trigger",
		DedupKey:   dedupKey,
		Client:     "sessionbot",
		Payload: &pagerduty.V2Payload{
			Summary:   truncate(summary, maxPDSummary),
			Source:    source,
			Severity:  severity,
			Timestamp: at.UTC().Format(time.RFC3339),
			Component: "sessionbot",
			Class:     "session-cleanup",
			Details:   details,
		},
	}
	for _, l := range links {
		ev.Links = append(ev.Links, map[string]string{"href": l.Href, "text": l.Text})
		if ev.ClientURL == "" {
			ev.ClientURL = l.Href
		}
	}
	return p.send(ctx, "alert", func(ctx context.Context) error {
		_, err := p.client.ManageEventWithContext(ctx, ev)
		return err
	})
}

// Resolve resolves the alert dedupKey. PagerDuty accepts resolving a key with no open alert and
// does nothing, which keeps this correct across replicas and restarts without shared state.
func (p *PagerDuty) Resolve(ctx context.Context, dedupKey string) error {
	ev := &pagerduty.V2Event{RoutingKey: p.key.Reveal(), Action: "resolve", DedupKey: dedupKey}
	return p.send(ctx, "resolve", func(ctx context.Context) error {
		_, err := p.client.ManageEventWithContext(ctx, ev)
		return err
	})
}

func (p *PagerDuty) send(ctx context.Context, what string, f func(ctx context.Context) error) error {
	err := p.retry.do(ctx, classifyPagerDuty, func(ctx context.Context) error {
		err := f(ctx)
		if _, ok := errors.AsType[*json.SyntaxError](err); ok {
			// Only a 2xx body is decoded: the event was accepted, its answer was just not
			// JSON. Sending it again would duplicate it.
			p.log.Warn("pagerduty: event accepted with an unreadable answer", "event", what, "err", err)
			return nil
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("pagerduty %s: %w", what, err)
	}
	return nil
}

func classifyPagerDuty(err error) verdict {
	if ae, ok := errors.AsType[pagerduty.APIError](err); ok {
		return verdict{retry: ae.Temporary() || ae.StatusCode == http.StatusRequestTimeout}
	}
	if ae, ok := errors.AsType[pagerduty.EventsAPIV2Error](err); ok {
		return verdict{retry: ae.Temporary()}
	}
	// The client flattens transport errors into text ("error calling the API endpoint: …"), so
	// whatever is not an API answer is a network failure: retry it.
	return verdict{retry: true}
}

// DedupKey is the stable alert key of failed cleanups on target:
// sessionbot/<target>/cleanup-failed, with a long target name shortened (and made unique by a
// hash) to fit PagerDuty's 255 characters.
func DedupKey(target string) string {
	if target == "" {
		target = "default"
	}
	const prefix, suffix = "sessionbot/", "/cleanup-failed"
	room := maxPDDedupKey - len(prefix) - len(suffix)
	if len(target) > room {
		sum := sha256.Sum256([]byte(target))
		h := hex.EncodeToString(sum[:6])
		target = target[:cutIndex(target, room-len(h)-1)] + "~" + h
	}
	return prefix + target + suffix
}
