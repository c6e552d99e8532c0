package slack

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	slackgo "github.com/slack-go/slack"

	"github.com/platform-team/sessionbot/bot/chat"
)

// update rewrites the golden files (go test ./bot/slack -run TestRenderMessageGolden -update).
var update = flag.Bool("update", false, "rewrite golden files under testdata/")

// blockKitCases are the messages whose rendering is pinned by golden files.
func blockKitCases() map[string]chat.Message {
	long := make([]string, 0, 120)
	for i := range 120 {
		long = append(long, fmt.Sprintf("%03d. session `%s…` of `auth0|%d` expires 2025-11-26T11:00:00Z", i, strings.Repeat("ab", 6), i))
	}
	fields := make([]chat.Field, 0, 13)
	for i := range 13 {
		fields = append(fields, chat.Field{Label: fmt.Sprintf("Field %d", i+1), Value: fmt.Sprintf("value %d", i+1)})
	}
	many := make([]chat.Field, 0, 520)
	for i := range 520 {
		many = append(many, chat.Field{Label: "k" + fmt.Sprint(i), Value: "v"})
	}
	return map[string]chat.Message{
		"approval_request": {
			Text:  "Mass logout requested by alice: approval needed",
			Title: ":rotating_light: Mass logout requested — approval needed",
			Lines: []string{
				"Found *1,500* total session keys",
				"*1,500* sessions will be deleted (ALL)",
				"Requested by <@U0ALICE> · reason: session secret rotated",
			},
			Fields:  []chat.Field{{Label: "Requester", Value: "<@U0ALICE>"}, {Label: "Approvers", Value: "<@U0BOB>, <@U0CAROL>"}, {Label: "Expires", Value: "in 15m"}},
			Context: []string{"Request `req-1` · a backup is written first"},
			Buttons: []chat.Button{
				{ActionID: "approve", Label: "Approve", Value: "req-1", Style: "danger", Confirm: "This logs out every user now."},
				{ActionID: "reject", Label: "Reject", Value: "req-1"},
				{ActionID: "cancel", Label: "Cancel", Value: "req-1", Style: "weird"},
			},
		},
		"long_body": {Text: "Preview", Title: strings.Repeat("Very long title ", 20), Lines: long},
		"many_fields": {
			Text: "Stats", Fields: fields,
			Context: []string{"c1", "c2", "c3", "c4", "c5", "c6", "c7", "c8", "c9", "c10", "c11", "", "c12"},
		},
		"too_many_blocks": {Text: "Huge", Fields: many, Buttons: []chat.Button{{ActionID: "cancel", Label: "Cancel", Value: "job-1"}}},
		"escaping": {
			Text:  "Reason <!channel> & <https://evil.example|click>",
			Lines: []string{"*Reason:* <!channel> please & <https://evil.example|click here> — asked by <@U0ALICE> in <#C0OPS|ops>"},
		},
		"text_only": {Text: "Nothing to do"},
	}
}

func TestRenderMessageGolden(t *testing.T) {
	for name, m := range blockKitCases() {
		t.Run(name, func(t *testing.T) {
			text, blocks := renderMessage(m)
			var buf bytes.Buffer
			enc := json.NewEncoder(&buf)
			enc.SetEscapeHTML(false) // keep <@U…> and &amp; readable in the golden files
			enc.SetIndent("", "  ")
			if err := enc.Encode(map[string]any{"text": text, "blocks": blocks}); err != nil {
				t.Fatal(err)
			}
			got := buf.Bytes()
			path := filepath.Join("testdata", "blockkit", name+".json")
			if *update {
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test ./bot/slack/ -run TestRenderMessageGolden -update)", err)
			}
			if string(got) != string(want) {
				t.Errorf("renderMessage(%s) differs from %s (rerun with -update if intended):\n%s", name, path, got)
			}
			checkBlockKitLimits(t, text, blocks)
		})
	}
}

// TestRenderedMessagesAreAcceptedBySlack posts every case to the fake, which validates blocks
// like Slack does (invalid_blocks otherwise).
func TestRenderedMessagesAreAcceptedBySlack(t *testing.T) {
	srv, chat := newTestChat(t)
	cases := blockKitCases()
	for name, m := range cases {
		if _, err := chat.Post(context.Background(), "#sre-ops", m); err != nil {
			t.Errorf("Post(%s) = %v", name, err)
		}
	}
	if n := len(srv.Messages("#sre-ops")); n != len(cases) {
		t.Errorf("%d messages posted; want %d", n, len(cases))
	}
}

