package cleanup

import "time"

// Plan is a dry-run: what a cleanup with Filter would do right now.
type Plan struct {
	Filter Filter
	Prefix string
	At     time.Time

	Found     int64 // every key with the prefix, malformed and non-string included
	Matched   int64 // would be deleted
	Valid     int64 // of Matched, still valid (not expired): these users would be logged out
	Malformed int64 // kept: content filters cannot evaluate them
	// Repaired would get their expiry from expires_at instead of being deleted (--repair-ttl):
	// kept, so counted in Kept, never in Matched or Valid.
	Repaired int64
	// Kept is Found - Matched.
	Kept int64

	ByAuthMethod map[string]int64 // matched sessions by auth_method ("" for malformed/unknown)
	TTL          TTLHistogram     // of matched keys
	Samples      []Sample         // up to 5 matched sessions, redacted
	Bytes        int64            // estimated memory freed

	Nodes     int           // masters scanned
	Restarted []string      // nodes rescanned from cursor 0 because their run_id changed
	Duration  time.Duration // wall time of the preview
}

// Sample is a redacted matched session: never a token, a fingerprint or a username.
type Sample struct {
	ID           string // ShortID of the session id
	UserID       string
	AuthMethod   string
	CreatedAt    time.Time
	LastActivity time.Time
	ExpiresAt    time.Time
	TTL          time.Duration // -1: no TTL
	Malformed    bool
}

// TTLBuckets are the upper bounds of the TTL histogram buckets, after "no TTL".
var TTLBuckets = []time.Duration{10 * time.Minute, 30 * time.Minute, time.Hour, 24 * time.Hour}

// TTLHistogram counts keys by remaining TTL: NoTTL (-1), then len(TTLBuckets)+1 buckets
// (≤10m, ≤30m, ≤1h, ≤24h, >24h).
type TTLHistogram struct {
	NoTTL   int64
	Buckets [5]int64
}

// Add counts one key with PTTL d (-1: no TTL; -2: gone, ignored).
func (h *TTLHistogram) Add(d time.Duration) {
	switch {
	case d == -1:
		h.NoTTL++
	case d < 0:
	default:
		for i, b := range TTLBuckets {
			if d <= b {
				h.Buckets[i]++
				return
			}
		}
		h.Buckets[len(TTLBuckets)]++
	}
}

// Progress is a snapshot of a running preview or cleanup, delivered to a callback.
type Progress struct {
	Phase   string // "scan", "backup", "delete", "verify"
	Scanned int64
	Matched int64
	Deleted int64
	// DeletedValid: of Deleted, still-valid sessions (logouts), so that a job resumed after its
	// replica died counts them against its bound.
	DeletedValid int64
	Skipped      int64 // changed since read: kept
	Errors       int64
	Elapsed      time.Duration
}

// Report is the outcome of an executed cleanup.
type Report struct {
	Filter Filter
	Mode   string // execute, all, repair
	Start  time.Time
	End    time.Time

	Scanned      int64 // keys with the prefix seen by SCAN (a key may be seen twice)
	Matched      int64
	Deleted      int64 // what UNLINK or the compare-and-delete script actually removed
	Repaired     int64 // orphans that got their expiry from expires_at (--repair-ttl): kept
	DeletedValid int64 // of Deleted, still-valid sessions (users logged out)
	Kept         int64 // scanned - matched
	Skipped      int64 // matched when read, changed before deletion: kept
	Malformed    int64
	Errors       int64

	Backup    string   // path of the backup written before deletion, if any
	Restarted []string // nodes rescanned because their run_id changed
	// Stopped says why the run ended early ("" when it completed): cancelled, bound reached, error.
	Stopped string
	// Users are the distinct users whose sessions were deleted, up to 100, for notifications
	// of --user-id cleanups.
	Users []User
	// Remaining is the number of session keys left after the run (post-run verification),
	// -1 when not verified.
	Remaining int64
}

// Duration is the wall time of the run.
func (r Report) Duration() time.Duration { return r.End.Sub(r.Start) }

// User identifies the owner of a deleted session.
type User struct{ UserID, Username string }
