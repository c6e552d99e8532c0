package slacktest

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Message is a message the bot posted, as it stands after later updates.
type Message struct {
	Channel     string // id
	ChannelName string // without "#", when the bot named the channel
	TS          string
	ThreadTS    string
	Text        string
	Blocks      json.RawMessage // nil when the message has none
	Updates     int             // successful chat.update calls
	Deleted     bool
}

// Ephemeral is a message only User saw.
type Ephemeral struct {
	Channel string
	User    string
	TS      string
	Text    string
	Blocks  json.RawMessage
}

// User is a member of the fake directory.
type User struct {
	ID                string
	Name              string
	Email             string
	TeamID            string // DefaultTeamID when empty
	IsRestricted      bool   // multi-channel guest
	IsUltraRestricted bool   // single-channel guest
	Deleted           bool
}

// AddUser adds a user to the directory answered by users.info and
// users.lookupByEmail.
func (s *Server) AddUser(id, name, email string) { s.PutUser(User{ID: id, Name: name, Email: email}) }

// PutUser adds or replaces a user.
func (s *Server) PutUser(u User) {
	if u.TeamID == "" {
		u.TeamID = DefaultTeamID
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.users[u.ID] = u
}

// AddUserGroup sets the members usergroups.users.list returns for id.
func (s *Server) AddUserGroup(id string, members ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.groups[id] = slices.Clone(members)
}

// ChannelID returns the id the fake uses for a channel given as "#name" (a
// stable id derived from the name), for a user id (the bot's DM with that
// user) or as an id (returned unchanged).
func (s *Server) ChannelID(channel string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.resolveChannelLocked(channel)
}

func (s *Server) resolveChannelLocked(ch string) string {
	if name, ok := strings.CutPrefix(ch, "#"); ok {
		if id, ok := s.byName[name]; ok {
			return id
		}
		h := fnv.New32a()
		_, _ = h.Write([]byte(name))
		id := fmt.Sprintf("C0%08X", h.Sum32())
		s.byName[name] = id
		s.channels[id] = name
		return id
	}
	if strings.HasPrefix(ch, "U") || strings.HasPrefix(ch, "W") {
		return "D" + ch[1:] // the bot's DM with that user
	}
	return ch
}

func (s *Server) channelName(id string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.channels[id]
}

// Messages returns the messages in channel (an id or "#name") that are not
// deleted, oldest first, with their latest text and blocks.
func (s *Server) Messages(channel string) []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Message
	for _, m := range s.messages[s.resolveChannelLocked(channel)] {
		if !m.Deleted {
			out = append(out, m.clone())
		}
	}
	return out
}

// Message returns the message ts in channel, deleted ones included.
func (s *Server) Message(channel, ts string) (Message, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if m := s.findLocked(s.resolveChannelLocked(channel), ts); m != nil {
		return m.clone(), true
	}
	return Message{}, false
}

// Ephemerals returns the ephemeral messages shown to user, oldest first.
func (s *Server) Ephemerals(user string) []Ephemeral {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Ephemeral
	for _, e := range s.ephemerals {
		if e.User == user {
			out = append(out, e)
		}
	}
	return out
}

func (m *Message) clone() Message {
	c := *m
	c.Blocks = slices.Clone(m.Blocks)
	return c
}

func (s *Server) findLocked(channel, ts string) *Message {
	for _, m := range s.messages[channel] {
		if m.TS == ts {
			return m
		}
	}
	return nil
}

// nextTSLocked returns increasing message timestamps: 1700000000.000100,
// 1700000000.000200, …
func (s *Server) nextTSLocked() string {
	s.tsSeq += 100
	return fmt.Sprintf("%d.%06d", 1700000000+s.tsSeq/1e6, s.tsSeq%1e6)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, code string) (int, string) {
	writeJSON(w, http.StatusOK, map[string]any{"ok": false, "error": code})
	return http.StatusOK, code
}

// apiResult is a Web API answer: a body to merge with "ok":true, or a Slack
// error code (with optional detail strings for invalid_blocks).
type apiResult struct {
	body    map[string]any
	err     string
	details []string
}

func fail(code string, details ...string) apiResult { return apiResult{err: code, details: details} }

func (s *Server) serveAPI(w http.ResponseWriter, r *http.Request) {
	method := r.PathValue("method")
	body := s.readRequest(r)
	form := url.Values{}
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		var obj map[string]any
		if json.Unmarshal(body, &obj) == nil {
			for k, v := range obj {
				if str, ok := v.(string); ok {
					form.Set(k, str)
				} else {
					raw, _ := json.Marshal(v)
					form.Set(k, string(raw))
				}
			}
		}
		mergeValues(form, r.URL.Query())
	} else if err := r.ParseForm(); err == nil {
		form = r.Form
	}
	call := Call{Method: method, Form: form, Header: r.Header.Clone(), Time: time.Now()}
	call.Status, call.Error = s.answer(w, r, method, form)
	s.mu.Lock()
	s.calls = append(s.calls, call)
	s.mu.Unlock()
}

