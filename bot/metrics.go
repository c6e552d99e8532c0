package bot

import (
	"cmp"
	"maps"
	"net/http"
	"slices"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/platform-team/sessionbot/cleanup"
)

// Label values. Every combination is created at start-up so that each series exists (at zero)
// before the first event: alerts and rate() need a series to compare against. A value outside
// these sets is recorded as "other" (a caller bug, but never a new unbounded series).
var (
	cleanupModes   = []string{"execute", "all", "restore"}
	cleanupResults = []string{"completed", "failed", "cancelled", "stopped"}
	approvalKinds  = []string{"approved", "rejected", "expired", "refused"}
	commandNames   = []string{"help", "stats", "cleanup", "status", "cancel", "restore", "backups", "unknown"}
	deleteModes    = []string{"execute", "all"}
	engineOps      = []string{"scan", "read", "ttl", "dump", "unlink", "getdel", "cad"}
	notifyChannels = []string{"slack", "dm", "pagerduty", "email", "webhook"}
	auditSinks     = []string{"file", "syslog"}
	ttlBuckets     = []string{"none", "le_10m", "le_30m", "le_1h", "le_24h", "gt_24h"}
)

// maxAuthMethods caps the cardinality of sessionbot_sessions_by_auth_method: auth_method comes
// from session data, which anyone able to write a session controls.
const maxAuthMethods = 20

// otherLabel collects values beyond a cap or outside a known set.
const otherLabel = "other"

// Metrics are the bot's Prometheus series, on a private registry (nothing registers on the
// global one by accident). No label ever holds a user id, a session id or anything else whose
// set of values grows with the data. A nil *Metrics is valid: every method is a no-op.
type Metrics struct {
	reg *prometheus.Registry
	now func() time.Time

	slackConnected prometheus.Gauge
	redisUp        prometheus.Gauge

	sessions         prometheus.Gauge
	sessionsByAuth   *prometheus.GaugeVec
	sessionsOrphaned prometheus.Gauge
	sessionsExpired  prometheus.Gauge
	sessionsMalform  prometheus.Gauge
	sessionsByTTL    *prometheus.GaugeVec
	sessionsBytes    prometheus.Gauge
	sampleComplete   prometheus.Gauge
	sampledAt        prometheus.Gauge
	sampleDuration   prometheus.Gauge
	usedMemory       prometheus.Gauge
	maxMemory        prometheus.Gauge

	cleanups        *prometheus.CounterVec
	keysDeleted     *prometheus.CounterVec
	keysRestored    prometheus.Counter
	cleanupDuration *prometheus.HistogramVec
	lastSuccess     prometheus.Gauge

	approvals     *prometheus.CounterVec
	commands      *prometheus.CounterVec
	redisLatency  prometheus.Histogram
	redisCommands *prometheus.HistogramVec
	notifyFailure *prometheus.CounterVec
	auditErrors   *prometheus.CounterVec
	redisExpired  prometheus.Counter
	watch         *watchMetrics

	mu           sync.Mutex
	authMethods  map[string]bool // label values currently set on sessionsByAuth
	expiredSeen  int64           // last total given to SetRedisExpiredKeys
	expiredBegun bool
}

