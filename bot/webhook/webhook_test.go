package webhook_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/platform-team/sessionbot/bot"
	"github.com/platform-team/sessionbot/bot/sinktest"
	"github.com/platform-team/sessionbot/bot/webhook"
	"github.com/platform-team/sessionbot/cleanup"
	"github.com/platform-team/sessionbot/cleanup/redistest"
)

const (
	secret = "whsec-test-0123456789abcdef"
	canary = "CANARY-hook-9b2e-TOKEN"
)

// receiver is an application's webhook endpoint: it checks every request's signature and shape
// and records the events it accepted.
type receiver struct {
	t   *testing.T
	srv *httptest.Server

	mu       sync.Mutex
	status   func(n int) int // the answer to the n-th request (1-based); 0: 200
	hang     bool            // never answer
	requests int
	firstAt  time.Time
	bodies   []string // of every request
	events   []webhook.Event
	problems []string
}

func newReceiver(t *testing.T) *receiver {
	t.Helper()
	r := &receiver{t: t}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	r.requests++
	n := r.requests
	if n == 1 {
		r.firstAt = time.Now()
	}
	r.bodies = append(r.bodies, string(body))
	hang, status := r.hang, 0
	if r.status != nil {
		status = r.status(n)
	}
	r.mu.Unlock()
	if hang {
		<-req.Context().Done()
		return
	}
	if status != 0 {
		http.Error(w, "unavailable", status)
		return
	}
	r.check(req, body)
	w.WriteHeader(http.StatusAccepted)
}

// check verifies one delivered event as a receiver would, and records it.
func (r *receiver) check(req *http.Request, body []byte) {
	var problems []string
	if req.Method != http.MethodPost {
		problems = append(problems, "method "+req.Method)
	}
	if ct := req.Header.Get("Content-Type"); ct != "application/cloudevents+json" {
		problems = append(problems, "Content-Type "+ct)
	}
	sig := req.Header.Get("X-Sessionbot-Signature")
	if !hmac.Equal([]byte(sig), []byte(webhook.Sign([]byte(secret), body))) || !regexp.MustCompile(`^sha256=[0-9a-f]{64}$`).MatchString(sig) {
		problems = append(problems, "bad signature "+sig)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil {
		problems = append(problems, "not JSON: "+err.Error())
	}
	var data map[string]json.RawMessage
	_ = json.Unmarshal(fields["data"], &data)
	if got := slices.Sorted(maps.Keys(data)); !slices.Equal(got, []string{"batch", "batches", "job", "mode", "reason", "scope", "user_ids"}) {
		problems = append(problems, fmt.Sprintf("data fields %v", got))
	}
	var ev webhook.Event
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&ev); err != nil {
		problems = append(problems, "event: "+err.Error())
	}
	if ev.SpecVersion != "1.0" || ev.Type != "com.sessionbot.sessions.revoked" || ev.ID == "" || ev.Subject != ev.Data.Job || ev.Data.Job == "" {
		problems = append(problems, fmt.Sprintf("envelope %+v", ev))
	}
	if _, err := time.Parse(time.RFC3339, ev.Time); err != nil {
		problems = append(problems, "time "+ev.Time)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, ev)
	r.problems = append(r.problems, problems...)
}

func (r *receiver) snapshot() (requests int, events []webhook.Event, bodies []string) {
	r.t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range r.problems {
		r.t.Errorf("receiver: %s", p)
	}
	r.problems = nil
	return r.requests, slices.Clone(r.events), slices.Clone(r.bodies)
}

