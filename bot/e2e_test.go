package bot

// End-to-end tests: the real serve path — slack.Transport over Socket Mode, the core Bot, the
// cleanup engine on a real redis-server seeded with sessions, slack.Chat and the Fanout —
// against the in-process fake Slack and fake PagerDuty. Everything is on loopback.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/slack-go/slack/socketmode"

	"github.com/platform-team/sessionbot/bot/pdtest"
	"github.com/platform-team/sessionbot/bot/remote"
	"github.com/platform-team/sessionbot/bot/slack"
	"github.com/platform-team/sessionbot/bot/slacktest"
	"github.com/platform-team/sessionbot/cleanup"
	"github.com/platform-team/sessionbot/cleanup/redistest"
)

// Identities of the end-to-end workspace: alice is an operator and an approver (so she can try
// to approve her own request), bob an approver.
const (
	e2eAlice   = "U0E2EALICE"
	e2eBob     = "U0E2EBOB01"
	e2eCanary  = "CANARY-e2e-5b1d0c7e-TOKEN"
	e2eReason  = "session secret rotated (INC-4242)"
	e2eCommand = `cleanup --all --reason "` + e2eReason + `"`
	e2eWait    = 20 * time.Second
)

type e2eEnv struct {
	t         *testing.T
	slack     *slacktest.Server
	pd        *pdtest.Server
	redis     *redistest.Server
	rdb       *redis.Client
	seeded    cleanup.SeedResult
	bot       *Bot
	announcer *Fanout
	transport *slack.Transport
	auditPath string
	ops       string // channel id of #sre-ops, where the command is typed
	stop      func() error
}

type e2eOptions struct {
	sessions int
	maxRate  int // engine keys/s; 0: unpaced
	// seed replaces the default data (sessions sessions, 30% expired, 20 unrelated keys); the
	// canary token is set either way.
	seed *cleanup.SeedSpec
	// config changes the bot's configuration.
	config func(*Config)
	// gate, when set, carries the engine's Redis traffic (the bot's state goes around it), so a
	// test can hold scans in flight.
	gate *gate
	// targets, when set, are the bot's targets (the standalone server keeps the bot's state
	// and may be one of them); Deps.Engine is not used.
	targets func(e *e2eEnv) []Target
}