// checkBlockKitLimits checks the limits of NOTES.md independently of the golden files.
func checkBlockKitLimits(t *testing.T, text string, blocks []slackgo.Block) {
	t.Helper()
	if text == "" {
		t.Error("fallback text is empty")
	}
	if len(blocks) == 0 || len(blocks) > 50 {
		t.Errorf("%d blocks; want 1..50", len(blocks))
	}
	ids := map[string]bool{}
	actions := 0
	for _, b := range blocks {
		raw, _ := json.Marshal(b)
		var blk struct {
			Type    string `json:"type"`
			BlockID string `json:"block_id"`
			Text    *struct {
				Type, Text string
			} `json:"text"`
			Fields   []struct{ Text string } `json:"fields"`
			Elements []json.RawMessage       `json:"elements"`
		}
		_ = json.Unmarshal(raw, &blk)
		if blk.BlockID == "" || ids[blk.BlockID] {
			t.Errorf("block %s has a missing or duplicate block_id %q", blk.Type, blk.BlockID)
		}
		ids[blk.BlockID] = true
		switch blk.Type {
		case "header":
			if blk.Text.Type != "plain_text" || utf8.RuneCountInString(blk.Text.Text) > 150 {
				t.Errorf("header %q breaks the limits", blk.Text.Text)
			}
		case "section":
			if blk.Text != nil && (blk.Text.Text == "" || chat.TextLen(blk.Text.Text) > 3000) {
				t.Errorf("section text of %d units", chat.TextLen(blk.Text.Text))
			}
			if len(blk.Fields) > 10 {
				t.Errorf("section with %d fields", len(blk.Fields))
			}
			for _, f := range blk.Fields {
				if chat.TextLen(f.Text) > 2000 {
					t.Errorf("field of %d units", chat.TextLen(f.Text))
				}
			}
		case "context":
			if len(blk.Elements) > 10 {
				t.Errorf("context with %d elements", len(blk.Elements))
			}
		case "actions":
			actions++
		}
	}
	if actions > 1 {
		t.Errorf("%d actions blocks; want at most one", actions)
	}
}

func TestEscapeMrkdwnKeepsMentionsOnly(t *testing.T) {
	for in, want := range map[string]string{
		"<@U0ALICE> & <#C0OPS|ops>": "<@U0ALICE> &amp; <#C0OPS|ops>",
		"<!channel> <!here>":        "&lt;!channel&gt; &lt;!here&gt;",
		"<https://x.example|y>":     "&lt;https://x.example|y&gt;",
		"a > b":                     "a &gt; b",
		// userText's entities are kept, not escaped twice; a lone & is escaped.
		"&lt;@U1&gt; &amp; R&D": "&lt;@U1&gt; &amp; R&amp;D",
		// A user group and a date as userRef and stamp write them are kept; others are not.
		"<!subteam^S0SECURITY> <!subteam^S0X|x>":                             "<!subteam^S0SECURITY> &lt;!subteam^S0X|x&gt;",
		"<!date^1764151200^{date_short_pretty} {time}|2025-11-26 10:00:00Z>": "<!date^1764151200^{date_short_pretty} {time}|2025-11-26 10:00:00Z>",
		"<!date^1764151200^{date}|<!here>>":                                  "&lt;!date^1764151200^{date}|&lt;!here&gt;&gt;",
	} {
		if got := escapeMrkdwn(in); got != want {
			t.Errorf("escapeMrkdwn(%q) = %q; want %q", in, got, want)
		}
	}
}

// A time in a Slack message is a <!date^…> token (bot's stamp writes it; bot's
// TestSlackTimesAreDateTokens pins its shape), so that each reader sees their own time zone: the
// rendering keeps such a token, and a user-group mention, as they are.
func TestDateTokensAndGroupMentionsReachTheBlocks(t *testing.T) {
	const token = "<!date^1764152100^{date_short_pretty} {time}|2025-11-26 10:15:00Z>"
	_, blocks := renderMessage(chat.Message{Text: "Approval needed", Title: "Approval needed",
		Lines:  []string{"Approvers: <!subteam^S0SECURITY>"},
		Fields: []chat.Field{{Label: "Expires", Value: token}}})
	var wire strings.Builder
	enc := json.NewEncoder(&wire)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(blocks); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(wire.String(), token) {
		t.Errorf("the blocks lack the date token %s: %s", token, wire.String())
	}
	if !strings.Contains(wire.String(), "<!subteam^S0SECURITY>") {
		t.Errorf("the blocks lack the group mention: %s", wire.String())
	}
}
