package bot

// Reliability tests: several replicas of the real serve path (slack.Transport + Bot + slack.Chat +
// Fanout) against one fake Slack, one fake PagerDuty and one real redis-server; replicas that
// crash or lose their socket mid-job; Slack and PagerDuty that rate-limit, fail or hang. Every
// assertion is on what is left in Redis, what reached the fakes, and the audit lines.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/slack-go/slack/socketmode"

	"github.com/platform-team/sessionbot/bot/chat"
	"github.com/platform-team/sessionbot/bot/pdtest"
	"github.com/platform-team/sessionbot/bot/remote"
	"github.com/platform-team/sessionbot/bot/slack"
	"github.com/platform-team/sessionbot/bot/slacktest"
	"github.com/platform-team/sessionbot/cleanup"
	"github.com/platform-team/sessionbot/cleanup/redistest"
	"github.com/platform-team/sessionbot/internal/testkit"
)

// Identities of the fleet's workspace: alice is the operator who asks, bob and carol approve,
// erin is a member of the workspace who is neither (a guest).
const (
	flAlice  = "U0FLALICE1"
	flBob    = "U0FLBOB001"
	flCarol  = "U0FLCAROL1"
	flErin   = "U0FLERIN01"
	flCanary = "CANARY-fleet-8e21d4a0-TOKEN"
	flRKey   = "FLEETROUTINGKEY0000000000000000"
	flReason = "signing key rotated (INC-7)"
	flWait   = 30 * time.Second
)

// killSwitch cuts everything a replica sends to Redis, Slack's Web API and PagerDuty, as if its
// process had died: open connections are closed and new ones refused. What the replica does
// afterwards reaches nobody (its audit file is its own, as on its own pod).
type killSwitch struct {
	dead  atomic.Bool
	mu    sync.Mutex
	conns []net.Conn
}

func (k *killSwitch) kill() {
	k.dead.Store(true)
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, c := range k.conns {
		_ = c.Close()
	}
	k.conns = nil
}

// revive lets new connections through again (the network came back).
func (k *killSwitch) revive() { k.dead.Store(false) }

var errKilled = errors.New("connection refused (replica killed)")

// dial is a go-redis Dialer that tracks its connections.
func (k *killSwitch) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	if k.dead.Load() {
		return nil, errKilled
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.dead.Load() {
		_ = c.Close()
		return nil, errKilled
	}
	k.conns = append(k.conns, c)
	return c, nil
}

type killableTransport struct {
	k    *killSwitch
	base http.RoundTripper
}

func (t killableTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if t.k.dead.Load() {
		return nil, errKilled
	}
	return t.base.RoundTrip(r)
}