func newE2E(t *testing.T, o e2eOptions) *e2eEnv {
	t.Helper()
	if o.sessions == 0 {
		o.sessions = 300
	}
	e := &e2eEnv{t: t, slack: slacktest.New(t), pd: pdtest.New(t), redis: redistest.Standalone(t)}
	e.rdb = e.redis.Client()
	e.slack.AddUser(e2eAlice, "alice", "alice@company.example")
	e.slack.AddUser(e2eBob, "bob", "bob@company.example")
	e.ops = e.slack.ChannelID("#sre-ops")

	ctx := context.Background()
	spec := cleanup.SeedSpec{Count: o.sessions, Seed: 42, Unrelated: 20}
	if o.seed != nil {
		spec = *o.seed
	}
	spec.CanaryToken = e2eCanary
	seeded, err := cleanup.Seed(ctx, e.rdb, spec)
	if err != nil {
		t.Fatal(err)
	}
	e.seeded = seeded

	sc := slack.Config{
		AppToken: remote.Secret(e.slack.AppToken()), BotToken: remote.Secret(e.slack.BotToken()), APIURL: e.slack.APIURL(),
	}
	if err := sc.Validate(); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.TeamID = slacktest.DefaultTeamID
	cfg.Operators = []string{e2eAlice}
	cfg.Approvers = []string{e2eAlice, e2eBob}
	cfg.UserNotifyChannel = "#general"
	if o.config != nil {
		o.config(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}

	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	metrics := NewMetrics("e2e")
	e.auditPath = filepath.Join(t.TempDir(), "audit.log")
	auditor, err := cleanup.NewAuditor(cleanup.AuditConfig{File: e.auditPath}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = auditor.Close() })

	chat := slack.NewChat(sc, slack.WithChatLogger(log), slack.WithChatRetry(4, 10*time.Second, 20*time.Millisecond))
	const routingKey = "E2EROUTINGKEY000000000000000000"
	pd := pagerDutySink(t, routingKey, e.pd.URL(), testRetry(4, 10*time.Second, 20*time.Millisecond))
	e.announcer = NewFanout(chat, append(SlackSinks(cfg, chat), pd), WithFanoutAudit(auditor), WithFanoutMetrics(metrics),
		WithFanoutLogger(log), WithFanoutSecrets(sc.AppToken, sc.BotToken, routingKey))
	var target redis.UniversalClient = e.rdb
	if o.gate != nil {
		gated := redis.NewClient(&redis.Options{Addr: e.redis.Addr(), Dialer: o.gate.dial, ReadTimeout: -1, WriteTimeout: -1})
		t.Cleanup(func() { _ = gated.Close() })
		target = gated
	}
	engine := cleanup.NewEngine(cleanup.NewTarget(target, "session:", e.redis.Addr()),
		cleanup.EngineConfig{BatchSize: 100, MaxRate: o.maxRate})
	deps := Deps{
		Config: cfg, Chat: chat, Engine: engine, Auditor: auditor, Notifier: e.announcer, Metrics: metrics, Policy: defaultPolicy, State: e.rdb,
		Backup: cleanup.BackupConfig{Dir: filepath.Join(t.TempDir(), "backups")}, Logger: log,
		ProgressInterval: 100 * time.Millisecond,
	}
	if o.targets != nil {
		deps.Engine, deps.Targets = nil, o.targets(e)
	}
	e.bot, err = New(deps)
	if err != nil {
		t.Fatal(err)
	}

	e.transport = slack.NewTransport(sc, cfg.Command, slack.WithTransportLogger(log), slack.WithTransportMetrics(metrics),
		slack.WithSocketModeOptions(socketmode.OptionPingInterval(time.Minute)))
	runCtx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.transport.Run(runCtx, e.bot) }()
	e.stop = func() error {
		cancel()
		select {
		case err := <-done:
			done <- err
			return err
		case <-time.After(15 * time.Second):
			return io.ErrNoProgress
		}
	}
	// Shutdown in the order of the serve command: stop taking envelopes, finish the jobs,
	// flush the notifications.
	t.Cleanup(func() {
		if err := e.stop(); err != nil {
			t.Errorf("transport Run = %v; want nil on shutdown", err)
		}
		e.bot.Close()
		e.announcer.Wait()
	})
	e.slack.WaitConnections(t, 1, e2eWait)
	slacktest.WaitFor(t, e.transport.Connected, e2eWait)
	return e
}

// command types a slash command in #sre-ops and waits for its ack.
func (e *e2eEnv) command(user, text string) string {
	e.t.Helper()
	env := e.slack.SlashCommand(slacktest.SlashCommand{UserID: user, UserName: e.name(user), ChannelID: e.ops, Command: "/sessions", Text: text})
	e.slack.WaitAck(e.t, env, 3*time.Second)
	return env
}

// press clicks the button actionID on message ts in #sre-ops as user and waits for the ack.
func (e *e2eEnv) press(user, ts, actionID string) string {
	e.t.Helper()
	return e.pressIn(user, e.ops, ts, actionID)
}

// pressIn clicks a button of the message ts in channel (an id) and waits for the ack.
func (e *e2eEnv) pressIn(user, channel, ts, actionID string) string {
	e.t.Helper()
	env := e.slack.PressButton(user, channel, ts, actionID)
	e.slack.WaitAck(e.t, env, 3*time.Second)
	return env
}

func (e *e2eEnv) name(user string) string {
	if user == e2eBob {
		return "bob"
	}
	return "alice"
}