// sink is the webhook sink for r, retrying quickly.
func (r *receiver) sink(t *testing.T) *webhook.Sink {
	t.Helper()
	s, err := webhook.New(webhook.Config{URL: r.srv.URL + "/hooks/sessions", Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	s.Retry = bot.Retry{Tries: 5, Budget: 10 * time.Second, Attempt: 5 * time.Second, Base: 10 * time.Millisecond, Max: 50 * time.Millisecond}
	return s
}

// user is the user_id of user n.
func user(n int) string { return fmt.Sprintf("auth0|%06d", n) }

// seedSessions writes, for each n in users, one session of user(n) (expired when expired), with
// tokens carrying the canary and an e-mail username.
func seedSessions(t *testing.T, rdb *redis.Client, prefix string, expired bool, users ...int) {
	t.Helper()
	ctx := context.Background()
	exp := time.Now().Add(time.Hour)
	if expired {
		exp = time.Now().Add(-time.Hour)
	}
	pipe := rdb.Pipeline()
	for _, n := range users {
		v, _ := json.Marshal(map[string]any{
			"user_id": user(n), "username": fmt.Sprintf("user%d@example.com", n), "auth_method": "oauth2",
			"created_at": time.Now().Add(-2 * time.Hour).Format(time.RFC3339), "last_activity": time.Now().Add(-time.Hour).Format(time.RFC3339),
			"expires_at": exp.Format(time.RFC3339), "access_token": "eyJ" + canary, "refresh_token": "RT_" + canary,
		})
		pipe.Set(ctx, fmt.Sprintf("session:%s-%06d-5f0c1d2e3a4b", prefix, n), v, 2*time.Hour)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
}

func count(from, to int) []int {
	var out []int
	for n := from; n < to; n++ {
		out = append(out, n)
	}
	return out
}

var jobRe = regexp.MustCompile(`Cleanup Completed \|.*\| Job: (job-[0-9a-f-]+)`)

// 2,500 users lose 2,800 sessions: three signed events (1,000 + 1,000 + 500 user_ids, batch 1…3
// of 3) that name exactly the users signed out, each once — never the users kept, never a token
// or an e-mail address.
func TestRevokedUsersArriveAsSignedCloudEventsInBatches(t *testing.T) {
	r := newReceiver(t)
	rdb := redistest.Standalone(t).Client()
	seedSessions(t, rdb, "a", true, count(0, 2500)...)
	seedSessions(t, rdb, "b", true, count(0, 300)...) // second sessions of 300 users
	seedSessions(t, rdb, "c", false, count(5000, 5040)...)
	res := sinktest.Run(t, rdb, sinktest.Cleanup, bot.NamedSink{Name: "webhook", Sink: r.sink(t)})

	m := jobRe.FindStringSubmatch(res.Audit())
	if m == nil || !strings.Contains(res.Audit(), "Deleted: 2,800") {
		t.Fatalf("no completed cleanup of 2,800 sessions in the audit:\n%s", res.Audit())
	}
	job := m[1]
	requests, events, bodies := r.snapshot()
	if requests != 3 || len(events) != 3 {
		t.Fatalf("%d requests, %d events; want 3 events, each delivered once", requests, len(events))
	}
	var union []string
	ids := map[string]bool{}
	for i, ev := range events {
		d := ev.Data
		if d.Batch != i+1 || d.Batches != 3 || ev.Subject != job || d.Job != job || d.Mode != "execute" || d.Scope != "expired_only" ||
			ev.Source != "sessionbot/sinktest" || ev.DataContentType != "application/json" {
			t.Errorf("event %d = %+v (%d user_ids); want batch %d of 3 of job %s, mode execute, scope expired_only, source sessionbot/sinktest",
				i, ev, len(d.UserIDs), i+1, job)
		}
		if want := []int{1000, 1000, 500}[i]; len(d.UserIDs) != want {
			t.Errorf("event %d has %d user_ids; want %d", i, len(d.UserIDs), want)
		}
		ids[ev.ID] = true
		union = append(union, d.UserIDs...)
	}
	if len(ids) != 3 {
		t.Errorf("event ids %v; want 3 distinct", ids)
	}
	slices.Sort(union)
	var want []string
	for _, n := range count(0, 2500) {
		want = append(want, user(n))
	}
	if !slices.Equal(union, want) {
		t.Errorf("the events name %d user_ids; want exactly the 2,500 users signed out, each once", len(union))
	}
	for _, b := range bodies {
		for _, leak := range []string{canary, "@example.com", user(5000)} {
			if strings.Contains(b, leak) {
				t.Errorf("an event carries %q", leak)
			}
		}
	}
	if strings.Contains(res.Audit(), cleanup.EventNotificationFailed) {
		t.Errorf("delivered events were audited as failed:\n%s", res.Audit())
	}
}

// A 5xx is sent again (the same event, same id) and delivered once; a 4xx other than 408 and 429
// is final: Notification Failed after one request.
func TestReceiverErrors(t *testing.T) {
	for _, tt := range []struct {
		name         string
		status       func(n int) int
		wantRequests int
		wantEvents   int
		wantFailed   string
	}{
		{"503 then 200", func(n int) int { return map[int]int{1: http.StatusServiceUnavailable}[n] }, 2, 1, ""},
		{"429 then 500 then 200", func(n int) int { return map[int]int{1: http.StatusTooManyRequests, 2: 500}[n] }, 3, 1, ""},
		{"400 is final", func(int) int { return http.StatusBadRequest }, 1, 0,
			"Notification Failed | Channel: webhook | Error: webhook event 1 of 1: receiver answered 400 Bad Request | Job: "},
		{"503 for good", func(int) int { return http.StatusServiceUnavailable }, 5, 0,
			"Notification Failed | Channel: webhook | Error: webhook event 1 of 1: retries exhausted after 5 attempts: receiver answered 503 Service Unavailable | Job: "},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := newReceiver(t)
			r.status = tt.status
			rdb := redistest.Standalone(t).Client()
			seedSessions(t, rdb, "a", true, count(0, 10)...)
			res := sinktest.Run(t, rdb, sinktest.Cleanup, bot.NamedSink{Name: "webhook", Sink: r.sink(t)})
			requests, events, bodies := r.snapshot()
			if requests != tt.wantRequests || len(events) != tt.wantEvents {
				t.Errorf("%d requests, %d events accepted; want %d and %d", requests, len(events), tt.wantRequests, tt.wantEvents)
			}
			for _, b := range bodies[1:] {
				if b != bodies[0] {
					t.Errorf("a retry sent another body:\n%s\n%s", bodies[0], b)
				}
			}
			failed := strings.Contains(res.Audit(), cleanup.EventNotificationFailed)
			if tt.wantFailed == "" && failed || tt.wantFailed != "" && !strings.Contains(res.Audit(), tt.wantFailed) {
				t.Errorf("audit:\n%s\nwant Notification Failed: %q", res.Audit(), tt.wantFailed)
			}
			if !strings.Contains(res.Audit(), "| Cleanup Completed | Deleted: 10 |") {
				t.Errorf("the cleanup is not audited as completed:\n%s", res.Audit())
			}
		})
	}
}

// A receiver that never answers holds up nothing: the cleanup's report is shown before the first
// event is even sent, each attempt times out, and when the retry window has passed the failure
// is audited and shown in the job's thread.
func TestHangingReceiverNeverHoldsUpTheCleanup(t *testing.T) {
	r := newReceiver(t)
	r.hang = true
	rdb := redistest.Standalone(t).Client()
	seedSessions(t, rdb, "a", true, count(0, 10)...)
	s := r.sink(t)
	const window = 1500 * time.Millisecond
	s.Retry = bot.Retry{Tries: 100, Budget: window, Attempt: 300 * time.Millisecond, Base: 50 * time.Millisecond, Max: 100 * time.Millisecond}
	start := time.Now()
	res := sinktest.Run(t, rdb, sinktest.Cleanup, bot.NamedSink{Name: "webhook", Sink: s})
	elapsed := time.Since(start)

	reported := res.PrintedAt("Cleanup completed: expired_only")
	requests, _, _ := r.snapshot()
	r.mu.Lock()
	first := r.firstAt
	r.mu.Unlock()
	if reported.IsZero() || first.IsZero() || reported.After(first) {
		t.Errorf("report shown at %v, first event sent at %v; want the report first", reported, first)
	}
	if requests < 2 {
		t.Errorf("%d requests; want the timed-out event retried", requests)
	}
	// The retries give up as soon as the next wait (at most Max) would not fit in the window.
	if elapsed < window-s.Retry.Max || elapsed > window+10*time.Second {
		t.Errorf("notifications took %v; want the retry window (%v, less at most one wait of %v), not more", elapsed, window, s.Retry.Max)
	}
	want := "Notification Failed | Channel: webhook | Error: webhook event 1 of 1: retries exhausted after"
	if !strings.Contains(res.Audit(), want) || !strings.Contains(res.Audit(), "context deadline exceeded") {
		t.Errorf("audit lacks %q (a timeout):\n%s", want, res.Audit())
	}
	if !strings.Contains(res.Output(), "Notification failed") {
		t.Errorf("the failure is not shown in the job's thread:\n%s", res.Output())
	}
	if strings.Contains(res.Audit()+res.Output(), "/hooks/sessions") {
		t.Error("a reported failure shows the receiver's URL")
	}
}

// When an event is given up on, the run's later events are not sent, and the failure says so.
func TestLaterEventsAreNotSentOnceTheReceiverIsDown(t *testing.T) {
	r := newReceiver(t)
	r.status = func(n int) int {
		if n == 1 {
			return 0
		}
		return http.StatusBadGateway
	}
	s := r.sink(t)
	s.Retry.Tries = 2
	ids := make([]string, 2500)
	for i := range ids {
		ids[i] = user(i)
	}
	o := bot.JobOutcome{JobID: "job-1", Mode: "all", Scope: "all", Report: cleanup.Report{Deleted: 2600}, UserIDs: ids, At: time.Now()}
	err := s.Deliver(context.Background(), o)
	if err == nil || !strings.Contains(err.Error(), "webhook event 2 of 3: retries exhausted after 2 attempts") ||
		!strings.Contains(err.Error(), "the 1 later events were not sent") {
		t.Errorf("Deliver = %v; want event 2 of 3 given up on and event 3 not sent", err)
	}
	if requests, events, _ := r.snapshot(); requests != 3 || len(events) != 1 {
		t.Errorf("%d requests, %d events; want event 1 delivered, event 2 tried twice, event 3 never", requests, len(events))
	}
}

// Only runs that deleted sessions and know whose send events.
func TestNoEventsForRunsThatSignedNobodyOut(t *testing.T) {
	r := newReceiver(t)
	s := r.sink(t)
	base := bot.JobOutcome{JobID: "job-1", Mode: "execute", Scope: "expired_only", Report: cleanup.Report{Deleted: 5}, UserIDs: []string{user(1)}, At: time.Now()}
	restore := base
	restore.Mode = "restore"
	none := base
	none.Report.Deleted = 0
	unknown := base
	unknown.UserIDs = nil
	for _, o := range []bot.JobOutcome{restore, none, unknown} {
		if err := s.Deliver(context.Background(), o); err != nil {
			t.Fatal(err)
		}
	}
	malformedOnly := base
	malformedOnly.UserIDs = []string{}
	if err := s.Deliver(context.Background(), malformedOnly); err != nil {
		t.Fatal(err)
	}
	requests, events, bodies := r.snapshot()
	if requests != 1 || len(events) != 1 || !strings.Contains(bodies[0], `"user_ids":[]`) || events[0].Data.Batches != 1 {
		t.Errorf("%d requests %q; want one event with no user_ids, for the run that deleted only undecodable sessions", requests, bodies)
	}
}

func TestConfigValidateNamesTheVariable(t *testing.T) {
	for _, tt := range []struct {
		name string
		cfg  webhook.Config
		want []string
	}{
		{"off", webhook.Config{}, nil},
		{"on", webhook.Config{URL: "https://app.example.com/hooks/sessionbot", Secret: secret}, nil},
		{"no secret", webhook.Config{URL: "https://app.example.com/hooks"}, []string{"NOTIFY_WEBHOOK_SECRET: required with NOTIFY_WEBHOOK_URL"}},
		{"not http", webhook.Config{URL: "ftp://app.example.com/hooks", Secret: secret}, []string{`NOTIFY_WEBHOOK_URL "ftp://app.example.com/hooks" must be an http(s) URL`}},
		{"credentials", webhook.Config{URL: "https://u:p@app.example.com/hooks", Secret: secret}, []string{"NOTIFY_WEBHOOK_URL must not carry credentials"}},
		{"secret without URL", webhook.Config{Secret: secret}, []string{"NOTIFY_WEBHOOK_SECRET: set, but NOTIFY_WEBHOOK_URL is not"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v; want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil; want %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %q; want a line with %q", err, w)
				}
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("Validate() shows the secret: %v", err)
			}
		})
	}
}