// NewMetrics creates the series on a fresh registry, together with the Go runtime and process
// collectors. version is exported as sessionbot_build_info{version}.
func NewMetrics(version string) *Metrics {
	if version == "" {
		version = "unknown"
	}
	reg := prometheus.NewRegistry()
	f := func(c prometheus.Collector) { reg.MustRegister(c) }
	f(collectors.NewGoCollector())
	f(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	gauge := func(name, help string) prometheus.Gauge {
		g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "sessionbot_" + name, Help: help})
		f(g)
		return g
	}
	m := &Metrics{
		reg:         reg,
		now:         time.Now,
		authMethods: map[string]bool{},
	}

	buildInfo := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "sessionbot_build_info", Help: "Always 1; the version label names the running build.",
	}, []string{"version"})
	f(buildInfo)
	buildInfo.WithLabelValues(version).Set(1)

	m.slackConnected = gauge("slack_connected", "1 while the Socket Mode connection to Slack is up.")
	m.redisUp = gauge("redis_up", "1 when the last sample of the session Redis succeeded.")

	m.sessions = gauge("sessions", "Session keys found by the last sample (see sessionbot_sessions_sample_complete).")
	m.sessionsByAuth = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "sessionbot_sessions_by_auth_method",
		Help: "Sessions by auth_method in the last full scan (/sessions stats: the sampler reads no values); the 20 largest methods, the rest as \"other\".",
	}, []string{"auth_method"})
	f(m.sessionsByAuth)
	m.sessionsByAuth.WithLabelValues(otherLabel)
	m.authMethods[otherLabel] = true
	m.sessionsOrphaned = gauge("sessions_orphaned", "Session keys without a TTL (TTL -1) in the last sample.")
	m.sessionsExpired = gauge("sessions_expired", "Sessions whose expires_at is past but whose key still exists, in the last full scan (/sessions stats: the sampler reads no values).")
	m.sessionsMalform = gauge("sessions_malformed", "Session keys whose value is not a valid session, in the last full scan (/sessions stats: the sampler reads no values).")
	m.sessionsByTTL = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "sessionbot_sessions_by_ttl",
		Help: "Session keys by remaining TTL in the last sample (bucket none = no TTL).",
	}, []string{"bucket"})
	f(m.sessionsByTTL)
	for _, b := range ttlBuckets {
		m.sessionsByTTL.WithLabelValues(b)
	}
	m.sessionsBytes = gauge("sessions_bytes", "Estimated memory used by session keys in the last full scan (/sessions stats: the sampler reads no values).")
	m.sampleComplete = gauge("sessions_sample_complete", "1 when the last sample scanned every session key; 0 when the key budget stopped it early.")
	m.sampledAt = gauge("sessions_sampled_timestamp_seconds", "Unix time of the last successful session sample.")
	m.sampleDuration = gauge("sessions_sample_duration_seconds", "Wall time of the last successful session sample.")
	m.usedMemory = gauge("redis_used_memory_bytes", "INFO memory used_memory of the session Redis, summed over masters, at the last sample.")
	m.maxMemory = gauge("redis_maxmemory_bytes", "INFO memory maxmemory of the session Redis, summed over masters, at the last sample; 0: no limit.")

	m.cleanups = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sessionbot_cleanups_total", Help: "Executed cleanup jobs by target, mode and result.",
	}, []string{"mode", "result", "target"})
	f(m.cleanups)
	m.keysDeleted = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sessionbot_keys_deleted_total", Help: "Session keys deleted by executed cleanup jobs, by mode (execute, all) and target.",
	}, []string{"mode", "target"})
	f(m.keysDeleted)
	m.keysRestored = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "sessionbot_keys_restored_total", Help: "Session keys put back by executed restore jobs.",
	})
	f(m.keysRestored)
	m.cleanupDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "sessionbot_cleanup_duration_seconds",
		Help:    "Wall time of executed cleanup jobs, by target.",
		Buckets: []float64{0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600},
	}, []string{"mode", "target"})
	f(m.cleanupDuration)
	m.lastSuccess = gauge("last_successful_cleanup_timestamp_seconds",
		"Unix time of the last completed cleanup job seen by this replica since it started (0: none).")

	m.approvals = counterVec(f, "approvals_total", "Approval decisions by outcome.", "outcome", approvalKinds)
	m.commands = counterVec(f, "commands_total", "Slash commands received by subcommand.", "command", commandNames)
	m.notifyFailure = counterVec(f, "notification_failures_total", "Notifications that failed after retries, by channel.", "channel", notifyChannels)
	m.auditErrors = counterVec(f, "audit_errors_total", "Audit lines that could not be written, by sink.", "sink", auditSinks)

	m.redisLatency = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "sessionbot_redis_latency_seconds",
		Help:    "Round trip of the sampler's PING to the session Redis, once per sample.",
		Buckets: []float64{0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1},
	})
	f(m.redisLatency)
	m.redisCommands = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "sessionbot_redis_command_duration_seconds",
		Help: "Round trips of the cleanup engine's own Redis commands (previews, cleanups, restores, samples) by operation: " +
			"scan, read, ttl, dump, unlink, getdel, cad (compare-and-delete). One pipelined batch of up to BATCH_SIZE keys is one observation.",
		Buckets: []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1},
	}, []string{"op"})
	f(m.redisCommands)
	for _, op := range engineOps {
		m.redisCommands.WithLabelValues(op)
	}
	m.redisExpired = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "sessionbot_redis_expired_keys_total",
		Help: "Keys expired by the session Redis (INFO stats expired_keys, all keys, not only sessions) since this replica started.",
	})
	f(m.redisExpired)
	m.watch = newWatchMetrics(f)
	return m
}

