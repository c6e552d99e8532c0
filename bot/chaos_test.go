package bot

// The randomized invariant test ("chaos", issue 9): a seeded mix of cleanups typed in Slack,
// run through two replicas of the real serve path against a target redis-server that an
// application keeps using (sessiontest: refreshes, logins, logouts, write-backs, sessions changed
// so that they stop matching), with at most one fault per run. After every run an oracle checks
// SPEC §12 from Redis, the stored job, the backup files, the audit logs and the fakes alone.

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/platform-team/sessionbot/bot/slacktest"
	"github.com/platform-team/sessionbot/cleanup"
	"github.com/platform-team/sessionbot/cleanup/sessiontest"
)

// SESSIONBOT_CHAOS_RUNS sets the number of runs (make test-long raises it from chaosRuns).
const (
	chaosRunsEnv = "SESSIONBOT_CHAOS_RUNS"
	chaosRuns    = 6
	chaosFinal   = 90 * time.Second // bound on one job, faults included
	// How often the application rewrites each of its hot sessions: a busy user's session,
	// touched by every request, about every 10 ms as in the report. A session that
	// changed since it was read is settled one round at a time, and with a backup each round
	// writes and syncs a backup file: on a loaded 2-CPU machine under -race that can take longer
	// than 10 ms, and a session rewritten faster than a round never settles (the run then fails
	// after cleanup's maxSettleRounds, by design). Runs with a backup get calmer sessions.
	chaosRefresh       = 10 * time.Millisecond
	chaosRefreshBackup = 100 * time.Millisecond
	// APPROVAL_THRESHOLD: a low one makes every run that logs anybody out need approval, a high
	// one none but the mass logout.
	chaosLowThreshold  = 5
	chaosHighThreshold = 1_000_000
)

type chaosFault int

const (
	faultNone chaosFault = iota
	faultRestartTarget
	faultKillReplica
	faultDropSocket
	faultRedeliverClick
	faultConcurrentClicks
	numFaults
)

func (f chaosFault) String() string {
	return [...]string{"no-fault", "target-restarted", "replica-killed", "socket-dropped", "click-redelivered", "clicks-concurrent"}[f]
}

// chaosMode is a cleanup as typed, with the share of the population it matches (to size the
// application's roles) and whether new sessions may log in during it (a login that matches a
// bounded filter would count against the run's bound and stop it, by design).
type chaosMode struct {
	name   string
	flags  string
	share  float64
	logins bool
}

// Logins during an expired run match but are no logouts (already expired); during --orphans
// they have a TTL and do not match; a mass logout has no bound.
var chaosModes = []chaosMode{
	{"expired", "", 0.3, true},
	{"user-id", `--user-id "` + sessiontest.UserID(0) + `"`, 1.0 / sessiontest.Users, false},
	{"auth-method", "--auth-method basic_auth", 0.1, false},
	{"older-than", "--older-than 7d", 0.6, false},
	{"orphans", "--orphans", 0.1, true},
	{"all", `--all --reason "` + flReason + `"`, 1, true},
}

// chaosPlan is everything one run chose at random.
type chaosPlan struct {
	seed      uint64
	mode      chaosMode
	backup    string // "", "--backup" or "--no-backup"
	threshold int64
	fault     chaosFault
	commandOn int   // the replica the slash command reaches
	clickOn   int   // the replica the (first) click reaches
	faultAt   int64 // the fault lands once the job has scanned this many keys
	sessions  int
	maxRate   int
}

func (p chaosPlan) text() string {
	return strings.Join(strings.Fields("cleanup "+p.mode.flags+" "+p.backup), " ")
}

// backupExpected tells, before the preview, whether the run will write a backup: when asked to,
// or when it needs approval (a mass logout, or any still-valid session over a low threshold;
// expired sessions are never still valid) and --no-backup was not given. The test checks the
// bot's own decision after the run.
func (p chaosPlan) backupExpected(opts cleanup.Options) bool {
	approval := opts.Filter.All || p.threshold == chaosLowThreshold && p.mode.name != "expired"
	return opts.Backup || approval && !opts.NoBackup
}

