package cleanup

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// DefaultRedisURL is used when no target is configured.
const DefaultRedisURL = "redis://localhost:6379/0"

// Validate reports every configuration problem at once, naming the variables.
func (c RedisConfig) Validate() error {
	var errs []error
	set := 0
	for _, s := range []bool{c.URL != "", len(c.ClusterAddrs) > 0, len(c.SentinelAddrs) > 0} {
		if s {
			set++
		}
	}
	if set > 1 {
		errs = append(errs, errors.New("REDIS_URL, REDIS_CLUSTER_ADDRS and REDIS_SENTINEL_ADDRS: set only one"))
	}
	if len(c.SentinelAddrs) > 0 && c.SentinelMaster == "" {
		errs = append(errs, errors.New("REDIS_SENTINEL_MASTER: required with REDIS_SENTINEL_ADDRS"))
	}
	if c.URL != "" {
		if _, err := redis.ParseURL(c.URL.Reveal()); err != nil {
			errs = append(errs, fmt.Errorf("REDIS_URL: %s (want redis://[user:password@]host:port/db, rediss:// for TLS)", redactURLError(c.URL.Reveal(), err)))
		}
	}
	for _, a := range append(append([]string(nil), c.ClusterAddrs...), c.SentinelAddrs...) {
		if strings.TrimSpace(a) == "" || !strings.Contains(a, ":") {
			errs = append(errs, fmt.Errorf("REDIS_CLUSTER_ADDRS/REDIS_SENTINEL_ADDRS: %q is not host:port", a))
		}
	}
	if c.StateURL != "" {
		if _, err := redis.ParseURL(c.StateURL.Reveal()); err != nil {
			// The error quotes the URL, password included: say only what is wrong.
			errs = append(errs, errors.New("STATE_REDIS_URL: not a valid redis:// or rediss:// URL"))
		}
	}
	switch {
	case c.Prefix == "":
		errs = append(errs, errors.New("SESSION_KEY_PREFIX: must not be empty (it is what keeps other keys safe)"))
	case strings.HasPrefix(c.Prefix, StateNamespace):
		// Keys under the state namespace are never sessions (Connect excludes them): such a
		// prefix would find nothing.
		errs = append(errs, fmt.Errorf("SESSION_KEY_PREFIX: %q lies inside the bot's state namespace %s, whose keys are never sessions; choose another prefix",
			c.Prefix, StateNamespace))
	case PrefixOverlapsState(c.Prefix) && c.StateURL == "":
		errs = append(errs, fmt.Errorf("SESSION_KEY_PREFIX: %q would also match the bot's own state (%s keys, kept in the target when STATE_REDIS_URL is not set); choose a prefix that does not, like session:, or set STATE_REDIS_URL",
			c.Prefix, StateNamespace+"*"))
	}
	return errors.Join(errs...)
}

// redactURLError describes why the Redis URL raw does not parse without showing any part of its
// credentials. A parser quotes what it could not read, and with an unescaped '/' or '@' in a
// password that is a piece of the password; so when raw has credentials, the mistake is looked
// for again in a copy whose userinfo is a placeholder.
func redactURLError(raw string, err error) string {
	start, end := userinfo(raw)
	if start == end {
		return err.Error()
	}
	if start == 0 {
		return "not a redis:// or rediss:// URL (want redis://user:password@host:port/db); the part before '@' is not shown"
	}
	probe := raw[:start] + "user:password" + raw[end:]
	if _, perr := redis.ParseURL(probe); perr != nil {
		return strings.ReplaceAll(perr.Error(), probe, RedactURL(probe))
	}
	return "the user or password (before the last '@') is not valid in a URL; it is not shown"
}

// Connect dials the target named by cfg (standalone, Sentinel or Cluster) and checks it answers.
// Keys under StateNamespace are never sessions on the returned target, wherever the bot's state
// lives: a prefix like "sess" (with state elsewhere) still never touches a sessionbot: key, be it
// this bot's state or another deployment's (SPEC §12.4).
func Connect(ctx context.Context, cfg RedisConfig) (*Target, error) {
	t, err := Open(cfg)
	if err != nil {
		return nil, err
	}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := t.Ping(pctx); err != nil {
		t.Close()
		return nil, fmt.Errorf("redis %s: %w", t.name, err)
	}
	return t, nil
}

