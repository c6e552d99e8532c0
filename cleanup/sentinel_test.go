package cleanup

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/platform-team/sessionbot/cleanup/redistest"
)

// A Sentinel failover in the middle of a run (REDIS_SENTINEL_ADDRS): the engine follows the
// Sentinel to the promoted replica and completes. Replication is asynchronous and a Sentinel
// failover does not wait for it, so deletions the old master acknowledged may be missing on the
// new one; the new master's run_id makes the engine scan it again (Report.Restarted), so no
// expired session survives, and no still-valid session or unrelated key is touched. (Deletions
// Redis lost are done again and counted again: Deleted may exceed the sessions that vanished.)
func TestFaultSentinelFailoverMidRun(t *testing.T) {
	const prefix = "f8:session:"
	ctx := context.Background()
	d := redistest.NewSentinel(t)
	admin := d.Client()
	defer admin.Close()
	own := NewTarget(admin, prefix, "sentinel")
	const n, expired = 6000, 4000
	ss := population(n, expired, nil)
	put(t, own, ss...)
	checkOther := unrelated(t, own)
	master, err := d.Master()
	if err != nil {
		t.Fatal(err)
	}
	if n, err := master.Client().Do(ctx, "WAIT", 1, 5000).Int(); err != nil || n != 1 {
		t.Fatalf("WAIT 1 = %d, %v: the replica did not get the sessions", n, err)
	}

	tgt, err := Connect(ctx, RedisConfig{SentinelAddrs: d.Addrs(), SentinelMaster: redistest.SentinelMaster, Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	defer tgt.Close()
	e := NewEngine(tgt, EngineConfig{BatchSize: 100, MaxRate: 3000, RetryFor: 10 * time.Second}).
		WithClock(func() time.Time { return testNow })

	var (
		once      sync.Once
		faultDone = make(chan error, 1)
		deletedAt int64
	)
	rep, err := e.Run(ctx, RunSpec{Filter: Filter{}, MaxValid: -1, Progress: func(p Progress) {
		if p.Deleted == 0 {
			return
		}
		once.Do(func() {
			deletedAt = p.Deleted
			go func() { faultDone <- d.Failover() }()
		})
	}})
	select {
	case ferr := <-faultDone:
		if ferr != nil {
			t.Fatalf("failover: %v", ferr)
		}
	case <-time.After(40 * time.Second):
		t.Fatal("failover did not finish")
	}
	t.Logf("failover started after %d deletions; Run = %v; deleted %d, skipped %d, rescanned %v", deletedAt, err, rep.Deleted, rep.Skipped, rep.Restarted)
	if err != nil || rep.Stopped != "" {
		t.Errorf("Run = %v (stopped %q); want it to complete across the failover", err, rep.Stopped)
	}
	if len(rep.Restarted) == 0 || rep.Restarted[0] != "sentinel:"+redistest.SentinelMaster {
		t.Errorf("Report.Restarted = %q; want the master rescanned after the failover, named sentinel:%s", rep.Restarted, redistest.SentinelMaster)
	}
	if rep.Deleted < expired {
		t.Errorf("Report.Deleted = %d; want at least the %d expired sessions", rep.Deleted, expired)
	}
	now, err := d.Master()
	if err != nil {
		t.Fatal(err)
	}
	if now == master {
		t.Fatal("no failover happened")
	}
	after := snapshot(t, now.Client(), prefix)
	if left := countExpired(after); left != 0 {
		t.Errorf("%d expired sessions left on the new master after the run; want 0", left)
	}
	for _, x := range ss[expired:] {
		if after[prefix+x.id] != sessionValue(x) {
			t.Errorf("valid session %s was deleted or changed", x.id)
		}
	}
	checkOther()
}
