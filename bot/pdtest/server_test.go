package pdtest_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/PagerDuty/go-pagerduty"

	"github.com/platform-team/sessionbot/bot/pdtest"
)

const routingKey = "R0UT1NGKEY0000000000000000000000"

func trigger(summary string) *pagerduty.V2Event {
	return &pagerduty.V2Event{
		RoutingKey: routingKey,
		Action:     "trigger",
		DedupKey:   "sessionbot/redis-main/cleanup-failed",
		Payload: &pagerduty.V2Payload{
			Summary:  summary,
			Source:   "sessionbot",
			Severity: "error",
			Details:  map[string]any{"requester": "U123"},
		},
	}
}

func TestAlertLifecycleThroughGoPagerDuty(t *testing.T) {
	srv := pdtest.New(t)
	client := pagerduty.NewClient("", pagerduty.WithV2EventsAPIEndpoint(srv.URL()))
	ctx := context.Background()

	resp, err := client.ManageEventWithContext(ctx, trigger("cleanup failed: mode=all, 0/1,000 deleted"))
	if err != nil {
		t.Fatalf("ManageEventWithContext(trigger): %v", err)
	}
	if resp.Status != "success" || resp.DedupKey != "sessionbot/redis-main/cleanup-failed" || resp.Message != "Event processed" {
		t.Errorf("response = %+v", resp)
	}
	if got := srv.AlertStatus(routingKey, resp.DedupKey); got != "triggered" {
		t.Errorf("AlertStatus = %q; want triggered", got)
	}
	if _, err := client.ManageEventWithContext(ctx, &pagerduty.V2Event{RoutingKey: routingKey, Action: "resolve", DedupKey: resp.DedupKey}); err != nil {
		t.Fatalf("resolve: %v", err)
	}
	if got := srv.AlertStatus(routingKey, resp.DedupKey); got != "resolved" {
		t.Errorf("AlertStatus after resolve = %q; want resolved", got)
	}
	events := srv.Events()
	if len(events) != 2 || events[0].Payload.Summary != "cleanup failed: mode=all, 0/1,000 deleted" ||
		events[0].Payload.Details.(map[string]any)["requester"] != "U123" || !strings.Contains(string(events[0].Raw), `"routing_key"`) {
		t.Errorf("Events() = %+v", events)
	}

	noKey := trigger("x")
	noKey.DedupKey = ""
	resp, err = client.ManageEventWithContext(ctx, noKey)
	if err != nil || len(resp.DedupKey) != 32 {
		t.Errorf("trigger without dedup_key = %+v, %v; want a generated key", resp, err)
	}
}

func TestInvalidEventsAreRefused(t *testing.T) {
	srv := pdtest.New(t)
	client := pagerduty.NewClient("", pagerduty.WithV2EventsAPIEndpoint(srv.URL()))
	tests := []struct {
		name   string
		modify func(*pagerduty.V2Event)
	}{
		{"no routing key", func(e *pagerduty.V2Event) { e.RoutingKey = "" }},
		{"bad action", func(e *pagerduty.V2Event) { e.Action = "escalate" }},
		{"no summary", func(e *pagerduty.V2Event) { e.Payload.Summary = "" }},
		{"summary over 1024", func(e *pagerduty.V2Event) { e.Payload.Summary = strings.Repeat("s", 1025) }},
		{"no source", func(e *pagerduty.V2Event) { e.Payload.Source = "" }},
		{"bad severity", func(e *pagerduty.V2Event) { e.Payload.Severity = "Error" }},
		{"no payload", func(e *pagerduty.V2Event) { e.Payload = nil }},
		{"dedup key over 255", func(e *pagerduty.V2Event) { e.DedupKey = strings.Repeat("k", 256) }},
		{"resolve without dedup key", func(e *pagerduty.V2Event) { e.Action, e.DedupKey = "resolve", "" }},
		{"bad timestamp", func(e *pagerduty.V2Event) { e.Payload.Timestamp = "yesterday" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := trigger("summary")
			tt.modify(e)
			_, err := client.ManageEventWithContext(context.Background(), e)
			var apiErr pagerduty.APIError
			if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusBadRequest || apiErr.Temporary() {
				t.Errorf("ManageEventWithContext = %v; want APIError 400, not temporary", err)
			}
		})
	}
	if n := len(srv.Events()); n != 0 {
		t.Errorf("%d refused events recorded as accepted", n)
	}
	reqs := srv.Requests(pdtest.AlertPath)
	if len(reqs) != len(tests) || !strings.Contains(string(reqs[0].Body), "trigger") || reqs[0].Status != http.StatusBadRequest {
		t.Errorf("Requests = %d (first %+v); want %d refused", len(reqs), reqs[0], len(tests))
	}
}

