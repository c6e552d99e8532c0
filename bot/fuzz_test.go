package bot

// Fuzz tests of what Slack hands the bot: slash-command text (through the Socket Mode mapping
// and the core, on a real redis-server) and raw block_actions payloads (parsed as slack-go
// parses them, mapped to Actions, handled by the core). Seed corpora are in
// testdata/fuzz/<FuzzName>/; `make fuzz` runs each target for a while.

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/redis/go-redis/v9"
	slackgo "github.com/slack-go/slack"

	"github.com/platform-team/sessionbot/bot/chat"
	"github.com/platform-team/sessionbot/bot/slack"
	"github.com/platform-team/sessionbot/cleanup"
	"github.com/platform-team/sessionbot/cleanup/redistest"
)

// fuzzBot is a Bot on a real redis-server holding sessions nothing may delete, with the fake
// Chat and a real audit file.
type fuzzBot struct {
	bot       *Bot
	chat      *coreChat
	rdb       *redis.Client
	sessions  int
	auditPath string
	envs      atomic.Int64
}

func newFuzzBot(tb testing.TB) *fuzzBot {
	tb.Helper()
	srv := redistest.Standalone(tb)
	fb := &fuzzBot{chat: newCoreChat(), rdb: srv.Client()}
	res, err := cleanup.Seed(context.Background(), fb.rdb, cleanup.SeedSpec{Count: 40, Seed: 3, Malformed: 0.1, Unrelated: 5, CanaryToken: canary})
	if err != nil {
		tb.Fatal(err)
	}
	fb.sessions = int(res.Count)
	dir := tb.TempDir()
	fb.auditPath = filepath.Join(dir, "audit.log")
	auditor, err := cleanup.NewAuditor(cleanup.AuditConfig{File: fb.auditPath}, nil)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = auditor.Close() })
	cfg := DefaultConfig()
	cfg.TeamID = team
	cfg.Operators = []string{alice, carol}
	cfg.Approvers = []string{bob, dave}
	fb.bot, err = New(Deps{
		Config: cfg, Chat: fb.chat, Auditor: auditor, Notifier: &recordingNotifier{}, Policy: defaultPolicy,
		Engine:           cleanup.NewEngine(cleanup.NewTarget(fb.rdb, "session:", "fuzz-target"), cleanup.EngineConfig{BatchSize: 100}),
		Backup:           cleanup.BackupConfig{Dir: filepath.Join(dir, "backups")},
		ProgressInterval: time.Hour, // no progress updates: previews of 40 keys are instant
	})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(fb.bot.Close)
	return fb
}

func (fb *fuzzBot) envelope() string { return fmt.Sprintf("fuzz-%d", fb.envs.Add(1)) }

func (fb *fuzzBot) sessionCount(tb testing.TB) int {
	tb.Helper()
	n, err := countKeys(fb.rdb, "session:*")
	if err != nil {
		tb.Fatal(err)
	}
	return n
}

// checkReplies checks everything the bot said since the counts before: each ephemeral reply is
// one clear line (non-empty, valid UTF-8, no newline) unless it is a structured message (help,
// stats, status); each posted message became a preview, an approval request or a "nothing to
// do", never an internal error.
func (fb *fuzzBot) checkReplies(t *testing.T, input string, ephemeralsBefore, postsBefore int) {
	t.Helper()
	fb.chat.mu.Lock()
	eph := append([]ephemeralMsg(nil), fb.chat.ephemerals[ephemeralsBefore:]...)
	posts := append([]postedMsg(nil), fb.chat.posts[postsBefore:]...)
	current := map[MessageRef]Message{}
	for _, p := range posts {
		current[p.Ref] = fb.chat.current[p.Ref]
	}
	fb.chat.mu.Unlock()
	for _, e := range eph {
		m := e.Msg
		if m.Title != "" || len(m.Lines) > 0 {
			continue // help, stats, status
		}
		if m.Text == "" || strings.Contains(m.Text, "\n") || !utf8.ValidString(m.Text) || utf8.RuneCountInString(m.Text) > 600 {
			t.Errorf("input %q: reply is not one clear line: %q", short(input, 80), m.Text)
		}
		if strings.Contains(m.Text, "internal error") {
			t.Errorf("input %q: reply is an internal error: %q", short(input, 80), m.Text)
		}
	}
	for _, p := range posts {
		m := current[p.Ref]
		text := chat.FormatText(m)
		if strings.Contains(text, "internal error") || strings.HasPrefix(m.Title, "Preview failed") {
			t.Errorf("input %q: posted message ended as %q", short(input, 80), text)
		}
		if !utf8.ValidString(text) {
			t.Errorf("input %q: posted message is not valid UTF-8: %q", short(input, 80), text)
		}
	}
}

