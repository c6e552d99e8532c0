// Package pdtest is an in-process fake of the PagerDuty Events API v2:
// alerts (POST /v2/enqueue) and change events (POST /v2/change/enqueue),
// validated like PagerDuty validates them. Point go-pagerduty at it with
// pagerduty.NewClient("", pagerduty.WithV2EventsAPIEndpoint(srv.URL())).
package pdtest

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/PagerDuty/go-pagerduty"
)

// Paths of the two Events API v2 endpoints.
const (
	AlertPath  = "/v2/enqueue"
	ChangePath = "/v2/change/enqueue"
)

// Server is a fake PagerDuty Events API v2. Create it with New.
type Server struct {
	srv  *httptest.Server
	done chan struct{}

	mu       sync.Mutex
	events   []Event
	changes  []ChangeEvent
	requests []Request
	alerts   map[string]string // routing_key + "\x00" + dedup_key -> status
	faults   map[string][]int
	delays   map[string]time.Duration
}

// Event is an accepted alert event.
type Event struct {
	pagerduty.V2Event
	Raw  json.RawMessage
	Time time.Time
}

// ChangeEvent is an accepted change event.
type ChangeEvent struct {
	pagerduty.ChangeEvent
	Raw  json.RawMessage
	Time time.Time
}

// Request is any request the fake received, refused ones included.
type Request struct {
	Path   string
	Body   []byte
	Status int // HTTP status answered
	Time   time.Time
}

// New starts the fake on a loopback port; it is closed when the test ends.
func New(t testing.TB) *Server {
	t.Helper()
	s := &Server{
		done:   make(chan struct{}),
		alerts: map[string]string{},
		faults: map[string][]int{},
		delays: map[string]time.Duration{},
	}
	mux := http.NewServeMux()
	mux.HandleFunc(AlertPath, s.serve)
	mux.HandleFunc(ChangePath, s.serve)
	s.srv = httptest.NewServer(mux)
	t.Cleanup(func() {
		close(s.done)
		s.srv.CloseClientConnections()
		s.srv.Close()
	})
	return s
}

// URL is the Events API base for WithV2EventsAPIEndpoint and
// PAGERDUTY_EVENTS_URL (no trailing slash; the client appends the path).
func (s *Server) URL() string { return s.srv.URL }

// Events returns the accepted alert events in arrival order.
func (s *Server) Events() []Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.events)
}

// ChangeEvents returns the accepted change events in arrival order.
func (s *Server) ChangeEvents() []ChangeEvent {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.changes)
}

// Requests returns every request to path (AlertPath or ChangePath; "" for
// all), refused and failed ones included.
func (s *Server) Requests(path string) []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Request
	for _, r := range s.requests {
		if path == "" || r.Path == path {
			out = append(out, r)
		}
	}
	return out
}

// AlertStatus is "triggered", "acknowledged" or "resolved" for an alert
// dedup key seen with routingKey, or "" if none was.
func (s *Server) AlertStatus(routingKey, dedupKey string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.alerts[routingKey+"\x00"+dedupKey]
}

// FailNext makes the next n requests to path (AlertPath or ChangePath)
// answer with HTTP status: 429 like PagerDuty's throttling, 5xx as an
// outage. go-pagerduty returns them as pagerduty.APIError.
func (s *Server) FailNext(path string, n int, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.faults[path] = append(s.faults[path], status)
	}
}

// Delay holds every later request to path for d before answering (0
// removes the delay). The wait ends early when the client gives up.
func (s *Server) Delay(path string, d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.delays[path] = d
}

type answer struct {
	Status   string   `json:"status"`
	Message  string   `json:"message"`
	DedupKey string   `json:"dedup_key,omitempty"`
	Errors   []string `json:"errors,omitempty"`
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	status := s.answer(w, r, body)
	s.mu.Lock()
	s.requests = append(s.requests, Request{Path: r.URL.Path, Body: body, Status: status, Time: time.Now()})
	s.mu.Unlock()
}

func (s *Server) answer(w http.ResponseWriter, r *http.Request, body []byte) int {
	path := r.URL.Path
	s.mu.Lock()
	d := s.delays[path]
	var fault int
	if q := s.faults[path]; len(q) > 0 {
		fault, s.faults[path] = q[0], q[1:]
	}
	s.mu.Unlock()
	if d > 0 {
		timer := time.NewTimer(d)
		select {
		case <-timer.C:
		case <-r.Context().Done():
		case <-s.done:
		}
		timer.Stop()
	}
	switch {
	case fault == http.StatusTooManyRequests:
		return reply(w, fault, answer{Status: "throttle event", Message: "Requests for this service are arriving too quickly.  Please retry later."})
	case fault != 0:
		return reply(w, fault, answer{Status: "error", Message: http.StatusText(fault)})
	case r.Method != http.MethodPost:
		return reply(w, http.StatusMethodNotAllowed, answer{Status: "invalid request", Message: "Method not allowed"})
	}
	if path == ChangePath {
		return s.change(w, body)
	}
	return s.alert(w, body)
}

