package slacktest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// SlashCommand is what a user typed. Empty TeamID means DefaultTeamID.
type SlashCommand struct {
	TeamID      string
	UserID      string
	UserName    string
	ChannelID   string
	ChannelName string // optional
	Command     string // e.g. "/sessions"
	Text        string
	// ResponseURL is filled by the fake with a URL on itself that records
	// posts (see ResponseURLPosts) unless set.
	ResponseURL string
}

// SlashCommand delivers a slash_commands envelope shaped like Slack's and
// returns its envelope id.
func (s *Server) SlashCommand(cmd SlashCommand) string {
	s.t.Helper()
	if cmd.TeamID == "" {
		cmd.TeamID = DefaultTeamID
	}
	if cmd.ResponseURL == "" {
		cmd.ResponseURL = s.newResponseURL("commands", cmd.TeamID)
	}
	if cmd.ChannelName == "" {
		cmd.ChannelName = s.channelName(cmd.ChannelID)
	}
	return s.newEnvelope("slash_commands", map[string]any{
		"token":                 "fakeVerificationToken",
		"team_id":               cmd.TeamID,
		"team_domain":           DefaultTeamDomain,
		"channel_id":            cmd.ChannelID,
		"channel_name":          cmd.ChannelName,
		"user_id":               cmd.UserID,
		"user_name":             cmd.UserName,
		"command":               cmd.Command,
		"text":                  cmd.Text,
		"api_app_id":            AppID,
		"is_enterprise_install": "false", // Slack sends a string here
		"response_url":          cmd.ResponseURL,
		"trigger_id":            s.triggerID(),
	})
}

// BlockAction is a button click. Empty TeamID means DefaultTeamID. When the
// fake holds the message (ChannelID, MessageTS), an empty BlockID, Value or
// Text is taken from the button with ActionID in its blocks.
type BlockAction struct {
	TeamID      string
	UserID      string
	UserName    string
	ChannelID   string
	MessageTS   string
	ActionID    string
	BlockID     string
	Value       string
	Text        string // button label; optional
	ResponseURL string // filled by the fake unless set
}

// BlockAction delivers an interactive envelope with a block_actions payload
// shaped like Slack's and returns its envelope id.
func (s *Server) BlockAction(a BlockAction) string {
	s.t.Helper()
	if a.TeamID == "" {
		a.TeamID = DefaultTeamID
	}
	if a.ResponseURL == "" {
		a.ResponseURL = s.newResponseURL("actions", a.TeamID)
	}
	message := map[string]any{"type": "message", "ts": a.MessageTS, "text": ""}
	if m, ok := s.Message(a.ChannelID, a.MessageTS); ok {
		message = m.wire()
		if b, ok := findButton(m.Blocks, a.BlockID, a.ActionID); ok {
			if a.BlockID == "" {
				a.BlockID = b.blockID
			}
			if a.Value == "" {
				a.Value = b.value
			}
			if a.Text == "" {
				a.Text = b.text
			}
		}
	}
	if a.Text == "" {
		a.Text = a.ActionID
	}
	actionTS := s.actionTS()
	action := map[string]any{
		"type":      "button",
		"action_id": a.ActionID,
		"block_id":  a.BlockID,
		"text":      map[string]any{"type": "plain_text", "text": a.Text, "emoji": true},
		"action_ts": actionTS,
	}
	if a.Value != "" {
		action["value"] = a.Value
	}
	return s.newEnvelope("interactive", map[string]any{
		"type": "block_actions",
		"user": map[string]any{
			"id": a.UserID, "username": a.UserName, "name": a.UserName, "team_id": a.TeamID,
		},
		"api_app_id": AppID,
		"token":      "fakeVerificationToken",
		"container": map[string]any{
			"type":         "message",
			"message_ts":   a.MessageTS,
			"channel_id":   a.ChannelID,
			"is_ephemeral": false,
		},
		"trigger_id":            s.triggerID(),
		"team":                  map[string]any{"id": a.TeamID, "domain": DefaultTeamDomain},
		"enterprise":            nil,
		"is_enterprise_install": false,
		"channel":               map[string]any{"id": a.ChannelID, "name": s.channelName(a.ChannelID)},
		"message":               message,
		"state":                 map[string]any{"values": map[string]any{}},
		"response_url":          a.ResponseURL,
		"actions":               []any{action},
	})
}

