package bot

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/platform-team/sessionbot/bot/chat"
	"github.com/platform-team/sessionbot/cleanup"
	"github.com/platform-team/sessionbot/cleanup/redistest"
)

// On a Cluster, state keys carry the {state} hash tag so every script's keys share a slot, and a
// mass logout with concurrent approvals still runs once and empties every master.
func TestClusterMassLogout(t *testing.T) {
	cl := redistest.NewCluster(t)
	c := cl.Client()
	t.Cleanup(func() { _ = c.Close() })
	ctx := context.Background()
	now := time.Now().UTC()
	for i := range 60 {
		v, _ := json.Marshal(map[string]any{"user_id": fmt.Sprintf("auth0|%d", i), "auth_method": "oauth2",
			"created_at": now.Add(-time.Hour).Format(time.RFC3339), "expires_at": now.Add(time.Hour).Format(time.RFC3339),
			"access_token": canary})
		if err := c.Set(ctx, fmt.Sprintf("session:c%03d", i), v, time.Hour).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Set(ctx, "cb:cluster", "keep-me", 0).Err(); err != nil {
		t.Fatal(err)
	}
	cc := newCoreChat()
	auditPath := filepath.Join(t.TempDir(), "audit.log")
	a, err := cleanup.NewAuditor(cleanup.AuditConfig{File: auditPath}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close() })
	cfg := DefaultConfig()
	cfg.Operators, cfg.Approvers = []string{alice}, []string{bob, dave}
	deps := Deps{Config: cfg, Chat: cc, Engine: cleanup.NewEngine(cleanup.NewTarget(c, "session:", "cluster-test"), cleanup.EngineConfig{}),
		Auditor: a, Policy: defaultPolicy, Backup: cleanup.BackupConfig{Dir: t.TempDir()}, ProgressInterval: 20 * time.Millisecond}
	b1, err := New(deps)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b1.Close)
	b2, _ := New(deps)
	t.Cleanup(b2.Close)
	if b1.st.prefix != "sessionbot:{state}:" {
		t.Fatalf("cluster state prefix = %q", b1.st.prefix)
	}
	b1.HandleCommand(ctx, Command{EnvelopeID: "c1", UserID: alice, ChannelID: chan1, Text: "cleanup --all --reason cluster"})
	b1.Wait()
	_, m := cc.latest(-1)
	wantContains(t, "preview", chat.FormatText(m), "Found 60 total session keys", "60 sessions will be deleted (ALL)")
	id := button(t, m, "approve")
	var wg sync.WaitGroup
	for i := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b := []*Bot{b1, b2}[i%2]
			b.HandleAction(ctx, Action{EnvelopeID: fmt.Sprintf("a%d", i), UserID: []string{bob, dave}[i%2], ActionID: "approve", Value: id, ChannelID: chan1})
		}()
	}
	wg.Wait()
	b1.Wait()
	b2.Wait()
	var left atomic.Int64 // ForEachMaster visits the masters in parallel
	err = c.ForEachMaster(ctx, func(ctx context.Context, n *redis.Client) error {
		keys, _, err := n.Scan(ctx, 0, "session:*", 1000).Result()
		left.Add(int64(len(keys)))
		return err
	})
	if err != nil || left.Load() != 0 {
		t.Errorf("%d sessions left on the cluster (%v); want 0", left.Load(), err)
	}
	if v, _ := c.Get(ctx, "cb:cluster").Result(); v != "keep-me" {
		t.Error("a key outside the prefix was touched")
	}
	jobs, err := b1.st.recentJobs(ctx, 10)
	if err != nil || len(jobs) != 1 || jobs[0].Status != StatusDone {
		t.Errorf("jobs = %v, %v; want one done job", jobs, err)
	}
	if strings.Contains(cc.everything(), canary) {
		t.Error("canary leaked")
	}
}