// proxy is a reverse proxy to upstream that stops answering when the switch is killed (for
// PagerDuty, whose client takes no http.Client).
func (k *killSwitch) proxy(t *testing.T, upstream string) string {
	u, err := url.Parse(upstream)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.ErrorLog = nil
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if k.dead.Load() {
			if hj, ok := w.(http.Hijacker); ok {
				if c, _, err := hj.Hijack(); err == nil {
					_ = c.Close()
					return
				}
			}
			http.Error(w, "dead", http.StatusServiceUnavailable)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// replica is one `serve` process: transport, core, chat, announcer, its own Redis client, its own
// audit file and logs.
type replica struct {
	name      string
	bot       *Bot
	announcer *Fanout
	transport *slack.Transport
	metrics   *Metrics
	auditPath string
	logs      *testkit.SyncBuffer // the process's JSON logs (debug level)
	stdout    *testkit.SyncBuffer // audit lines echoed to stdout
	ks        *killSwitch
	stateKS   *killSwitch // cuts the state connections only (fleetOptions.separateState)
	targetKS  *killSwitch // cuts the engine's target connections only (fleetOptions.separateTarget)
	// stopSocket ends the transport only (the socket closes and never comes back); the core
	// keeps running its jobs.
	stopSocket func()
	// stop shuts the replica down as serve does on SIGTERM.
	stop     func()
	stopOnce sync.Once
}

type fleet struct {
	t        *testing.T
	slack    *slacktest.Server
	pd       *pdtest.Server
	redis    *redistest.Server
	rdb      *redis.Client
	state    *redistest.Server // nil: state lives in the target (redis)
	seeded   cleanup.SeedResult
	cfg      Config
	ops      string
	replicas []*replica
	backups  string // BACKUP_DIR of every replica
}

type fleetOptions struct {
	replicas int
	sessions int
	maxRate  int           // engine keys/s (0: unpaced)
	leaseTTL time.Duration // 0: 2 s
	progress time.Duration // 0: 100 ms
	// chatTimeout bounds each HTTP request to Slack (0: none), for tests that make Slack hang.
	chatTimeout time.Duration
	// pdAttempt bounds each PagerDuty attempt (0: the default).
	pdAttempt time.Duration
	config    func(*Config)
	threshold int64  // APPROVAL_THRESHOLD; 0: its default
	auditFile string // "": one file per replica
	// separateState gives each replica its own connections for state (as with STATE_REDIS_URL),
	// which replica.stateKS cuts without touching the engine's.
	separateState bool
	// stateServer keeps the state in a redis-server of its own (STATE_REDIS_URL), reached
	// through each replica's kill switch, so that the target can restart without it.
	stateServer bool
	// noSeed leaves the target empty: the test writes its own sessions.
	noSeed bool
	// separateTarget puts the engine's connections to the target behind replica.targetKS, so
	// that a test can take the target away from a replica (Redis down) and bring it back.
	separateTarget bool
	// now is every replica's clock (nil: time.Now).
	now func() time.Time
}

func newFleet(t *testing.T, o fleetOptions) *fleet {
	t.Helper()
	if o.replicas == 0 {
		o.replicas = 1
	}
	if o.sessions == 0 {
		o.sessions = 300
	}
	if o.leaseTTL == 0 {
		o.leaseTTL = 2 * time.Second
	}
	if o.progress == 0 {
		o.progress = 100 * time.Millisecond
	}
	f := &fleet{t: t, slack: slacktest.New(t), pd: pdtest.New(t), redis: redistest.Standalone(t)}
	f.rdb = f.redis.Client()
	for id, n := range map[string]string{flAlice: "alice", flBob: "bob", flCarol: "carol", flErin: "erin"} {
		f.slack.AddUser(id, n, n+"@company.example")
	}
	f.ops = f.slack.ChannelID("#sre-ops")
	if o.stateServer {
		f.state = redistest.Standalone(t)
	}
	if !o.noSeed {
		seeded, err := cleanup.Seed(context.Background(), f.rdb, cleanup.SeedSpec{Count: o.sessions, Seed: 7, Unrelated: 20, CanaryToken: flCanary})
		if err != nil {
			t.Fatal(err)
		}
		f.seeded = seeded
	}

	f.cfg = DefaultConfig()
	f.cfg.TeamID = slacktest.DefaultTeamID
	f.cfg.Operators = []string{flAlice}
	f.cfg.Approvers = []string{flBob, flCarol}
	if o.config != nil {
		o.config(&f.cfg)
	}
	if err := f.cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	f.backups = filepath.Join(dir, "backups")
	// One at a time, so that slacktest.Connection(i) is replica i (connections count in the
	// order they were opened).
	for i := range o.replicas {
		r := f.startReplica(i, o, dir)
		f.replicas = append(f.replicas, r)
		f.slack.WaitConnections(t, i+1, flWait)
		slacktest.WaitFor(t, r.transport.Connected, flWait)
	}
	return f
}

func (f *fleet) startReplica(i int, o fleetOptions, dir string) *replica {
	t := f.t
	r := &replica{name: fmt.Sprintf("replica-%d", i), logs: &testkit.SyncBuffer{}, stdout: &testkit.SyncBuffer{}, ks: &killSwitch{}, stateKS: &killSwitch{}, targetKS: &killSwitch{}}
	log := slog.New(slog.NewJSONHandler(r.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	r.auditPath = o.auditFile
	if r.auditPath == "" {
		r.auditPath = filepath.Join(dir, r.name+".audit.log")
	}
	auditor, err := cleanup.NewAuditor(cleanup.AuditConfig{File: r.auditPath}, r.stdout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = auditor.Close() })

	targetDial := r.ks.dial
	if o.separateTarget {
		targetDial = r.targetKS.dial
	}
	rdb := redis.NewClient(&redis.Options{Addr: f.redis.Addr(), Dialer: targetDial, MaxRetries: 1,
		DialerRetries: 1, DialerRetryTimeout: time.Millisecond})
	t.Cleanup(func() { _ = rdb.Close() })
	base := http.DefaultTransport.(*http.Transport).Clone()
	hc := &http.Client{Transport: killableTransport{k: r.ks, base: base}, Timeout: o.chatTimeout}
	sc := slack.Config{
		AppToken: remote.Secret(f.slack.AppToken()), BotToken: remote.Secret(f.slack.BotToken()), APIURL: f.slack.APIURL(),
	}
	if err := sc.Validate(); err != nil {
		t.Fatal(err)
	}
	r.metrics = NewMetrics("fleet")
	chat := slack.NewChat(sc, slack.WithChatLogger(log), slack.WithChatRetry(4, 5*time.Second, 20*time.Millisecond), slack.WithChatHTTPClient(hc))
	pdRetry := testRetry(4, 5*time.Second, 20*time.Millisecond)
	if o.pdAttempt > 0 {
		pdRetry.Attempt = o.pdAttempt
	}
	pd := pagerDutySink(t, flRKey, r.ks.proxy(t, f.pd.URL()), pdRetry)
	r.announcer = NewFanout(chat, append(SlackSinks(f.cfg, chat), pd), WithFanoutAudit(auditor), WithFanoutMetrics(r.metrics),
		WithFanoutLogger(log), WithFanoutSecrets(sc.AppToken, sc.BotToken, flRKey))
	engine := cleanup.NewEngine(cleanup.NewTarget(rdb, "session:", f.redis.Addr()),
		cleanup.EngineConfig{BatchSize: 100, MaxRate: o.maxRate, RetryFor: time.Second})
	var state redis.UniversalClient
	switch {
	case o.stateServer:
		sc := redis.NewClient(&redis.Options{Addr: f.state.Addr(), Dialer: r.ks.dial, MaxRetries: 1,
			DialerRetries: 1, DialerRetryTimeout: time.Millisecond})
		t.Cleanup(func() { _ = sc.Close() })
		state = sc
	case o.separateState:
		sc := redis.NewClient(&redis.Options{Addr: f.redis.Addr(), Dialer: r.stateKS.dial, MaxRetries: 1,
			DialerRetries: 1, DialerRetryTimeout: time.Millisecond})
		t.Cleanup(func() { _ = sc.Close() })
		state = sc
	}
	policy := defaultPolicy
	if o.threshold > 0 {
		policy.Threshold = o.threshold
	}
	r.bot, err = New(Deps{
		Config: f.cfg, Chat: chat, Engine: engine, Auditor: auditor, Notifier: r.announcer, Metrics: r.metrics, State: state, Policy: policy,
		Backup: cleanup.BackupConfig{Dir: f.backups}, Logger: log,
		ProgressInterval: o.progress, LeaseTTL: o.leaseTTL, SweepInterval: 50 * time.Millisecond, Now: o.now,
	})
	if err != nil {
		t.Fatal(err)
	}
	r.transport = slack.NewTransport(sc, f.cfg.Command, slack.WithTransportLogger(log), slack.WithTransportMetrics(r.metrics),
		slack.WithSocketModeOptions(socketmode.OptionPingInterval(time.Minute)), slack.WithTransportHTTPClient(hc))

	socketCtx, stopSocket := context.WithCancel(context.Background())
	runCtx, stopRun := context.WithCancel(context.Background())
	socketDone := make(chan error, 1)
	go func() { socketDone <- r.transport.Run(socketCtx, r.bot) }()
	runDone := make(chan struct{})
	go func() { defer close(runDone); _ = r.bot.Run(runCtx) }()
	var socketOnce sync.Once
	r.stopSocket = func() {
		socketOnce.Do(func() {
			stopSocket()
			select {
			case err := <-socketDone:
				if err != nil {
					t.Errorf("%s: transport Run = %v; want nil on shutdown", r.name, err)
				}
			case <-time.After(20 * time.Second):
				t.Errorf("%s: transport did not stop", r.name)
			}
		})
	}
	r.stop = func() {
		r.stopOnce.Do(func() {
			r.stopSocket()
			stopRun()
			<-runDone
			r.bot.Close()
			r.announcer.Wait()
		})
	}
	t.Cleanup(r.stop)
	return r
}

// command types a slash command in #sre-ops and waits for its ack.
func (f *fleet) command(user, text string) string {
	f.t.Helper()
	env := f.slack.SlashCommand(slacktest.SlashCommand{UserID: user, UserName: f.userName(user), ChannelID: f.ops, Command: "/sessions", Text: text})
	f.slack.WaitAck(f.t, env, 3*time.Second)
	return env
}

func (f *fleet) userName(id string) string {
	return map[string]string{flAlice: "alice", flBob: "bob", flCarol: "carol", flErin: "erin"}[id]
}

// click delivers a click on the button actionID of message ts, without waiting for the ack.
func (f *fleet) click(user, team, ts, actionID string) string {
	f.t.Helper()
	return f.slack.BlockAction(slacktest.BlockAction{TeamID: team, UserID: user, UserName: f.userName(user),
		ChannelID: f.ops, MessageTS: ts, ActionID: actionID})
}

// awaitButton waits for a message in #sre-ops carrying the button actionID.
func (f *fleet) awaitButton(actionID string) slacktest.Message {
	f.t.Helper()
	var found slacktest.Message
	slacktest.WaitFor(f.t, func() bool {
		for _, m := range f.slack.Messages(f.ops) {
			if strings.Contains(string(m.Blocks), `"action_id":"`+actionID+`"`) {
				found = m
				return true
			}
		}
		return false
	}, flWait)
	return found
}

// awaitMessage waits until the message ts in #sre-ops contains every want.
func (f *fleet) awaitMessage(ts string, wants ...string) slacktest.Message {
	f.t.Helper()
	var m slacktest.Message
	ok := pollUntil(func() bool {
		m, _ = f.slack.Message(f.ops, ts)
		for _, w := range wants {
			if !strings.Contains(string(m.Blocks), w) {
				return false
			}
		}
		return true
	}, flWait)
	if !ok {
		f.t.Fatalf("message %s never showed %q; it shows:\n%s", ts, wants, blocksText(string(m.Blocks), m.Text))
	}
	return m
}

// pollUntil polls cond every 2 ms until it holds or timeout passes.
func pollUntil(cond func() bool, timeout time.Duration) bool {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline.C:
			return cond()
		case <-tick.C:
		}
	}
	return true
}

func (f *fleet) sessionCount() int {
	f.t.Helper()
	n, err := countKeys(f.rdb, "session:*")
	if err != nil {
		f.t.Fatal(err)
	}
	return n
}

func countKeys(rdb *redis.Client, pattern string) (int, error) {
	var n int
	iter := rdb.Scan(context.Background(), 0, pattern, 1000).Iterator()
	for iter.Next(context.Background()) {
		n++
	}
	return n, iter.Err()
}

// audited returns the lines of event from every replica's audit file (or the shared one).
func (f *fleet) audited(event string) []string {
	f.t.Helper()
	seen := map[string]bool{}
	var out []string
	for _, r := range f.replicas {
		if seen[r.auditPath] {
			continue
		}
		seen[r.auditPath] = true
		out = append(out, auditLinesOf(f.t, r.auditPath, event)...)
	}
	return out
}

func auditLinesOf(t *testing.T, path, event string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		if parts := strings.Split(l, " | "); len(parts) > 1 && (event == "" || parts[1] == event) {
			out = append(out, l)
		}
	}
	return out
}