// awaitButton waits for a message in #sre-ops that carries the button actionID.
func (e *e2eEnv) awaitButton(actionID string) slacktest.Message {
	e.t.Helper()
	var found slacktest.Message
	slacktest.WaitFor(e.t, func() bool {
		for _, m := range e.slack.Messages(e.ops) {
			if strings.Contains(string(m.Blocks), `"action_id":"`+actionID+`"`) {
				found = m
				return true
			}
		}
		return false
	}, e2eWait)
	return found
}

// awaitIncident waits for the Mass Logout Executed template in #platform-incidents and for the
// notifications to be flushed.
func (e *e2eEnv) awaitIncident() slacktest.Message {
	e.t.Helper()
	var found slacktest.Message
	slacktest.WaitFor(e.t, func() bool {
		for _, m := range e.slack.Messages("#platform-incidents") {
			if strings.Contains(string(m.Blocks), "Mass Logout Executed") {
				found = m
				return true
			}
		}
		return false
	}, e2eWait)
	slacktest.WaitFor(e.t, func() bool { return len(e.pd.ChangeEvents()) > 0 }, e2eWait)
	e.announcer.Wait()
	return found
}

func (e *e2eEnv) sessionCount() int {
	e.t.Helper()
	var n int
	iter := e.rdb.Scan(context.Background(), 0, "session:*", 1000).Iterator()
	for iter.Next(context.Background()) {
		n++
	}
	if err := iter.Err(); err != nil {
		e.t.Fatal(err)
	}
	return n
}

func (e *e2eEnv) audited(event string) []string {
	e.t.Helper()
	data, err := os.ReadFile(e.auditPath)
	if err != nil {
		e.t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		if parts := strings.Split(l, " | "); len(parts) > 1 && parts[1] == event {
			out = append(out, l)
		}
	}
	return out
}

// assertNoLeaks checks that no byte sent to Slack or PagerDuty carries a session token, a
// session's e-mail username, or a credential.
func (e *e2eEnv) assertNoLeaks() {
	e.t.Helper()
	if got := e.slack.RequestsContaining(e2eCanary); len(got) > 0 {
		e.t.Errorf("%d Slack request(s) carry the session canary, e.g. %.300s", len(got), got[0])
	}
	if got := e.slack.RequestsContaining("E2EROUTINGKEY"); len(got) > 0 {
		e.t.Errorf("a Slack request carries the PagerDuty routing key")
	}
	for _, r := range e.pd.Requests("") {
		for _, n := range []string{e2eCanary, e.slack.BotToken(), e.slack.AppToken(), "@example.com"} {
			if bytes.Contains(r.Body, []byte(n)) {
				e.t.Errorf("a PagerDuty request carries %q: %s", n, r.Body)
			}
		}
	}
	// Channel messages never show a session's username: Seed's usernames are e-mail
	// addresses @example.com.
	for _, method := range []string{"chat.postMessage", "chat.update", "chat.postEphemeral"} {
		for _, c := range e.slack.Calls(method) {
			for _, v := range []string{c.Form.Get("text"), c.Form.Get("blocks")} {
				if strings.Contains(v, "@example.com") || strings.Contains(v, "access_token") {
					e.t.Errorf("%s carries session data: %.300s", method, v)
				}
			}
		}
	}
	if data, err := os.ReadFile(e.auditPath); err == nil && bytes.Contains(data, []byte(e2eCanary)) {
		e.t.Error("the audit log carries the session canary")
	}
}

