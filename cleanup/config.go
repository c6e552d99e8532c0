package cleanup

import "time"

// RedisConfig names the Redis deployment that holds the sessions. Exactly one of URL,
// ClusterAddrs and SentinelAddrs may be set; URL's default applies when none is.
type RedisConfig struct {
	URL            string   `env:"REDIS_URL"`
	ClusterAddrs   []string `env:"REDIS_CLUSTER_ADDRS"`
	SentinelAddrs  []string `env:"REDIS_SENTINEL_ADDRS"`
	SentinelMaster string   `env:"REDIS_SENTINEL_MASTER"`
	Prefix         string   `env:"SESSION_KEY_PREFIX, default=session:"`
}

// EngineConfig paces the engine. The defaults keep a concurrent client's p99 latency under 1 ms
// on a 2-core machine while still moving tens of thousands of keys per second (see README,
// Performance).
type EngineConfig struct {
	BatchSize int           `env:"BATCH_SIZE, default=100"`
	Pause     time.Duration `env:"BATCH_PAUSE, default=0s"`
	MaxRate   int           `env:"MAX_KEYS_PER_SECOND, default=50000"`
	// RetryFor bounds how long transient Redis errors are retried before a run fails.
	RetryFor time.Duration `env:"REDIS_RETRY_FOR, default=5s"`
}

// BackupConfig says where backups go and whether they are encrypted.
type BackupConfig struct {
	Dir           string   `env:"BACKUP_DIR, default=./backups"`
	AgeRecipients []string `env:"BACKUP_AGE_RECIPIENTS"`
	// AgeIdentityFile holds the age identity that decrypts backups for restore.
	AgeIdentityFile string `env:"BACKUP_AGE_IDENTITY_FILE"`
}

// AuditConfig says where audit lines go besides stdout.
type AuditConfig struct {
	File       string `env:"AUDIT_LOG"`
	SyslogAddr string `env:"AUDIT_SYSLOG_ADDR"`
}
