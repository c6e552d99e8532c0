package cleanup

import (
	"context"
	"strconv"
	"strings"
	"time"
)

// OrphanCount is what CountOrphans saw: session keys without a TTL (PTTL -1), the runbook's
// "Sessions Not Expiring Automatically".
type OrphanCount struct {
	Scanned int64 // session keys whose TTL was read
	Orphans int64 // of them, keys without a TTL
	// Complete is false when the key budget stopped the count early: Orphans is then a lower
	// bound, counted over the first Scanned keys.
	Complete bool
	Duration time.Duration
}

// CountOrphans counts session keys without a TTL, reading keys and TTLs only, never a value:
// a watcher may run it every few minutes against production. It reads the TTL of at most
// maxKeys keys (0: all), one SCAN COUNT 100 in flight per master (keyTTLs, as KeyStats).
func (e *Engine) CountOrphans(ctx context.Context, maxKeys int64) (OrphanCount, error) {
	start := time.Now()
	s, err := e.keyTTLs(ctx, maxKeys)
	return OrphanCount{Scanned: s.Total, Orphans: s.Orphans, Complete: s.Complete, Duration: time.Since(start)}, err
}

// Memory is a target's memory use as INFO memory reports it, for the master closest to its
// maxmemory (the one that evicts or refuses writes first).
type Memory struct {
	Node string // the master's address; "" on a standalone or Sentinel target
	Used int64  // used_memory
	Max  int64  // maxmemory; 0: no limit
}

// Percent is Used as a percentage of Max; 0 when there is no limit.
func (m Memory) Percent() float64 {
	if m.Max <= 0 {
		return 0
	}
	return float64(m.Used) * 100 / float64(m.Max)
}

// Memory reads INFO memory on every master and returns the fullest one's (relative to its
// maxmemory; by used_memory when none has a limit).
func (e *Engine) Memory(ctx context.Context) (Memory, error) {
	ms, err := e.t.masters(ctx)
	if err != nil {
		return Memory{}, errorf("memory", err)
	}
	var best Memory
	for i, m := range ms {
		info, err := m.Info(ctx, "memory").Result()
		if err != nil {
			return Memory{}, errorf("memory", err)
		}
		cur := Memory{Used: infoInt(info, "used_memory"), Max: infoInt(info, "maxmemory")}
		if e.t.cluster != nil {
			cur.Node = m.Options().Addr
		}
		if i == 0 || cur.Percent() > best.Percent() || (best.Max == 0 && cur.Max == 0 && cur.Used > best.Used) {
			best = cur
		}
	}
	return best, nil
}

// infoInt is the integer value of field name in an INFO reply (0 when absent).
func infoInt(info, name string) int64 {
	for line := range strings.Lines(info) {
		if v, ok := strings.CutPrefix(line, name+":"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return n
		}
	}
	return 0
}
