package main

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/platform-team/sessionbot/cleanup"
)

// lineHook is a writer that calls fn, once, when a line containing mark has been written: the
// command writes its plan before it starts deleting, so fn runs between the two.
type lineHook struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	mark string
	fn   func()
	done bool
}

func (w *lineHook) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n, err := w.buf.Write(p)
	if !w.done && strings.Contains(w.buf.String(), w.mark) {
		w.done = true
		w.fn()
	}
	return n, err
}

func (w *lineHook) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// A run that needed no confirmation never logs out more still-valid sessions than
// APPROVAL_THRESHOLD, even when more match by the time it runs than its preview showed
// (SPEC §12.3): the previewed + 10% + 10 bound would allow 18 here.
func TestCleanupUnconfirmedRunStopsAtThreshold(t *testing.T) {
	tg := newTarget(t)
	tg.env["APPROVAL_THRESHOLD"] = "10"
	basic := func(n int, seed int64) cleanup.SeedSpec {
		return cleanup.SeedSpec{Count: n, Seed: seed, AuthMethods: map[string]float64{"basic_auth": 1}, Expired: -1, Malformed: -1}
	}
	tg.seed(basic(8, 1))

	// After the preview (8 still valid: no confirmation needed), 20 more sessions appear.
	out := &lineHook{mark: "8 sessions with auth_method=basic_auth (will be deleted)", fn: func() { tg.seed(basic(20, 2)) }}
	var errb bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := run(ctx, []string{"cleanup", "--auth-method", "basic_auth"}, func(k string) string { return tg.env[k] },
		strings.NewReader(""), out, &errb)
	if code := exitCode(err); code != exitFailed {
		t.Fatalf("cleanup: exit %d; want %d (stopped at the bound); stdout:\n%s\nstderr:\n%s", code, exitFailed, out, errb.String())
	}
	if strings.Contains(errb.String(), "to confirm") {
		t.Errorf("a run under the threshold asked for confirmation:\n%s", errb.String())
	}
	if !regexp.MustCompile(`(?m)^Cleanup STOPPED after .*may log out \(10\)`).MatchString(out.String()) {
		t.Errorf("report does not say the run stopped at 10:\n%s", out)
	}
	if n := tg.count("session:*"); n != 28-10 {
		t.Errorf("%d sessions left of 28; want 18 (exactly APPROVAL_THRESHOLD=10 logged out)", n)
	}
	lines := tg.auditLines()
	wantAudit(t, lines[len(lines)-1], `Cleanup Failed \| User: alice \| Mode: execute \| Filters: auth_method=basic_auth \| Deleted: 10 \|`)
}
