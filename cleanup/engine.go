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

// The API below is being implemented; signatures are final.

// Connect dials the target named by cfg (standalone, Sentinel or Cluster) and checks it answers.
func Connect(ctx context.Context, cfg RedisConfig) (*Target, error) { panic("in progress") }

// NewTarget wraps an existing client (a *redis.Client, *redis.ClusterClient or failover client).
// name identifies the target in PagerDuty dedup keys and reports.
func NewTarget(c redis.UniversalClient, prefix, name string) *Target { panic("in progress") }

// Name identifies the target (e.g. "127.0.0.1:6379" or "cluster:10.0.0.1:7000").
func (t *Target) Name() string { return t.name }

// Prefix is the session key prefix.
func (t *Target) Prefix() string { return t.prefix }

// Client is the underlying client (routes per-key commands on a Cluster).
func (t *Target) Client() redis.UniversalClient { return t.client }

// NewEngine returns an engine for t.
func NewEngine(t *Target, cfg EngineConfig) *Engine { panic("in progress") }

// WithClock returns a copy of e that reads time from now (tests).
func (e *Engine) WithClock(now func() time.Time) *Engine { c := *e; c.now = now; return &c }

// Target returns the engine's target.
func (e *Engine) Target() *Target { return e.t }

// Preview computes the plan of a cleanup without changing anything.
func (e *Engine) Preview(ctx context.Context, f Filter, progress func(Progress)) (Plan, error) {
	panic("in progress")
}

// Run executes a cleanup. The returned Report is filled in even when an error stops the run
// (what was deleted so far is counted); Report.Stopped says why it stopped early.
func (e *Engine) Run(ctx context.Context, spec RunSpec) (Report, error) { panic("in progress") }

// Stats describes the sessions on the target, scanning at most maxKeys keys (0: all).
func (e *Engine) Stats(ctx context.Context, maxKeys int64) (Stats, error) { panic("in progress") }