// TestE2EMassLogoutFlow drives a mass logout through Socket Mode: the slash command, the
// approval request with approve/reject buttons, a refused self-approval, the approval by
// another approver, progress updates, the final report, the runbook's Mass Logout template in
// #platform-incidents, the user notice, and PagerDuty's change event. It logs a readable
// transcript (go test -v -run TestE2EMassLogoutFlow ./bot/).
func TestE2EMassLogoutFlow(t *testing.T) {
	e := newE2E(t, e2eOptions{sessions: 6000, maxRate: 6000})
	defer func() { logTranscript(t, e) }()

	e.command(e2eAlice, e2eCommand)
	req := e.awaitButton("approve")
	for _, want := range []string{`"action_id":"approve"`, `"action_id":"reject"`, `"block_id":"actions"`} {
		if !strings.Contains(string(req.Blocks), want) {
			t.Errorf("approval request lacks %s: %s", want, req.Blocks)
		}
	}
	if strings.Contains(string(req.Blocks), `"action_id":"run"`) {
		t.Errorf("a mass logout request offers run: %s", req.Blocks)
	}

	// The requester may not approve her own request, even though she is an approver.
	e.press(e2eAlice, req.TS, "approve")
	slacktest.WaitFor(t, func() bool { return len(e.refusalsFor(e2eAlice)) > 0 }, e2eWait)
	if r := e.refusalsFor(e2eAlice); !strings.Contains(r[0], "two-person rule") {
		t.Errorf("self-approval refusal = %q", r[0])
	}
	if n := e.sessionCount(); n != int(e.seeded.Count) {
		t.Fatalf("%d sessions left after a refused self-approval; want all %d", n, e.seeded.Count)
	}

	e.press(e2eBob, req.TS, "approve")
	incident := e.awaitIncident()

	if n := e.sessionCount(); n != 0 {
		t.Errorf("%d sessions left after the mass logout", n)
	}
	for _, k := range e.seeded.UnrelatedKeys {
		if n, err := e.rdb.Exists(context.Background(), k).Result(); err != nil || n != 1 {
			t.Errorf("unrelated key %q was touched (exists=%d, %v)", k, n, err)
		}
	}
	// Progress: the request message was updated while running, then replaced by the report.
	updates := 0
	for _, c := range e.slack.Calls("chat.update") {
		if c.Form.Get("ts") == req.TS && c.Status == 200 {
			updates++
		}
	}
	if updates < 3 {
		t.Errorf("%d updates of the request message; want progress updates and the final report", updates)
	}
	final, _ := e.slack.Message(e.ops, req.TS)
	if !strings.Contains(string(final.Blocks), "Cleanup completed") || strings.Contains(string(final.Blocks), `"type":"actions"`) {
		t.Errorf("final report = %s; want the completed report without buttons", final.Blocks)
	}
	for _, want := range []string{":warning: *Mass Logout Executed*", "*Affected Users:* All active users", e2eReason,
		"*Action Required:*", "*Impact:*", "*Support:*"} {
		if !strings.Contains(string(incident.Blocks), jsonString(want)) {
			t.Errorf("#platform-incidents template lacks %q", want)
		}
	}
	if notice := e.slack.Messages("#general"); len(notice) != 1 {
		t.Errorf("#general has %d messages; want the user notice", len(notice))
	}
	ch := e.pd.ChangeEvents()
	if len(ch) != 1 {
		t.Fatalf("%d PagerDuty change events; want 1", len(ch))
	}
	d := ch[0].Payload.CustomDetails
	if d["requester"] != e2eAlice+" (alice)" || d["approver"] != e2eBob+" (bob)" || d["mode"] != "all" {
		t.Errorf("change event details = %v", d)
	}
	if len(ch[0].Links) != 1 || ch[0].Links[0].Href != Permalink(MessageRef{Channel: e.ops, TS: req.TS}) {
		t.Errorf("change event links = %+v; want the request message", ch[0].Links)
	}
	for _, ev := range e.pd.Events() {
		if ev.Action == "trigger" {
			t.Errorf("an alert was triggered for a successful run: %+v", ev)
		}
	}
	if n := len(e.audited(cleanup.EventApproved)); n != 1 {
		t.Errorf("%d Approved lines; want 1", n)
	}
	if n := len(e.audited(cleanup.EventRefused)); n != 1 {
		t.Errorf("%d Refused lines; want 1 (the self-approval)", n)
	}
	if got := e.audited(cleanup.EventNotificationFailed); len(got) != 0 {
		t.Errorf("notifications failed: %q", got)
	}
	e.assertNoLeaks()
}

