package bot

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/platform-team/sessionbot/cleanup"
)

// RunSessionSampler publishes session statistics until ctx ends: at once, then every `every`.
// The session scan runs on one replica only, the holder of the target's sampler lease in the
// state Redis (taken when free, renewed every sample, lost after three missed samples), so that
// N replicas do not scan production Redis N times; the others keep their session gauges at
// zero (the dashboard takes the max over replicas). Each sample is one eng.KeyStats — keys and
// TTLs only, no value is read — bounded by maxKeys (so a huge keyspace costs at most that many SCANned keys per sample;
// sessionbot_sessions_sample_complete says when the budget cut it short), paced one batch at a
// time per master. Every replica sends one PING for latency and INFO on every master for the
// expired-keys counter. A sample gets at most `every` to finish, so samples never pile up.
// Errors set sessionbot_redis_up to 0 and leave the last good session numbers (and their
// timestamp) in place.
//
// The session gauges describe one target: a bot serving several (TARGETS_FILE) samples none.
func (b *Bot) RunSessionSampler(ctx context.Context, every time.Duration, maxKeys int64) {
	if len(b.targets.list) != 1 {
		return
	}
	tg := b.targets.list[0]
	if every <= 0 {
		every = 30 * time.Second
	}
	var id [8]byte
	_, _ = rand.Read(id[:])
	s := &sampler{eng: tg.Engine, m: b.metrics, nodes: map[string]nodeExpiry{},
		lease: b.samplerLease(tg, hex.EncodeToString(id[:]), 3*every)}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		sctx, cancel := context.WithTimeout(ctx, every)
		s.sample(sctx, maxKeys)
		cancel()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// samplerLease returns whether the replica named id holds the target's sampler lease, taking
// it when free and renewing it when held. An error of the state Redis means no: better no
// sample than every replica scanning.
func (b *Bot) samplerLease(t *target, id string, ttl time.Duration) func(context.Context) bool {
	name := "sampler:" + t.Name
	return func(ctx context.Context) bool {
		ok, holder, err := b.st.acquireLease(ctx, name, id, ttl)
		switch {
		case err != nil:
			b.log.Warn("sampler lease", "err", err)
			return false
		case ok:
			return true
		case holder != id:
			return false
		}
		renewed, err := b.st.renewLease(ctx, name, id, ttl)
		return err == nil && renewed
	}
}

type sampler struct {
	eng *cleanup.Engine
	m   *Metrics
	// lease says whether this replica scans the sessions now; nil: always.
	lease func(context.Context) bool

	// nodes holds, per master, the last expired_keys seen and the run_id it came from.
	mu      sync.Mutex
	nodes   map[string]nodeExpiry
	expired int64 // running total fed to SetRedisExpiredKeys
}

type nodeExpiry struct {
	runID   string
	expired int64
}

func (s *sampler) sample(ctx context.Context, maxKeys int64) {
	client := s.eng.Target().Client()
	start := time.Now()
	if err := client.Ping(ctx).Err(); err != nil {
		s.m.SetRedisUp(false)
		return
	}
	s.m.ObserveRedisLatency(time.Since(start))

	if s.lease == nil || s.lease(ctx) {
		st, err := s.eng.KeyStats(ctx, maxKeys)
		if err != nil {
			s.m.SetRedisUp(false)
			return
		}
		s.m.SetSessionStats(st)
	}
	if err := s.readExpiredKeys(ctx, client); err != nil {
		s.m.SetRedisUp(false)
		return
	}
	s.m.SetRedisUp(true)
}

// readExpiredKeys adds up INFO stats expired_keys over the masters. Each master's counter is
// tracked on its own with its run_id: after a restart or failover (new run_id) the node's
// counter starts again, and only what it has counted since is added, so the running total stays
// monotonic even when one master of a Cluster restarts.
func (s *sampler) readExpiredKeys(ctx context.Context, client redis.UniversalClient) error {
	if cc, ok := client.(*redis.ClusterClient); ok {
		return cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
			return s.readNode(ctx, c.Options().Addr, c)
		})
	}
	return s.readNode(ctx, "", client)
}

func (s *sampler) readNode(ctx context.Context, addr string, c redis.Cmdable) error {
	// Two single-section calls: INFO with several sections needs Redis 7.
	server, err := c.Info(ctx, "server").Result()
	if err != nil {
		return err
	}
	stats, err := c.Info(ctx, "stats").Result()
	if err != nil {
		return err
	}
	runID := infoField(server, "run_id")
	n, err := strconv.ParseInt(infoField(stats, "expired_keys"), 10, 64)
	if err != nil {
		return err
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	prev, seen := s.nodes[addr]
	switch {
	case !seen:
		// Baseline: what expired before this replica looked is not counted.
	case prev.runID == runID && n >= prev.expired:
		s.expired += n - prev.expired
	default:
		s.expired += n
	}
	s.nodes[addr] = nodeExpiry{runID: runID, expired: n}
	s.m.SetRedisExpiredKeys(s.expired)
	return nil
}

// infoField returns the value of name in an INFO reply ("name:value" lines), or "".
func infoField(info, name string) string {
	for line := range strings.Lines(info) {
		if v, ok := strings.CutPrefix(line, name+":"); ok {
			return strings.TrimRight(v, "\r\n")
		}
	}
	return ""
}