func counterVec(register func(prometheus.Collector), name, help, label string, values []string) *prometheus.CounterVec {
	v := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sessionbot_" + name, Help: help}, []string{label})
	register(v)
	for _, val := range values {
		v.WithLabelValues(val)
	}
	return v
}

// known returns v when it is one of set, else "other".
func known(v string, set []string) string {
	if slices.Contains(set, v) {
		return v
	}
	return otherLabel
}

// Handler serves the registry in the Prometheus exposition format.
func (m *Metrics) Handler() http.Handler {
	if m == nil {
		return http.NotFoundHandler()
	}
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// InitTargets creates the per-target job series (zero-valued) of each target the bot serves,
// so that they exist from start-up. Target names come from configuration: a bounded set.
func (m *Metrics) InitTargets(names ...string) {
	if m == nil {
		return
	}
	for _, target := range names {
		for _, mode := range deleteModes {
			m.keysDeleted.WithLabelValues(mode, target)
		}
		for _, mode := range cleanupModes {
			m.cleanupDuration.WithLabelValues(mode, target)
			for _, r := range cleanupResults {
				m.cleanups.WithLabelValues(mode, r, target)
			}
		}
	}
}

// CleanupFinished records an executed job on target. mode is execute, all or restore; result
// is completed, failed, cancelled or stopped; deleted counts the keys the job removed (restored,
// for restore) even when it did not complete.
func (m *Metrics) CleanupFinished(target, mode, result string, deleted int64, d time.Duration) {
	if m == nil {
		return
	}
	mode, result = known(mode, cleanupModes), known(result, cleanupResults)
	m.cleanups.WithLabelValues(mode, result, target).Inc()
	switch {
	case deleted <= 0:
	case mode == "restore":
		m.keysRestored.Add(float64(deleted))
	default:
		m.keysDeleted.WithLabelValues(mode, target).Add(float64(deleted))
	}
	m.cleanupDuration.WithLabelValues(mode, target).Observe(d.Seconds())
	if result == "completed" {
		m.lastSuccess.Set(float64(m.now().Unix()))
	}
}

// Approval records an approval decision: approved, rejected, expired or refused.
func (m *Metrics) Approval(outcome string) {
	if m == nil {
		return
	}
	m.approvals.WithLabelValues(known(outcome, approvalKinds)).Inc()
}

// CommandReceived counts a slash command; names outside the known subcommands count as unknown.
func (m *Metrics) CommandReceived(name string) {
	if m == nil {
		return
	}
	if !slices.Contains(commandNames, name) {
		name = "unknown"
	}
	m.commands.WithLabelValues(name).Inc()
}

// SetSlackConnected reports the state of the Socket Mode connection.
func (m *Metrics) SetSlackConnected(up bool) {
	if m == nil {
		return
	}
	m.slackConnected.Set(b2f(up))
}

// SetRedisUp reports whether the session Redis answered the last sample.
func (m *Metrics) SetRedisUp(up bool) {
	if m == nil {
		return
	}
	m.redisUp.Set(b2f(up))
}

// ObserveRedisLatency records the round trip of one Redis command.
func (m *Metrics) ObserveRedisLatency(d time.Duration) {
	if m == nil {
		return
	}
	m.redisLatency.Observe(d.Seconds())
}

// EngineObserver returns the observer to give cleanup.Engine.ObserveCommands: it records the
// engine's Redis round trips in sessionbot_redis_command_duration_seconds.
func (m *Metrics) EngineObserver() cleanup.CommandObserver {
	if m == nil {
		return nil
	}
	return func(op string, d time.Duration) {
		m.redisCommands.WithLabelValues(known(op, engineOps)).Observe(d.Seconds())
	}
}

// NotificationFailed counts a notification given up on: channel is the sink (slack, dm,
// pagerduty, email, webhook).
func (m *Metrics) NotificationFailed(channel string) {
	if m == nil {
		return
	}
	m.notifyFailure.WithLabelValues(known(channel, notifyChannels)).Inc()
}

// AuditError counts an audit line a sink could not write: sink is file or syslog.
func (m *Metrics) AuditError(sink string) {
	if m == nil {
		return
	}
	m.auditErrors.WithLabelValues(known(sink, auditSinks)).Inc()
}

// SetRedisExpiredKeys feeds sessionbot_redis_expired_keys_total from a running total of
// INFO stats expired_keys. The first call sets the baseline; a total lower than the previous
// one (the server restarted) counts as keys expired since the restart.
func (m *Metrics) SetRedisExpiredKeys(total int64) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case !m.expiredBegun:
		m.expiredBegun = true
	case total >= m.expiredSeen:
		m.redisExpired.Add(float64(total - m.expiredSeen))
	case total > 0:
		m.redisExpired.Add(float64(total))
	}
	m.expiredSeen = total
}

