package cleanup

import (
	"fmt"
	"strings"
	"time"
)

// RedisConfig names the Redis deployment that holds the sessions, and where the bot keeps its
// own state. Exactly one of URL, ClusterAddrs and SentinelAddrs may be set; URL's default
// applies when none is.
type RedisConfig struct {
	// TargetsFile is a YAML file naming several targets (name, redis_url | cluster_addrs |
	// sentinel_addrs + sentinel_master, prefix, approvers, approval_threshold, channels); every
	// command then takes --target NAME. It replaces REDIS_URL, REDIS_CLUSTER_ADDRS and
	// REDIS_SENTINEL_ADDRS (setting both is an error); with more than one target,
	// STATE_REDIS_URL is required. Without it those variables define one target named default.
	TargetsFile string `env:"TARGETS_FILE"`
	// Name names the target in messages, audit lines, backups, leases and PagerDuty dedup keys
	// (set from TARGETS_FILE, or "default"); empty: its address.
	Name string
	// URL is a standalone target (rediss:// for TLS); redis://localhost:6379/0 when no target
	// is set. A password in it is a secret: never printed.
	URL RedisURL `env:"REDIS_URL"`
	// ClusterAddrs are comma-separated host:port seeds of a Redis Cluster; every master is
	// scanned with its own cursor.
	ClusterAddrs []string `env:"REDIS_CLUSTER_ADDRS"`
	// SentinelAddrs are comma-separated host:port Sentinels.
	SentinelAddrs []string `env:"REDIS_SENTINEL_ADDRS"`
	// SentinelMaster is the master name the Sentinels know.
	SentinelMaster string `env:"REDIS_SENTINEL_MASTER"`
	// Prefix is the session key prefix; no key without it is ever read for deletion or deleted,
	// nor any sessionbot: key (the bot's state). A prefix that sessionbot: keys start with
	// ("session", "sess") is refused unless STATE_REDIS_URL is set.
	Prefix string `env:"SESSION_KEY_PREFIX, default=session:"`
	// StateURL is where requests, approvals and jobs live; empty: the target itself, under
	// sessionbot: keys. A password in it is a secret: never printed.
	StateURL RedisURL `env:"STATE_REDIS_URL"`
}

// EngineConfig paces the engine. The defaults keep a concurrent client's p99 latency under 1 ms
// on a 2-core machine while still moving tens of thousands of keys per second (see README,
// Performance).
type EngineConfig struct {
	// BatchSize is the keys per SCAN COUNT and per command: small commands keep every other
	// client's latency low.
	BatchSize int `env:"BATCH_SIZE, default=100"`
	// Pause is slept between batches (0s: none).
	Pause time.Duration `env:"BATCH_PAUSE, default=0s"`
	// MaxRate caps keys deleted per second across all masters (0: no cap). A key only read (a
	// preview, a backup's reads) counts a quarter: reading costs Redis about a quarter of a
	// compare-and-delete, so a preview may go four times as fast for the same load. Below the
	// cap, paced work slows down by itself while Redis answers slowly, and speeds up again when
	// it recovers.
	MaxRate int `env:"MAX_KEYS_PER_SECOND, default=50000"`
	// RetryFor bounds how long transient Redis errors are retried before a run fails.
	RetryFor time.Duration `env:"REDIS_RETRY_FOR, default=5s"`
}

// BackupConfig says where backups go and whether they are encrypted.
type BackupConfig struct {
	// Dir holds backups: one <job-id>.jsonl.gz per job, directory 0700, files 0600.
	Dir string `env:"BACKUP_DIR, default=./backups"`
	// AgeRecipients are age public keys (age1…); when set, backups are encrypted to them.
	AgeRecipients []string `env:"BACKUP_AGE_RECIPIENTS"`
	// AgeIdentityFile holds the age identity that decrypts backups for restore.
	AgeIdentityFile string `env:"BACKUP_AGE_IDENTITY_FILE"`
	// Retention: backups older than this are pruned (serve, hourly; sessionbot backup prune):
	// they hold live session tokens. Accepts d and w (7d, 2w).
	Retention Duration `env:"BACKUP_RETENTION, default=7d"`
}

// Duration is a setting's duration in Go's syntax extended with days and weeks (7d, 2w, 1d12h),
// as --older-than accepts.
type Duration time.Duration

// EnvDecode parses the setting (go-envconfig calls it).
func (d *Duration) EnvDecode(val string) error {
	v, err := parseDuration("duration", val, true)
	if err != nil {
		return fmt.Errorf("%q is not a duration like 30m, 12h, 7d or 2w", val)
	}
	*d = Duration(v)
	return nil
}

// AuditConfig says where audit lines go besides stdout.
type AuditConfig struct {
	// File is appended one line per event (0600, fsynced); a mass logout refuses to start when
	// it cannot be written.
	File string `env:"AUDIT_LOG"`
	// SyslogAddr also sends each line to a collector: udp://host:port, tcp://host:port or
	// unix:///dev/log. A broken collector never blocks a cleanup.
	SyslogAddr string `env:"AUDIT_SYSLOG_ADDR"`
	// Format is how every audit line is written, in every sink: text (the runbook's "time | Event | Name: value"
	// line) or json (one object per line with the same fields, for a SIEM).
	Format AuditFormat `env:"AUDIT_FORMAT, default=text"`
}

// AuditFormat is how audit lines are written: AuditText or AuditJSON.
type AuditFormat string

// The audit formats.
const (
	AuditText AuditFormat = "text"
	AuditJSON AuditFormat = "json"
)

// EnvDecode parses the setting (go-envconfig calls it).
func (f *AuditFormat) EnvDecode(val string) error {
	switch v := AuditFormat(strings.ToLower(strings.TrimSpace(val))); v {
	case AuditText, AuditJSON:
		*f = v
		return nil
	}
	return fmt.Errorf("%q is not an audit format (want text or json)", val)
}
