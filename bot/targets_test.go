package bot

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/platform-team/sessionbot/bot/chat"
	"github.com/platform-team/sessionbot/bot/slacktest"
	"github.com/platform-team/sessionbot/cleanup"
	"github.com/platform-team/sessionbot/cleanup/redistest"
	"github.com/platform-team/sessionbot/internal/testkit"
)

// countSessions counts session: keys on every master of c.
func countSessions(t *testing.T, c redis.UniversalClient) int {
	t.Helper()
	ctx := context.Background()
	var (
		mu sync.Mutex
		n  int
	)
	scan := func(ctx context.Context, c *redis.Client) error {
		iter := c.Scan(ctx, 0, "session:*", 1000).Iterator()
		k := 0
		for iter.Next(ctx) {
			k++
		}
		mu.Lock()
		n += k
		mu.Unlock()
		return iter.Err()
	}
	var err error
	if cc, ok := c.(*redis.ClusterClient); ok {
		err = cc.ForEachMaster(ctx, scan)
	} else {
		err = scan(ctx, c.(*redis.Client))
	}
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestE2ETargets drives one bot serving three targets — two standalone redis-servers and a
// 3-master Cluster — through the fake Slack: commands without --target in a channel with no
// default are refused with the names, an unknown target is refused, an approved mass logout on
// prod-eu deletes there only, every audit line of it names the target, and a channel's default
// target answers a command without --target.
func TestE2ETargets(t *testing.T) {
	ctx := context.Background()
	eu := redistest.Standalone(t)
	cluster := redistest.NewCluster(t)
	euClient, clusterClient := eu.Client(), cluster.Client()
	t.Cleanup(func() { _ = euClient.Close(); _ = clusterClient.Close() })
	for _, c := range []redis.UniversalClient{euClient, clusterClient} {
		if _, err := cleanup.Seed(ctx, c, cleanup.SeedSpec{Count: 200, Seed: 7, Unrelated: 5, CanaryToken: e2eCanary}); err != nil {
			t.Fatal(err)
		}
	}
	var clusterChannel string
	e := newE2E(t, e2eOptions{sessions: 300, targets: func(e *e2eEnv) []Target {
		clusterChannel = e.slack.ChannelID("#cluster-ops")
		engine := func(c redis.UniversalClient, name string) *cleanup.Engine {
			tg := cleanup.NewTarget(c, "session:", name)
			tg.Exclude(cleanup.StateNamespace)
			return cleanup.NewEngine(tg, cleanup.EngineConfig{BatchSize: 100})
		}
		return []Target{
			{Name: "prod-us", Engine: engine(e.rdb, "prod-us"), Policy: defaultPolicy},
			{Name: "prod-eu", Engine: engine(euClient, "prod-eu"), Policy: defaultPolicy, Approvers: []string{e2eBob}},
			{Name: "cluster", Engine: engine(clusterClient, "cluster"), Policy: defaultPolicy, Channels: []string{clusterChannel}},
		}
	}})
	usBefore, euBefore, clusterBefore := countSessions(t, e.rdb), countSessions(t, euClient), countSessions(t, clusterClient)
	if usBefore != 300 || euBefore != 200 || clusterBefore != 200 {
		t.Fatalf("seeded %d, %d, %d sessions; want 300, 200, 200", usBefore, euBefore, clusterBefore)
	}

	// No --target in #sre-ops, which has no default: refused with the names, nothing posted.
	e.command(e2eAlice, e2eCommand)
	slacktest.WaitFor(t, func() bool { return len(e.refusalsFor(e2eAlice)) == 1 }, e2eWait)
	refusal := e.refusalsFor(e2eAlice)[0]
	wantContains(t, "refusal", refusal, "no default target", "--target NAME (prod-us, prod-eu, cluster)", "Nothing was done")
	// An unknown target: refused, naming the targets.
	e.command(e2eAlice, "cleanup --target prod-ap --all --reason x")
	slacktest.WaitFor(t, func() bool { return len(e.refusalsFor(e2eAlice)) == 2 }, e2eWait)
	wantContains(t, "unknown target", e.refusalsFor(e2eAlice)[1], `Unknown target "prod-ap"; the targets are prod-us, prod-eu, cluster`, "Nothing was done")
	if n := len(e.slack.Messages(e.ops)); n != 0 {
		t.Fatalf("%d messages posted in #sre-ops after refusals; want none", n)
	}
	if got := e.audited(cleanup.EventRefused); len(got) != 2 {
		t.Errorf("Refused lines = %q; want 2", got)
	}

	// A mass logout on prod-eu: the card names the target and its approvers; bob approves.
	e.command(e2eAlice, e2eCommand+" --target prod-eu")
	req := e.awaitButton("approve")
	wantContains(t, "approval card", string(req.Blocks), "Target", "prod-eu", "200 sessions will be deleted (ALL)")
	e.press(e2eBob, req.TS, "approve")
	slacktest.WaitFor(t, func() bool { return len(e.audited(cleanup.EventCleanupCompleted)) == 1 }, e2eWait)
	e.awaitIncident()
	if n := countSessions(t, euClient); n != 0 {
		t.Errorf("prod-eu has %d sessions after its mass logout; want 0", n)
	}
	if us, cl := countSessions(t, e.rdb), countSessions(t, clusterClient); us != usBefore || cl != clusterBefore {
		t.Errorf("after prod-eu's mass logout prod-us has %d sessions (want %d), cluster %d (want %d): another target was touched",
			us, usBefore, cl, clusterBefore)
	}
	for _, ev := range []string{cleanup.EventRequestCreated, cleanup.EventApproved, cleanup.EventCleanupCompleted} {
		lines := e.audited(ev)
		if len(lines) != 1 || !strings.HasSuffix(lines[0], " | Target: prod-eu") {
			t.Errorf("%s lines = %q; want one ending in Target: prod-eu", ev, lines)
		}
	}
	for _, l := range e.audited(cleanup.EventCleanupStarted) {
		if !strings.HasSuffix(l, " | Target: prod-eu") {
			t.Errorf("Cleanup Started line %q does not name prod-eu", l)
		}
	}
	report, _ := e.slack.Message(e.ops, req.TS)
	wantContains(t, "report", string(report.Blocks), "Cleanup completed: all", "prod-eu", "job-prod-eu-")
	if ev := e.pd.ChangeEvents(); len(ev) != 1 || !strings.Contains(ev[0].Payload.Source, "prod-eu") {
		t.Errorf("PagerDuty change events = %+v; want one from sessionbot/prod-eu", ev)
	}

	// #cluster-ops defaults to the cluster: a preview without --target runs there.
	env := e.slack.SlashCommand(slacktest.SlashCommand{UserID: e2eAlice, UserName: "alice", ChannelID: clusterChannel, Command: "/sessions", Text: "cleanup"})
	e.slack.WaitAck(t, env, e2eWait)
	var preview slacktest.Message
	slacktest.WaitFor(t, func() bool {
		for _, m := range e.slack.Messages(clusterChannel) {
			if strings.Contains(string(m.Blocks), `"action_id":"run"`) {
				preview = m
				return true
			}
		}
		return false
	}, e2eWait)
	wantContains(t, "cluster preview", string(preview.Blocks), "Found 200 total session keys", "`cluster`")
	scanned := e.audited(cleanup.EventSessionsScanned)
	if len(scanned) != 3 || !strings.HasSuffix(scanned[2], " | Target: cluster") {
		t.Errorf("Sessions Scanned lines = %q; want the last on the cluster", scanned)
	}
	e.assertNoLeaks()
}

// A target's own approvers decide its requests: an APPROVERS member who is not one of them is
// refused (and audited), one of them approves, and the job runs on that target.
func TestTargetApprovers(t *testing.T) {
	h := newHarness(t, func(h *harness, d *Deps) {
		d.Targets = []Target{{Name: "prod-us", Engine: h.engine, Policy: defaultPolicy, Approvers: []string{dave}}}
		d.Engine = nil
	})
	h.seed(sessionSpec{n: 20})
	id, ref := h.requestAll()
	if m := chat.FormatText(h.chat.msg(ref)); !strings.Contains(m, "@"+dave) || strings.Contains(m, "@"+bob) {
		t.Errorf("approval card names the wrong approvers:\n%s", m)
	}
	h.press(bob, "approve", id)
	if got := h.chat.lastEphemeral(bob); !strings.Contains(got, "Only approvers") {
		t.Errorf("bob (APPROVERS, not prod-us's) was told %q; want a refusal", got)
	}
	if n := h.sessionCount(); n != 20 {
		t.Fatalf("after a refused approval %d sessions; want 20", n)
	}
	refused := h.audited(cleanup.EventRefused)
	if len(refused) != 1 || !strings.Contains(refused[0], "not in APPROVERS") || !strings.HasSuffix(refused[0], " | Target: prod-us") {
		t.Errorf("Refused lines = %q; want bob's, on prod-us", refused)
	}
	h.press(dave, "approve", id)
	if n := h.sessionCount(); n != 0 {
		t.Errorf("after dave's approval %d sessions; want 0", n)
	}
	wantContains(t, "report", chat.FormatText(h.chat.msg(ref)), "Cleanup completed: all", "Target: `prod-us`", "job-prod-us-")

	// status and help take --target too; an unknown one is refused with the names.
	lastShown := func() string {
		h.chat.mu.Lock()
		defer h.chat.mu.Unlock()
		return chat.FormatText(h.chat.ephemerals[len(h.chat.ephemerals)-1].Msg)
	}
	h.command(alice, "status --target prod-us")
	wantContains(t, "status", lastShown(), "job-prod-us-", "on `prod-us`")
	h.command(alice, "status --target prod-eu")
	wantContains(t, "status of an unknown target", h.chat.lastEphemeral(alice), `Unknown target "prod-eu"; the targets are prod-us`, "Nothing was done")
	h.command(alice, "help")
	wantContains(t, "help", lastShown(), "--target NAME", "the only target is `prod-us`")
}

// A backup goes back only to the target it was written on: restoring prod-us's backup with
// --target prod-eu is refused and audited, and nothing is posted or changed.
func TestRestoreRefusedOnAnotherTarget(t *testing.T) {
	h := newHarness(t, func(h *harness, d *Deps) {
		eu := cleanup.NewEngine(cleanup.NewTarget(h.rdb, "eu:session:", "eu"), cleanup.EngineConfig{BatchSize: 100})
		d.Targets = []Target{
			{Name: "prod-us", Engine: h.engine, Policy: defaultPolicy},
			{Name: "prod-eu", Engine: eu, Policy: defaultPolicy},
		}
		d.Engine, d.State = nil, h.rdb
	})
	const id = "job-prod-us-20261201-0badc0de"
	testkit.WriteBackup(t, h.backupDir, id,
		cleanup.BackupRecord{Key: "eu:session:a", Value: []byte(`{"user_id":"auth0|1","expires_at":"2099-01-01T00:00:00Z"}`), PTTL: time.Hour})
	posts := len(h.chat.posts)
	h.command(alice, "restore "+id+" --target prod-eu --reason 'undo'")
	wantContains(t, "refusal", h.chat.lastEphemeral(alice), "was written on target prod-us, not prod-eu", "Nothing was done")
	if len(h.chat.posts) != posts {
		t.Errorf("a refused restore posted %d messages", len(h.chat.posts)-posts)
	}
	if n, err := h.rdb.Exists(context.Background(), "eu:session:a").Result(); err != nil || n != 0 {
		t.Errorf("eu:session:a exists = %d, %v; want nothing restored", n, err)
	}
	if refused := h.audited(cleanup.EventRefused); len(refused) != 1 || !strings.Contains(refused[0], "Action: restore") {
		t.Errorf("Refused lines = %q; want the restore", refused)
	}
}

// `/sessions cancel JOB_ID` follows the job's Cancel button: an approver of another target may
// not cancel it (refused and audited before anything else is looked at); the target's may.
func TestCancelJobByIDIsPerTarget(t *testing.T) {
	h := newHarness(t, func(h *harness, d *Deps) {
		eu := cleanup.NewEngine(cleanup.NewTarget(h.rdb, "eu:session:", "eu"), cleanup.EngineConfig{BatchSize: 100})
		d.Targets = []Target{
			{Name: "prod-us", Engine: h.engine, Policy: defaultPolicy, Approvers: []string{dave}},
			{Name: "prod-eu", Engine: eu, Policy: defaultPolicy, Approvers: []string{bob}},
		}
		d.Engine, d.State = nil, h.rdb
	})
	h.seed(sessionSpec{n: 20})
	h.command(alice, `cleanup --target prod-us --all --reason "incident 42"`)
	_, m := h.chat.latest(-1)
	h.press(dave, "approve", button(t, m, "approve"))
	jobs, err := h.bot.st.recentJobs(context.Background(), 1)
	if err != nil || len(jobs) != 1 {
		t.Fatalf("recent jobs = %v, %v; want prod-us's", jobs, err)
	}
	id := jobs[0].ID
	h.command(bob, "cancel "+id)
	wantContains(t, "bob's cancel", h.chat.lastEphemeral(bob), "Only the requester, an operator or an approver of target prod-us may cancel job "+id)
	if refused := h.audited(cleanup.EventRefused); len(refused) != 1 || !strings.Contains(refused[0], "Why: not an approver of target prod-us") {
		t.Errorf("Refused lines = %q; want bob's cancel", refused)
	}
	h.command(dave, "cancel "+id)
	wantContains(t, "dave's cancel", h.chat.lastEphemeral(dave), "is not running")
}