// SetSessionStats publishes a sample of the sessions. When st.Complete is false the counts
// cover only the keys the budget allowed, and sessionbot_sessions_sample_complete says so. A
// keys-only sample (the periodic sampler's) sets what keys and TTLs tell; expired, malformed,
// bytes and the auth-method breakdown need the values and come from full scans (/sessions stats).
func (m *Metrics) SetSessionStats(st cleanup.Stats) {
	if m == nil {
		return
	}
	m.sessions.Set(float64(st.Total))
	m.sessionsOrphaned.Set(float64(st.Orphans))
	m.sampleComplete.Set(b2f(st.Complete))
	m.sampledAt.Set(float64(m.now().Unix()))
	m.sampleDuration.Set(st.Duration.Seconds())
	if st.UsedMemory > 0 {
		m.usedMemory.Set(float64(st.UsedMemory))
		m.maxMemory.Set(float64(st.MaxMemory))
	}

	m.sessionsByTTL.WithLabelValues("none").Set(float64(st.TTL.NoTTL))
	for i, b := range ttlBuckets[1:] {
		m.sessionsByTTL.WithLabelValues(b).Set(float64(st.TTL.Buckets[i]))
	}

	if st.KeysOnly {
		// The sampler reads no values: what needs them stays as the last full scan left it.
		return
	}
	m.sessionsExpired.Set(float64(st.Expired))
	m.sessionsMalform.Set(float64(st.Malformed))
	m.sessionsBytes.Set(float64(st.Bytes))
	byAuth := capAuthMethods(st.ByAuthMethod, maxAuthMethods)
	m.mu.Lock()
	defer m.mu.Unlock()
	for method := range m.authMethods {
		if _, ok := byAuth[method]; !ok {
			m.sessionsByAuth.DeleteLabelValues(method)
			delete(m.authMethods, method)
		}
	}
	for method, n := range byAuth {
		m.sessionsByAuth.WithLabelValues(method).Set(float64(n))
		m.authMethods[method] = true
	}
}

// capAuthMethods keeps the limit largest methods (ties broken by name, so the set is stable
// between samples) and adds the rest up under "other", which is always present.
func capAuthMethods(in map[string]int64, limit int) map[string]int64 {
	out := map[string]int64{otherLabel: 0}
	names := slices.Collect(maps.Keys(in))
	slices.SortFunc(names, func(a, b string) int {
		if c := cmp.Compare(in[b], in[a]); c != 0 {
			return c
		}
		return cmp.Compare(a, b)
	})
	kept := 0
	for _, name := range names {
		if kept < limit && usableLabel(name) {
			out[name] = in[name]
			kept++
			continue
		}
		out[otherLabel] += in[name]
	}
	return out
}

// usableLabel reports whether an auth_method taken from session data may be a label value:
// anything empty, over-long or not UTF-8 (which would break the exposition) goes to "other".
func usableLabel(s string) bool {
	return s != "" && s != otherLabel && len(s) <= 64 && utf8.ValidString(s)
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
