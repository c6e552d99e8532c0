package main

// Two `sessionbot serve` replicas, run as main runs them (run(ctx, ["serve"], getenv, …)),
// against one fake Slack, one fake PagerDuty and one redis-server: concurrent approvals on both
// run one job; a replica shut down mid-job reports the interrupted job; nothing a session holds
// reaches any output of either process.

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/platform-team/sessionbot/bot"
	"github.com/platform-team/sessionbot/bot/pagerduty"
	"github.com/platform-team/sessionbot/bot/pdtest"
	"github.com/platform-team/sessionbot/bot/slack"
	"github.com/platform-team/sessionbot/bot/slacktest"
	"github.com/platform-team/sessionbot/cleanup"
	"github.com/platform-team/sessionbot/internal/testkit"
)

const (
	repAlice  = "U0REPALICE"
	repBob    = "U0REPBOB01"
	repCarol  = "U0REPCAROL"
	repRKey   = "REPLICAROUTINGKEY00000000000000"
	repWait   = 30 * time.Second
	repReason = "session secret rotated (INC-99)"
)

// serveReplica is one `sessionbot serve` process.
type serveReplica struct {
	env            map[string]string
	stdout, stderr *testkit.SyncBuffer
	cancel         context.CancelFunc
	done           chan error
	metricsAddr    string
}

// stop sends SIGTERM (cancels its context) and waits for run to return.
func (r *serveReplica) stop(t *testing.T) {
	t.Helper()
	r.cancel()
	select {
	case err, ok := <-r.done:
		if ok && err != nil {
			t.Errorf("serve returned %v on shutdown; want nil", err)
		}
	case <-time.After(repWait):
		t.Fatal("serve did not stop within 30 s of SIGTERM")
	}
}