// within runs fn and fails the test, with every goroutine's stack, when it takes longer than
// 10 s: a hang is a finding too (the fuzzer has no per-input deadline).
func within(t *testing.T, input string, fn func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn()
	}()
	timer := time.NewTimer(10 * time.Second)
	defer timer.Stop()
	select {
	case <-done:
	case <-timer.C:
		buf := make([]byte, 1<<20)
		t.Fatalf("input %q: not handled within 10 s; goroutines:\n%s", short(input, 200), buf[:runtime.Stack(buf, true)])
	}
}

// FuzzSlashText types arbitrary text after /sessions — oversized, not UTF-8, Slack-escaped —
// through the Socket Mode mapping and the core: no panic, every answer is one clear line or a
// preview, and nothing is deleted.
func FuzzSlashText(f *testing.F) {
	for _, s := range []string{
		"", "help", "stats", "status", "cleanup", "cleanup --all --reason x", "cleanup --all",
		"cleanup --reason R&amp;D &lt;team&gt;", "cleanup --user-id &lt;script&gt;alert(1)&lt;/script&gt;",
		"cleanup --user-id auth0|&amp;amp;", "cleanup --auth-method=basic_auth --no-backup",
		`cleanup --session-id "*"`, "cleanup --session-id a,b,,c", "cleanup --older-than 7d --orphans",
		"cleanup --older-than 99999999999999d", "cleanup --expired --all --reason x", "cleanup \u201c--reason\u201d \u2018x\u2019",
		"cleanup \u2014all", "restore ../../etc/passwd --reason x", "restore job-20250101-abcd --reason x",
		"cancel job-1", "cancel 0123456789abcdef0123456789abcdef", "status job-20250101-abcd",
		"\xff\xfe\xfd", "cleanup --reason \xc3\x28", "cleanup --reason '", `cleanup --reason "`, "cleanup \\",
		strings.Repeat("a", 2001), "cleanup --reason " + strings.Repeat("&amp;", 500), strings.Repeat("é", 2001),
		"<@U0ALICE|alice> cleanup", "cleanup --user-id <mailto:a@b.c|a@b.c>", "\x00cleanup", "cleanup\t--all\n--reason\rx",
	} {
		f.Add(s)
	}
	fb := newFuzzBot(f)
	f.Fuzz(func(t *testing.T, text string) {
		ctx := context.Background()
		fb.chat.mu.Lock()
		e0, p0 := len(fb.chat.ephemerals), len(fb.chat.posts)
		fb.chat.mu.Unlock()
		c := slack.CommandFrom(slackgo.SlashCommand{
			TeamID: team, UserID: alice, UserName: "alice", ChannelID: chan1, Command: "/sessions",
			Text: text, ResponseURL: "https://hooks.slack.com/commands/T0TEAM01/1/x",
		}, fb.envelope())
		within(t, text, func() {
			fb.bot.HandleCommand(ctx, c)
			fb.bot.Wait()
		})
		fb.chat.mu.Lock()
		e1, p1 := len(fb.chat.ephemerals), len(fb.chat.posts)
		fb.chat.mu.Unlock()
		if e1 == e0 && p1 == p0 {
			t.Errorf("input %q: no answer at all", short(text, 80))
		}
		fb.checkReplies(t, text, e0, p0)
		if n := fb.sessionCount(t); n != fb.sessions {
			t.Fatalf("input %q: %d sessions left of %d; a command deleted sessions", short(text, 80), n, fb.sessions)
		}
	})
}