// executed returns the Cleanup Started lines of destructive runs (not dry runs).
func (f *fleet) executed() []string {
	var out []string
	for _, l := range f.audited(cleanup.EventCleanupStarted) {
		if !strings.Contains(l, "Mode: dry-run") {
			out = append(out, l)
		}
	}
	return out
}

// requestMassLogout types the mass logout (with extra flags) and returns the approval request.
func (f *fleet) requestMassLogout(flags ...string) slacktest.Message {
	f.t.Helper()
	f.command(flAlice, strings.TrimSpace(`cleanup --all --reason "`+flReason+`" `+strings.Join(flags, " ")))
	return f.awaitButton("approve")
}

// deletedSoFar waits until the job shown on message ts has deleted something and not finished.
var progressDeleted = regexp.MustCompile(`deleted ([1-9][0-9,]*) · skipped`)

func (f *fleet) awaitProgress(ts string) {
	f.t.Helper()
	ok := pollUntil(func() bool {
		m, _ := f.slack.Message(f.ops, ts)
		return progressDeleted.Match(m.Blocks)
	}, flWait)
	if !ok {
		m, _ := f.slack.Message(f.ops, ts)
		f.t.Fatalf("no progress shown on %s: %s", ts, blocksText(string(m.Blocks), m.Text))
	}
}

// Two replicas, the two approvers pressing Approve at the same moment and each click reaching
// a different replica (plus a redelivery of each): exactly one job runs, the keys are deleted
// once, one change event reaches PagerDuty, and the losing click is refused and audited.
func TestReplicasConcurrentApprovalsRunOneJob(t *testing.T) {
	f := newFleet(t, fleetOptions{replicas: 2, sessions: 2000, maxRate: 8000})
	req := f.requestMassLogout()

	// Bob's click reaches replica 0 and Carol's replica 1 back to back (deliveries are socket
	// writes; each replica handles its click at once), then each is redelivered to the other.
	envs := make([]string, 2)
	for i, user := range []string{flBob, flCarol} {
		f.slack.SetRoute(slacktest.Connection(i))
		envs[i] = f.click(user, "", req.TS, "approve")
	}
	for i, env := range envs {
		f.slack.SetRoute(slacktest.Connection(1 - i))
		f.slack.Redeliver(env)
	}
	for _, env := range envs {
		slacktest.WaitFor(t, func() bool { return f.slack.Acks(env) == 2 }, flWait)
		if e, _ := f.slack.Envelope(env); len(e.ConnIDs) != 2 || e.ConnIDs[0] == e.ConnIDs[1] {
			t.Errorf("envelope %s went to connections %v; want both replicas", env, e.ConnIDs)
		}
	}
	f.awaitMessage(req.TS, "Cleanup completed")
	slacktest.WaitFor(t, func() bool { return len(f.pd.ChangeEvents()) >= 1 }, flWait)
	for _, r := range f.replicas {
		r.stop()
	}

	if n := f.sessionCount(); n != 0 {
		t.Errorf("%d sessions left after the mass logout", n)
	}
	if got := f.executed(); len(got) != 1 {
		t.Errorf("%d destructive Cleanup Started lines; want 1: %q", len(got), got)
	}
	if got := f.audited(cleanup.EventApproved); len(got) != 1 {
		t.Errorf("%d Approved lines; want 1: %q", len(got), got)
	}
	completed := f.audited(cleanup.EventCleanupCompleted)
	if len(completed) != 1 || !strings.Contains(completed[0], fmt.Sprintf("Deleted: %s |", num(f.seeded.Count))) {
		t.Errorf("Cleanup Completed lines = %q; want one with Deleted: %s", completed, num(f.seeded.Count))
	}
	refused := f.audited(cleanup.EventRefused)
	if len(refused) != 1 || !strings.Contains(refused[0], "Why: already ") {
		t.Errorf("Refused lines = %q; want the losing approval, refused as already decided", refused)
	}
	if n := len(f.pd.ChangeEvents()); n != 1 {
		t.Errorf("%d PagerDuty change events; want 1", n)
	}
	incidents := 0
	for _, m := range f.slack.Messages("#platform-incidents") {
		if strings.Contains(string(m.Blocks), "Mass Logout Executed") {
			incidents++
		}
	}
	if incidents != 1 {
		t.Errorf("%d Mass Logout templates in #platform-incidents; want 1", incidents)
	}
	for _, k := range f.seeded.UnrelatedKeys {
		if n, _ := f.rdb.Exists(context.Background(), k).Result(); n != 1 {
			t.Errorf("unrelated key %q was touched", k)
		}
	}
}