// Open is Connect without the first PING: the clients connect when first used, so a Redis that
// does not answer yet is not an error (serve starts not-ready and waits for it).
func Open(cfg RedisConfig) (*Target, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	var (
		c    redis.UniversalClient
		name string
	)
	switch {
	case len(cfg.ClusterAddrs) > 0:
		c = redis.NewClusterClient(&redis.ClusterOptions{Addrs: cfg.ClusterAddrs})
		name = "cluster:" + cfg.ClusterAddrs[0]
	case len(cfg.SentinelAddrs) > 0:
		c = redis.NewFailoverClient(&redis.FailoverOptions{
			MasterName: cfg.SentinelMaster, SentinelAddrs: cfg.SentinelAddrs,
		})
		name = "sentinel:" + cfg.SentinelMaster
	default:
		u := cfg.URL.Reveal()
		if u == "" {
			u = DefaultRedisURL
		}
		opt, err := redis.ParseURL(u)
		if err != nil {
			return nil, fmt.Errorf("REDIS_URL: %s", redactURLError(u, err))
		}
		c = redis.NewClient(opt)
		name = fmt.Sprintf("%s/%d", opt.Addr, opt.DB)
	}
	t := NewTarget(c, cfg.Prefix, name)
	if cfg.Name != "" {
		t.name = cfg.Name
	}
	t.Exclude(StateNamespace)
	return t, nil
}

// NewTarget wraps an existing client (a *redis.Client, *redis.ClusterClient or failover client).
// name identifies the target in PagerDuty dedup keys and reports.
func NewTarget(c redis.UniversalClient, prefix, name string) *Target {
	t := &Target{client: c, prefix: prefix, name: name, addr: name}
	if cc, ok := c.(*redis.ClusterClient); ok {
		t.cluster = cc
	}
	return t
}

// StateNamespace is where the bot keeps its own state (requests, jobs, leases) when it lives in
// the target: keys under it are never sessions, whatever the prefix.
const StateNamespace = "sessionbot:"

// Exclude makes every key under ns invisible to scans, previews and deletions (the bot's own
// state when it lives in the target). It must be called before the target is used.
func (t *Target) Exclude(ns string) { t.exclude = ns }

// IsSessionKey reports whether key is one the engine may read for deletion or delete: it starts
// with the prefix and is not in the excluded namespace.
func (t *Target) IsSessionKey(key string) bool {
	return strings.HasPrefix(key, t.prefix) && (t.exclude == "" || !strings.HasPrefix(key, t.exclude))
}

// PrefixOverlapsState reports whether keys under prefix and keys under StateNamespace can be the
// same keys: SESSION_KEY_PREFIX "session" (or "" or "sessionbot:x") with state in the target.
func PrefixOverlapsState(prefix string) bool {
	return strings.HasPrefix(StateNamespace, prefix) || strings.HasPrefix(prefix, StateNamespace)
}

// Ping checks that every master answers.
func (t *Target) Ping(ctx context.Context) error {
	if t.cluster != nil {
		return t.cluster.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
			return c.Ping(ctx).Err()
		})
	}
	return t.client.Ping(ctx).Err()
}

// Close closes the client.
func (t *Target) Close() error { return t.client.Close() }

// IsCluster reports whether the target is a Redis Cluster.
func (t *Target) IsCluster() bool { return t.cluster != nil }

// masters returns one client per master: the client itself on standalone and Sentinel targets,
// every master of a Cluster otherwise (replicas are never scanned: they hold the same keys).
func (t *Target) masters(ctx context.Context) ([]*redis.Client, error) {
	if t.cluster == nil {
		c, ok := t.client.(*redis.Client)
		if !ok {
			return nil, fmt.Errorf("unsupported redis client %T", t.client)
		}
		return []*redis.Client{c}, nil
	}
	var (
		mu  sync.Mutex
		out []*redis.Client
	)
	err := t.cluster.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
		mu.Lock()
		out = append(out, c)
		mu.Unlock()
		return nil
	})
	return out, err
}

// matchPattern is the SCAN MATCH pattern for the prefix, with glob characters escaped so that
// only keys that literally start with the prefix match.
func matchPattern(prefix string) string {
	var b strings.Builder
	for _, r := range prefix {
		switch r {
		case '*', '?', '[', ']', '\\':
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	b.WriteByte('*')
	return b.String()
}

// runID extracts run_id from INFO server output ("" when absent, e.g. on an embedded server).
func runID(info string) string {
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(line, "run_id:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}