// PressButton clicks the button with actionID on the stored message
// (channel, ts) as userID, failing the test when the message or the button
// does not exist. It returns the envelope id.
func (s *Server) PressButton(userID, channel, ts, actionID string) string {
	s.t.Helper()
	m, ok := s.Message(channel, ts)
	if !ok {
		s.t.Fatalf("slacktest: PressButton: no message %s in %s", ts, channel)
	}
	if _, ok := findButton(m.Blocks, "", actionID); !ok {
		s.t.Fatalf("slacktest: PressButton: message %s in %s has no button %q; blocks: %s", ts, channel, actionID, m.Blocks)
	}
	s.mu.Lock()
	name := s.users[userID].Name
	s.mu.Unlock()
	return s.BlockAction(BlockAction{UserID: userID, UserName: name, ChannelID: m.Channel, MessageTS: ts, ActionID: actionID})
}

type button struct{ blockID, value, text string }

// findButton looks for a button with actionID (and blockID, when set) in an
// actions block or a section accessory.
func findButton(blocks json.RawMessage, blockID, actionID string) (button, bool) {
	// Text is raw: a button's text is an object, a context element's a plain string.
	type element struct {
		Type     string          `json:"type"`
		ActionID string          `json:"action_id"`
		Value    string          `json:"value"`
		Text     json.RawMessage `json:"text"`
	}
	var bs []struct {
		Type      string    `json:"type"`
		BlockID   string    `json:"block_id"`
		Elements  []element `json:"elements"`
		Accessory *element  `json:"accessory"`
	}
	if json.Unmarshal(blocks, &bs) != nil {
		return button{}, false
	}
	for _, b := range bs {
		if blockID != "" && b.BlockID != blockID {
			continue
		}
		els := b.Elements
		if b.Accessory != nil {
			els = append(els, *b.Accessory)
		}
		for _, e := range els {
			if e.Type == "button" && e.ActionID == actionID {
				var t struct {
					Text string `json:"text"`
				}
				_ = json.Unmarshal(e.Text, &t)
				return button{blockID: b.BlockID, value: e.Value, text: t.Text}, true
			}
		}
	}
	return button{}, false
}

func (s *Server) newResponseURL(kind, team string) string {
	s.mu.Lock()
	s.respURLs++
	n := s.respURLs
	s.mu.Unlock()
	return fmt.Sprintf("%s/%s/%s/%d/%s", s.srv.URL, kind, team, 1000000+n, randomID()[:8])
}

func (s *Server) triggerID() string {
	s.mu.Lock()
	s.respURLs++
	n := s.respURLs
	s.mu.Unlock()
	return fmt.Sprintf("%d.%d.%s", 1000000+n, 4242, randomID()[:8])
}

func (s *Server) actionTS() string {
	now := time.Now()
	return strconv.FormatInt(now.Unix(), 10) + "." + fmt.Sprintf("%06d", now.Nanosecond()/1000)
}

// ResponseURLPost is one post the bot made to a response_url.
type ResponseURLPost struct {
	URL  string
	Body []byte
	Time time.Time
	// Decoded from Body when it is JSON.
	Text            string
	ResponseType    string // "ephemeral" or "in_channel"
	ReplaceOriginal bool
	DeleteOriginal  bool
	Blocks          json.RawMessage
}

// ResponseURLPosts returns every post to a response URL, in order.
func (s *Server) ResponseURLPosts() []ResponseURLPost {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]ResponseURLPost(nil), s.respPost...)
}

func (s *Server) serveResponseURL(w http.ResponseWriter, r *http.Request) {
	body := s.readRequest(r)
	if r.Method != http.MethodPost {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	p := ResponseURLPost{URL: s.srv.URL + r.URL.Path, Body: body, Time: time.Now()}
	var msg struct {
		Text            string          `json:"text"`
		ResponseType    string          `json:"response_type"`
		ReplaceOriginal bool            `json:"replace_original"`
		DeleteOriginal  bool            `json:"delete_original"`
		Blocks          json.RawMessage `json:"blocks"`
	}
	if err := json.Unmarshal(body, &msg); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]any{"ok": false, "error": "invalid_payload"})
		return
	}
	p.Text, p.ResponseType, p.ReplaceOriginal, p.DeleteOriginal, p.Blocks = msg.Text, msg.ResponseType, msg.ReplaceOriginal, msg.DeleteOriginal, msg.Blocks
	s.mu.Lock()
	s.respPost = append(s.respPost, p)
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"ok": true})
}