// Two replicas and APPROVALS_REQUIRED=2 (SPEC §13): Bob's and Carol's approvals reach different
// replicas at the same moment, each is redelivered to the other replica, and Bob presses once
// more. Exactly one job runs, started by the second distinct approval; Bob's second press
// counts once; the card showed "1 of 2 approvals" on the way and ends with the report.
func TestReplicasTwoOfTwoApprovalsRunOneJob(t *testing.T) {
	f := newFleet(t, fleetOptions{replicas: 2, sessions: 2000, maxRate: 8000, config: func(c *Config) { c.ApprovalsRequired = 2 }})
	req := f.requestMassLogout()
	if !strings.Contains(string(req.Blocks), "0 of 2 approvals") {
		t.Errorf("approval request does not say 0 of 2 approvals: %s", blocksText(string(req.Blocks), req.Text))
	}

	envs := make([]string, 3)
	for i, user := range []string{flBob, flCarol, flBob} {
		f.slack.SetRoute(slacktest.Connection(i % 2))
		envs[i] = f.click(user, "", req.TS, "approve")
	}
	for i, env := range envs[:2] {
		f.slack.SetRoute(slacktest.Connection(1 - i))
		f.slack.Redeliver(env)
	}
	for i, env := range envs {
		want := 2 - i/2 // the first two were delivered twice
		slacktest.WaitFor(t, func() bool { return f.slack.Acks(env) == want }, flWait)
	}
	f.awaitMessage(req.TS, "Cleanup completed")
	slacktest.WaitFor(t, func() bool { return len(f.pd.ChangeEvents()) >= 1 }, flWait)
	for _, r := range f.replicas {
		r.stop()
	}

	if n := f.sessionCount(); n != 0 {
		t.Errorf("%d sessions left after the mass logout", n)
	}
	if got := f.executed(); len(got) != 1 || !strings.Contains(got[0], "Approved-By: ") {
		t.Errorf("destructive Cleanup Started lines = %q; want 1, naming both approvers", got)
	} else if !strings.Contains(got[0], flBob+" (bob)") || !strings.Contains(got[0], flCarol+" (carol)") {
		t.Errorf("Cleanup Started = %q; want Approved-By naming bob and carol", got[0])
	}
	approved := f.audited(cleanup.EventApproved) // from both replicas' files
	var counts []string
	for _, l := range approved {
		counts = append(counts, l[strings.LastIndex(l, "| ")+2:])
	}
	slices.Sort(counts)
	if strings.Join(counts, ",") != "Approvals: 1/2,Approvals: 2/2" {
		t.Errorf("Approved lines = %q; want one with Approvals: 1/2 and one with Approvals: 2/2", approved)
	}
	if got := f.audited(cleanup.EventCleanupCompleted); len(got) != 1 {
		t.Errorf("Cleanup Completed lines = %q; want 1", got)
	}
	refused := f.audited(cleanup.EventRefused)
	if len(refused) != 1 || !strings.Contains(refused[0], "| User: "+flBob+" (bob) |") || !strings.Contains(refused[0], "Why: already ") {
		t.Errorf("Refused lines = %q; want Bob's second press, refused as already approved or decided", refused)
	}
	if n := len(f.pd.ChangeEvents()); n != 1 {
		t.Errorf("%d PagerDuty change events; want 1", n)
	}
	if len(f.slack.RequestsContaining("1 of 2 approvals (by <@")) == 0 {
		t.Error(`the card never said "1 of 2 approvals" and who gave it`)
	}
	if m, _ := f.slack.Message(f.ops, req.TS); !strings.Contains(string(m.Blocks), "Cleanup completed") {
		t.Errorf("the message no longer shows the report: %s", blocksText(string(m.Blocks), m.Text))
	}
}