func newChaosPlan(seed uint64, i int) chaosPlan {
	rng := rand.New(rand.NewPCG(seed, uint64(i)))
	p := chaosPlan{seed: seed ^ uint64(i)*0x9e3779b97f4a7c15, mode: chaosModes[rng.IntN(len(chaosModes))]}
	p.backup = []string{"", "--backup", "--no-backup"}[rng.IntN(3)]
	p.threshold = []int64{chaosLowThreshold, chaosHighThreshold}[rng.IntN(2)]
	p.fault = chaosFault(rng.IntN(int(numFaults)))
	p.commandOn, p.clickOn = rng.IntN(2), rng.IntN(2)
	p.sessions = 1200 + rng.IntN(1300)
	p.faultAt = int64(p.sessions * (1 + rng.IntN(7)) / 10)
	// About a second per pass over the keys, so that faults land mid-job.
	p.maxRate = p.sessions * (8 + rng.IntN(5)) / 10
	return p
}

// TestChaosInvariants runs random cleanups through the bot under application traffic and one
// random fault each, and checks after every run, from the outputs alone: no key outside the
// prefix or in the state namespace touched; a completed run left no matching session behind;
// the report's counts equal what changed in Redis (a lower bound for a job whose replica died);
// every deleted key's last value is in the backup when one was written; one Cleanup Started,
// one job, one approval and one PagerDuty change event per request, however the clicks arrived;
// a job whose replica died is reported failed by the survivor and never run twice.
// SESSIONBOT_SEED replays a seed; SESSIONBOT_CHAOS_RUNS sets the number of runs.
func TestChaosInvariants(t *testing.T) {
	seed := sessiontest.SeedFromEnv()
	runs := chaosRuns
	if s := os.Getenv(chaosRunsEnv); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("%s=%q; want a positive number of runs", chaosRunsEnv, s)
		}
		runs = n
	}
	t.Logf("seed %d, %d runs (replay: SESSIONBOT_SEED=%d %s=%d go test -run %s ./bot/)", seed, runs, seed, chaosRunsEnv, runs, t.Name())
	for i := range runs {
		p := newChaosPlan(seed, i)
		t.Run(fmt.Sprintf("%02d-%s-%s", i, p.mode.name, p.fault), func(t *testing.T) {
			defer func() {
				if t.Failed() {
					t.Logf("replay this run: SESSIONBOT_SEED=%d %s=%d go test -run '%s' ./bot/", seed, chaosRunsEnv, i+1, t.Name())
				}
			}()
			chaosRun(t, p)
		})
	}
}