// A job whose replica died (no heartbeat, no lease) is failed by the sweeper, and its message
// says so; a live job is left alone.
func TestSweepFailsStaleJobs(t *testing.T) {
	h := newHarness(t)
	h.seed(sessionSpec{n: 3})
	id, ref := h.requestAll()
	ctx := context.Background()
	st := h.bot.st
	// What a replica leaves behind when it dies right after starting the job.
	if ok, _, err := st.transition(ctx, id, StatusPending, StatusRunning, "job", "job-20250101-0dead000"); err != nil || !ok {
		t.Fatalf("transition: %v %v", ok, err)
	}
	job := &Job{ID: "job-20250101-0dead000", RequestID: id, Mode: "all", Scope: "all", Target: "test-target", StartedAt: h.clock.Now()}
	if err := st.createJob(ctx, job); err != nil {
		t.Fatal(err)
	}
	h.bot.Sweep(ctx)
	if j, _ := st.job(ctx, job.ID); j.Status != StatusRunning {
		t.Fatalf("a fresh job was failed: %s", j.Status)
	}
	h.clock.Advance(time.Minute)
	h.bot.Sweep(ctx)
	if j, _ := st.job(ctx, job.ID); j.Status != StatusFailed || !strings.Contains(j.Error, "Interrupted") {
		t.Errorf("stale job = %s %q; want failed, interrupted", j.Status, j.Error)
	}
	wantContains(t, "message", chat.FormatText(h.chat.msg(ref)), "Interrupted")
	if r, _ := st.request(ctx, id); r.Status != StatusFailed {
		t.Errorf("request = %s; want failed", r.Status)
	}
}

// Transitions are compare-and-set: only the first of many concurrent moves wins.
func TestTransitionCompareAndSet(t *testing.T) {
	h := newHarness(t)
	h.seed(sessionSpec{n: 1})
	id, _ := h.requestAll()
	var (
		wg  sync.WaitGroup
		mu  sync.Mutex
		won int
	)
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			to := []Status{StatusApproved, StatusRejected, StatusCancelled, StatusExpired}[i%4]
			ok, _, err := h.bot.st.transition(context.Background(), id, StatusPending, to)
			if err != nil {
				t.Error(err)
			}
			if ok {
				mu.Lock()
				won++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if won != 1 {
		t.Errorf("%d transitions from pending succeeded; want 1", won)
	}
	if ok, cur, _ := h.bot.st.transition(context.Background(), strings.Repeat("0", 32), StatusPending, StatusApproved); ok || cur != "" {
		t.Errorf("transition of a missing request = %v, %q", ok, cur)
	}
}

// A lease is renewed only by the job holding it: once another job holds the target's lease (the
// first one's ran out), the first one's renewal fails and leaves the holder and its expiry alone;
// a lease that ran out is not brought back by a renewal either.
func TestRenewLeaseOnlyByItsHolder(t *testing.T) {
	srv := redistest.Standalone(t)
	rdb := srv.Client()
	t.Cleanup(func() { _ = rdb.Close() })
	st := newStore(rdb)
	ctx := context.Background()
	const mine, theirs = "job-20250101-a1a1a1a1", "job-20250101-b2b2b2b2"
	key := st.leaseKey("t1")

	if ok, holder, err := st.acquireLease(ctx, "t1", mine, time.Minute); err != nil || !ok || holder != mine {
		t.Fatalf("acquireLease = %v, %q, %v; want it taken", ok, holder, err)
	}
	if ok, err := st.renewLease(ctx, "t1", mine, time.Hour); err != nil || !ok {
		t.Fatalf("renewLease by the holder = %v, %v; want true", ok, err)
	}
	if ttl := rdb.PTTL(ctx, key).Val(); ttl <= time.Minute {
		t.Errorf("PTTL after the holder's renewal = %v; want it extended to about an hour", ttl)
	}

	if err := rdb.Set(ctx, key, theirs, time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	if ok, err := st.renewLease(ctx, "t1", mine, time.Hour); err != nil || ok {
		t.Errorf("renewLease of a lease another job holds = %v, %v; want false", ok, err)
	}
	if h, err := st.leaseHolder(ctx, "t1"); err != nil || h != theirs {
		t.Errorf("holder after a stranger's renewal = %q, %v; want %s", h, err, theirs)
	}
	if ttl := rdb.PTTL(ctx, key).Val(); ttl > time.Minute {
		t.Errorf("PTTL after a stranger's renewal = %v; want at most the holder's minute", ttl)
	}
	if err := st.releaseLease(ctx, "t1", mine); err != nil {
		t.Fatal(err)
	}
	if h, _ := st.leaseHolder(ctx, "t1"); h != theirs {
		t.Errorf("holder after a stranger's release = %q; want %s", h, theirs)
	}

	if err := rdb.Del(ctx, key).Err(); err != nil {
		t.Fatal(err)
	}
	if ok, err := st.renewLease(ctx, "t1", mine, time.Hour); err != nil || ok {
		t.Errorf("renewLease of a lease that ran out = %v, %v; want false", ok, err)
	}
	if n := rdb.Exists(ctx, key).Val(); n != 0 {
		t.Error("a renewal brought back a lease that had run out")
	}
}
