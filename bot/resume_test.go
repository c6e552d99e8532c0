package bot

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/platform-team/sessionbot/bot/slacktest"
	"github.com/platform-team/sessionbot/cleanup"
)

// sessionKeys lists the session keys in the fleet's target.
func (f *fleet) sessionKeys() map[string]bool {
	f.t.Helper()
	ctx := context.Background()
	keys := map[string]bool{}
	iter := f.rdb.Scan(ctx, 0, "session:*", 1000).Iterator()
	for iter.Next(ctx) {
		keys[iter.Val()] = true
	}
	if err := iter.Err(); err != nil {
		f.t.Fatal(err)
	}
	return keys
}

// jobsOf returns the request's jobs, oldest first.
func (f *fleet) jobsOf() []*Job {
	f.t.Helper()
	jobs, err := newStore(f.rdb).recentJobs(context.Background(), 20)
	if err != nil {
		f.t.Fatal(err)
	}
	for i, j := 0, len(jobs)-1; i < j; i, j = i+1, j-1 {
		jobs[i], jobs[j] = jobs[j], jobs[i]
	}
	return jobs
}

// A replica dies in the middle of a mass logout with a backup. The survivor reports the job
// interrupted and offers Resume; an operator's press continues it there, under the same
// approval (no new one), until every session is gone. The audit log has Cleanup Resumed, the
// continuation extended the first job's backup with further rounds, and the rounds together
// hold every session that existed: one restore of the first job's id would put them all back.
func TestResumeAfterReplicaCrash(t *testing.T) {
	f := newFleet(t, fleetOptions{replicas: 2, sessions: 3000, maxRate: 1000, leaseTTL: 500 * time.Millisecond})
	a, b := f.replicas[0], f.replicas[1]
	before := f.sessionKeys()
	f.slack.SetRoute(slacktest.Connection(0))
	req := f.requestMassLogout()
	f.slack.WaitAck(t, f.click(flBob, "", req.TS, "approve"), 3*time.Second)
	f.awaitProgress(req.TS)

	a.ks.kill()
	a.stopSocket()
	f.slack.SetRoute(slacktest.RoundRobin)
	m := f.awaitMessage(req.TS, "Interrupted", `"action_id":"resume"`)
	left := f.sessionCount()
	if left == 0 {
		t.Fatal("the mass logout finished before the crash; slow it down")
	}
	wantContains(t, "report", blocksText(string(m.Blocks), m.Text), "Resume continues this cleanup with the same filters and bound")

	f.slack.WaitAck(t, f.click(flAlice, "", req.TS, "resume"), 3*time.Second)
	f.awaitMessage(req.TS, "Cleanup completed")
	b.announcer.Wait()
	if n := f.sessionCount(); n != 0 {
		t.Errorf("%d sessions left after the resumed mass logout; want 0", n)
	}
	jobs := f.jobsOf()
	if len(jobs) != 2 || jobs[0].Status != StatusFailed || jobs[1].Status != StatusDone || jobs[1].ResumeOf != jobs[0].ID {
		t.Fatalf("jobs = %+v; want the interrupted one, then its continuation, done", jobs)
	}
	resumed := auditLinesOf(t, b.auditPath, cleanup.EventCleanupResumed)
	if len(resumed) != 1 || !strings.Contains(resumed[0], "Resumes: "+jobs[0].ID) || !strings.Contains(resumed[0], "User: "+flAlice) {
		t.Errorf("Cleanup Resumed lines = %q; want one, by alice, resuming %s", resumed, jobs[0].ID)
	}
	if got := f.audited(cleanup.EventApproved); len(got) != 1 {
		t.Errorf("Approved lines = %q; want the one approval (a resume needs none)", got)
	}

	bk, err := cleanup.FindBackup(f.backups, jobs[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(bk.Files) < 2 {
		t.Errorf("backup %s has files %q; want the first job's and the continuation's rounds", jobs[0].ID, bk.Files)
	}
	backedUp := map[string]bool{}
	if err := bk.Reader(nil)(func(r cleanup.BackupRecord) error { backedUp[r.Key] = true; return nil }); err != nil {
		t.Fatal(err)
	}
	for k := range before {
		if !backedUp[k] {
			t.Errorf("%.20s… was deleted but is in no backup round of %s", k, jobs[0].ID)
			break
		}
	}
	for _, k := range f.seeded.UnrelatedKeys {
		if n, _ := f.rdb.Exists(context.Background(), k).Result(); n != 1 {
			t.Errorf("unrelated key %q was touched", k)
		}
	}
}

// interruptByShutdown starts a mass logout on replica 0 and shuts that replica down mid-job
// (SIGTERM): the job is reported failed, with Resume.
func interruptByShutdown(t *testing.T, f *fleet) slacktest.Message {
	t.Helper()
	f.slack.SetRoute(slacktest.Connection(0))
	req := f.requestMassLogout("--no-backup")
	f.slack.WaitAck(t, f.click(flBob, "", req.TS, "approve"), 3*time.Second)
	f.awaitProgress(req.TS)
	f.replicas[0].stop()
	f.awaitMessage(req.TS, "shutting down", `"action_id":"resume"`)
	if f.sessionCount() == 0 {
		t.Fatal("the mass logout finished before the shutdown; slow it down")
	}
	return req
}

// Once the approval is older than APPROVAL_TTL, Resume is refused with what to do instead
// (a fresh request), audited, and changes nothing.
func TestResumeRefusedAfterApprovalAgedOut(t *testing.T) {
	var skew atomic.Int64
	now := func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
	f := newFleet(t, fleetOptions{replicas: 2, sessions: 3000, maxRate: 1000, now: now})
	req := interruptByShutdown(t, f)
	left := f.sessionKeys()

	skew.Store(int64(f.cfg.ApprovalTTL + time.Minute))
	f.slack.SetRoute(slacktest.RoundRobin)
	f.slack.WaitAck(t, f.click(flAlice, "", req.TS, "resume"), 3*time.Second)
	var refusal string
	slacktest.WaitFor(t, func() bool {
		for _, p := range f.slack.ResponseURLPosts() {
			if strings.Contains(p.Text, "APPROVAL_TTL") {
				refusal = p.Text
				return true
			}
		}
		return false
	}, flWait)
	wantContains(t, "refusal", refusal, "cannot be resumed", "make a fresh request", "Nothing was done")
	refused := f.audited(cleanup.EventRefused)
	if len(refused) != 1 || !strings.Contains(refused[0], "Why: approval aged out") {
		t.Errorf("Refused lines = %q; want the resume, refused as aged out", refused)
	}
	if got := f.audited(cleanup.EventCleanupResumed); len(got) != 0 {
		t.Errorf("Cleanup Resumed lines = %q; want none", got)
	}
	if after := f.sessionKeys(); len(after) != len(left) {
		t.Errorf("%d sessions left after the refused resume; want the %d left before it", len(after), len(left))
	}
	if jobs := f.jobsOf(); len(jobs) != 1 || jobs[0].Status != StatusFailed {
		t.Errorf("jobs = %+v; want only the interrupted one", jobs)
	}
}

// Two operators press Resume at the same moment and each press reaches a different replica:
// exactly one continuation runs; the other press is told it was resumed already.
func TestResumeDoublePressOneContinuation(t *testing.T) {
	f := newFleet(t, fleetOptions{replicas: 3, sessions: 3000, maxRate: 1000, config: func(c *Config) {
		c.Operators = []string{flAlice, flErin}
	}})
	req := interruptByShutdown(t, f)

	// Replica 0 is gone: connections 0 and 1 are now replicas 1 and 2.
	envs := make([]string, 2)
	for i, user := range []string{flAlice, flErin} {
		f.slack.SetRoute(slacktest.Connection(i))
		envs[i] = f.click(user, "", req.TS, "resume")
	}
	var conns []int
	for _, env := range envs {
		f.slack.WaitAck(t, env, 3*time.Second)
		e, _ := f.slack.Envelope(env)
		conns = append(conns, e.ConnIDs...)
	}
	if len(conns) != 2 || conns[0] == conns[1] {
		t.Errorf("the two presses went to connections %v; want one each, different replicas", conns)
	}
	f.awaitMessage(req.TS, "Cleanup completed")
	if n := f.sessionCount(); n != 0 {
		t.Errorf("%d sessions left after the resumed mass logout; want 0", n)
	}
	if got := f.audited(cleanup.EventCleanupResumed); len(got) != 1 {
		t.Errorf("Cleanup Resumed lines = %q; want exactly one", got)
	}
	refused := f.audited(cleanup.EventRefused)
	if len(refused) != 1 || !strings.Contains(refused[0], "Why: already resumed") {
		t.Errorf("Refused lines = %q; want the losing press, refused as already resumed", refused)
	}
	if jobs := f.jobsOf(); len(jobs) != 2 || jobs[1].Status != StatusDone {
		t.Errorf("jobs = %+v; want the interrupted one and one continuation, done", jobs)
	}
}

// The bound holds across a resume: an approved cleanup over the threshold is interrupted, and
// its continuation may log out only what the request's bound leaves after the first job's
// logouts (audited as Valid-Deleted-Before and Max-Valid on Cleanup Resumed).
func TestResumeCountsEarlierLogoutsAgainstTheBound(t *testing.T) {
	f := newFleet(t, fleetOptions{replicas: 2, sessions: 3000, maxRate: 1000, threshold: 100})
	f.slack.SetRoute(slacktest.Connection(0))
	f.command(flAlice, "cleanup --auth-method oauth2 --no-backup")
	req := f.awaitButton("approve")
	f.slack.WaitAck(t, f.click(flBob, "", req.TS, "approve"), 3*time.Second)
	f.awaitProgress(req.TS)
	f.replicas[0].stop()
	f.awaitMessage(req.TS, "shutting down", `"action_id":"resume"`)

	f.slack.SetRoute(slacktest.RoundRobin)
	f.slack.WaitAck(t, f.click(flAlice, "", req.TS, "resume"), 3*time.Second)
	f.awaitMessage(req.TS, "Cleanup completed")
	jobs := f.jobsOf()
	if len(jobs) != 2 || jobs[0].Report == nil || jobs[1].Report == nil {
		t.Fatalf("jobs = %+v; want the interrupted one and its continuation, with reports", jobs)
	}
	stored, err := newStore(f.rdb).request(context.Background(), jobs[0].RequestID)
	if err != nil {
		t.Fatal(err)
	}
	before := jobs[0].Report.DeletedValid
	if before == 0 || jobs[1].ValidBefore != before {
		t.Errorf("first job logged out %d; continuation counts %d before it; want the same, not 0", before, jobs[1].ValidBefore)
	}
	resumed := f.audited(cleanup.EventCleanupResumed)
	want := "Valid-Deleted-Before: " + num(before) + " | Max-Valid: " + num(stored.MaxValid-before)
	if len(resumed) != 1 || !strings.Contains(resumed[0], want) {
		t.Errorf("Cleanup Resumed lines = %q; want one with %q", resumed, want)
	}
	if total := before + jobs[1].Report.DeletedValid; total > stored.MaxValid {
		t.Errorf("the two jobs logged out %d still-valid sessions; the bound is %d", total, stored.MaxValid)
	}
	if n, _ := countKeys(f.rdb, "session:*"); n == 0 {
		t.Error("every session is gone; want the other auth methods kept")
	}
}

// The target's Redis goes away mid-job for longer than the engine retries: the job fails with
// what it deleted and offers Resume; once Redis is back, Resume finishes the cleanup.
func TestResumeAfterRedisDownPastRetries(t *testing.T) {
	f := newFleet(t, fleetOptions{replicas: 1, sessions: 3000, maxRate: 1000, separateState: true, separateTarget: true})
	r := f.replicas[0]
	req := f.requestMassLogout("--no-backup")
	f.slack.WaitAck(t, f.click(flBob, "", req.TS, "approve"), 3*time.Second)
	f.awaitProgress(req.TS)

	r.targetKS.kill()
	m := f.awaitMessage(req.TS, "Failed after deleting", `"action_id":"resume"`)
	left := f.sessionCount()
	if left == 0 {
		t.Fatal("the mass logout finished before Redis went away; slow it down")
	}
	wantContains(t, "report", blocksText(string(m.Blocks), m.Text), "Resume continues this cleanup")

	r.targetKS.revive()
	f.slack.WaitAck(t, f.click(flAlice, "", req.TS, "resume"), 3*time.Second)
	f.awaitMessage(req.TS, "Cleanup completed")
	if n := f.sessionCount(); n != 0 {
		t.Errorf("%d sessions left after the resumed mass logout; want 0", n)
	}
	if got := f.audited(cleanup.EventCleanupResumed); len(got) != 1 {
		t.Errorf("Cleanup Resumed lines = %q; want one", got)
	}
	if got := f.audited(cleanup.EventCleanupFailed); len(got) != 1 {
		t.Errorf("Cleanup Failed lines = %q; want the one failure Redis caused", got)
	}
}