func (r *serveReplica) get(path string) (int, string) {
	resp, err := http.Get("http://" + r.metricsAddr + path)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

type serveFleet struct {
	t        *testing.T
	tg       *target
	seeded   cleanup.SeedResult
	slack    *slacktest.Server
	pd       *pdtest.Server
	ops      string
	replicas []*serveReplica
}

// newServeFleet seeds the target and starts n replicas one after the other, so that
// slacktest.Connection(i) is replica i.
func newServeFleet(t *testing.T, n int, sessions int, extra map[string]string) *serveFleet {
	t.Helper()
	f := &serveFleet{t: t, tg: newTarget(t), slack: slacktest.New(t), pd: pdtest.New(t)}
	f.seeded = f.tg.seed(cleanup.SeedSpec{Count: sessions, Unrelated: 10})
	for id, name := range map[string]string{repAlice: "alice", repBob: "bob", repCarol: "carol"} {
		f.slack.AddUser(id, name, name+"@company.example")
	}
	f.ops = f.slack.ChannelID("#sre-ops")
	dir := t.TempDir()
	for i := range n {
		r := &serveReplica{stdout: &testkit.SyncBuffer{}, stderr: &testkit.SyncBuffer{}, done: make(chan error, 1), metricsAddr: freeAddr(t)}
		r.env = map[string]string{
			"SLACK_APP_TOKEN": f.slack.AppToken(), "SLACK_BOT_TOKEN": f.slack.BotToken(), "SLACK_API_URL": f.slack.APIURL(),
			"SLACK_TEAM_ID": slacktest.DefaultTeamID, "OPERATORS": repAlice, "APPROVERS": repBob + "," + repCarol,
			"METRICS_ADDR": r.metricsAddr, "PAGERDUTY_ROUTING_KEY": repRKey, "PAGERDUTY_EVENTS_URL": f.pd.URL(),
		}
		for k, v := range f.tg.env {
			r.env[k] = v
		}
		r.env["AUDIT_LOG"] = fmt.Sprintf("%s/replica-%d.audit.log", dir, i) // each pod its own
		for k, v := range extra {
			r.env[k] = v
		}
		ctx, cancel := context.WithCancel(context.Background())
		r.cancel = cancel
		go func() {
			r.done <- run(ctx, []string{"serve"}, func(k string) string { return r.env[k] }, strings.NewReader(""), r.stdout, r.stderr)
			close(r.done)
		}()
		f.replicas = append(f.replicas, r)
		f.slack.WaitConnections(t, i+1, repWait)
		slacktest.WaitFor(t, func() bool { code, _ := r.get("/readyz"); return code == http.StatusOK }, repWait)
	}
	t.Cleanup(func() {
		for _, r := range f.replicas {
			r.cancel()
			select {
			case <-r.done:
			case <-time.After(repWait):
				t.Error("a replica did not stop")
			}
		}
	})
	return f
}

func (f *serveFleet) audited(event string) []string {
	var out []string
	for _, r := range f.replicas {
		data, _ := os.ReadFile(r.env["AUDIT_LOG"])
		for _, l := range strings.Split(strings.TrimSpace(string(data)), "\n") {
			if parts := strings.Split(l, " | "); len(parts) > 1 && parts[1] == event {
				out = append(out, l)
			}
		}
	}
	return out
}

// massLogout types the mass logout as alice and returns the approval request.
func (f *serveFleet) massLogout(flags string) slacktest.Message {
	f.t.Helper()
	env := f.slack.SlashCommand(slacktest.SlashCommand{UserID: repAlice, UserName: "alice", ChannelID: f.ops, Command: "/sessions",
		Text: `cleanup --all ` + flags + ` --reason "` + repReason + `"`})
	f.slack.WaitAck(f.t, env, 3*time.Second)
	var req slacktest.Message
	slacktest.WaitFor(f.t, func() bool {
		for _, m := range f.slack.Messages(f.ops) {
			if strings.Contains(string(m.Blocks), `"action_id":"approve"`) {
				req = m
				return true
			}
		}
		return false
	}, repWait)
	return req
}

func (f *serveFleet) approve(user, ts string) string {
	f.t.Helper()
	name := map[string]string{repBob: "bob", repCarol: "carol"}[user]
	return f.slack.BlockAction(slacktest.BlockAction{UserID: user, UserName: name, ChannelID: f.ops, MessageTS: ts, ActionID: "approve"})
}

func (f *serveFleet) awaitMessage(ts, want string) string {
	f.t.Helper()
	var text string
	slacktest.WaitFor(f.t, func() bool {
		m, _ := f.slack.Message(f.ops, ts)
		text = string(m.Blocks)
		return strings.Contains(text, want)
	}, repWait)
	return text
}

// assertNoLeaks searches every output of every replica — stdout (audit lines), stderr (JSON
// logs), audit files, /metrics — and everything sent to Slack and PagerDuty.
func (f *serveFleet) assertNoLeaks(metrics map[int]string) {
	f.t.Helper()
	secrets := []string{canary, f.slack.BotToken(), f.slack.AppToken(), repRKey, "@example.com"}
	seen := map[string]int{}
	for i, r := range f.replicas {
		audit, _ := os.ReadFile(r.env["AUDIT_LOG"])
		for what, out := range map[string]string{"stdout": r.stdout.String(), "stderr": r.stderr.String(), "audit file": string(audit), "/metrics": metrics[i]} {
			seen[what] += len(out)
			for _, s := range secrets {
				if strings.Contains(out, s) {
					f.t.Errorf("replica %d: %s contains %q", i, what, s)
				}
			}
		}
	}
	for what, n := range seen {
		if n == 0 {
			f.t.Errorf("every replica's %s is empty; the check saw nothing", what)
		}
	}
	for _, s := range []string{canary, repRKey, "@example.com"} {
		if got := f.slack.RequestsContaining(s); len(got) > 0 {
			f.t.Errorf("%d requests to Slack contain %q, e.g. %.300s", len(got), s, got[0])
		}
	}
	for _, r := range f.pd.Requests("") {
		for _, s := range []string{canary, f.slack.BotToken(), f.slack.AppToken(), "@example.com"} {
			if strings.Contains(string(r.Body), s) {
				f.t.Errorf("a PagerDuty request contains %q", s)
			}
		}
	}
}

// Two serve replicas; the two approvers press Approve at once, each click reaching another
// replica: one job, the keys deleted once, one change event; the losing press is refused.
func TestServeReplicasConcurrentApprovalsRunOneJob(t *testing.T) {
	f := newServeFleet(t, 2, 2000, nil)
	req := f.massLogout("")
	envs := make([]string, 2)
	for i, user := range []string{repBob, repCarol} {
		f.slack.SetRoute(slacktest.Connection(i))
		envs[i] = f.approve(user, req.TS)
	}
	for _, env := range envs {
		f.slack.WaitAck(t, env, 3*time.Second)
	}
	f.awaitMessage(req.TS, "Cleanup completed")
	slacktest.WaitFor(t, func() bool { return len(f.pd.ChangeEvents()) >= 1 }, repWait)
	metrics := map[int]string{}
	for i, r := range f.replicas {
		_, metrics[i] = r.get("/metrics")
		r.stop(t)
	}

	if n := f.tg.count("session:*"); n != 0 {
		t.Errorf("%d sessions left", n)
	}
	var executed []string
	for _, l := range f.audited(cleanup.EventCleanupStarted) {
		if !strings.Contains(l, "Mode: dry-run") {
			executed = append(executed, l)
		}
	}
	if len(executed) != 1 {
		t.Errorf("%d jobs started across the replicas; want 1: %q", len(executed), executed)
	}
	completed := f.audited(cleanup.EventCleanupCompleted)
	if len(completed) != 1 || !strings.Contains(completed[0], "Deleted: "+commas(f.seeded.Count)+" |") {
		t.Errorf("Cleanup Completed = %q; want one with every session deleted once", completed)
	}
	if refused := f.audited(cleanup.EventRefused); len(refused) != 1 || !strings.Contains(refused[0], "Why: already ") {
		t.Errorf("Refused = %q; want the losing approval", refused)
	}
	if n := len(f.pd.ChangeEvents()); n != 1 {
		t.Errorf("%d change events; want 1", n)
	}
	jobsTotal := 0
	for _, m := range metrics {
		if strings.Contains(m, `sessionbot_cleanups_total{mode="all",result="completed",target="default"} 1`) {
			jobsTotal++
		}
	}
	if jobsTotal != 1 {
		t.Errorf("%d replicas count a completed mass logout; want exactly one", jobsTotal)
	}
	f.assertNoLeaks(metrics)
}

var progressDeleted = regexp.MustCompile(`deleted [1-9][0-9,]* · skipped`)

// A replica gets SIGTERM in the middle of a mass logout: it stops deleting, reports the job as
// interrupted (message, Cleanup Failed, critical PagerDuty alert) and exits cleanly; the other
// replica goes on serving and shows the job as failed.
func TestServeReplicaStoppedMidJobReportsIt(t *testing.T) {
	f := newServeFleet(t, 2, 3000, map[string]string{"MAX_KEYS_PER_SECOND": "1000", "BATCH_SIZE": "100"})
	a, b := f.replicas[0], f.replicas[1]
	f.slack.SetRoute(slacktest.Connection(0))
	req := f.massLogout("--no-backup")
	f.slack.WaitAck(t, f.approve(repBob, req.TS), 3*time.Second)
	slacktest.WaitFor(t, func() bool {
		m, _ := f.slack.Message(f.ops, req.TS)
		return progressDeleted.Match(m.Blocks)
	}, repWait)
	_, metricsA := a.get("/metrics")
	a.stop(t)
	left := f.tg.count("session:*")
	if left == 0 {
		t.Fatal("the job finished before SIGTERM; slow it down")
	}

	text := f.awaitMessage(req.TS, "Failed")
	for _, want := range []string{"Interrupted after deleting", "shutting down"} {
		if !strings.Contains(text, want) {
			t.Errorf("report lacks %q: %s", want, text)
		}
	}
	if failed := f.audited(cleanup.EventCleanupFailed); len(failed) != 1 || !strings.Contains(failed[0], "Mode: all") {
		t.Errorf("Cleanup Failed = %q; want the interrupted mass logout", failed)
	}
	var severity string
	for _, ev := range f.pd.Events() {
		if ev.Action == "trigger" {
			severity = ev.Payload.Severity
		}
	}
	if severity != pagerduty.SeverityCritical {
		t.Errorf("alert severity %q; want critical (a mass logout stopped part-way)", severity)
	}
	if n := f.tg.count("session:*"); n != left {
		t.Errorf("sessions went from %d to %d after the replica stopped", left, n)
	}

	// The survivor serves on and knows the job's fate.
	f.slack.SetRoute(slacktest.RoundRobin)
	env := f.slack.SlashCommand(slacktest.SlashCommand{UserID: repAlice, UserName: "alice", ChannelID: f.ops, Command: "/sessions", Text: "status"})
	f.slack.WaitAck(t, env, 3*time.Second)
	if e, _ := f.slack.Envelope(env); len(e.ConnIDs) != 1 {
		t.Fatalf("status delivered to %v", e.ConnIDs)
	}
	slacktest.WaitFor(t, func() bool {
		for _, p := range f.slack.ResponseURLPosts() {
			if strings.Contains(string(p.Blocks), "Recent jobs") && strings.Contains(string(p.Blocks), " failed · all") {
				return true
			}
		}
		return false
	}, repWait)
	_, metricsB := b.get("/metrics")
	b.stop(t)
	if !strings.Contains(metricsA, `sessionbot_slack_connected 1`) {
		t.Errorf("replica 0's /metrics before the stop:\n%.1500s", metricsA)
	}
	f.assertNoLeaks(map[int]string{0: metricsA, 1: metricsB})
}

// The configuration serve composes — the CLI's config, bot.Config, slack.Config, the sinks',
// serve's own — never formats a secret, with any verb and through slog.
func TestServeConfigNeverFormatsSecrets(t *testing.T) {
	env := map[string]string{
		"REDIS_URL": "rediss://default:hunter2secret@redis.internal:6380/0", "STATE_REDIS_URL": "redis://:statepw0secret@state.internal:6379/1",
		"SLACK_APP_TOKEN": "xapp-1-A0-1-appsecretvalue", "SLACK_BOT_TOKEN": "xoxb-1-2-botsecretvalue",
		"PAGERDUTY_ROUTING_KEY": "R0UTINGsecretvalue0000000000000", "OPERATORS": "U0OPS", "APPROVERS": "U0APP",
		"SMTP_URL": "smtp://ops:smtpsecretpw0@mail.internal:587", "NOTIFY_EMAIL_FROM": "bot@example.com", "NOTIFY_EMAIL_TO": "ops@example.com",
		"NOTIFY_WEBHOOK_URL": "https://app.internal/hooks", "NOTIFY_WEBHOOK_SECRET": "whsecretvalue0",
	}
	getenv := func(k string) string { return env[k] }
	look := func(k string) (string, bool) { v := env[k]; return v, v != "" }
	ctx := context.Background()
	cfg, err := loadConfig(ctx, getenv)
	if err != nil {
		t.Fatal(err)
	}
	bcfg, err := bot.LoadConfig(ctx, lookuper(look))
	if err != nil {
		t.Fatal(err)
	}
	scfg, err := slack.LoadConfig(ctx, lookuper(look))
	if err != nil {
		t.Fatal(err)
	}
	ncfg, err := loadNotifyConfig(ctx, getenv)
	if err != nil {
		t.Fatal(err)
	}
	var sv serveConfig
	if errs := cleanup.DecodeEnv(ctx, &sv, getenv); len(errs) > 0 {
		t.Fatal(errs)
	}
	composed := struct {
		CLI    config
		Bot    bot.Config
		Slack  slack.Config
		Notify notifyConfig
		Serve  serveConfig
	}{cfg, bcfg, scfg, ncfg, sv}
	var logs strings.Builder
	for _, h := range []slog.Handler{slog.NewJSONHandler(&logs, nil), slog.NewTextHandler(&logs, nil)} {
		slog.New(h).Info("config", "cli", cfg, "bot", bcfg, "slack", scfg, "notify", ncfg, "composed", composed)
	}
	for name, v := range map[string]any{"config": cfg, "*config": &cfg, "bot.Config": bcfg, "slack.Config": scfg, "notifyConfig": ncfg, "composed": composed} {
		out := fmt.Sprintf("%v %+v %#v %s", v, v, v, v)
		for _, secret := range []string{"hunter2secret", "statepw0secret", "appsecretvalue", "botsecretvalue", "R0UTINGsecretvalue", "smtpsecretpw0", "whsecretvalue0"} {
			if strings.Contains(out, secret) {
				t.Errorf("%s formats a secret (%s): %.600s", name, secret, out)
			}
			if strings.Contains(logs.String(), secret) {
				t.Errorf("slog of the configuration shows %s", secret)
			}
		}
	}
	if out := fmt.Sprintf("%+v", cfg); !strings.Contains(out, "redis.internal:6380") || !strings.Contains(out, "BatchSize:") {
		t.Errorf("%%+v of config hides more than the password: %s", out)
	}
}

// lookuper adapts a func to envconfig.Lookuper.
type lookuper func(string) (string, bool)

func (l lookuper) Lookup(k string) (string, bool) { return l(k) }

// commas formats n like the audit log: 1234567 → 1,234,567.
func commas(n int64) string {
	s := fmt.Sprint(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
