package bot

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/platform-team/sessionbot/bot/chat"
	"github.com/platform-team/sessionbot/cleanup"
	"github.com/platform-team/sessionbot/cleanup/redistest"
)

// Test identities. alice and carol are operators, bob and dave approvers, eve nobody.
const (
	alice = "UALICE01"
	bob   = "UBOB0001"
	carol = "UCAROL01"
	dave  = "UDAVE001"
	eve   = "UEVE0001"
	team  = "T0TEAM01"
	chan1 = "C0INCIDENT"
)

// canary appears in every token-like field of every seeded session; it must never reach a
// message or an audit line. So must the usernames (e-mail addresses) and full session ids.
const canary = "CANARY-7f3a9c2b-SECRET"

// coreChat is a hand-written fake of Chat that records everything the core says.
type coreChat struct {
	mu         sync.Mutex
	seq        int
	posts      []postedMsg            // in order
	current    map[MessageRef]Message // latest version of each posted message
	history    map[MessageRef][]Message
	ephemerals []ephemeralMsg
	dms        []ephemeralMsg
	groups     map[string][]string
	groupCalls int
	failPost   error
	changed    chan struct{} // closed and replaced on every change
}

type postedMsg struct {
	Ref     MessageRef
	Channel string
	Msg     Message
	Thread  *MessageRef // set for a reply: the message it replies to
}

type ephemeralMsg struct {
	Channel, User string
	Msg           Message
}

var _ Chat = (*coreChat)(nil)

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newCoreChat() *coreChat {
	return &coreChat{current: map[MessageRef]Message{}, history: map[MessageRef][]Message{}, groups: map[string][]string{},
		changed: make(chan struct{})}
}

// signal wakes waitFor; called with c.mu held.
func (c *coreChat) signal() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// waitFor waits until cond holds, re-checking after every change, for at most 20 s.
func (c *coreChat) waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(20 * time.Second)
	defer deadline.Stop()
	for {
		c.mu.Lock()
		ch := c.changed
		c.mu.Unlock()
		if cond() {
			return
		}
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatal("condition not met within 20s")
		}
	}
}

// msg returns the current version of the message at ref.
func (c *coreChat) msg(ref MessageRef) Message {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.current[ref]
}

func (c *coreChat) Post(_ context.Context, channel string, m Message) (MessageRef, error) {
	return c.post(channel, m, nil)
}

func (c *coreChat) post(channel string, m Message, thread *MessageRef) (MessageRef, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.failPost != nil {
		return MessageRef{}, c.failPost
	}
	c.seq++
	ref := MessageRef{Channel: channel, TS: fmt.Sprintf("1700000000.%06d", c.seq)}
	defer c.signal()
	c.posts = append(c.posts, postedMsg{Ref: ref, Channel: channel, Msg: m, Thread: thread})
	c.current[ref] = m
	c.history[ref] = append(c.history[ref], m)
	return ref, nil
}

func (c *coreChat) Reply(_ context.Context, ref MessageRef, m Message) (MessageRef, error) {
	return c.post(ref.Channel, m, &ref)
}

func (c *coreChat) Update(_ context.Context, ref MessageRef, m Message) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.current[ref]; !ok {
		return fmt.Errorf("update of unknown message %v", ref)
	}
	c.current[ref] = m
	c.history[ref] = append(c.history[ref], m)
	c.signal()
	return nil
}

func (c *coreChat) Ephemeral(_ context.Context, channel, user, _ string, m Message) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	defer c.signal()
	c.ephemerals = append(c.ephemerals, ephemeralMsg{channel, user, m})
	return nil
}

func (c *coreChat) DM(_ context.Context, user string, m Message) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.dms = append(c.dms, ephemeralMsg{"", user, m})
	return nil
}

func (c *coreChat) LookupUserByEmail(context.Context, string) (string, error) { return "", nil }

func (c *coreChat) UserGroupMembers(_ context.Context, group string) ([]string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.groupCalls++
	m, ok := c.groups[group]
	if !ok {
		return nil, fmt.Errorf("no group %s", group)
	}
	return m, nil
}