// chaosRun plays one run and checks it.
func chaosRun(t *testing.T, p chaosPlan) {
	ctx := context.Background()
	t.Logf("/sessions %s · threshold %d · %d sessions at %d keys/s · fault %s after %d keys scanned · command on replica %d, click on %d",
		p.text(), p.threshold, p.sessions, p.maxRate, p.fault, p.faultAt, p.commandOn, p.clickOn)
	args, err := cleanup.SplitArgs(p.text())
	if err != nil {
		t.Fatal(err)
	}
	opts, err := cleanup.ParseArgs(args[1:], false)
	if err != nil {
		t.Fatal(err)
	}
	// A short lease lets the survivor notice a killed replica within seconds (3 lease periods);
	// otherwise a long one, so that a replica starved of CPU on a busy machine does not give
	// up its job (it stops when it cannot renew its lease for half of it, by design).
	leaseTTL := 10 * time.Second
	if p.fault == faultKillReplica {
		leaseTTL = 2 * time.Second
	}
	f := newFleet(t, fleetOptions{replicas: 2, noSeed: true, stateServer: true, maxRate: p.maxRate,
		leaseTTL: leaseTTL, threshold: p.threshold})
	st := newStore(f.state.Client())

	matching := max(int(float64(p.sessions)*p.mode.share), 20)
	cfg := sessiontest.Config{
		Prefix: "session:", Now: time.Now(), Seed: p.seed, Sessions: p.sessions,
		Hot: max(matching/4, 5), Unmatch: matching / 20, Logout: matching / 20, WriteBack: min(matching/20, 5),
		Writers: 2, RefreshEvery: chaosRefresh,
	}
	if p.backupExpected(opts) {
		cfg.RefreshEvery = chaosRefreshBackup
	}
	if p.mode.logins {
		cfg.Creators = 1
	}
	app := sessiontest.New(f.rdb, opts.Filter, cfg)
	if err := app.Populate(ctx); err != nil {
		t.Fatal(err)
	}

	// The preview, then the application's traffic, then the click(s).
	f.slack.SetRoute(slacktest.Connection(p.commandOn))
	f.command(flAlice, p.text())
	msg, action := f.awaitRequest()
	approver := map[string]string{"run": flAlice, "approve": flBob}[action]
	app.Start(ctx)
	stopped := false
	defer func() {
		if !stopped {
			_ = app.Stop()
		}
	}()
	if !pollUntil(func() bool { return app.Writes() >= 50 }, flWait) {
		t.Fatalf("the application made %d writes; want it busy before the click", app.Writes())
	}
	f.slack.SetRoute(slacktest.Connection(p.clickOn))
	click := f.click(approver, "", msg.TS, action)
	envs := []string{click}
	if p.fault == faultConcurrentClicks {
		// Another approver (or the operator again) on the other replica, at the same moment.
		second := map[string]string{"run": flAlice, "approve": flCarol}[action]
		f.slack.SetRoute(slacktest.Connection(1 - p.clickOn))
		envs = append(envs, f.click(second, "", msg.TS, action))
	}
	for _, env := range envs {
		f.slack.WaitAck(t, env, 3*time.Second)
	}

	// The fault, mid-job.
	var (
		killedAt  time.Time
		scannedAt int64 // keys the job had scanned when the fault landed, as last stored
	)
	if p.fault != faultNone && p.fault != faultConcurrentClicks {
		var running bool
		if running, scannedAt = f.awaitScanned(st, p.faultAt); !running {
			t.Logf("the job ended before the fault (%s) could land", p.fault)
		}
		switch p.fault {
		case faultRestartTarget:
			if err := f.redis.RestartKeepingData(); err != nil {
				t.Fatal(err)
			}
		case faultKillReplica:
			r := f.replicas[p.clickOn]
			r.ks.kill()
			killedAt = time.Now()
			r.stopSocket()
			f.slack.SetRoute(slacktest.Connection(0))
		case faultDropSocket:
			f.slack.DropConnections()
			f.slack.WaitConnections(t, 2, flWait)
		case faultRedeliverClick:
			f.slack.SetRoute(slacktest.Connection(1 - p.clickOn))
			f.slack.Redeliver(click)
			slacktest.WaitFor(t, func() bool { return f.slack.Acks(click) == 2 }, flWait)
		}
	}

	job := f.awaitJobEnd(st, msg.TS)
	writes := app.Writes()
	stopped = true
	if err := app.Stop(); err != nil {
		t.Fatalf("application traffic: %v", err)
	}
	// Every replica stops (in-flight clicks handled, notifications sent) before the audit
	// logs and the fakes are read.
	for _, r := range f.replicas {
		r.stop()
	}

	rep := *job.Report
	var backups []string
	for b := range strings.SplitSeq(rep.Backup, ",") {
		if b != "" {
			backups = append(backups, filepath.Base(b))
		}
	}
	t.Logf("job %s %s: deleted %d (%d still valid), skipped %d, malformed %d, remaining %d, restarted %q, %d application writes, backups %q %s",
		job.ID, job.Status, rep.Deleted, rep.DeletedValid, rep.Skipped, rep.Malformed, rep.Remaining, rep.Restarted, writes, backups, job.Error)
	req, err := st.request(ctx, job.RequestID)
	if err != nil {
		t.Fatalf("request of job %s: %v", job.ID, err)
	}
	if !reflect.DeepEqual(req.Filter, opts.Filter.Normalize()) {
		t.Errorf("the job ran filter %+v; the command asked for %+v", req.Filter, opts.Filter.Normalize())
	}
	needsApproval := action == "approve"
	if want := req.Filter.All || req.Plan.Valid > p.threshold; needsApproval != want {
		t.Errorf("the preview offered %q for %d still-valid sessions at threshold %d", action, req.Plan.Valid, p.threshold)
	}
	if want := (needsApproval && !opts.NoBackup) || opts.Backup; req.Backup != want {
		t.Errorf("request backup = %v; want %v (needs approval %v, %s)", req.Backup, want, needsApproval, p.backup)
	}

	// The invariants of the data: Redis, the report and the backups.
	interrupted := rep.Stopped == stoppedInterrupted
	files, err := filepath.Glob(filepath.Join(f.backups, job.ID+"*.jsonl.gz"))
	if err != nil {
		t.Fatal(err)
	}
	if interrupted {
		// The survivor rebuilt the report from the last progress; the backups are on disk.
		rep.Backup = strings.Join(files, ",")
		err = app.CheckInterrupted(ctx, rep)
	} else {
		var runErr error
		if job.Status != StatusDone {
			runErr = errors.New(job.Error)
		}
		err = app.Check(ctx, rep, runErr)
		var named []string
		if rep.Backup != "" {
			named = strings.Split(rep.Backup, ",")
		}
		slices.Sort(named)
		if !slices.Equal(named, files) {
			t.Errorf("the report names backups %q; the backup dir holds %q", named, files)
		}
	}
	if err != nil {
		t.Errorf("invariants violated:\n%v", err)
	}
	switch {
	case req.Backup && rep.Deleted > 0 && len(files) == 0:
		t.Errorf("%d sessions deleted by a run that had to write a backup first, and none was written", rep.Deleted)
	case !req.Backup && len(files) > 0:
		t.Errorf("backup files %q written for a run without a backup (%s)", files, p.backup)
	}

	// Exactly once: one job, one Cleanup Started, one approval, one announcement.
	if jobs, err := st.recentJobs(ctx, 10); err != nil || len(jobs) != 1 {
		t.Errorf("%d jobs in the state (%v); want 1", len(jobs), err)
	}
	started := f.executed()
	if len(started) != 1 || !strings.Contains(started[0], "Job: "+job.ID) {
		t.Errorf("destructive Cleanup Started lines = %q; want one, for %s", started, job.ID)
	}
	wantApproved := 0
	if needsApproval {
		wantApproved = 1
		// Approved by someone other than the requester (alice).
		if len(started) == 1 && (!strings.Contains(started[0], "Approved-By: ") || strings.Contains(started[0], "Approved-By: "+flAlice)) {
			t.Errorf("Cleanup Started = %q; want it approved by an approver other than the requester", started[0])
		}
	}
	if approved := f.audited(cleanup.EventApproved); len(approved) != wantApproved {
		t.Errorf("Approved lines = %q; want %d", approved, wantApproved)
	}
	wantRefused := 0
	if p.fault == faultConcurrentClicks {
		wantRefused = 1 // the click that lost
	}
	if refused := f.audited(cleanup.EventRefused); len(refused) != wantRefused {
		t.Errorf("Refused lines = %q; want %d", refused, wantRefused)
	}
	if n := len(f.pd.ChangeEvents()); n != 1 {
		t.Errorf("%d PagerDuty change events; want 1 for the one job", n)
	}
	var triggers int
	for _, ev := range f.pd.Events() {
		if ev.Action == "trigger" {
			triggers++
		}
	}
	wantTriggers := 0
	if job.Status == StatusFailed {
		wantTriggers = 1
	}
	if triggers != wantTriggers {
		t.Errorf("%d PagerDuty alerts for a job that ended %s", triggers, job.Status)
	}
	if job.Status == StatusDone {
		completed := f.audited(cleanup.EventCleanupCompleted)
		if len(completed) != 1 || !strings.Contains(completed[0], "Deleted: "+num(rep.Deleted)+" |") {
			t.Errorf("Cleanup Completed lines = %q; want one with Deleted: %s", completed, num(rep.Deleted))
		}
	}

	// How it ended. A replica killed mid-job is reported failed by the survivor; otherwise the
	// run completes (no fault here is one it may not survive). It never stops at the bound: no
	// new matching session logs in during a bounded run, and the few written back stay far
	// below the bound's margin (previewed + 10% + 10), so a stop there means the bound counted
	// something that was no logout (§12.3).
	switch {
	case rep.Stopped == "bound":
		t.Errorf("the run stopped at the bound (%s) with %d still-valid sessions deleted of %d previewed: the bound counted something that was no real logout (SPEC §12.3)",
			job.Error, rep.DeletedValid, req.Plan.Valid)
	case p.fault == faultKillReplica && job.EndedAt.After(killedAt):
		survivor := f.replicas[1-p.clickOn]
		failed := auditLinesOf(t, survivor.auditPath, cleanup.EventCleanupFailed)
		if job.Status != StatusFailed || !interrupted || len(failed) != 1 || !strings.Contains(failed[0], "Job: "+job.ID) {
			t.Errorf("job of the killed replica ended %s (stopped %q); survivor's Cleanup Failed lines %q; want it reported failed by the survivor",
				job.Status, rep.Stopped, failed)
		}
	case job.Status != StatusDone:
		t.Errorf("the job ended %s: %s; want it completed%s", job.Status, job.Error, f.internalError(job.Error))
	}
	// A restart in the middle of a run's scan is noticed (new run_id) and the node rescanned.
	// Runs without a backup scan as they delete, and stop scanning while Redis holds their
	// deletes during the restart; in the first half of the keys the restart is mid-scan.
	if p.fault == faultRestartTarget && !req.Backup && job.Status == StatusDone && scannedAt > 0 && scannedAt < int64(p.sessions/2) &&
		!slices.Contains(rep.Restarted, f.redis.Addr()) {
		t.Errorf("the target restarted after %d of %d keys were scanned; the report names restarted nodes %q, want %s",
			scannedAt, p.sessions, rep.Restarted, f.redis.Addr())
	}
	if req.Status != job.Status {
		t.Errorf("request %s, job %s; want the same final status", req.Status, job.Status)
	}
}

