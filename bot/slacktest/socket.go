package slacktest

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// Route chooses the Socket Mode connection that receives the next envelope.
// Slack spreads envelopes over an app's connections at random, so with two
// bot replicas a click may reach the one that did not post the message.
type Route int

const (
	// RoundRobin cycles over the live connections (the default).
	RoundRobin Route = -1
	// RandomConnection picks a live connection at random.
	RandomConnection Route = -2
)

// Connection routes every envelope to the i-th live connection, counting
// from 0 in the order the connections were opened.
func Connection(i int) Route { return Route(i) }

// SetRoute sets how later envelopes (redeliveries included) are routed.
func (s *Server) SetRoute(r Route) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.route = r
}

// Ack is one acknowledgement the bot sent over a Socket Mode connection.
type Ack struct {
	EnvelopeID string
	Payload    json.RawMessage // nil when the ack carried none
	ConnID     int             // see Envelope.ConnIDs
	Time       time.Time
}

// Envelope is one envelope the fake sent, as last (re)delivered.
type Envelope struct {
	ID           string
	Type         string // slash_commands or interactive
	Payload      json.RawMessage
	RetryAttempt int
	// ConnIDs lists, per delivery, the id of the connection that got it.
	// Connection ids count from 1 in opening order and are never reused.
	ConnIDs []int
}

type envelope struct {
	Envelope
}

type conn struct {
	id int
	ws *websocket.Conn
	wm sync.Mutex // gorilla/websocket allows one concurrent writer
}

func (c *conn) writeJSON(v any) error {
	c.wm.Lock()
	defer c.wm.Unlock()
	_ = c.ws.SetWriteDeadline(time.Now().Add(5 * time.Second))
	return c.ws.WriteJSON(v)
}

var upgrader = websocket.Upgrader{
	// slack-go sends Origin: https://api.slack.com.
	CheckOrigin: func(*http.Request) bool { return true },
}

func randomID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	h := hex.EncodeToString(b)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// connectionsOpen answers apps.connections.open, which needs the app token
// as a Bearer header.
func (s *Server) connectionsOpen(w http.ResponseWriter, r *http.Request) (status int, slackErr string) {
	auth := r.Header.Get("Authorization")
	tok, ok := strings.CutPrefix(auth, "Bearer ")
	switch {
	case !ok || tok == "":
		return writeError(w, "not_authed")
	case tok != s.appToken:
		return writeError(w, "invalid_auth")
	}
	ticket := randomID()
	s.mu.Lock()
	s.tickets[ticket] = true
	s.mu.Unlock()
	u := "ws" + strings.TrimPrefix(s.srv.URL, "http") + "/link/?ticket=" + ticket + "&app_id=" + AppID
	writeJSON(w, http.StatusOK, map[string]any{"ok": true, "url": u})
	return http.StatusOK, ""
}