// lastEphemeral returns the text of the last ephemeral message shown to user.
func (c *coreChat) lastEphemeral(user string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := len(c.ephemerals) - 1; i >= 0; i-- {
		if c.ephemerals[i].User == user {
			return c.ephemerals[i].Msg.Text
		}
	}
	return ""
}

func (c *coreChat) ephemeralCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.ephemerals)
}

func (c *coreChat) postCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.posts)
}

// latest returns the current version of the i-th posted message (negative: from the end),
// counting messages in channels, not replies in their threads.
func (c *coreChat) latest(i int) (MessageRef, Message) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var top []MessageRef
	for _, p := range c.posts {
		if p.Thread == nil {
			top = append(top, p.Ref)
		}
	}
	if i < 0 {
		i += len(top)
	}
	ref := top[i]
	return ref, c.current[ref]
}

// everything returns every text the chat ever carried, for leak checks.
func (c *coreChat) everything() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var b strings.Builder
	for _, h := range c.history {
		for _, m := range h {
			b.WriteString(chat.FormatText(m))
		}
	}
	for _, e := range append(slices.Clone(c.ephemerals), c.dms...) {
		b.WriteString(chat.FormatText(e.Msg))
	}
	return b.String()
}

// defaultPolicy is the policy with APPROVAL_THRESHOLD's default.
var defaultPolicy = cleanup.Policy{Threshold: 1000}

// fakeClock is a settable clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// recordingNotifier records finished jobs.
type recordingNotifier struct {
	mu       sync.Mutex
	outcomes []JobOutcome
	userIDs  bool // asks runs for JobOutcome.UserIDs
}

func (n *recordingNotifier) JobFinished(_ context.Context, o JobOutcome) {
	n.mu.Lock()
	n.outcomes = append(n.outcomes, o)
	n.mu.Unlock()
}

// Wait implements Notifier: JobFinished records synchronously.
func (n *recordingNotifier) Wait() {}

func (n *recordingNotifier) WantsUserIDs() bool { return n.userIDs }

func (n *recordingNotifier) all() []JobOutcome {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.outcomes)
}

// harness is a Bot on a real redis-server with a fake Chat, a fake clock and a real Auditor.
type harness struct {
	t         *testing.T
	srv       *redistest.Server
	rdb       *redis.Client
	chat      *coreChat
	clock     *fakeClock
	notifier  *recordingNotifier
	auditPath string
	auditor   *cleanup.Auditor
	engine    *cleanup.Engine
	cfg       Config
	policy    cleanup.Policy
	watch     WatchConfig
	schedules []Schedule
	// defaultTarget: the bot serves its engine as the target named default (Deps.Targets), as serve
	// does without TARGETS_FILE.
	defaultTarget bool
	backupDir     string
	bot           *Bot
	env           int
}

type harnessOption func(*harness, *Deps)

func newHarness(t *testing.T, opts ...harnessOption) *harness {
	t.Helper()
	srv := redistest.Standalone(t)
	h := &harness{t: t, srv: srv, rdb: srv.Client()}
	t.Cleanup(func() { _ = h.rdb.Close() })
	h.chat = newCoreChat()
	h.clock = &fakeClock{t: time.Now().UTC().Truncate(time.Second)}
	h.notifier = &recordingNotifier{}
	h.auditPath = filepath.Join(t.TempDir(), "audit.log")
	a, err := cleanup.NewAuditor(cleanup.AuditConfig{File: h.auditPath}, nil)
	if err != nil {
		t.Fatal(err)
	}
	h.auditor = a
	t.Cleanup(func() { _ = a.Close() })
	h.engine = cleanup.NewEngine(cleanup.NewTarget(h.rdb, "session:", "test-target"), cleanup.EngineConfig{BatchSize: 100})
	h.cfg = DefaultConfig()
	h.cfg.TeamID = team
	h.cfg.Operators = []string{alice, carol}
	h.cfg.Approvers = []string{bob, dave}
	h.backupDir = filepath.Join(t.TempDir(), "backups")
	d := Deps{
		Config:           h.cfg,
		Chat:             h.chat,
		Engine:           h.engine,
		Auditor:          h.auditor,
		Notifier:         h.notifier,
		Policy:           defaultPolicy,
		Backup:           cleanup.BackupConfig{Dir: h.backupDir},
		Now:              h.clock.Now,
		ProgressInterval: 20 * time.Millisecond,
		LeaseTTL:         3 * time.Second,
	}
	for _, o := range opts {
		o(h, &d)
	}
	h.cfg, h.policy, h.watch, h.schedules = d.Config, d.Policy, d.Watch, d.Schedules
	h.bot = h.newBot(d)
	return h
}

