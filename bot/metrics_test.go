package bot

import (
	"fmt"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/platform-team/sessionbot/cleanup"
)

// gather returns the sessionbot_ families of m by name.
func gather(t *testing.T, m *Metrics) map[string]*dto.MetricFamily {
	t.Helper()
	fams, err := m.reg.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	out := map[string]*dto.MetricFamily{}
	for _, f := range fams {
		if strings.HasPrefix(f.GetName(), "sessionbot_") {
			out[f.GetName()] = f
		}
	}
	return out
}

// value returns the value of the series name{labels} ("k=v,k=v", sorted as declared), or fails.
func value(t *testing.T, m *Metrics, name, labels string) float64 {
	t.Helper()
	f, ok := gather(t, m)[name]
	if !ok {
		t.Fatalf("no family %s", name)
	}
	for _, s := range f.GetMetric() {
		var kv []string
		for _, l := range s.GetLabel() {
			kv = append(kv, l.GetName()+"="+l.GetValue())
		}
		if strings.Join(kv, ",") != labels {
			continue
		}
		switch {
		case s.Gauge != nil:
			return s.GetGauge().GetValue()
		case s.Counter != nil:
			return s.GetCounter().GetValue()
		case s.Histogram != nil:
			return float64(s.GetHistogram().GetSampleCount())
		}
	}
	t.Fatalf("no series %s{%s}", name, labels)
	return 0
}

func TestMetricsSeriesExistAtStartup(t *testing.T) {
	m := NewMetrics("1.2.3")
	m.InitTargets("default") // bot.New does this for each target
	// name → number of series expected before anything happened.
	want := map[string]int{
		"sessionbot_build_info":                                1,
		"sessionbot_slack_connected":                           1,
		"sessionbot_redis_up":                                  1,
		"sessionbot_sessions":                                  1,
		"sessionbot_sessions_by_auth_method":                   1, // "other"
		"sessionbot_sessions_orphaned":                         1,
		"sessionbot_sessions_expired":                          1,
		"sessionbot_sessions_malformed":                        1,
		"sessionbot_sessions_by_ttl":                           6,
		"sessionbot_sessions_bytes":                            1,
		"sessionbot_sessions_sample_complete":                  1,
		"sessionbot_sessions_sampled_timestamp_seconds":        1,
		"sessionbot_sessions_sample_duration_seconds":          1,
		"sessionbot_redis_used_memory_bytes":                   1,
		"sessionbot_redis_maxmemory_bytes":                     1,
		"sessionbot_cleanups_total":                            12,
		"sessionbot_keys_deleted_total":                        2,
		"sessionbot_keys_restored_total":                       1,
		"sessionbot_cleanup_duration_seconds":                  3,
		"sessionbot_last_successful_cleanup_timestamp_seconds": 1,
		"sessionbot_approvals_total":                           4,
		"sessionbot_commands_total":                            8,
		"sessionbot_redis_latency_seconds":                     1,
		"sessionbot_redis_command_duration_seconds":            7,
		"sessionbot_notification_failures_total":               5,
		"sessionbot_audit_errors_total":                        2,
		"sessionbot_redis_expired_keys_total":                  1,
	}
	got := gather(t, m)
	for name, n := range want {
		f, ok := got[name]
		if !ok {
			t.Errorf("family %s missing at start-up", name)
			continue
		}
		if len(f.GetMetric()) != n {
			t.Errorf("%s has %d series at start-up; want %d", name, len(f.GetMetric()), n)
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			t.Errorf("unexpected family %s: add it to this test (and to the dashboard if useful)", name)
		}
	}
	if v := value(t, m, "sessionbot_build_info", "version=1.2.3"); v != 1 {
		t.Errorf("build_info = %v; want 1", v)
	}
	fams, _ := m.reg.Gather()
	var goSeen, procSeen bool
	for _, f := range fams {
		goSeen = goSeen || f.GetName() == "go_goroutines"
		procSeen = procSeen || strings.HasPrefix(f.GetName(), "process_")
	}
	if !goSeen || !procSeen {
		t.Errorf("Go collector present = %v, process collector present = %v; want both", goSeen, procSeen)
	}
}