func (s *Server) serveSocket(w http.ResponseWriter, r *http.Request) {
	ticket := r.URL.Query().Get("ticket")
	s.mu.Lock()
	valid := s.tickets[ticket]
	delete(s.tickets, ticket) // a ticket opens one connection
	s.mu.Unlock()
	if !valid {
		http.Error(w, "invalid ticket", http.StatusUnauthorized)
		return
	}
	ws, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	s.mu.Lock()
	select {
	case <-s.done:
		s.mu.Unlock()
		_ = ws.Close()
		return
	default:
	}
	s.nextConn++
	c := &conn{id: s.nextConn, ws: ws}
	s.wg.Add(2)
	s.mu.Unlock()
	defer s.wg.Done()

	// Register only after hello, so envelopes never precede it.
	err = c.writeJSON(map[string]any{
		"type":            "hello",
		"num_connections": s.LiveConnections() + 1,
		"debug_info": map[string]any{
			"host":                        "applink-fake-1",
			"build_number":                1,
			"approximate_connection_time": 18060,
		},
		"connection_info": map[string]any{"app_id": AppID},
	})
	s.mu.Lock()
	if err == nil {
		s.conns = append(s.conns, c)
		select {
		case <-s.done: // close() may have missed this connection
			_ = ws.Close()
		default:
		}
	}
	s.mu.Unlock()

	stopPing := make(chan struct{})
	go func() {
		defer s.wg.Done()
		s.ping(c, stopPing)
	}()
	defer close(stopPing)
	defer s.removeConn(c)
	defer ws.Close()
	if err != nil {
		return
	}

	for {
		_, frame, err := ws.ReadMessage()
		if err != nil {
			return
		}
		s.recordBody(frame)
		var ack struct {
			EnvelopeID string          `json:"envelope_id"`
			Payload    json.RawMessage `json:"payload"`
		}
		if json.Unmarshal(frame, &ack) != nil || ack.EnvelopeID == "" {
			continue
		}
		s.mu.Lock()
		s.acks[ack.EnvelopeID] = append(s.acks[ack.EnvelopeID], Ack{
			EnvelopeID: ack.EnvelopeID,
			Payload:    ack.Payload,
			ConnID:     c.id,
			Time:       time.Now(),
		})
		s.mu.Unlock()
	}
}

func (s *Server) ping(c *conn, stop <-chan struct{}) {
	tick := time.NewTicker(s.pingInterval)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-s.done:
			return
		case <-tick.C:
			if c.ws.WriteControl(websocket.PingMessage, []byte("ping"), time.Now().Add(5*time.Second)) != nil {
				return
			}
		}
	}
}

func (s *Server) removeConn(c *conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, x := range s.conns {
		if x == c {
			s.conns = append(s.conns[:i], s.conns[i+1:]...)
			return
		}
	}
}

// LiveConnections is the number of open Socket Mode connections.
func (s *Server) LiveConnections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// LiveConnectionIDs returns the ids of the open connections in opening
// order. Ids count from 1 and are never reused, so a test can tell a
// reconnection from the connection it replaced.
func (s *Server) LiveConnectionIDs() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := make([]int, len(s.conns))
	for i, c := range s.conns {
		ids[i] = c.id
	}
	return ids
}

// WaitConnections waits until at least n Socket Mode connections are open.
func (s *Server) WaitConnections(t testing.TB, n int, timeout time.Duration) {
	t.Helper()
	if !poll(func() bool { return s.LiveConnections() >= n }, timeout) {
		t.Fatalf("slacktest: %d live Socket Mode connections after %v; want %d", s.LiveConnections(), timeout, n)
	}
}

// pick chooses the connection for the next delivery, waiting for one to be
// open.
func (s *Server) pick() *conn {
	var c *conn
	ok := poll(func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		n := len(s.conns)
		switch {
		case s.route == RoundRobin && n > 0:
			c = s.conns[s.rrNext%n]
			s.rrNext++
		case s.route == RandomConnection && n > 0:
			// xorshift: no shared math/rand state, good enough for spreading.
			s.rng ^= s.rng << 13
			s.rng ^= s.rng >> 7
			s.rng ^= s.rng << 17
			c = s.conns[s.rng%uint64(n)]
		case s.route >= 0 && int(s.route) < n:
			c = s.conns[s.route]
		}
		return c != nil
	}, s.waitTimeout)
	if !ok {
		return nil
	}
	return c
}