func TestChangeEvents(t *testing.T) {
	srv := pdtest.New(t)
	client := pagerduty.NewClient("", pagerduty.WithV2EventsAPIEndpoint(srv.URL()))
	ctx := context.Background()

	ce := pagerduty.ChangeEvent{
		RoutingKey: routingKey,
		Payload: pagerduty.ChangeEventPayload{
			Summary:       "sessionbot cleanup: mode=expired, deleted 45, kept 105",
			Source:        "sessionbot",
			Timestamp:     time.Now().UTC().Format(time.RFC3339),
			CustomDetails: map[string]any{"approver": "U456"},
		},
		Links: []pagerduty.ChangeEventLink{{Href: "https://slack.example/archives/C1/p1", Text: "Slack thread"}},
	}
	resp, err := client.CreateChangeEventWithContext(ctx, ce)
	if err != nil || resp.Status != "success" {
		t.Fatalf("CreateChangeEventWithContext = %+v, %v", resp, err)
	}
	got := srv.ChangeEvents()
	if len(got) != 1 || got[0].Payload.Summary != ce.Payload.Summary || got[0].Payload.CustomDetails["approver"] != "U456" || got[0].Links[0].Href != ce.Links[0].Href {
		t.Errorf("ChangeEvents() = %+v", got)
	}

	ce.Payload.Summary = ""
	_, err = client.CreateChangeEventWithContext(ctx, ce)
	var apiErr pagerduty.APIError
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusBadRequest {
		t.Errorf("change event without summary: %v; want APIError 400", err)
	}
}

func TestFaultsComeBackAsRetryableAPIErrors(t *testing.T) {
	srv := pdtest.New(t)
	client := pagerduty.NewClient("", pagerduty.WithV2EventsAPIEndpoint(srv.URL()))
	ctx := context.Background()

	srv.FailNext(pdtest.AlertPath, 1, http.StatusTooManyRequests)
	srv.FailNext(pdtest.ChangePath, 1, http.StatusInternalServerError)

	_, err := client.ManageEventWithContext(ctx, trigger("x"))
	var apiErr pagerduty.APIError
	if !errors.As(err, &apiErr) || !apiErr.RateLimited() || !apiErr.Temporary() {
		t.Errorf("after 429: %v; want APIError with RateLimited() and Temporary()", err)
	}
	ce := pagerduty.ChangeEvent{RoutingKey: routingKey, Payload: pagerduty.ChangeEventPayload{Summary: "x"}}
	_, err = client.CreateChangeEventWithContext(ctx, ce)
	if !errors.As(err, &apiErr) || apiErr.RateLimited() || !apiErr.Temporary() || apiErr.StatusCode != http.StatusInternalServerError {
		t.Errorf("after 500: %v; want temporary APIError 500", err)
	}
	// The faults are used up: retries succeed and are recorded once.
	if _, err := client.ManageEventWithContext(ctx, trigger("x")); err != nil {
		t.Errorf("retry: %v", err)
	}
	if _, err := client.CreateChangeEventWithContext(ctx, ce); err != nil {
		t.Errorf("retry: %v", err)
	}
	if len(srv.Events()) != 1 || len(srv.ChangeEvents()) != 1 || len(srv.Requests("")) != 4 {
		t.Errorf("accepted %d alerts, %d changes of %d requests; want 1, 1, 4", len(srv.Events()), len(srv.ChangeEvents()), len(srv.Requests("")))
	}

	srv.Delay(pdtest.ChangePath, time.Minute)
	tctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := client.CreateChangeEventWithContext(tctx, ce); !errors.Is(err, context.DeadlineExceeded) && (err == nil || !strings.Contains(err.Error(), "deadline exceeded")) {
		t.Errorf("delayed change event: %v; want deadline exceeded", err)
	}
}