func mergeValues(dst, src url.Values) {
	for k, v := range src {
		dst[k] = append(dst[k], v...)
	}
}

func (s *Server) answer(w http.ResponseWriter, r *http.Request, method string, form url.Values) (int, string) {
	s.wait(r, method)
	if f, ok := s.takeFault(method); ok {
		if f.slackError != "" {
			return writeError(w, f.slackError)
		}
		if f.retryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(f.retryAfter.Seconds()))))
		}
		if f.status == http.StatusTooManyRequests {
			writeJSON(w, f.status, map[string]any{"ok": false, "error": "ratelimited"})
			return f.status, "ratelimited"
		}
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(f.status)
		_, _ = fmt.Fprintf(w, "<html><body>injected failure %d</body></html>", f.status)
		return f.status, http.StatusText(f.status)
	}
	if method == "apps.connections.open" {
		return s.connectionsOpen(w, r)
	}
	tok := form.Get("token")
	if tok == "" {
		tok, _ = strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	}
	switch {
	case tok == "":
		return writeError(w, "not_authed")
	case tok != s.botToken:
		return writeError(w, "invalid_auth")
	}
	handler, ok := webMethods[method]
	if !ok {
		return writeError(w, "unknown_method")
	}
	s.mu.Lock()
	res := handler(s, form)
	s.mu.Unlock()
	if res.err != "" {
		out := map[string]any{"ok": false, "error": res.err}
		if len(res.details) > 0 {
			out["errors"] = res.details
			msgs := make([]string, len(res.details))
			for i, d := range res.details {
				msgs[i] = "[ERROR] " + d
			}
			out["response_metadata"] = map[string]any{"messages": msgs}
		}
		writeJSON(w, http.StatusOK, out)
		return http.StatusOK, res.err
	}
	res.body["ok"] = true
	writeJSON(w, http.StatusOK, res.body)
	return http.StatusOK, ""
}

// webMethods run with s.mu held.
var webMethods = map[string]func(*Server, url.Values) apiResult{
	"chat.postMessage":      (*Server).postMessage,
	"chat.update":           (*Server).updateMessage,
	"chat.postEphemeral":    (*Server).postEphemeral,
	"chat.delete":           (*Server).deleteMessage,
	"conversations.open":    (*Server).openConversation,
	"users.lookupByEmail":   (*Server).lookupByEmail,
	"users.info":            (*Server).userInfo,
	"usergroups.users.list": (*Server).usergroupMembers,
	"auth.test":             (*Server).authTest,
}

const maxTextLen = 40000

// checkContent validates text and blocks like chat.postMessage does.
func checkContent(f url.Values, needSome bool) (json.RawMessage, apiResult, bool) {
	text := f.Get("text")
	if needSome && text == "" && f.Get("blocks") == "" && f.Get("attachments") == "" {
		return nil, fail("no_text"), false
	}
	if len(text) > maxTextLen {
		return nil, fail("msg_too_long"), false
	}
	if !f.Has("blocks") || f.Get("blocks") == "" {
		return nil, apiResult{}, true
	}
	raw := json.RawMessage(f.Get("blocks"))
	if !json.Valid(raw) {
		return nil, fail("invalid_blocks_format"), false
	}
	if errs := validateBlocks(raw); len(errs) > 0 {
		return nil, fail("invalid_blocks", errs...), false
	}
	return raw, apiResult{}, true
}

func (m *Message) wire() map[string]any {
	out := map[string]any{
		"type":    "message",
		"subtype": "bot_message",
		"text":    m.Text,
		"user":    BotUserID,
		"bot_id":  BotID,
		"app_id":  AppID,
		"team":    DefaultTeamID,
		"ts":      m.TS,
	}
	if len(m.Blocks) > 0 {
		out["blocks"] = m.Blocks
	}
	if m.ThreadTS != "" {
		out["thread_ts"] = m.ThreadTS
	}
	return out
}

func (s *Server) postMessage(f url.Values) apiResult {
	ch := f.Get("channel")
	if ch == "" {
		return fail("channel_not_found")
	}
	blocks, res, ok := checkContent(f, true)
	if !ok {
		return res
	}
	id := s.resolveChannelLocked(ch)
	m := &Message{
		Channel:     id,
		ChannelName: s.channels[id],
		TS:          s.nextTSLocked(),
		ThreadTS:    f.Get("thread_ts"),
		Text:        f.Get("text"),
		Blocks:      blocks,
	}
	s.messages[id] = append(s.messages[id], m)
	return apiResult{body: map[string]any{"channel": id, "ts": m.TS, "message": m.wire()}}
}