// FuzzBlockActions hands arbitrary block_actions payloads to the transport's mapping (parsed as
// slack-go parses an interactive envelope) and the core: no panic; a payload slack-go cannot
// parse is dropped; every action it yields is refused and audited; nothing is deleted or
// decided.
func FuzzBlockActions(f *testing.F) {
	click := func(team, user, action, value string) string {
		b, _ := json.Marshal(map[string]any{
			"type": "block_actions", "user": map[string]any{"id": user, "name": "x", "team_id": team},
			"team": map[string]any{"id": team}, "channel": map[string]any{"id": chan1},
			"container":    map[string]any{"type": "message", "message_ts": "1700000000.000100", "channel_id": chan1},
			"response_url": "https://hooks.slack.com/actions/T0TEAM01/1/x",
			"actions":      []any{map[string]any{"type": "button", "action_id": action, "block_id": "actions", "value": value}},
		})
		return string(b)
	}
	for _, s := range []string{
		click(team, bob, "approve", "0123456789abcdef0123456789abcdef"),
		click(team, alice, "run", "session:abc"),
		click("T0OTHER1", bob, "approve", "0123456789abcdef0123456789abcdef"),
		click(team, eve, "cancel", strings.Repeat("f", 32)),
		click(team, bob, "delete_everything", ""),
		click("", "", "", ""),
		click(team, bob, "approve", strings.Repeat("\xff", 40)),
		click(team, bob, "reject", "../../../../etc/passwd"),
		`{"type":"block_actions","actions":null}`,
		`{"type":"block_actions","actions":[{},{},{"action_id":"run"}]}`,
		`{"type":"block_actions","team":{"id":"T0TEAM01"},"user":{"id":"UBOB0001"},"actions":[{"type":"button","action_id":"approve","block_id":"actions","value":"0123456789abcdef0123456789abcdef"},{"type":"button","action_id":"approve","value":"x"}]}`,
		`{"type":"view_submission","view":{}}`, `{"type":"block_actions"}`, `{}`, `[]`, `null`, `"x"`, ``, `{"type":`,
		`{"type":"block_actions","actions":[{"type":"static_select","action_id":"approve","selected_option":{"value":"0123456789abcdef0123456789abcdef"}}]}`,
		`{"type":"block_actions","user":{"id":{"nested":true}},"actions":[]}`,
		`{"type":"block_actions","message":{"blocks":[{"type":"unknown_block"}]},"actions":[{"action_id":"run"}]}`,
	} {
		f.Add([]byte(s))
	}
	fb := newFuzzBot(f)
	// A real pending request and an approval request: garbage must not decide them.
	for _, text := range []string{"cleanup", `cleanup --all --reason "fuzz"`} {
		fb.bot.HandleCommand(context.Background(), Command{EnvelopeID: fb.envelope(), TeamID: team, UserID: alice, UserName: "alice", ChannelID: chan1, Text: text})
		fb.bot.Wait()
	}
	pending, err := fb.bot.st.dueRequests(context.Background(), time.Now().Add(48*time.Hour))
	if err != nil || len(pending) != 2 {
		f.Fatalf("pending requests = %v, %v; want 2", pending, err)
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		ctx := context.Background()
		var cb slackgo.InteractionCallback
		if json.Unmarshal(payload, &cb) != nil {
			return // slack-go hands no event; the transport acks the raw envelope and drops it
		}
		actions := slack.ActionsFrom(cb, fb.envelope())
		refusedBefore := len(auditLinesOf(t, fb.auditPath, cleanup.EventRefused))
		fb.chat.mu.Lock()
		e0, p0 := len(fb.chat.ephemerals), len(fb.chat.posts)
		fb.chat.mu.Unlock()
		within(t, string(payload), func() {
			for _, a := range actions {
				fb.bot.HandleAction(ctx, a)
			}
			fb.bot.Wait()
		})
		if got := len(auditLinesOf(t, fb.auditPath, cleanup.EventRefused)) - refusedBefore; got != len(actions) {
			t.Errorf("payload %q: %d actions, %d refusals audited; want every garbage click refused", short(string(payload), 120), len(actions), got)
		}
		fb.checkReplies(t, string(payload), e0, p0)
		if p := len(fb.chat.posts); p != p0 {
			t.Errorf("payload %q: a click posted a message", short(string(payload), 120))
		}
		if n := fb.sessionCount(t); n != fb.sessions {
			t.Fatalf("payload %q: %d sessions left of %d", short(string(payload), 120), n, fb.sessions)
		}
		for _, id := range pending {
			if r, err := fb.bot.st.request(ctx, id); err != nil || r.Status != StatusPending {
				t.Fatalf("payload %q: request %s is %v (%v); garbage decided it", short(string(payload), 120), id, r.Status, err)
			}
		}
	})
}