func reply(w http.ResponseWriter, status int, a answer) int {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(a)
	return status
}

func invalid(w http.ResponseWriter, errs []string) int {
	return reply(w, http.StatusBadRequest, answer{Status: "invalid event", Message: "Event object is invalid", Errors: errs})
}

func (s *Server) alert(w http.ResponseWriter, body []byte) int {
	var e pagerduty.V2Event
	if err := json.Unmarshal(body, &e); err != nil {
		return invalid(w, []string{"Invalid JSON: " + err.Error()})
	}
	var errs []string
	if e.RoutingKey == "" {
		errs = append(errs, "'routing_key' is missing or blank")
	}
	switch e.Action {
	case "trigger":
		if e.Payload == nil {
			errs = append(errs, "'payload' is missing or blank")
			break
		}
		errs = append(errs, checkSummary(e.Payload.Summary)...)
		if e.Payload.Source == "" {
			errs = append(errs, "'payload.source' is missing or blank")
		}
		switch e.Payload.Severity {
		case "critical", "error", "warning", "info":
		case "":
			errs = append(errs, "'payload.severity' is missing or blank")
		default:
			errs = append(errs, fmt.Sprintf("'payload.severity' is invalid (%q; expected critical, error, warning or info)", e.Payload.Severity))
		}
		errs = append(errs, checkTimestamp("payload.timestamp", e.Payload.Timestamp)...)
	case "acknowledge", "resolve":
		if e.DedupKey == "" {
			errs = append(errs, "'dedup_key' is missing or blank (required to "+e.Action+")")
		}
	case "":
		errs = append(errs, "'event_action' is missing or blank")
	default:
		errs = append(errs, fmt.Sprintf("'event_action' is invalid (%q; expected trigger, acknowledge or resolve)", e.Action))
	}
	if n := utf8.RuneCountInString(e.DedupKey); n > 255 {
		errs = append(errs, fmt.Sprintf("'dedup_key' is too long (%d characters; at most 255)", n))
	}
	if len(errs) > 0 {
		return invalid(w, errs)
	}
	if e.DedupKey == "" {
		e.DedupKey = newDedupKey()
	}
	s.mu.Lock()
	s.events = append(s.events, Event{V2Event: e, Raw: slices.Clone(body), Time: time.Now()})
	key := e.RoutingKey + "\x00" + e.DedupKey
	switch e.Action {
	case "trigger":
		s.alerts[key] = "triggered"
	case "acknowledge":
		if s.alerts[key] == "triggered" {
			s.alerts[key] = "acknowledged"
		}
	case "resolve":
		if s.alerts[key] != "" {
			s.alerts[key] = "resolved"
		}
	}
	s.mu.Unlock()
	return reply(w, http.StatusAccepted, answer{Status: "success", Message: "Event processed", DedupKey: e.DedupKey})
}

func (s *Server) change(w http.ResponseWriter, body []byte) int {
	var e pagerduty.ChangeEvent
	if err := json.Unmarshal(body, &e); err != nil {
		return invalid(w, []string{"Invalid JSON: " + err.Error()})
	}
	var errs []string
	if e.RoutingKey == "" {
		errs = append(errs, "'routing_key' is missing or blank")
	}
	errs = append(errs, checkSummary(e.Payload.Summary)...)
	errs = append(errs, checkTimestamp("payload.timestamp", e.Payload.Timestamp)...)
	if len(errs) > 0 {
		return invalid(w, errs)
	}
	s.mu.Lock()
	s.changes = append(s.changes, ChangeEvent{ChangeEvent: e, Raw: slices.Clone(body), Time: time.Now()})
	s.mu.Unlock()
	return reply(w, http.StatusAccepted, answer{Status: "success", Message: "Change event processed"})
}

func checkSummary(summary string) []string {
	switch {
	case summary == "":
		return []string{"'payload.summary' is missing or blank"}
	case utf8.RuneCountInString(summary) > 1024:
		return []string{fmt.Sprintf("'payload.summary' is too long (%d characters; at most 1024)", utf8.RuneCountInString(summary))}
	}
	return nil
}

func checkTimestamp(field, ts string) []string {
	if ts == "" {
		return nil
	}
	if _, err := time.Parse(time.RFC3339Nano, ts); err != nil {
		return []string{fmt.Sprintf("'%s' is not a valid ISO 8601 timestamp (%q)", field, ts)}
	}
	return nil
}

func newDedupKey() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
