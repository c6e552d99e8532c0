package main

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/platform-team/sessionbot/cleanup"
)

var statsCommand = &command{
	name:    "stats",
	summary: "count sessions: TTL distribution, auth methods, orphans, expired, malformed, memory",
	run:     runStats,
	help: `sessionbot stats — describe the sessions in Redis (read-only)

Scans every session key once (SCAN, small batches, one command at a time per node) and prints
the total, the TTL distribution (-1 = no TTL, then buckets), sessions by auth_method, orphans
(no TTL), expired (expires_at in the past), malformed values and memory use. Nothing is changed.

Usage: sessionbot stats [--json] [--target NAME]

Flags:
  --json     one JSON object on stdout, for scripts and dashboards
  --target NAME  the TARGETS_FILE target (needed when the file names several)
  --help     this text

Examples:
  sessionbot stats                         # runbook "Monitoring Session Health"
  sessionbot stats --json | jq .orphans    # runbook Troubleshooting, Problem 1

Environment: REDIS_URL | REDIS_CLUSTER_ADDRS | REDIS_SENTINEL_ADDRS + REDIS_SENTINEL_MASTER,
  SESSION_KEY_PREFIX, BATCH_SIZE.
`,
}

// statsJSON is the --json shape of cleanup.Stats: stable snake_case names, durations in ms.
type statsJSON struct {
	Target       string           `json:"target"`
	Prefix       string           `json:"prefix"`
	Total        int64            `json:"total"`
	Expired      int64            `json:"expired"`
	Orphans      int64            `json:"orphans"`
	Malformed    int64            `json:"malformed"`
	ByAuthMethod map[string]int64 `json:"by_auth_method"`
	TTL          map[string]int64 `json:"ttl"`
	SessionBytes int64            `json:"session_bytes_estimate"`
	UsedMemory   int64            `json:"used_memory_bytes"`
	MaxMemory    int64            `json:"maxmemory_bytes"` // 0: no maxmemory set
	Nodes        int              `json:"nodes"`
	DurationMs   int64            `json:"duration_ms"`
	Complete     bool             `json:"complete"`
}

// ttlJSONKeys name TTLHistogram's buckets in --json output.
var ttlJSONKeys = [5]string{"le_10m", "le_30m", "le_1h", "le_24h", "gt_24h"}

func runStats(ctx context.Context, c *cli, args []string) error {
	asJSON := false
	for _, a := range args {
		if a != "--json" {
			return c.asUsage(fmt.Errorf("unknown flag %q: stats takes only --json and --target NAME", shorten(a)))
		}
		asJSON = true
	}
	cfg, err := c.config(ctx)
	if err != nil {
		return err
	}
	t, err := c.dial(ctx, cfg)
	if err != nil {
		return err
	}
	defer t.Close()
	s, err := cleanup.NewEngine(t, cfg.Engine).Stats(ctx, 0)
	if err != nil {
		return fmt.Errorf("stats failed: %s", cleanup.RedactKeys(err.Error(), t.Prefix()))
	}
	if asJSON {
		out := statsJSON{
			Target: t.Name(), Prefix: s.Prefix, Total: s.Total, Expired: s.Expired, Orphans: s.Orphans,
			Malformed: s.Malformed, ByAuthMethod: s.ByAuthMethod, TTL: map[string]int64{"no_ttl": s.TTL.NoTTL},
			SessionBytes: s.Bytes, UsedMemory: s.UsedMemory, MaxMemory: s.MaxMemory, Nodes: s.Nodes,
			DurationMs: s.Duration.Milliseconds(), Complete: s.Complete,
		}
		for i, n := range s.TTL.Buckets {
			out.TTL[ttlJSONKeys[i]] = n
		}
		enc := json.NewEncoder(c.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	w := c.stdout
	fmt.Fprintf(w, "Target: %s (session keys %s*)\n", targetText(t), t.Prefix())
	fmt.Fprintf(w, "Found %d total session keys\n", s.Total)
	fmt.Fprintf(w, "  expired (expires_at in the past): %d\n", s.Expired)
	fmt.Fprintf(w, "  orphans (no TTL, TTL = -1):       %d\n", s.Orphans)
	fmt.Fprintf(w, "  malformed:                        %d\n", s.Malformed)
	fmt.Fprintln(w, "TTL distribution:")
	fmt.Fprintf(w, "  %-12s %d\n", "-1 (none)", s.TTL.NoTTL)
	for i, n := range s.TTL.Buckets {
		fmt.Fprintf(w, "  %-12s %d\n", ttlLabels[i], n)
	}
	fmt.Fprintln(w, "By auth_method: "+countsText(s.ByAuthMethod))
	max := "no maxmemory set"
	if s.MaxMemory > 0 {
		max = "maxmemory " + bytesText(s.MaxMemory)
	}
	fmt.Fprintf(w, "Memory: session keys ≈ %s; Redis used_memory %s (%s)\n", bytesText(s.Bytes), bytesText(s.UsedMemory), max)
	fmt.Fprintf(w, "Scanned %d %s in %s\n", s.Nodes, plural(s.Nodes, "node", "nodes"), s.Duration.Round(time.Millisecond))
	return nil
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
