package bot

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"time"
)

// readyTimeout bounds one readiness check: a probe that hangs is a probe that failed.
const readyTimeout = 2 * time.Second

// NewHTTPServer returns the operations server (METRICS_ADDR): /metrics for Prometheus,
// /healthz, which answers 200 as long as the process serves HTTP and depends on nothing else
// (a Slack or Redis outage must not make Kubernetes restart every replica), and /readyz, which
// answers 200 only when ready returns nil within 2 s, else 503 with a one-line reason. A nil
// ready is always ready. The caller runs ListenAndServe and Shutdown.
func NewHTTPServer(addr string, m *Metrics, ready func(context.Context) error) *http.Server {
	if ready == nil {
		ready = func(context.Context) error { return nil }
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.Handler())
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		plain(w, http.StatusOK, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if err := checkReady(r.Context(), ready, readyTimeout); err != nil {
			plain(w, http.StatusServiceUnavailable, "not ready: "+redactReason(err.Error()))
			return
		}
		plain(w, http.StatusOK, "ok")
	})
	return &http.Server{
		Addr:              addr,
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
}

// checkReady runs ready under a deadline, and gives up at the deadline even if ready ignores
// its context (it then finishes in the background; its channel is buffered).
func checkReady(ctx context.Context, ready func(context.Context) error, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		defer func() {
			if p := recover(); p != nil {
				done <- errors.New("readiness check panicked")
			}
		}()
		done <- ready(ctx)
	}()
	select {
	case err := <-done:
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil {
			return fmt.Errorf("readiness check timed out after %v", timeout)
		}
		return err
	case <-ctx.Done():
		return fmt.Errorf("readiness check timed out after %v", timeout)
	}
}

var (
	// userinfo in URLs: redis://:password@host, rediss://user:password@host.
	urlUserinfo = regexp.MustCompile(`([a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]*@`)
	// Slack tokens (xoxb-, xoxp-, xapp-, …) and anything labelled as a password or key.
	tokenLike = regexp.MustCompile(`\bx(?:ox[a-z]|app)-[A-Za-z0-9-]+|(?i)\b(password|passwd|pass|token|secret|key)\s*[=:]\s*\S+`)
)

// redactReason makes an error fit for an unauthenticated endpoint: one line, bounded length,
// no credentials even if a dependency put them in its error text.
func redactReason(s string) string {
	if i := strings.IndexAny(s, "\r\n"); i >= 0 {
		s = s[:i]
	}
	s = urlUserinfo.ReplaceAllString(s, "${1}[redacted]@")
	s = tokenLike.ReplaceAllStringFunc(s, func(t string) string {
		if sub := tokenLike.FindStringSubmatch(t); sub[1] != "" {
			return sub[1] + "=[redacted]"
		}
		return "[redacted]"
	})
	const maxLen = 200
	if len(s) > maxLen {
		s = strings.ToValidUTF8(s[:maxLen], "") + "…"
	}
	return s
}

func plain(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	fmt.Fprintln(w, msg)
}
