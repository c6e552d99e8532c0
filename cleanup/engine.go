package cleanup

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"
)

// Target is a connected Redis deployment holding sessions: standalone, Sentinel or Cluster.
type Target struct {
	client  redis.UniversalClient
	cluster *redis.ClusterClient // nil unless Cluster
	prefix  string
	name    string
}

// Engine previews and runs cleanups on one Target.
type Engine struct {
	t   *Target
	cfg EngineConfig
	now func() time.Time
}

// RunSpec is one cleanup to execute.
type RunSpec struct {
	Filter Filter
	// MaxValid stops the run before it deletes more still-valid sessions than this
	// (the previewed count + 10% + 10); negative means unbounded (--all).
	MaxValid int64
	// Backup, when set, is written completely (and synced) before anything is deleted.
	Backup *BackupSpec
	// Pacing overrides; zero values use the engine's configuration. Pause or MaxRate < 0: off.
	BatchSize int
	Pause     time.Duration
	MaxRate   int
	Progress  func(Progress)
}

// BackupSpec names the backup file a run writes before deleting.
type BackupSpec struct {
	Dir        string
	JobID      string
	Recipients []string // age recipients; empty: plain gzip
}

// Stats describes the sessions on a target.
type Stats struct {
	Prefix       string
	Total        int64
	Orphans      int64 // no TTL
	Expired      int64 // expires_at in the past
	Malformed    int64
	ByAuthMethod map[string]int64
	TTL          TTLHistogram
	Bytes        int64 // estimated memory used by session keys
	UsedMemory   int64 // INFO memory used_memory, summed over masters
	Nodes        int
	Duration     time.Duration
	// Complete is false when a key budget stopped the scan early: counts cover only what was seen.
	Complete bool
}

var _ = context.Background