func (h *harness) newBot(d Deps) *Bot {
	h.t.Helper()
	if h.defaultTarget && d.Engine != nil {
		// As serve without TARGETS_FILE: the one target is named default.
		d.Targets = []Target{{Name: cleanup.DefaultTargetName, Engine: d.Engine, Policy: d.Policy}}
		d.Engine = nil
	}
	b, err := New(d)
	if err != nil {
		h.t.Fatalf("New: %v", err)
	}
	h.t.Cleanup(b.Close)
	return b
}

// deps rebuilds the Deps of the harness, e.g. for a second replica.
func (h *harness) deps() Deps {
	return Deps{
		Config: h.cfg, Chat: h.chat, Engine: h.engine, Auditor: h.auditor, Notifier: h.notifier, Policy: h.policy,
		Backup: cleanup.BackupConfig{Dir: h.backupDir}, Now: h.clock.Now, Watch: h.watch, Schedules: h.schedules,
		ProgressInterval: 20 * time.Millisecond, LeaseTTL: 3 * time.Second,
	}
}

func (h *harness) envelope() string {
	h.env++
	return fmt.Sprintf("env-%d", h.env)
}

// command types a slash command as user and waits for the preview to finish.
func (h *harness) command(user, text string) {
	h.t.Helper()
	h.bot.HandleCommand(context.Background(), Command{
		EnvelopeID: h.envelope(), TeamID: team, UserID: user, UserName: name(user),
		ChannelID: chan1, Text: text, ResponseURL: "https://hooks.example/resp",
	})
	h.bot.Wait()
}

// press presses a button as user on the message at ref and waits for any job it starts.
func (h *harness) press(user, actionID, value string) {
	h.t.Helper()
	h.pressOn(h.bot, user, actionID, value, h.envelope())
	h.bot.Wait()
}

func (h *harness) pressOn(b *Bot, user, actionID, value, env string) {
	b.HandleAction(context.Background(), Action{
		EnvelopeID: env, TeamID: team, UserID: user, UserName: name(user),
		ChannelID: chan1, ActionID: actionID, Value: value,
	})
}

func name(id string) string {
	return strings.ToLower(strings.TrimRight(strings.TrimPrefix(id, "U"), "0123456789"))
}

// button returns the value of the button actionID on m, failing when there is none.
func button(t *testing.T, m Message, actionID string) string {
	t.Helper()
	for _, b := range m.Buttons {
		if b.ActionID == actionID {
			return b.Value
		}
	}
	t.Fatalf("message %q has no %s button; buttons %+v", m.Title, actionID, m.Buttons)
	return ""
}

func actionIDs(m Message) []string {
	var ids []string
	for _, b := range m.Buttons {
		ids = append(ids, b.ActionID)
	}
	return ids
}

// auditLines returns the audit file's lines.
func (h *harness) auditLines() []string {
	h.t.Helper()
	data, err := os.ReadFile(h.auditPath)
	if err != nil && !os.IsNotExist(err) {
		h.t.Fatal(err)
	}
	return strings.Split(strings.TrimSpace(string(data)), "\n")
}

// audited returns the audit lines of event name.
func (h *harness) audited(event string) []string {
	var out []string
	for _, l := range h.auditLines() {
		if parts := strings.Split(l, " | "); len(parts) > 1 && parts[1] == event {
			out = append(out, l)
		}
	}
	return out
}