// Slack sends slash-command text with &, < and > escaped as &amp;, &lt; and &gt;. The bot
// undoes exactly those three before splitting the words, so a reason or a user id means what
// the person typed — and an entity the person typed literally (&lt; shown as &amp;lt;) stays
// as typed.
func TestSlashTextSlackEscapesAreUndone(t *testing.T) {
	f := newFleet(t, fleetOptions{sessions: 50})
	const user = "auth0|R&D<1>"
	now := time.Now()
	v := cleanup.SessionJSON(cleanup.SeedSession{UserID: user, Username: "rd@example.com", AuthMethod: "oauth2",
		CreatedAt: now.Add(-time.Hour), LastActivity: now, ExpiresAt: now.Add(time.Hour), AccessToken: flCanary})
	if err := f.rdb.Set(context.Background(), "session:rd-1", v, time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
	typed := `cleanup --user-id "` + user + `" --reason "R&D <on-call> &lt;literal&gt; &quot;"`
	escaped := strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(typed)
	f.command(flAlice, escaped)
	preview := f.awaitButton("run")

	created := f.audited(cleanup.EventRequestCreated)
	if len(created) != 1 || !strings.Contains(created[0], "Filters: user_id=auth0|R&D<1> |") ||
		!strings.Contains(created[0], "Reason: R&D <on-call> &lt;literal&gt; &quot; |") {
		t.Fatalf("Request Created = %q; want the user id and reason as typed", created)
	}
	if !strings.Contains(string(preview.Blocks), "1 session matching user_id=") {
		t.Errorf("the preview does not find the user's one session: %s", blocksText(string(preview.Blocks), preview.Text))
	}
	f.slack.WaitAck(t, f.click(flAlice, "", preview.TS, "run"), 3*time.Second)
	f.awaitMessage(preview.TS, "Cleanup completed")
	if n, _ := f.rdb.Exists(context.Background(), "session:rd-1").Result(); n != 0 {
		t.Error("the session of auth0|R&D<1> survived a cleanup of that user")
	}
	if n := f.sessionCount(); n != int(f.seeded.Count) {
		t.Errorf("%d sessions left; want the %d others untouched", n, f.seeded.Count)
	}
}

// Text that is not UTF-8 (possible from the console, or a broken client) is refused with one
// line before anything is parsed or stored: a request made of it could not be shown, audited or
// stored faithfully (JSON replaces the bad bytes), so what is approved would differ from what
// was typed.
func TestSlashTextNotUTF8IsRefused(t *testing.T) {
	h := newHarness(t)
	h.bot.HandleCommand(context.Background(), Command{EnvelopeID: "bad-utf8", TeamID: team, UserID: alice, UserName: "alice",
		ChannelID: chan1, Text: "cleanup --reason \xc3\x28"})
	h.bot.Wait()
	wantContains(t, "refusal", h.chat.lastEphemeral(alice), "not valid UTF-8", "Nothing was done")
	if n := h.chat.postCount(); n != 0 {
		t.Errorf("%d messages posted for text that is not UTF-8", n)
	}
}
