package bot

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// newReplicaID names this process in the watch lease.
func newReplicaID() string {
	var r [8]byte
	_, _ = rand.Read(r[:])
	return hex.EncodeToString(r[:])
}

// State of the watcher and the schedules, under the store's prefix (sessionbot:).

func (s *store) cooldownKey(target, symptom string) string {
	return s.prefix + "watch:" + target + ":cooldown:" + symptom
}
func (s *store) readingKey(target string) string { return s.prefix + "watch:" + target + ":reading" }

// holdLeaseScript takes a lease for a holder, or renews it when the holder already has it.
var holdLeaseScript = redis.NewScript(`
local h = redis.call('GET', KEYS[1])
if h and h ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
`)

// holdLease takes or renews lease name for holder; false: someone else holds it.
func (s *store) holdLease(ctx context.Context, name, holder string, ttl time.Duration) (bool, error) {
	n, err := holdLeaseScript.Run(ctx, s.rdb, []string{s.leaseKey(name)}, holder, ttl.Milliseconds()).Int()
	return n == 1, err
}

// claimScript is "at most once per period" across replicas, by the caller's clock: it records
// now and returns {1, previous} unless the previous record is less than a period old ({0,
// previous}). The key is kept (in Redis's time) well beyond the period, so that a claim
// survives restarts; a clock that goes back never claims twice.
var claimScript = redis.NewScript(`
local last = redis.call('GET', KEYS[1])
if last and tonumber(ARGV[1]) - tonumber(last) < tonumber(ARGV[2]) then return {0, last} end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
return {1, last or ''}
`)

// claim claims key at now for one period. last is the previous claim (zero: none).
func (s *store) claim(ctx context.Context, key string, now time.Time, period time.Duration) (ok bool, last time.Time, err error) {
	keep := period + s.keep
	res, err := claimScript.Run(ctx, s.rdb, []string{key}, now.UnixMilli(), period.Milliseconds(), keep.Milliseconds()).Slice()
	if err != nil {
		return false, time.Time{}, fmt.Errorf("claim %s: %w", key, err)
	}
	n, _ := res[0].(int64)
	if prev, _ := res[1].(string); prev != "" {
		if ms, err := strconv.ParseInt(prev, 10, 64); err == nil {
			last = time.UnixMilli(ms).UTC()
		}
	}
	return n == 1, last, nil
}

// swapReading stores r as the target's last reading and returns the one before it (nil: none).
func (s *store) swapReading(ctx context.Context, target string, r reading) (*reading, error) {
	data, _ := json.Marshal(r)
	old, err := s.rdb.SetArgs(ctx, s.readingKey(target), data, redis.SetArgs{Get: true, TTL: s.keep}).Result()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("store watch reading: %w", err)
	}
	var prev reading
	if json.Unmarshal([]byte(old), &prev) != nil {
		return nil, nil
	}
	return &prev, nil
}