// A replica dies mid-job (its Redis, Slack and PagerDuty traffic cut, its socket gone): the
// surviving replica's sweeper notices the dead heartbeat and the expired lease, marks the job
// failed and reports it everywhere — the message shows what was deleted before the crash,
// the audit log has Cleanup Failed, PagerDuty gets a critical alert (a mass logout stopped part
// way) — and the target is free for a fresh run.
func TestReplicaCrashMidJobIsReportedBySurvivor(t *testing.T) {
	f := newFleet(t, fleetOptions{replicas: 2, sessions: 3000, maxRate: 1000, leaseTTL: 500 * time.Millisecond})
	a, b := f.replicas[0], f.replicas[1]
	f.slack.SetRoute(slacktest.Connection(0)) // every envelope to replica 0 (a)
	req := f.requestMassLogout("--no-backup")
	f.slack.WaitAck(t, f.click(flBob, "", req.TS, "approve"), 3*time.Second)
	f.awaitProgress(req.TS)

	a.ks.kill()
	a.stopSocket()
	f.slack.SetRoute(slacktest.RoundRobin)
	killedAt := f.sessionCount()

	m := f.awaitMessage(req.TS, "Failed", "Interrupted")
	final := f.sessionCount()
	if final == 0 || final == int(f.seeded.Count) {
		t.Fatalf("%d of %d sessions left; want a job interrupted part-way", final, f.seeded.Count)
	}
	if final < killedAt-200 {
		t.Errorf("sessions went from %d to %d after the crash: something kept deleting", killedAt, final)
	}
	text := blocksText(string(m.Blocks), m.Text)
	deleted := int(f.seeded.Count) - final
	wantContains(t, "report", text, "the bot running this job stopped", "Deleted:")
	if strings.Contains(string(m.Blocks), `"action_id":"cancel"`) {
		t.Errorf("the failed job's message still offers Cancel: %s", text)
	}

	// Reported by the survivor: audit, PagerDuty alert, #platform-incidents.
	failed := auditLinesOf(t, b.auditPath, cleanup.EventCleanupFailed)
	if len(failed) != 1 || !strings.Contains(failed[0], "Mode: all") || !strings.Contains(failed[0], "Interrupted") {
		t.Fatalf("survivor's Cleanup Failed lines = %q; want one for the interrupted mass logout", failed)
	}
	slacktest.WaitFor(t, func() bool {
		for _, ev := range f.pd.Events() {
			if ev.Action == "trigger" {
				return true
			}
		}
		return false
	}, flWait)
	b.announcer.Wait()
	var alert *pdtest.Event
	for _, ev := range f.pd.Events() {
		if ev.Action == "trigger" {
			alert = &ev
		}
	}
	if key := "sessionbot/" + f.redis.Addr() + "/cleanup-failed"; alert.Payload.Severity != "critical" || alert.DedupKey != key {
		t.Errorf("alert severity %q dedup %q; want critical, %q", alert.Payload.Severity, alert.DedupKey, key)
	}
	details, _ := alert.Payload.Details.(map[string]any)
	if d, ok := details["deleted"].(float64); !ok || int(d) > deleted || d == 0 {
		t.Errorf("alert details deleted = %v; want the %d deleted before the crash (or fewer, as last reported)", details["deleted"], deleted)
	}
	var partial bool
	for _, m := range f.slack.Messages("#platform-incidents") {
		if strings.Contains(string(m.Blocks), "Part of the active users") {
			partial = true
		}
	}
	if !partial {
		t.Error("#platform-incidents has no Mass Logout notice saying part of the users were logged out")
	}
	st := newStore(f.rdb)
	jobs, err := st.recentJobs(context.Background(), 5)
	if err != nil || len(jobs) != 1 || jobs[0].Status != StatusFailed {
		t.Fatalf("jobs = %v, %v; want the one job, failed", jobs, err)
	}

	// The target is free for a fresh run: the dead replica's lease ran out.
	if n, err := f.rdb.Exists(context.Background(), "sessionbot:lease:"+f.redis.Addr()).Result(); err != nil || n != 0 {
		t.Errorf("the dead job's lease is still held (%d, %v)", n, err)
	}
	stopped := time.Now()
	a.stop()
	t.Log("dead replica stopped in", time.Since(stopped))
}

// A replica loses its socket for good mid-job: the job it runs carries on (progress and report
// go through the Web API), clicks reach the other replica, and a Cancel pressed there stops the
// job on the first within a progress tick.
func TestReplicaSocketLostMidJobKeepsReporting(t *testing.T) {
	f := newFleet(t, fleetOptions{replicas: 2, sessions: 3000, maxRate: 1000})
	a := f.replicas[0]
	f.slack.SetRoute(slacktest.Connection(0))
	req := f.requestMassLogout("--no-backup")
	f.slack.WaitAck(t, f.click(flBob, "", req.TS, "approve"), 3*time.Second)
	f.awaitProgress(req.TS)

	a.stopSocket()
	slacktest.WaitFor(t, func() bool { return f.slack.LiveConnections() == 1 }, flWait)
	f.slack.SetRoute(slacktest.RoundRobin)
	updates := len(f.slack.Calls("chat.update"))
	slacktest.WaitFor(t, func() bool { return len(f.slack.Calls("chat.update")) > updates+2 }, flWait)

	env := f.click(flAlice, "", req.TS, "cancel")
	f.slack.WaitAck(t, env, 3*time.Second)
	if e, _ := f.slack.Envelope(env); len(e.ConnIDs) != 1 {
		t.Fatalf("cancel delivered %v", e.ConnIDs)
	}
	m := f.awaitMessage(req.TS, "Cancelled")
	wantContains(t, "report", blocksText(string(m.Blocks), m.Text), "those stay deleted")
	cancelled := f.audited(cleanup.EventCancelled)
	if len(cancelled) != 1 || !strings.Contains(cancelled[0], "User: "+flAlice) {
		t.Errorf("Cancelled lines = %q; want alice's cancel", cancelled)
	}
	if n := f.sessionCount(); n == 0 || n == int(f.seeded.Count) {
		t.Errorf("%d sessions left; want a partial run", n)
	}
}

// A replica is shut down (SIGTERM: its context cancelled) mid-job: it stops deleting, and the job
// is reported as interrupted — message, Cleanup Failed audit line, critical PagerDuty alert —
// not quietly as a cancellation nobody asked for.
func TestReplicaShutdownMidJobIsReportedAsFailure(t *testing.T) {
	f := newFleet(t, fleetOptions{replicas: 2, sessions: 3000, maxRate: 1000})
	a := f.replicas[0]
	f.slack.SetRoute(slacktest.Connection(0))
	req := f.requestMassLogout("--no-backup")
	f.slack.WaitAck(t, f.click(flBob, "", req.TS, "approve"), 3*time.Second)
	f.awaitProgress(req.TS)

	a.stop()
	left := f.sessionCount()
	if left == 0 {
		t.Fatal("the job finished before the shutdown; slow it down")
	}
	m := f.awaitMessage(req.TS, "Failed")
	wantContains(t, "report", blocksText(string(m.Blocks), m.Text), "shutting down")
	failed := auditLinesOf(t, a.auditPath, cleanup.EventCleanupFailed)
	if len(failed) != 1 {
		t.Errorf("Cleanup Failed lines = %q; want one", failed)
	}
	var severity string
	for _, ev := range f.pd.Events() {
		if ev.Action == "trigger" {
			severity = ev.Payload.Severity
		}
	}
	if severity != "critical" {
		t.Errorf("PagerDuty alert severity = %q; want critical for a mass logout stopped part-way", severity)
	}
	if n := f.sessionCount(); n != left {
		t.Errorf("sessions went from %d to %d after shutdown", left, n)
	}
	jobs, _ := newStore(f.rdb).recentJobs(context.Background(), 1)
	if len(jobs) != 1 || jobs[0].Status != StatusFailed {
		t.Errorf("job status = %v; want failed", jobs)
	}
}