func TestMetricsHandlerServesExposition(t *testing.T) {
	m := NewMetrics("")
	m.InitTargets("prod-eu")
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	if rec.Code != 200 {
		t.Fatalf("GET /metrics = %d; want 200", rec.Code)
	}
	for _, want := range []string{
		`sessionbot_build_info{version="unknown"} 1`,
		`sessionbot_cleanups_total{mode="all",result="failed",target="prod-eu"} 0`,
		`sessionbot_sessions_by_ttl{bucket="none"} 0`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

func TestMetricsNilIsNoOp(t *testing.T) {
	var m *Metrics
	m.CleanupFinished("default", "all", "completed", 1, time.Second)
	m.Approval("approved")
	m.CommandReceived("help")
	m.SetSlackConnected(true)
	m.SetRedisUp(true)
	m.ObserveRedisLatency(time.Millisecond)
	m.NotificationFailed("slack")
	m.AuditError("file")
	m.SetSessionStats(cleanup.Stats{Total: 1})
	m.SetRedisExpiredKeys(5)
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != 404 {
		t.Errorf("nil Handler status = %d; want 404", rec.Code)
	}
}

func TestMetricsEvents(t *testing.T) {
	m := NewMetrics("v")
	at := time.Date(2025, 11, 26, 10, 0, 0, 0, time.UTC)
	m.now = func() time.Time { return at }

	m.CleanupFinished("prod-eu", "all", "failed", 40, 3*time.Second)
	if v := value(t, m, "sessionbot_last_successful_cleanup_timestamp_seconds", ""); v != 0 {
		t.Errorf("last success after a failure = %v; want 0", v)
	}
	m.CleanupFinished("prod-us", "execute", "completed", 100, time.Second)
	m.CleanupFinished("prod-us", "execute", "completed", 0, time.Second)
	m.CleanupFinished("prod-us", "restore", "completed", 7, time.Second)
	obs := m.EngineObserver()
	obs("scan", time.Millisecond)
	obs("scan", 2*time.Millisecond)
	obs("cad", time.Millisecond)
	m.Approval("expired")
	m.CommandReceived("stats")
	m.CommandReceived("rm -rf")
	m.NotificationFailed("pagerduty")
	m.AuditError("syslog")
	m.AuditError("carrier-pigeon")
	m.SetSlackConnected(true)
	m.ObserveRedisLatency(300 * time.Microsecond)

	tests := []struct {
		name, labels string
		want         float64
	}{
		{"sessionbot_cleanups_total", "mode=all,result=failed,target=prod-eu", 1},
		{"sessionbot_cleanups_total", "mode=execute,result=completed,target=prod-us", 2},
		{"sessionbot_keys_deleted_total", "mode=all,target=prod-eu", 40},
		{"sessionbot_keys_deleted_total", "mode=execute,target=prod-us", 100},
		{"sessionbot_keys_restored_total", "", 7},
		{"sessionbot_redis_command_duration_seconds", "op=scan", 2},
		{"sessionbot_redis_command_duration_seconds", "op=cad", 1},
		{"sessionbot_redis_command_duration_seconds", "op=unlink", 0},
		{"sessionbot_cleanup_duration_seconds", "mode=execute,target=prod-us", 2},
		{"sessionbot_last_successful_cleanup_timestamp_seconds", "", float64(at.Unix())},
		{"sessionbot_approvals_total", "outcome=expired", 1},
		{"sessionbot_commands_total", "command=stats", 1},
		{"sessionbot_commands_total", "command=unknown", 1},
		{"sessionbot_notification_failures_total", "channel=pagerduty", 1},
		{"sessionbot_audit_errors_total", "sink=syslog", 1},
		{"sessionbot_audit_errors_total", "sink=other", 1},
		{"sessionbot_slack_connected", "", 1},
		{"sessionbot_redis_latency_seconds", "", 1},
	}
	for _, tt := range tests {
		if got := value(t, m, tt.name, tt.labels); got != tt.want {
			t.Errorf("%s{%s} = %v; want %v", tt.name, tt.labels, got, tt.want)
		}
	}
}

func TestMetricsSessionStats(t *testing.T) {
	m := NewMetrics("v")
	at := time.Unix(1_700_000_000, 0)
	m.now = func() time.Time { return at }

	byAuth := map[string]int64{"": 3, "bad\xff": 2}
	for i := range 25 {
		byAuth[fmt.Sprintf("method%02d", i)] = int64(100 + i) // method24 largest
	}
	m.SetSessionStats(cleanup.Stats{
		Total: 5000, Orphans: 7, Expired: 30, Malformed: 2, Bytes: 1 << 20, Complete: true,
		UsedMemory: 80 << 20, MaxMemory: 100 << 20, ByAuthMethod: byAuth,
		TTL: cleanup.TTLHistogram{NoTTL: 7, Buckets: [5]int64{1, 2, 3, 4, 5}},
	})
	fam := gather(t, m)["sessionbot_sessions_by_auth_method"]
	if n := len(fam.GetMetric()); n != maxAuthMethods+1 {
		t.Errorf("by_auth_method has %d series; want %d (top %d + other)", n, maxAuthMethods+1, maxAuthMethods)
	}
	// method00..method04 (100..104) and the unusable labels (3+2) fall into other.
	if v := value(t, m, "sessionbot_sessions_by_auth_method", "auth_method=other"); v != 100+101+102+103+104+5 {
		t.Errorf("other = %v; want %v", v, 100+101+102+103+104+5)
	}
	if v := value(t, m, "sessionbot_sessions_by_auth_method", "auth_method=method24"); v != 124 {
		t.Errorf("method24 = %v; want 124", v)
	}
	for _, tt := range []struct {
		name, labels string
		want         float64
	}{
		{"sessionbot_sessions", "", 5000},
		{"sessionbot_sessions_orphaned", "", 7},
		{"sessionbot_sessions_expired", "", 30},
		{"sessionbot_sessions_malformed", "", 2},
		{"sessionbot_sessions_bytes", "", 1 << 20},
		{"sessionbot_redis_used_memory_bytes", "", 80 << 20},
		{"sessionbot_redis_maxmemory_bytes", "", 100 << 20},
		{"sessionbot_sessions_sample_complete", "", 1},
		{"sessionbot_sessions_sampled_timestamp_seconds", "", float64(at.Unix())},
		{"sessionbot_sessions_by_ttl", "bucket=none", 7},
		{"sessionbot_sessions_by_ttl", "bucket=le_10m", 1},
		{"sessionbot_sessions_by_ttl", "bucket=gt_24h", 5},
	} {
		if got := value(t, m, tt.name, tt.labels); got != tt.want {
			t.Errorf("%s{%s} = %v; want %v", tt.name, tt.labels, got, tt.want)
		}
	}

	// A method that disappeared from the data disappears from the metrics.
	m.SetSessionStats(cleanup.Stats{ByAuthMethod: map[string]int64{"oauth2": 4}})
	fam = gather(t, m)["sessionbot_sessions_by_auth_method"]
	var labels []string
	for _, s := range fam.GetMetric() {
		labels = append(labels, s.GetLabel()[0].GetValue())
	}
	if got := strings.Join(labels, ","); got != "oauth2,other" {
		t.Errorf("auth methods after second sample = %s; want oauth2,other", got)
	}
	if v := value(t, m, "sessionbot_sessions_sample_complete", ""); v != 0 {
		t.Errorf("sample_complete = %v; want 0", v)
	}
}

func TestMetricsRedisExpiredKeys(t *testing.T) {
	m := NewMetrics("v")
	steps := []struct {
		total int64
		want  float64
	}{
		{1000, 0}, // baseline: expiries before start-up are not ours to count
		{1010, 10},
		{1010, 10},
		{5, 15}, // server restarted: 5 since
		{8, 18},
	}
	for _, s := range steps {
		m.SetRedisExpiredKeys(s.total)
		if got := value(t, m, "sessionbot_redis_expired_keys_total", ""); got != s.want {
			t.Errorf("after SetRedisExpiredKeys(%d): counter = %v; want %v", s.total, got, s.want)
		}
	}
}