// internalError returns, for a message that hides an error behind "internal error (ref …)",
// the replicas' log lines with that ref (the error itself), for the failure message.
func (f *fleet) internalError(text string) string {
	m := internalRef.FindStringSubmatch(text)
	if m == nil {
		return ""
	}
	var lines []string
	for _, r := range f.replicas {
		for l := range strings.Lines(r.logs.String()) {
			if strings.Contains(l, `"ref":"`+m[1]+`"`) {
				lines = append(lines, r.name+": "+strings.TrimSpace(l))
			}
		}
	}
	return "\n" + strings.Join(lines, "\n")
}

var internalRef = regexp.MustCompile(`internal error \(ref ([0-9a-f]+)\)`)

// awaitRequest waits for the preview's buttons: run, or approve when the request needs approval.
func (f *fleet) awaitRequest() (slacktest.Message, string) {
	f.t.Helper()
	var (
		found  slacktest.Message
		action string
	)
	ok := pollUntil(func() bool {
		for _, m := range f.slack.Messages(f.ops) {
			for _, a := range []string{"run", "approve"} {
				if strings.Contains(string(m.Blocks), `"action_id":"`+a+`"`) {
					found, action = m, a
					return true
				}
			}
		}
		return false
	}, flWait)
	if !ok {
		var texts []string
		for _, m := range f.slack.Messages(f.ops) {
			texts = append(texts, blocksText(string(m.Blocks), m.Text))
		}
		f.t.Fatalf("no preview with a run or approve button; #sre-ops shows:\n%s", strings.Join(texts, "\n---\n"))
	}
	return found, action
}