// A progress tick whose message would not change (the engine between two batches, a stalled
// Redis) sends no chat.update: Slack's rate limit is spent on news only. Updates still come at
// most once per ProgressInterval.
func TestProgressUpdatesSkipUnchangedMessages(t *testing.T) {
	h := newHarness(t)
	h.seed(sessionSpec{n: 120, expired: true})
	d := h.deps()
	// 10 keys per batch at 40 keys/s: a new progress every 250 ms, ticks every 20 ms.
	d.Engine = cleanup.NewEngine(cleanup.NewTarget(h.rdb, "session:", "test-target"), cleanup.EngineConfig{BatchSize: 10, MaxRate: 40})
	slow := h.newBot(d)
	slow.HandleCommand(context.Background(), Command{EnvelopeID: "skip-cmd", TeamID: team, UserID: alice, UserName: "alice", ChannelID: chan1, Text: "cleanup"})
	slow.Wait()
	ref, m := h.chat.latest(-1)
	h.pressOn(slow, alice, "run", button(t, m, "run"), "skip-run")
	slow.Wait()
	wantContains(t, "report", chat.FormatText(h.chat.msg(ref)), "Cleanup completed", "Deleted:   120")

	h.chat.mu.Lock()
	history := slices.Clone(h.chat.history[ref])
	h.chat.mu.Unlock()
	var running, repeats int
	for i, m := range history {
		if strings.Contains(m.Title, "Running") {
			running++
			if i > 0 && reflect.DeepEqual(history[i-1], m) {
				repeats++
			}
		}
	}
	if running < 3 {
		t.Errorf("%d progress updates; want several", running)
	}
	if repeats > 0 {
		t.Errorf("%d of %d progress updates repeated the message already shown", repeats, running)
	}
}

// callGapAfter returns, for each call of method that got status, the time until the next call
// of the same method (the retry).
func callGapsAfter(calls []slacktest.Call, status int) []time.Duration {
	var gaps []time.Duration
	for i, c := range calls {
		if c.Status == status && i+1 < len(calls) {
			gaps = append(gaps, calls[i+1].Time.Sub(c.Time))
		}
	}
	return gaps
}

// Slack rate-limits (429 with Retry-After) and fails (5xx) chat.update and chat.postMessage
// while a mass logout runs, and PagerDuty answers 429 and 503: every call is retried (after the
// Retry-After Slack asked for), the cleanup is unaffected, every notification lands once and
// nothing is reported as failed.
func TestSlackAndPagerDutyTransientFaultsDuringJobAreRetried(t *testing.T) {
	f := newFleet(t, fleetOptions{sessions: 3000, maxRate: 6000})
	r := f.replicas[0]
	req := f.requestMassLogout()
	f.slack.FailNext("chat.update", 1, http.StatusTooManyRequests, time.Second)
	f.slack.FailNext("chat.update", 1, http.StatusServiceUnavailable, 0)
	f.slack.FailNext("chat.postMessage", 1, http.StatusTooManyRequests, time.Second)
	f.slack.FailNext("chat.postMessage", 2, http.StatusInternalServerError, 0)
	f.pd.FailNext(pdtest.ChangePath, 1, http.StatusTooManyRequests)
	f.pd.FailNext(pdtest.ChangePath, 1, http.StatusServiceUnavailable)
	f.pd.FailNext(pdtest.AlertPath, 1, http.StatusBadGateway) // the resolve after a success

	f.slack.WaitAck(t, f.click(flBob, "", req.TS, "approve"), 3*time.Second)
	f.awaitMessage(req.TS, "Cleanup completed")
	slacktest.WaitFor(t, func() bool { return len(f.pd.ChangeEvents()) == 1 }, flWait)
	r.stop()

	if n := f.sessionCount(); n != 0 {
		t.Errorf("%d sessions left", n)
	}
	if got := f.audited(cleanup.EventCleanupCompleted); len(got) != 1 || !strings.Contains(got[0], "Deleted: "+num(f.seeded.Count)) {
		t.Errorf("Cleanup Completed = %q", got)
	}
	for _, method := range []string{"chat.update", "chat.postMessage"} {
		calls := f.slack.Calls(method)
		gaps := callGapsAfter(calls, http.StatusTooManyRequests)
		if len(gaps) != 1 || gaps[0] < 900*time.Millisecond {
			t.Errorf("%s retried %v after its 429 with Retry-After: 1; want one retry after ≥ 1 s", method, gaps)
		}
		failed := 0
		for _, c := range calls {
			if c.Status != http.StatusOK {
				failed++
			}
		}
		if want := map[string]int{"chat.update": 2, "chat.postMessage": 3}[method]; failed != want {
			t.Errorf("%d failed %s calls; want the %d injected", failed, method, want)
		}
	}
	var templates, notices int
	for _, m := range f.slack.Messages("#platform-incidents") {
		if strings.Contains(string(m.Blocks), "Mass Logout Executed") {
			templates++
		}
	}
	notices = len(f.slack.Messages("#general"))
	if templates != 1 || notices != 0 {
		t.Errorf("%d Mass Logout templates and %d user notices; want 1 and 0 (no USER_NOTIFY_CHANNEL)", templates, notices)
	}
	if n := len(f.pd.Requests(pdtest.ChangePath)); n != 3 {
		t.Errorf("%d change event requests; want 3 (429, 503, accepted)", n)
	}
	var resolved bool
	for _, ev := range f.pd.Events() {
		resolved = resolved || ev.Action == "resolve"
	}
	if !resolved {
		t.Error("the resolve after a successful run was not retried after its 502")
	}
	if got := f.audited(cleanup.EventNotificationFailed); len(got) != 0 {
		t.Errorf("retried notifications were reported as failed: %q", got)
	}
}

// sessionOf returns the user_id and username of one seeded, well-formed session.
func (f *fleet) sessionOf(userID string) (username string, keys int) {
	f.t.Helper()
	ctx := context.Background()
	iter := f.rdb.Scan(ctx, 0, "session:*", 1000).Iterator()
	for iter.Next(ctx) {
		v, err := f.rdb.Get(ctx, iter.Val()).Result()
		if err != nil {
			continue
		}
		if strings.Contains(v, `"user_id":"`+userID+`"`) {
			keys++
			if m := regexp.MustCompile(`"username":"([^"]+)"`).FindStringSubmatch(v); m != nil {
				username = m[1]
			}
		}
	}
	return username, keys
}

