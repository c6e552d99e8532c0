package cleanup

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// restoreBatch is the number of keys per pipeline. Each key is its own command, so a Cluster
// pipeline splits by node without ever sending a multi-key command across slots.
const restoreBatch = 500

// RestoreOptions tunes Restore.
type RestoreOptions struct {
	// DryRun counts what would be restored (checking which keys exist) and writes nothing.
	DryRun bool
	// Now is the clock remaining TTLs and expires_at are judged against; nil: time.Now.
	Now func() time.Time
	// Progress, if set, is called after each batch with the counts so far.
	Progress func(RestoreReport)
}

// RestoreReport counts what Restore did with the records it read. Every record read lands in
// exactly one of the other counters (once its batch has been sent).
type RestoreReport struct {
	Read           int64
	Restored       int64 // or, in a dry run, would be restored
	SkippedExpired int64 // remaining TTL ≤ 0, or expires_at in the past
	SkippedExists  int64 // the key exists: never overwritten
	SkippedPrefix  int64 // the key does not start with the session prefix: never written
	Errors         int64 // Redis refused the key (e.g. a DUMP payload from another version)
}

// Restore puts the sessions that read yields back into Redis with their remaining TTL: the
// recorded pttl_ms minus the time elapsed since the record's At (a record without At counts
// from now). A key without TTL is restored without TTL. It never overwrites a key that exists
// (SET NX / RESTORE without REPLACE) and never writes a key outside prefix, whatever the backup
// says. Sessions already expired, by TTL or by their expires_at field, are skipped.
//
// Per-key refusals from Redis are counted in Errors and the restore goes on; a connection or
// context error stops it and is returned with the report so far. Running it again is safe:
// keys restored the first time count as SkippedExists.
func Restore(ctx context.Context, c redis.UniversalClient, prefix string, read func(fn func(BackupRecord) error) error, opts RestoreOptions) (RestoreReport, error) {
	var rep RestoreReport
	if prefix == "" {
		return rep, errors.New("restore: empty session prefix")
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	r := &restorer{c: c, prefix: prefix, opts: opts, rep: &rep}
	err := read(func(rec BackupRecord) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		rep.Read++
		if !strings.HasPrefix(rec.Key, prefix) {
			rep.SkippedPrefix++
			return nil
		}
		ttl, ok := remainingTTL(rec, now())
		if !ok {
			rep.SkippedExpired++
			return nil
		}
		r.batch = append(r.batch, restoreOp{rec: rec, ttl: ttl})
		if len(r.batch) >= restoreBatch {
			return r.flush(ctx)
		}
		return nil
	})
	if r.fatal != nil {
		return rep, r.fatal
	}
	if err != nil {
		return rep, fmt.Errorf("restore: %w", err)
	}
	if err := r.flush(ctx); err != nil {
		return rep, err
	}
	return rep, nil
}

// remainingTTL is the TTL to restore rec with (0: none), and false when rec has expired.
func remainingTTL(rec BackupRecord, now time.Time) (time.Duration, bool) {
	if rec.Dump == nil && sessionExpired(rec.Value, now) {
		return 0, false
	}
	if rec.PTTL < 0 {
		return 0, true
	}
	ttl := rec.PTTL
	if !rec.At.IsZero() {
		ttl -= now.Sub(rec.At)
	}
	// Redis TTLs are whole milliseconds; less than one left is expired.
	ttl = ttl.Truncate(time.Millisecond)
	return ttl, ttl > 0
}

// sessionExpired reports whether v is a JSON object whose expires_at is an RFC 3339 time before
// now. Anything else (not JSON, no or bad expires_at) is restored as it was.
func sessionExpired(v []byte, now time.Time) bool {
	if t := bytes.TrimLeft(v, " \t\r\n"); len(t) == 0 || t[0] != '{' {
		return false
	}
	var s struct {
		ExpiresAt string `json:"expires_at"`
	}
	if json.Unmarshal(v, &s) != nil || s.ExpiresAt == "" {
		return false
	}
	exp, err := time.Parse(time.RFC3339, s.ExpiresAt)
	return err == nil && exp.Before(now)
}

type restoreOp struct {
	rec BackupRecord
	ttl time.Duration
}

type restorer struct {
	c      redis.UniversalClient
	prefix string
	opts   RestoreOptions
	rep    *RestoreReport
	batch  []restoreOp
	fatal  error
}

// flush sends the pending batch in one pipeline and counts each key's outcome.
func (r *restorer) flush(ctx context.Context) error {
	if len(r.batch) == 0 {
		return nil
	}
	pipe := r.c.Pipeline()
	cmds := make([]redis.Cmder, len(r.batch))
	for i, op := range r.batch {
		switch {
		case r.opts.DryRun:
			cmds[i] = pipe.Exists(ctx, op.rec.Key)
		case op.rec.Dump != nil:
			cmds[i] = pipe.Restore(ctx, op.rec.Key, op.ttl, string(op.rec.Dump))
		default:
			cmds[i] = pipe.SetNX(ctx, op.rec.Key, op.rec.Value, op.ttl)
		}
	}
	// Exec reports the first failing command; each command's own result is checked below.
	_, _ = pipe.Exec(ctx)
	for i, cmd := range cmds {
		err := cmd.Err()
		var rerr redis.Error
		switch {
		case err == nil:
			if written(cmd) {
				r.rep.Restored++
			} else {
				r.rep.SkippedExists++
			}
		case redis.HasErrorPrefix(err, "BUSYKEY"):
			r.rep.SkippedExists++
		case errors.As(err, &rerr):
			r.rep.Errors++
		default:
			// Not Redis refusing a key but the connection or the context: stop here, the
			// rest of this batch and the backup are not restored.
			r.fatal = fmt.Errorf("restore: %s: %w", KeyText(r.prefix, r.batch[i].rec.Key), err)
			r.batch = r.batch[:0]
			return r.fatal
		}
	}
	r.batch = r.batch[:0]
	if r.opts.Progress != nil {
		r.opts.Progress(*r.rep)
	}
	return nil
}

// written reports whether a successful command wrote its key (or, for EXISTS in a dry run,
// whether it would).
func written(cmd redis.Cmder) bool {
	switch c := cmd.(type) {
	case *redis.BoolCmd: // SET NX: false when the key exists
		return c.Val()
	case *redis.IntCmd: // EXISTS
		return c.Val() == 0
	default: // RESTORE: OK
		return true
	}
}