func (s *Server) updateMessage(f url.Values) apiResult {
	// chat.update wants a channel id: a "#name" is not found, as in Slack.
	ch, ts := f.Get("channel"), f.Get("ts")
	if ch == "" || strings.HasPrefix(ch, "#") {
		return fail("channel_not_found")
	}
	m := s.findLocked(ch, ts)
	if m == nil || m.Deleted {
		return fail("message_not_found")
	}
	blocks, res, ok := checkContent(f, false)
	if !ok {
		return res
	}
	if f.Has("text") {
		m.Text = f.Get("text")
	}
	if f.Has("blocks") {
		m.Blocks = blocks // "[]" or "" removes them
	}
	m.Updates++
	return apiResult{body: map[string]any{"channel": ch, "ts": ts, "text": m.Text, "message": m.wire()}}
}

func (s *Server) postEphemeral(f url.Values) apiResult {
	ch, user := f.Get("channel"), f.Get("user")
	if ch == "" {
		return fail("channel_not_found")
	}
	if user == "" {
		return fail("user_not_found")
	}
	blocks, res, ok := checkContent(f, true)
	if !ok {
		return res
	}
	e := Ephemeral{Channel: s.resolveChannelLocked(ch), User: user, TS: s.nextTSLocked(), Text: f.Get("text"), Blocks: blocks}
	s.ephemerals = append(s.ephemerals, e)
	return apiResult{body: map[string]any{"message_ts": e.TS}}
}

func (s *Server) deleteMessage(f url.Values) apiResult {
	ch, ts := f.Get("channel"), f.Get("ts")
	m := s.findLocked(ch, ts)
	if m == nil || m.Deleted {
		return fail("message_not_found")
	}
	m.Deleted = true
	return apiResult{body: map[string]any{"channel": ch, "ts": ts}}
}

func (s *Server) openConversation(f url.Values) apiResult {
	if ch := f.Get("channel"); ch != "" {
		return apiResult{body: map[string]any{"channel": map[string]any{"id": ch}, "no_op": true, "already_open": true}}
	}
	users := strings.Split(f.Get("users"), ",")
	if len(users) == 0 || users[0] == "" {
		return fail("users_list_not_supplied")
	}
	if len(users) > 1 {
		h := fnv.New32a()
		_, _ = h.Write([]byte(strings.Join(users, ",")))
		return apiResult{body: map[string]any{"channel": map[string]any{"id": fmt.Sprintf("G0%08X", h.Sum32()), "is_mpim": true}}}
	}
	if _, ok := s.users[users[0]]; !ok && len(s.users) > 0 {
		return fail("user_not_found")
	}
	return apiResult{body: map[string]any{"channel": map[string]any{"id": s.resolveChannelLocked(users[0]), "is_im": true, "user": users[0]}}}
}

func (u User) wire() map[string]any {
	return map[string]any{
		"id":                  u.ID,
		"team_id":             u.TeamID,
		"name":                u.Name,
		"real_name":           u.Name,
		"deleted":             u.Deleted,
		"tz":                  "Europe/Berlin",
		"is_bot":              false,
		"is_admin":            false,
		"is_restricted":       u.IsRestricted,
		"is_ultra_restricted": u.IsUltraRestricted,
		"profile": map[string]any{
			"email":        u.Email,
			"real_name":    u.Name,
			"display_name": u.Name,
			"team":         u.TeamID,
		},
	}
}

func (s *Server) lookupByEmail(f url.Values) apiResult {
	email := f.Get("email")
	for _, u := range s.users {
		if email != "" && strings.EqualFold(u.Email, email) {
			return apiResult{body: map[string]any{"user": u.wire()}}
		}
	}
	return fail("users_not_found")
}

func (s *Server) userInfo(f url.Values) apiResult {
	u, ok := s.users[f.Get("user")]
	if !ok {
		return fail("user_not_found")
	}
	return apiResult{body: map[string]any{"user": u.wire()}}
}

func (s *Server) usergroupMembers(f url.Values) apiResult {
	members, ok := s.groups[f.Get("usergroup")]
	if !ok {
		return fail("no_such_subteam")
	}
	if members == nil {
		members = []string{}
	}
	return apiResult{body: map[string]any{"users": members}}
}

func (s *Server) authTest(url.Values) apiResult {
	return apiResult{body: map[string]any{
		"url":                   "https://" + DefaultTeamDomain + ".slack.com/",
		"team":                  "Sessionbot Test",
		"user":                  "sessionbot",
		"team_id":               DefaultTeamID,
		"user_id":               BotUserID,
		"bot_id":                BotID,
		"is_enterprise_install": false,
	}}
}