// sessionSpec describes seeded sessions.
type sessionSpec struct {
	n          int
	expired    bool
	authMethod string
	userID     string
	noTTL      bool
	idPrefix   string
}

// seed writes n realistic sessions (with canary tokens) and returns their ids.
func (h *harness) seed(s sessionSpec) []string {
	h.t.Helper()
	ctx := context.Background()
	now := h.clock.Now()
	if s.authMethod == "" {
		s.authMethod = "oauth2"
	}
	if s.idPrefix == "" {
		s.idPrefix = fmt.Sprintf("%s%v", s.authMethod, s.expired)
	}
	var ids []string
	pipe := h.rdb.Pipeline()
	for i := range s.n {
		id := fmt.Sprintf("%s-%04d-a1b2c3d4e5f6g7h8i9j0k1l2", s.idPrefix, i)
		ids = append(ids, id)
		user := s.userID
		if user == "" {
			user = fmt.Sprintf("auth0|%09d", i)
		}
		exp := now.Add(time.Hour)
		if s.expired {
			exp = now.Add(-time.Hour)
		}
		v, _ := json.Marshal(map[string]any{
			"user_id":          user,
			"username":         fmt.Sprintf("user%d.secretmail@example.com", i),
			"auth_method":      s.authMethod,
			"created_at":       now.Add(-2 * time.Hour).Format(time.RFC3339),
			"last_activity":    now.Add(-30 * time.Minute).Format(time.RFC3339),
			"expires_at":       exp.Format(time.RFC3339),
			"access_token":     "eyJ" + canary,
			"refresh_token":    "RT_" + canary,
			"token_expires_at": exp.Format(time.RFC3339),
			"cert_fingerprint": canary,
		})
		ttl := 2 * time.Hour
		if s.noTTL {
			ttl = 0
		}
		pipe.Set(ctx, "session:"+id, v, ttl)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		h.t.Fatal(err)
	}
	return ids
}

// seedOthers writes keys outside the session prefix that must survive everything.
func (h *harness) seedOthers() {
	h.t.Helper()
	ctx := context.Background()
	for _, k := range []string{"cb:payments", "cb:orders", "feature:user:1", "sessions:not-a-session", "Session:upper"} {
		if err := h.rdb.Set(ctx, k, "keep-me", 0).Err(); err != nil {
			h.t.Fatal(err)
		}
	}
}

func (h *harness) assertOthersIntact() {
	h.t.Helper()
	for _, k := range []string{"cb:payments", "cb:orders", "feature:user:1", "sessions:not-a-session", "Session:upper"} {
		if v, err := h.rdb.Get(context.Background(), k).Result(); err != nil || v != "keep-me" {
			h.t.Errorf("GET %s = %q, %v; want keep-me (keys outside the prefix must be untouched)", k, v, err)
		}
	}
}

// sessionCount counts keys with the session prefix.
func (h *harness) sessionCount() int {
	h.t.Helper()
	var n int
	iter := h.rdb.Scan(context.Background(), 0, "session:*", 1000).Iterator()
	for iter.Next(context.Background()) {
		n++
	}
	if err := iter.Err(); err != nil {
		h.t.Fatal(err)
	}
	return n
}

// assertNoLeaks checks that no token, e-mail or full session id reached chat or audit.
func (h *harness) assertNoLeaks(ids ...string) {
	h.t.Helper()
	audit, _ := os.ReadFile(h.auditPath)
	for what, text := range map[string]string{"chat": h.chat.everything(), "audit": string(audit)} {
		for _, bad := range append([]string{canary, "secretmail", "eyJ", "RT_"}, ids...) {
			if strings.Contains(text, bad) {
				h.t.Errorf("%s contains %q; tokens, e-mails and full session ids must never be shown", what, bad)
			}
		}
	}
}

func wantContains(t *testing.T, what, got string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(got, w) {
			t.Errorf("%s does not contain %q:\n%s", what, w, got)
		}
	}
}