// Slack and PagerDuty stay down for the notifications of a --user-id cleanup: the summary post
// to NOTIFY_CHANNEL answers 503, conversations.open (the DM) and PagerDuty hang past their
// timeouts. The cleanup is unaffected; each failure is retried, then reported in the job's
// thread and audited as Notification Failed — without the user's e-mail.
func TestNotificationsDownDuringJobAreReportedNotFatal(t *testing.T) {
	f := newFleet(t, fleetOptions{sessions: 600, chatTimeout: 250 * time.Millisecond, pdAttempt: 250 * time.Millisecond,
		config: func(c *Config) { c.NotifyAffectedUsers = true }})
	r := f.replicas[0]
	user := cleanup.SeedUserID(0)
	email, n := f.sessionOf(user)
	if email == "" || n == 0 {
		t.Fatalf("no seeded session of %s", user)
	}
	f.slack.AddUser("U0AFFECTED", "affected", email)

	f.command(flAlice, `cleanup --user-id "`+user+`"`)
	preview := f.awaitButton("run")
	f.slack.FailNext("chat.postMessage", 4, http.StatusServiceUnavailable, 0) // every try of the summary
	f.slack.Delay("conversations.open", 2*time.Second)
	f.pd.Delay(pdtest.ChangePath, 2*time.Second)
	f.slack.WaitAck(t, f.click(flAlice, "", preview.TS, "run"), 3*time.Second)
	f.awaitMessage(preview.TS, "Cleanup completed")
	slacktest.WaitFor(t, func() bool { return len(f.audited(cleanup.EventNotificationFailed)) >= 3 }, flWait)
	r.announcer.Wait()

	if _, left := f.sessionOf(user); left != 0 {
		t.Errorf("%d sessions of %s left", left, user)
	}
	if got := f.sessionCount(); got != int(f.seeded.Count)-n {
		t.Errorf("%d sessions left; want %d (only the user's removed)", got, int(f.seeded.Count)-n)
	}
	failed := strings.Join(f.audited(cleanup.EventNotificationFailed), "\n")
	for _, want := range []string{"Channel: #platform-incidents", "Channel: dm:U0AFFECTED", "Channel: pagerduty"} {
		if !strings.Contains(failed, want) {
			t.Errorf("no Notification Failed line with %q:\n%s", want, failed)
		}
	}
	if strings.Contains(failed, email) {
		t.Errorf("the audit log names the user's e-mail: %s", failed)
	}
	var thread []string
	for _, m := range f.slack.Messages(f.ops) {
		if m.ThreadTS == preview.TS {
			thread = append(thread, blocksText(string(m.Blocks), m.Text))
		}
	}
	joined := strings.Join(thread, "\n")
	if len(thread) != 3 || strings.Count(joined, "Notification failed") != 3 || !strings.Contains(joined, "The cleanup itself is not affected") {
		t.Errorf("thread replies = %q; want the three failures reported", thread)
	}
	if strings.Contains(joined, email) {
		t.Errorf("the thread names the user's e-mail")
	}
	opens := f.slack.Calls("conversations.open")
	if len(opens) != 4 {
		t.Errorf("%d conversations.open attempts; want 4 (timeouts are retried)", len(opens))
	}
	if n := len(f.pd.Requests(pdtest.ChangePath)); n < 2 {
		t.Errorf("%d change event attempts; want the timed-out attempts retried", n)
	}
	if len(f.slack.Messages(f.slack.ChannelID("U0AFFECTED"))) != 0 {
		t.Error("a DM was posted although conversations.open never answered")
	}
}

// The final report cannot replace the job's message (chat.update keeps failing): it is posted
// in the message's thread instead, and the failure is audited, so the outcome is never lost
// behind a message that still says "running".
func TestFinalReportFallsBackToThreadWhenUpdateFails(t *testing.T) {
	f := newFleet(t, fleetOptions{sessions: 2000, maxRate: 2000})
	r := f.replicas[0]
	req := f.requestMassLogout()
	f.slack.WaitAck(t, f.click(flBob, "", req.TS, "approve"), 3*time.Second)
	f.awaitProgress(req.TS)
	f.slack.FailNext("chat.update", 1000, http.StatusInternalServerError, 0)
	slacktest.WaitFor(t, func() bool { return len(f.audited(cleanup.EventCleanupCompleted)) == 1 }, flWait)
	r.stop()

	if n := f.sessionCount(); n != 0 {
		t.Errorf("%d sessions left", n)
	}
	m, _ := f.slack.Message(f.ops, req.TS)
	if !strings.Contains(string(m.Blocks), "running") {
		t.Fatalf("the message was updated after all: %s", blocksText(string(m.Blocks), m.Text))
	}
	var report bool
	for _, m := range f.slack.Messages(f.ops) {
		if m.ThreadTS == req.TS && strings.Contains(string(m.Blocks), "Cleanup completed") {
			report = true
		}
	}
	if !report {
		t.Error("the report is nowhere in Slack: not in the message, not in its thread")
	}
	if got := f.audited(cleanup.EventNotificationFailed); len(got) != 1 || !strings.Contains(got[0], "Channel: "+f.ops) {
		t.Errorf("Notification Failed = %q; want the failed report update", got)
	}
}

// Slack recycles the connection mid-job (disconnect, then an abrupt drop): the job's progress
// updates carry on over the Web API, a command typed while the bot reconnects is delivered on
// the new socket, and a redelivered click or command changes nothing.
func TestDisconnectMidJobProgressContinues(t *testing.T) {
	f := newFleet(t, fleetOptions{sessions: 3000, maxRate: 1000, progress: 200 * time.Millisecond})
	r := f.replicas[0]
	req := f.requestMassLogout("--no-backup")
	approve := f.click(flBob, "", req.TS, "approve")
	f.slack.WaitAck(t, approve, 3*time.Second)
	f.awaitProgress(req.TS)

	opens := len(f.slack.Calls("apps.connections.open"))
	f.slack.Disconnect("refresh_requested")
	slacktest.WaitFor(t, func() bool { return len(f.slack.Calls("apps.connections.open")) > opens }, flWait)
	slacktest.WaitFor(t, func() bool {
		if len(f.slack.Calls("apps.connections.open")) > opens+1 {
			return true
		}
		f.slack.DropConnections()
		return false
	}, flWait)
	reconnected := time.Now()
	stats := f.command(flAlice, "status") // delivered once a socket is up again
	f.slack.WaitConnections(t, 1, flWait)
	slacktest.WaitFor(t, r.transport.Connected, flWait)

	f.slack.Redeliver(approve)
	f.slack.Redeliver(stats)
	slacktest.WaitFor(t, func() bool { return f.slack.Acks(approve) == 2 && f.slack.Acks(stats) == 2 }, flWait)
	f.awaitMessage(req.TS, "Cleanup completed")
	r.stop()

	var after int
	for _, c := range f.slack.Calls("chat.update") {
		if c.Form.Get("ts") == req.TS && c.Time.After(reconnected) && strings.Contains(c.Form.Get("blocks"), "deleted") {
			after++
		}
	}
	if after < 2 {
		t.Errorf("%d progress updates after the reconnection; want them to carry on", after)
	}
	if n := f.sessionCount(); n != 0 {
		t.Errorf("%d sessions left", n)
	}
	if got := f.executed(); len(got) != 1 {
		t.Errorf("%d jobs started; want 1 despite the redelivered approval", len(got))
	}
	if got := f.audited(cleanup.EventApproved); len(got) != 1 {
		t.Errorf("Approved lines = %q; want 1", got)
	}
	var statusReplies int
	for _, p := range f.slack.ResponseURLPosts() {
		if strings.Contains(string(p.Blocks), "Recent jobs") || strings.Contains(p.Text, "Recent jobs") {
			statusReplies++
		}
	}
	if statusReplies != 1 {
		t.Errorf("%d answers to the status command; want 1 despite its redelivery", statusReplies)
	}
	if got := f.audited(cleanup.EventRefused); len(got) != 0 {
		t.Errorf("a redelivery was refused (and so handled twice): %q", got)
	}
}