// refusalsFor returns the texts of ephemeral messages and response-URL posts, in order. The
// fake does not record whom a response URL belongs to, so response-URL posts count for every
// user: tests click one user at a time.
func (e *e2eEnv) refusalsFor(user string) []string {
	var out []string
	for _, m := range e.slack.Ephemerals(user) {
		out = append(out, m.Text)
	}
	for _, p := range e.slack.ResponseURLPosts() {
		out = append(out, p.Text)
	}
	return out
}

// A redelivered approval (same envelope, as after a late ack) is acked again and handled once.
func TestE2ERedeliveredApprovalRunsOnce(t *testing.T) {
	e := newE2E(t, e2eOptions{})
	cmd := e.command(e2eAlice, e2eCommand)
	e.slack.Redeliver(cmd)
	slacktest.WaitFor(t, func() bool { return e.slack.Acks(cmd) == 2 }, e2eWait)
	req := e.awaitButton("approve")

	env := e.press(e2eBob, req.TS, "approve")
	e.slack.Redeliver(env)
	e.slack.Redeliver(env)
	slacktest.WaitFor(t, func() bool { return e.slack.Acks(env) == 3 }, e2eWait)
	e.awaitIncident()

	var requests int
	for _, m := range e.slack.Messages(e.ops) {
		if strings.Contains(string(m.Blocks), "Mass logout") || strings.Contains(string(m.Blocks), "Cleanup completed") {
			requests++
		}
	}
	if requests != 1 {
		t.Errorf("%d request messages in #sre-ops; want 1 despite the redelivered command", requests)
	}
	if n := len(e.audited(cleanup.EventApproved)); n != 1 {
		t.Errorf("%d Approved lines; want 1", n)
	}
	if n := len(e.pd.ChangeEvents()); n != 1 {
		t.Errorf("%d change events; want 1", n)
	}
	incidents := 0
	for _, m := range e.slack.Messages("#platform-incidents") {
		if strings.Contains(string(m.Blocks), "Mass Logout Executed") {
			incidents++
		}
	}
	if incidents != 1 {
		t.Errorf("%d Mass Logout templates; want 1", incidents)
	}
	if got := e.refusalsFor(e2eBob); len(got) != 0 {
		t.Errorf("a redelivery was answered: %q", got)
	}
	e.assertNoLeaks()
}

// Slack recycles the connection between the request and the approval: the bot reconnects and
// the approval still runs the job.
func TestE2EDisconnectMidFlow(t *testing.T) {
	e := newE2E(t, e2eOptions{})
	e.command(e2eAlice, e2eCommand)
	req := e.awaitButton("approve")

	opens := len(e.slack.Calls("apps.connections.open"))
	e.slack.Disconnect("refresh_requested")
	slacktest.WaitFor(t, func() bool { return len(e.slack.Calls("apps.connections.open")) > opens }, e2eWait)
	// And once more, abruptly, as soon as the new socket is up (dropping keeps failing until it
	// is registered).
	slacktest.WaitFor(t, func() bool {
		if len(e.slack.Calls("apps.connections.open")) > opens+1 {
			return true
		}
		e.slack.DropConnections()
		return false
	}, e2eWait)
	e.slack.WaitConnections(t, 1, e2eWait)
	slacktest.WaitFor(t, e.transport.Connected, e2eWait)

	e.press(e2eBob, req.TS, "approve")
	e.awaitIncident()
	if n := e.sessionCount(); n != 0 {
		t.Errorf("%d sessions left", n)
	}
	e.assertNoLeaks()
}