// awaitScanned waits until the job has stored progress of at least n keys scanned, and returns
// whether it still runs and how many keys it has scanned.
func (f *fleet) awaitScanned(st *store, n int64) (running bool, scanned int64) {
	f.t.Helper()
	var job *Job
	ok := pollUntil(func() bool {
		jobs, err := st.recentJobs(context.Background(), 1)
		if err != nil || len(jobs) == 0 {
			return false
		}
		job = jobs[0]
		return job.Status != StatusRunning || job.Progress != nil && job.Progress.Scanned >= n
	}, flWait)
	if !ok {
		f.t.Fatalf("the job has not scanned %d keys within %v: %+v", n, flWait, job)
	}
	if job.Progress != nil {
		scanned = job.Progress.Scanned
	}
	return job.Status == StatusRunning, scanned
}

// reportShown reports whether message m shows a job's final report.
func reportShown(m slacktest.Message) bool {
	b := string(m.Blocks)
	return strings.Contains(b, "Cleanup completed: ") || strings.Contains(b, "Failed: ") || strings.Contains(b, "Cancelled: ")
}

// awaitJobEnd waits until the one job has ended in the state and its message shows the report,
// and returns the job.
func (f *fleet) awaitJobEnd(st *store, ts string) *Job {
	f.t.Helper()
	var job *Job
	ok := pollUntil(func() bool {
		jobs, err := st.recentJobs(context.Background(), 10)
		if err != nil || len(jobs) == 0 || jobs[0].Status == StatusRunning {
			return false
		}
		job = jobs[0]
		m, _ := f.slack.Message(f.ops, ts)
		return reportShown(m) && job.Report != nil
	}, chaosFinal)
	if !ok {
		m, _ := f.slack.Message(f.ops, ts)
		f.t.Fatalf("no final report within %v (job %+v); the message shows:\n%s", chaosFinal, job, blocksText(string(m.Blocks), m.Text))
	}
	return job
}
