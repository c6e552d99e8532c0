// Package slacktest is an in-process fake of the parts of Slack that
// sessionbot talks to: Socket Mode (apps.connections.open and the WebSocket
// that carries envelopes and acks), the Web API methods the bot calls, and
// response URLs. End-to-end tests point the real slack-go client at it with
// slack.OptionAPIURL(srv.APIURL()), push slash commands and button clicks, and
// assert on what reached the fake.
//
// Everything listens on loopback through httptest and is closed by
// t.Cleanup. Methods that take no testing.TB fail the test given to New, so
// call them from the test goroutine.
package slacktest

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// Fixed identities of the fake workspace.
const (
	DefaultTeamID     = "T0FAKETEAM"
	DefaultTeamDomain = "sessionbot-test"
	AppID             = "A0FAKEAPP1"
	BotUserID         = "U0FAKEBOT1"
	BotID             = "B0FAKEBOT1"
)

// Server is a fake Slack. Create it with New.
type Server struct {
	t   testing.TB
	srv *httptest.Server

	appToken     string
	botToken     string
	pingInterval time.Duration
	waitTimeout  time.Duration

	done chan struct{} // closed when the test ends; unblocks delays and sockets
	wg   sync.WaitGroup

	mu sync.Mutex
	// recording
	calls    []Call
	bodies   [][]byte
	respPost []ResponseURLPost
	faults   map[string][]fault
	delays   map[string]time.Duration
	// Socket Mode
	tickets  map[string]bool
	conns    []*conn // live, in connection order
	nextConn int
	route    Route
	rrNext   int
	rng      uint64
	envs     map[string]*envelope
	acks     map[string][]Ack
	respURLs int
	// Web API
	tsSeq      int64
	channels   map[string]string // id -> name ("" for ids never named)
	byName     map[string]string // name (without #) -> id
	messages   map[string][]*Message
	ephemerals []Ephemeral
	users      map[string]User
	groups     map[string][]string
}

// Option configures a Server.
type Option func(*Server)

// WithPingInterval sets how often the fake sends WebSocket pings (default
// 5s). slack-go reconnects after 30s without one.
func WithPingInterval(d time.Duration) Option { return func(s *Server) { s.pingInterval = d } }

// WithTokens replaces the app-level (xapp-) and bot (xoxb-) tokens the fake
// accepts.
func WithTokens(appToken, botToken string) Option {
	return func(s *Server) { s.appToken, s.botToken = appToken, botToken }
}

// WithWaitTimeout sets how long SlashCommand, BlockAction and friends wait for
// a live Socket Mode connection before failing the test (default 10s).
func WithWaitTimeout(d time.Duration) Option { return func(s *Server) { s.waitTimeout = d } }

// New starts a fake Slack on a loopback port; it is closed when the test ends.
func New(t testing.TB, opts ...Option) *Server {
	t.Helper()
	s := &Server{
		t:            t,
		appToken:     "xapp-1-A0FAKEAPP1-1-fakeapptoken",
		botToken:     "xoxb-0000-1111-fakebottoken",
		pingInterval: 5 * time.Second,
		waitTimeout:  10 * time.Second,
		done:         make(chan struct{}),
		faults:       map[string][]fault{},
		delays:       map[string]time.Duration{},
		tickets:      map[string]bool{},
		route:        RoundRobin,
		rng:          uint64(time.Now().UnixNano()) | 1,
		envs:         map[string]*envelope{},
		acks:         map[string][]Ack{},
		channels:     map[string]string{},
		byName:       map[string]string{},
		messages:     map[string][]*Message{},
		users:        map[string]User{},
		groups:       map[string][]string{},
	}
	for _, o := range opts {
		o(s)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/api/{method}", s.serveAPI)
	mux.HandleFunc("/link/", s.serveSocket)
	mux.HandleFunc("/commands/", s.serveResponseURL)
	mux.HandleFunc("/actions/", s.serveResponseURL)
	s.srv = httptest.NewServer(mux)
	t.Cleanup(s.close)
	return s
}

func (s *Server) close() {
	close(s.done)
	s.mu.Lock()
	for _, c := range s.conns {
		_ = c.ws.Close()
	}
	s.mu.Unlock()
	s.srv.CloseClientConnections()
	s.srv.Close()
	s.wg.Wait()
}

// APIURL is the Web API base for slack.OptionAPIURL and SLACK_API_URL; it
// ends in "/".
func (s *Server) APIURL() string { return s.srv.URL + "/api/" }

// URL is the root of the fake.
func (s *Server) URL() string { return s.srv.URL }

// AppToken is the xapp- token apps.connections.open accepts.
func (s *Server) AppToken() string { return s.appToken }

// BotToken is the xoxb- token the Web API methods accept.
func (s *Server) BotToken() string { return s.botToken }

// Call is one request to a Web API method (apps.connections.open included).
type Call struct {
	Method string
	Form   url.Values // query and body; the token field included
	Header http.Header
	Time   time.Time
	Status int // HTTP status the fake answered with
	Error  string
}

// Calls returns the calls of method (for example "chat.update") in arrival
// order, failed and injected-fault ones included.
func (s *Server) Calls(method string) []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Call
	for _, c := range s.calls {
		if c.Method == method {
			out = append(out, c)
		}
	}
	return out
}