// Slack rate-limits chat.update while the job reports progress: the job finishes and the final
// report still lands.
func TestE2ESlackRateLimitDuringProgress(t *testing.T) {
	e := newE2E(t, e2eOptions{sessions: 3000, maxRate: 6000})
	e.command(e2eAlice, e2eCommand)
	req := e.awaitButton("approve")
	e.slack.FailNext("chat.update", 3, 429, time.Second)

	e.press(e2eBob, req.TS, "approve")
	e.awaitIncident()
	var limited int
	for _, c := range e.slack.Calls("chat.update") {
		if c.Status == 429 {
			limited++
		}
	}
	if limited != 3 {
		t.Errorf("%d rate-limited chat.update calls; want the 3 injected", limited)
	}
	if n := e.sessionCount(); n != 0 {
		t.Errorf("%d sessions left: a rate limit on progress broke the job", n)
	}
	slacktest.WaitFor(t, func() bool {
		m, _ := e.slack.Message(e.ops, req.TS)
		return strings.Contains(string(m.Blocks), "Cleanup completed")
	}, e2eWait)
}

// PagerDuty answers 500 and then accepts: the change event is retried, delivered once, and no
// failure is reported.
func TestE2EPagerDutyOutageThenSuccess(t *testing.T) {
	e := newE2E(t, e2eOptions{})
	e.pd.FailNext(pdtest.ChangePath, 1, 500)
	e.pd.FailNext(pdtest.AlertPath, 1, 503)
	e.command(e2eAlice, e2eCommand)
	req := e.awaitButton("approve")
	e.press(e2eBob, req.TS, "approve")
	e.awaitIncident()

	if n := len(e.pd.Requests(pdtest.ChangePath)); n != 2 {
		t.Errorf("%d change requests; want 2 (500, then accepted)", n)
	}
	if n := len(e.pd.ChangeEvents()); n != 1 {
		t.Errorf("%d change events; want 1", n)
	}
	if got := e.audited(cleanup.EventNotificationFailed); len(got) != 0 {
		t.Errorf("a retried notification was reported as failed: %q", got)
	}
	e.assertNoLeaks()
}

// PagerDuty stays down: the cleanup is unaffected, and the failure is reported in the job's
// thread and audited.
func TestE2EPagerDutyDownIsReportedNotFatal(t *testing.T) {
	e := newE2E(t, e2eOptions{})
	e.pd.FailNext(pdtest.ChangePath, 100, 503)
	e.command(e2eAlice, e2eCommand)
	req := e.awaitButton("approve")
	e.press(e2eBob, req.TS, "approve")
	slacktest.WaitFor(t, func() bool { return len(e.audited(cleanup.EventNotificationFailed)) > 0 }, e2eWait)
	e.announcer.Wait()

	if n := e.sessionCount(); n != 0 {
		t.Errorf("%d sessions left", n)
	}
	var reported bool
	for _, m := range e.slack.Messages(e.ops) {
		if m.ThreadTS == req.TS && strings.Contains(string(m.Blocks), "Notification failed") {
			reported = true
		}
	}
	if !reported {
		t.Error("the PagerDuty failure is not reported in the job's thread")
	}
	if got := e.audited(cleanup.EventNotificationFailed); !strings.Contains(got[0], "Channel: pagerduty") {
		t.Errorf("Notification Failed line = %q", got[0])
	}
}

