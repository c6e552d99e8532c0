package cleanup

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/platform-team/sessionbot/cleanup/redistest"
	"github.com/redis/go-redis/v9"
)

// ownTargets is targets with clients of the test's own: the shared servers' clients may have been
// closed by a test before.
func ownTargets(t *testing.T, fn func(t *testing.T, tgt *Target)) {
	t.Helper()
	t.Run("standalone", func(t *testing.T) {
		c := redis.NewClient(&redis.Options{Addr: sharedStandalone(t).Addr()})
		t.Cleanup(func() { _ = c.Close() })
		fn(t, NewTarget(c, uniquePrefix(t), "standalone"))
	})
	t.Run("cluster", func(t *testing.T) {
		c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: sharedCluster(t).Seeds()})
		t.Cleanup(func() { _ = c.Close() })
		fn(t, NewTarget(c, uniquePrefix(t), "cluster"))
	})
}

// valueReads counts the commands that read a value (GET, MGET) served by the target's masters.
func valueReads(t *testing.T, tgt *Target) int64 {
	t.Helper()
	ctx := context.Background()
	ms, err := tgt.masters(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, m := range ms {
		calls, err := redistest.CommandCalls(ctx, m, "get", "mget", "getex", "dump")
		if err != nil {
			t.Fatal(err)
		}
		n += calls
	}
	return n
}

func TestCountOrphans(t *testing.T) {
	ownTargets(t, func(t *testing.T, tgt *Target) {
		ctx := context.Background()
		c := tgt.Client()
		for i := range 400 {
			ttl := time.Duration(0)
			if i%8 >= 5 { // 150 of 400 have a TTL
				ttl = time.Hour
			}
			if err := c.Set(ctx, fmt.Sprintf("%s%04d", tgt.Prefix(), i), "{}", ttl).Err(); err != nil {
				t.Fatal(err)
			}
		}
		// Keys without a TTL outside the prefix are no sessions.
		for i := range 30 {
			if err := c.Set(ctx, fmt.Sprintf("other%s%d", tgt.Prefix(), i), "x", 0).Err(); err != nil {
				t.Fatal(err)
			}
		}
		e := NewEngine(tgt, EngineConfig{BatchSize: 100})

		before := valueReads(t, tgt)
		got, err := e.CountOrphans(ctx, 0)
		if err != nil {
			t.Fatal(err)
		}
		if got.Orphans != 250 || got.Scanned != 400 || !got.Complete {
			t.Errorf("CountOrphans(no budget) = %+v; want 250 orphans of 400, complete", got)
		}
		if n := valueReads(t, tgt) - before; n != 0 {
			t.Errorf("CountOrphans read %d values; want none (keys and TTLs only)", n)
		}

		for _, budget := range []int64{1, 120, 399} {
			got, err := e.CountOrphans(ctx, budget)
			if err != nil {
				t.Fatal(err)
			}
			if got.Scanned > budget || got.Orphans > got.Scanned || got.Complete {
				t.Errorf("CountOrphans(budget %d) = %+v; want at most %d TTLs read, incomplete", budget, got, budget)
			}
		}
		if got, err := e.CountOrphans(ctx, 400); err != nil || !got.Complete || got.Orphans != 250 {
			t.Errorf("CountOrphans(budget 400) = %+v, %v; want all 250, complete", got, err)
		}
	})
}

func TestMemory(t *testing.T) {
	ownTargets(t, func(t *testing.T, tgt *Target) {
		m, err := NewEngine(tgt, EngineConfig{BatchSize: 100}).Memory(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if m.Used <= 0 || m.Max != 0 || m.Percent() != 0 {
			t.Errorf("Memory() = %+v (%.1f%%); want used_memory > 0 and no maxmemory", m, m.Percent())
		}
		if tgt.IsCluster() != (m.Node != "") {
			t.Errorf("Memory().Node = %q; want the master's address on a Cluster only", m.Node)
		}
	})
	if got := (Memory{Used: 850, Max: 1000}).Percent(); got != 85 {
		t.Errorf("Memory{850, 1000}.Percent() = %v; want 85", got)
	}
}