// deliver sends env over a live connection, failing the test when none is
// open within the wait timeout.
func (s *Server) deliver(env *envelope, retryReason string) {
	s.t.Helper()
	frame := map[string]any{
		"envelope_id":              env.ID,
		"type":                     env.Type,
		"payload":                  env.Payload,
		"accepts_response_payload": env.Type == "slash_commands",
		"retry_attempt":            env.RetryAttempt,
		"retry_reason":             retryReason,
	}
	deadline := time.Now().Add(s.waitTimeout)
	for time.Now().Before(deadline) {
		c := s.pick()
		if c == nil {
			break
		}
		if err := c.writeJSON(frame); err != nil {
			// The connection died under us: forget it and try another.
			s.removeConn(c)
			continue
		}
		s.mu.Lock()
		env.ConnIDs = append(env.ConnIDs, c.id)
		s.mu.Unlock()
		return
	}
	s.mu.Lock()
	route := s.route
	s.mu.Unlock()
	s.t.Fatalf("slacktest: no live Socket Mode connection (route %v) to deliver envelope %s within %v", route, env.ID, s.waitTimeout)
}

func (s *Server) newEnvelope(typ string, payload any) string {
	s.t.Helper()
	raw, err := json.Marshal(payload)
	if err != nil {
		s.t.Fatalf("slacktest: marshal %s payload: %v", typ, err)
	}
	env := &envelope{Envelope{ID: randomID(), Type: typ, Payload: raw}}
	s.mu.Lock()
	s.envs[env.ID] = env
	s.mu.Unlock()
	s.deliver(env, "")
	return env.ID
}

// Redeliver sends envelopeID again, as Slack does when an ack is late, with
// retry_attempt incremented and retry_reason "timeout". Routing applies, so
// the retry may reach another connection.
func (s *Server) Redeliver(envelopeID string) {
	s.t.Helper()
	s.mu.Lock()
	env, ok := s.envs[envelopeID]
	if ok {
		env.RetryAttempt++
	}
	s.mu.Unlock()
	if !ok {
		s.t.Fatalf("slacktest: Redeliver(%q): unknown envelope", envelopeID)
	}
	s.deliver(env, "timeout")
}

// Envelope returns the envelope sent with id.
func (s *Server) Envelope(id string) (Envelope, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	env, ok := s.envs[id]
	if !ok {
		return Envelope{}, false
	}
	e := env.Envelope
	e.ConnIDs = append([]int(nil), e.ConnIDs...)
	return e, true
}

// Disconnect sends {"type":"disconnect","reason":reason} on every live
// connection, as Slack does before it recycles them ("warning",
// "refresh_requested", "link_disabled"). slack-go reconnects through
// apps.connections.open.
func (s *Server) Disconnect(reason string) {
	s.mu.Lock()
	conns := append([]*conn(nil), s.conns...)
	s.mu.Unlock()
	for _, c := range conns {
		_ = c.writeJSON(map[string]any{
			"type":       "disconnect",
			"reason":     reason,
			"debug_info": map[string]any{"host": "applink-fake-1"},
		})
	}
}

// DropConnections closes every live socket abruptly, without a close frame.
func (s *Server) DropConnections() {
	s.mu.Lock()
	conns := s.conns
	s.conns = nil
	s.mu.Unlock()
	for _, c := range conns {
		_ = c.ws.Close()
	}
}

// Acks returns how many acks envelopeID received.
func (s *Server) Acks(envelopeID string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.acks[envelopeID])
}

// AckList returns the acks envelopeID received, in order.
func (s *Server) AckList(envelopeID string) []Ack {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Ack(nil), s.acks[envelopeID]...)
}

// WaitAck waits for the first ack of envelopeID and returns it, failing the
// test after timeout.
func (s *Server) WaitAck(t testing.TB, envelopeID string, timeout time.Duration) Ack {
	t.Helper()
	var a Ack
	ok := poll(func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		if l := s.acks[envelopeID]; len(l) > 0 {
			a = l[0]
			return true
		}
		return false
	}, timeout)
	if !ok {
		t.Fatalf("slacktest: envelope %s not acked within %v", envelopeID, timeout)
	}
	return a
}

// String describes a Route for failure messages.
func (r Route) String() string {
	switch r {
	case RoundRobin:
		return "round-robin"
	case RandomConnection:
		return "random"
	}
	return fmt.Sprintf("connection %d", int(r))
}