// logTranscript logs every message the bot posted, updated or showed, in order, as people saw
// it, followed by the PagerDuty events.
func logTranscript(t *testing.T, e *e2eEnv) {
	t.Helper()
	type entry struct {
		at   time.Time
		text string
	}
	var entries []entry
	names := map[string]string{e.ops: "#sre-ops", e.slack.ChannelID("#platform-incidents"): "#platform-incidents",
		e.slack.ChannelID("#general"): "#general"}
	chName := func(id string) string {
		if n, ok := names[id]; ok {
			return n
		}
		return id
	}
	last := map[string]string{} // ts -> last rendering, to fold unchanged progress updates
	folded := 0
	for _, c := range e.slack.AllCalls() {
		var head string
		body := blocksText(c.Form.Get("blocks"), c.Form.Get("text"))
		if c.Method == "chat.update" && c.Status == 200 {
			if last[c.Form.Get("ts")] == body {
				folded++
				continue
			}
			last[c.Form.Get("ts")] = body
		}
		switch c.Method {
		case "chat.postMessage":
			head = "POST   " + chName(c.Form.Get("channel"))
			if ts := c.Form.Get("thread_ts"); ts != "" {
				head += " (thread " + ts + ")"
			}
		case "chat.update":
			head = "UPDATE " + chName(c.Form.Get("channel")) + " " + c.Form.Get("ts")
		case "chat.postEphemeral":
			head = "EPHEMERAL to " + c.Form.Get("user")
		default:
			continue
		}
		if c.Status != 200 || c.Error != "" {
			head += " -> FAILED " + strings.TrimSpace(c.Error+" "+httpStatus(c.Status))
		}
		entries = append(entries, entry{c.Time, head + "\n" + indent(body)})
	}
	for _, p := range e.slack.ResponseURLPosts() {
		entries = append(entries, entry{p.Time, "EPHEMERAL via response_url\n" + indent(blocksText(string(p.Blocks), p.Text))})
	}
	for _, ev := range e.pd.ChangeEvents() {
		raw, _ := json.MarshalIndent(redactRoutingKey(ev.Raw), "", "  ")
		entries = append(entries, entry{ev.Time, "PAGERDUTY change event\n" + indent(string(raw))})
	}
	for _, ev := range e.pd.Events() {
		raw, _ := json.MarshalIndent(redactRoutingKey(ev.Raw), "", "  ")
		entries = append(entries, entry{ev.Time, "PAGERDUTY alert event (" + ev.Action + ")\n" + indent(string(raw))})
	}
	sort.SliceStable(entries, func(i, j int) bool { return entries[i].at.Before(entries[j].at) })
	var b strings.Builder
	b.WriteString("\n===== transcript: mass logout through Slack (Socket Mode) =====\n")
	if folded > 0 {
		b.WriteString(fmt.Sprintf("(%d chat.update calls that left a message unchanged are not shown)\n", folded))
	}
	start := time.Time{}
	for _, en := range entries {
		if start.IsZero() {
			start = en.at
		}
		b.WriteString("\n[+" + en.at.Sub(start).Round(time.Millisecond).String() + "] " + en.text + "\n")
	}
	t.Log(b.String())
}

func httpStatus(code int) string {
	if code == 0 {
		return ""
	}
	return "HTTP " + strconv.Itoa(code)
}

func indent(s string) string {
	return "    " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n    ")
}

func redactRoutingKey(raw json.RawMessage) any {
	var v map[string]any
	if json.Unmarshal(raw, &v) != nil {
		return string(raw)
	}
	if _, ok := v["routing_key"]; ok {
		v["routing_key"] = "[redacted]"
	}
	return v
}

// blocksText renders Block Kit JSON as the plain text a reader sees: header, sections, fields,
// context, and buttons as [Label].
func blocksText(blocks, fallback string) string {
	var bs []map[string]any
	if blocks == "" || json.Unmarshal([]byte(blocks), &bs) != nil {
		return fallback
	}
	text := func(v any) string {
		if m, ok := v.(map[string]any); ok {
			s, _ := m["text"].(string)
			return s
		}
		return ""
	}
	var lines []string
	for _, b := range bs {
		switch b["type"] {
		case "header":
			lines = append(lines, "## "+text(b["text"]))
		case "section":
			if s := text(b["text"]); s != "" {
				lines = append(lines, s)
			}
			if fs, ok := b["fields"].([]any); ok {
				var parts []string
				for _, f := range fs {
					parts = append(parts, strings.ReplaceAll(text(f), "\n", " "))
				}
				lines = append(lines, strings.Join(parts, " | "))
			}
		case "context":
			var parts []string
			for _, el := range b["elements"].([]any) {
				parts = append(parts, text(el))
			}
			lines = append(lines, "("+strings.Join(parts, " · ")+")")
		case "actions":
			var parts []string
			for _, el := range b["elements"].([]any) {
				m, _ := el.(map[string]any)
				parts = append(parts, "["+text(m["text"])+"]")
			}
			lines = append(lines, strings.Join(parts, " "))
		}
	}
	return strings.Join(lines, "\n")
}