// AllCalls returns every Web API call in arrival order.
func (s *Server) AllCalls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.calls)
}

// AllRequestBodies returns every byte the bot sent to the fake: each HTTP
// request's raw query and body (Web API, apps.connections.open, response
// URLs) and each WebSocket frame (acks), in arrival order. A canary test can
// search them all; see also RequestsContaining.
func (s *Server) AllRequestBodies() [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([][]byte, len(s.bodies))
	for i, b := range s.bodies {
		out[i] = slices.Clone(b)
	}
	return out
}

// RequestsContaining returns the recorded bodies that contain needle
// verbatim, JSON-escaped (encoding/json writes "&" as \u0026) or
// percent-encoded (form bodies).
func (s *Server) RequestsContaining(needle string) []string {
	forms := [][]byte{[]byte(needle)}
	for _, html := range []bool{true, false} {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(html)
		_ = enc.Encode(needle)
		forms = append(forms, bytes.Trim(bytes.TrimSpace(buf.Bytes()), `"`))
	}
	var out []string
	for _, b := range s.AllRequestBodies() {
		dec, err := url.QueryUnescape(string(b))
		if err == nil && strings.Contains(dec, needle) {
			out = append(out, string(b))
			continue
		}
		for _, f := range forms {
			if bytes.Contains(b, f) {
				out = append(out, string(b))
				break
			}
		}
	}
	return out
}

func (s *Server) recordBody(b []byte) {
	s.mu.Lock()
	s.bodies = append(s.bodies, slices.Clone(b))
	s.mu.Unlock()
}

// readRequest reads the whole body, records it with the raw query, and
// restores it so that ParseForm still works.
func (s *Server) readRequest(r *http.Request) []byte {
	body, _ := io.ReadAll(r.Body)
	_ = r.Body.Close()
	r.Body = io.NopCloser(bytes.NewReader(body))
	if r.URL.RawQuery != "" {
		s.recordBody([]byte(r.URL.RawQuery))
	}
	s.recordBody(body)
	return body
}

// fault is one injected failure.
type fault struct {
	status     int
	retryAfter time.Duration
	slackError string // when set: HTTP 200 {"ok":false,"error":slackError}
}

// FailNext makes the next n calls of method answer with HTTP status; a
// non-zero retryAfter adds a Retry-After header (whole seconds, rounded up),
// which slack-go turns into *slack.RateLimitedError for 429.
func (s *Server) FailNext(method string, n int, status int, retryAfter time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.faults[method] = append(s.faults[method], fault{status: status, retryAfter: retryAfter})
	}
}

// FailNextError makes the next n calls of method answer HTTP 200
// {"ok":false,"error":slackError}, e.g. "channel_not_found" or, for
// apps.connections.open, "missing_scope".
func (s *Server) FailNextError(method string, n int, slackError string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.faults[method] = append(s.faults[method], fault{slackError: slackError})
	}
}

// Delay holds every later call of method for d before it is answered (0
// removes the delay). The wait ends early when the client gives up.
func (s *Server) Delay(method string, d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.delays[method] = d
}

func (s *Server) takeFault(method string) (fault, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	q := s.faults[method]
	if len(q) == 0 {
		return fault{}, false
	}
	s.faults[method] = q[1:]
	return q[0], true
}

func (s *Server) wait(r *http.Request, method string) {
	s.mu.Lock()
	d := s.delays[method]
	s.mu.Unlock()
	if d <= 0 {
		return
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
	case <-r.Context().Done():
	case <-s.done:
	}
}

// WaitFor polls cond until it returns true, failing the test after timeout.
func WaitFor(t testing.TB, cond func() bool, timeout time.Duration) {
	t.Helper()
	if !poll(cond, timeout) {
		t.Fatalf("condition not met within %v", timeout)
	}
}

// poll reports whether cond became true before timeout.
func poll(cond func() bool, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		<-tick.C
	}
}