// The audit file cannot be written (a full disk: /dev/full takes the open and fails every
// write): a mass logout approved through Slack refuses to start, because its intent cannot be
// recorded. Nothing is deleted, nothing is announced, and the approver and the message say why.
func TestAuditUnwritableRefusesMassLogout(t *testing.T) {
	if fi, err := os.Stat("/dev/full"); err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		t.Fatal("needs /dev/full (every Linux has it): the unwritable audit file of this test")
	}
	f := newFleet(t, fleetOptions{sessions: 200, auditFile: "/dev/full"})
	r := f.replicas[0]
	req := f.requestMassLogout()
	f.slack.WaitAck(t, f.click(flBob, "", req.TS, "approve"), 3*time.Second)
	m := f.awaitMessage(req.TS, "Not started", "audit log could not be written")
	r.stop()

	if n := f.sessionCount(); n != int(f.seeded.Count) {
		t.Errorf("%d of %d sessions left; nothing may be deleted without an audit record", n, f.seeded.Count)
	}
	if strings.Contains(string(m.Blocks), `"type":"actions"`) {
		t.Errorf("the refused request still has buttons: %s", blocksText(string(m.Blocks), m.Text))
	}
	var told bool
	for _, p := range f.slack.ResponseURLPosts() {
		told = told || strings.Contains(p.Text, "audit log could not be written")
	}
	if !told {
		t.Error("the approver was not told why nothing happened")
	}
	if n := len(f.pd.ChangeEvents()); n != 0 {
		t.Errorf("%d PagerDuty change events for a run that never started", n)
	}
	if n := len(f.slack.Messages("#platform-incidents")); n != 0 {
		t.Errorf("%d messages in #platform-incidents for a run that never started", n)
	}
	jobs, err := newStore(f.rdb).recentJobs(context.Background(), 5)
	if err != nil || len(jobs) != 1 || jobs[0].Status != StatusFailed {
		t.Errorf("jobs = %v, %v; want one, failed before it started", jobs, err)
	}
	if v := value(t, r.metrics, "sessionbot_audit_errors_total", "sink=file"); v < 1 {
		t.Errorf("sessionbot_audit_errors_total{sink=file} = %v; want the failed writes counted", v)
	}
}

// runningJobs is how many jobs run in r's process.
func (r *replica) runningJobs() int {
	r.bot.mu.Lock()
	defer r.bot.mu.Unlock()
	return len(r.bot.jobs)
}

// A replica loses its state Redis (STATE_REDIS_URL) mid-job while the target stays reachable:
// it can no longer renew the target's lease, so it must stop deleting before the lease runs out
// — from then on another replica may start a job on the same target. The job is reported as
// stopped for that reason.
func TestJobStopsWhenItCannotRenewItsLease(t *testing.T) {
	// Renewed every second; stopped once not renewed for 1.5 s (at the tick 2 s after the last
	// renewal); the lease runs out 3 s after it: a second of margin.
	const ttl = 3 * time.Second
	f := newFleet(t, fleetOptions{replicas: 2, sessions: 3000, maxRate: 500, leaseTTL: ttl, separateState: true})
	a := f.replicas[0]
	f.slack.SetRoute(slacktest.Connection(0))
	req := f.requestMassLogout("--no-backup")
	f.slack.WaitAck(t, f.click(flBob, "", req.TS, "approve"), 3*time.Second)
	f.awaitProgress(req.TS)

	a.stateKS.kill()
	// The test's own connection is not cut: it watches the lease run out.
	lease := "sessionbot:lease:" + f.redis.Addr()
	expired := pollUntil(func() bool {
		n, err := f.rdb.Exists(context.Background(), lease).Result()
		return err == nil && n == 0
	}, flWait)
	if !expired {
		t.Fatalf("the lease %s did not run out within %v of the cut", lease, flWait)
	}
	atExpiry := f.sessionCount()
	if atExpiry == 0 {
		t.Fatalf("the job deleted every session before its lease (%v) ran out", ttl)
	}
	slacktest.WaitFor(t, func() bool { return a.runningJobs() == 0 }, flWait)
	if n := f.sessionCount(); n != atExpiry {
		t.Errorf("the job deleted %d sessions after its lease ran out; want it stopped before", atExpiry-n)
	}
	failed := auditLinesOf(t, a.auditPath, cleanup.EventCleanupFailed)
	if len(failed) != 1 || !strings.Contains(failed[0], "lost the target's lease") {
		t.Errorf("Cleanup Failed = %q; want the lost lease named", failed)
	}
}

// A job whose lease another job now holds (it ran out while this one was stalled, and another
// replica took the target) stops at its next renewal instead of taking the lease back: two jobs
// never run on one target. The other job's lease is left alone.
func TestJobStopsWhenItsLeaseIsTaken(t *testing.T) {
	f := newFleet(t, fleetOptions{sessions: 3000, maxRate: 500, leaseTTL: 600 * time.Millisecond})
	a := f.replicas[0]
	req := f.requestMassLogout("--no-backup")
	f.slack.WaitAck(t, f.click(flBob, "", req.TS, "approve"), 3*time.Second)
	f.awaitProgress(req.TS)

	const other = "job-20250101-0ther000"
	lease := "sessionbot:lease:" + f.redis.Addr()
	if err := f.rdb.Set(context.Background(), lease, other, time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	slacktest.WaitFor(t, func() bool { return a.runningJobs() == 0 }, flWait)
	if f.sessionCount() == 0 {
		t.Error("the job deleted every session although another job held the target's lease")
	}
	if h, err := f.rdb.Get(context.Background(), lease).Result(); err != nil || h != other {
		t.Errorf("lease holder = %q, %v; want %s left alone", h, err, other)
	}
	failed := auditLinesOf(t, a.auditPath, cleanup.EventCleanupFailed)
	if len(failed) != 1 || !strings.Contains(failed[0], "lost the target's lease") {
		t.Errorf("Cleanup Failed = %q; want the lost lease named", failed)
	}
}
