package bot

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func get(t *testing.T, srv *http.Server, method, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	srv.Handler.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
	body, _ := io.ReadAll(rec.Body)
	return rec.Code, string(body)
}

func TestHealthEndpoints(t *testing.T) {
	notReady := errors.New("slack: socket mode not connected")
	tests := []struct {
		name     string
		ready    func(context.Context) error
		path     string
		wantCode int
		wantBody string
	}{
		{"healthz while ready", nil, "/healthz", 200, "ok\n"},
		{"healthz ignores readiness", func(context.Context) error { return notReady }, "/healthz", 200, "ok\n"},
		{"readyz ready", func(context.Context) error { return nil }, "/readyz", 200, "ok\n"},
		{"readyz nil func", nil, "/readyz", 200, "ok\n"},
		{"readyz not ready", func(context.Context) error { return notReady }, "/readyz", 503,
			"not ready: slack: socket mode not connected\n"},
		{"readyz one line", func(context.Context) error { return errors.New("redis: down\nstack trace") }, "/readyz", 503,
			"not ready: redis: down\n"},
		{"readyz panic", func(context.Context) error { panic("boom") }, "/readyz", 503,
			"not ready: readiness check panicked\n"},
		{"unknown path", nil, "/debug/pprof/", 404, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := NewHTTPServer("127.0.0.1:0", NewMetrics("v"), tt.ready)
			code, body := get(t, srv, "GET", tt.path)
			if code != tt.wantCode || (tt.wantBody != "" && body != tt.wantBody) {
				t.Errorf("GET %s = %d %q; want %d %q", tt.path, code, body, tt.wantCode, tt.wantBody)
			}
		})
	}
}

func TestHealthMethodsAndMetrics(t *testing.T) {
	srv := NewHTTPServer("127.0.0.1:0", NewMetrics("9.9.9"), nil)
	if code, _ := get(t, srv, "POST", "/healthz"); code != http.StatusMethodNotAllowed {
		t.Errorf("POST /healthz = %d; want 405", code)
	}
	if code, _ := get(t, srv, "HEAD", "/healthz"); code != 200 {
		t.Errorf("HEAD /healthz = %d; want 200", code)
	}
	code, body := get(t, srv, "GET", "/metrics")
	if code != 200 || !strings.Contains(body, `sessionbot_build_info{version="9.9.9"} 1`) {
		t.Errorf("GET /metrics = %d, build_info present = %v; want 200, true", code, strings.Contains(body, "sessionbot_build_info"))
	}
	if srv.ReadHeaderTimeout == 0 {
		t.Error("ReadHeaderTimeout unset: slow clients could hold connections open")
	}
}

// TestHealthOverLoopback runs the real server on a loopback port.
func TestHealthOverLoopback(t *testing.T) {
	srv := NewHTTPServer("127.0.0.1:0", NewMetrics("v"), nil)
	ts := httptest.NewUnstartedServer(srv.Handler)
	ts.Config = srv
	ts.Start()
	defer ts.Close()
	resp, err := ts.Client().Get(ts.URL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("GET /readyz = %d; want 200", resp.StatusCode)
	}
}

func TestHealthReadyTimeout(t *testing.T) {
	block := make(chan struct{})
	defer close(block)
	// A check that ignores its context must still not hold the probe past the deadline.
	err := checkReady(context.Background(), func(context.Context) error { <-block; return nil }, 10*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "timed out") {
		t.Errorf("checkReady(blocking) = %v; want a timeout", err)
	}
	err = checkReady(context.Background(), func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }, 10*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "timed out") {
		t.Errorf("checkReady(ctx-aware) = %v; want a timeout", err)
	}
}

func TestHealthReasonRedacted(t *testing.T) {
	tests := []struct{ in, secret string }{
		{"dial redis://:hunter2@10.0.0.1:6379/0: refused", "hunter2"},
		{"rediss://default:s3cr3t@redis:6380 unreachable", "s3cr3t"},
		{"slack: invalid_auth for xoxb-1234-5678-abcdef", "xoxb-1234"},
		{"socket: xapp-1-A0B1-xyz failed", "xapp-1"},
		{"config: password=opensesame", "opensesame"},
		{"pagerduty routing key: abcd1234", ""},
	}
	for _, tt := range tests {
		got := redactReason(tt.in)
		if tt.secret != "" && strings.Contains(got, tt.secret) {
			t.Errorf("redactReason(%q) = %q; leaks %q", tt.in, got, tt.secret)
		}
		if strings.ContainsAny(got, "\r\n") {
			t.Errorf("redactReason(%q) = %q; want one line", tt.in, got)
		}
	}
	if got := redactReason(strings.Repeat("é", 300)); len(got) > 210 {
		t.Errorf("redactReason(long) has %d bytes; want at most ~200", len(got))
	}
	srv := NewHTTPServer("127.0.0.1:0", nil, func(context.Context) error {
		return errors.New("redis://:hunter2@db:6379: i/o timeout")
	})
	if _, body := get(t, srv, "GET", "/readyz"); strings.Contains(body, "hunter2") {
		t.Errorf("/readyz body %q leaks the Redis password", body)
	}
}
