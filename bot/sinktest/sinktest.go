// Package sinktest runs the bot with notification sinks under test: the console transport, the
// core and the cleanup engine on a real redis-server the test started. A sink's tests then see
// what an operator sees — the job's report in the console, Notification Failed in the audit log —
// besides what reached the sink's own fake.
package sinktest

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/platform-team/sessionbot/bot"
	"github.com/platform-team/sessionbot/bot/console"
	"github.com/platform-team/sessionbot/cleanup"
)

// MassLogout is a console script: alice asks for a mass logout with reason, bob approves it.
func MassLogout(reason string) string {
	return "/sessions cleanup --all --reason \"" + reason + "\"\n/as bob\npress approve\n"
}

// Cleanup is a console script: alice previews the expired sessions and runs the cleanup.
const Cleanup = "/sessions cleanup\npress run\n"

// Result is what a console session left behind.
type Result struct {
	out   *timedWriter
	audit string
}

// Output is everything the console printed.
func (r *Result) Output() string { return r.out.String() }

// Audit is the audit log.
func (r *Result) Audit() string { return r.audit }

// PrintedAt is when the console first printed text containing s (zero: never).
func (r *Result) PrintedAt(s string) time.Time { return r.out.at(s) }

// Run types script into a console on rdb (the demo identities: alice an operator, bob an
// approver) whose runs are also notified to sinks, and returns once the input is consumed and
// every job and notification has finished.
func Run(t testing.TB, rdb *redis.Client, script string, sinks ...bot.NamedSink) *Result {
	t.Helper()
	auditPath := filepath.Join(t.TempDir(), "audit.log")
	auditor, err := cleanup.NewAuditor(cleanup.AuditConfig{File: auditPath}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer auditor.Close()
	out := &timedWriter{}
	d := bot.Deps{
		Config:  bot.DefaultConfig(),
		Engine:  cleanup.NewEngine(cleanup.NewTarget(rdb, "session:", "sinktest"), cleanup.EngineConfig{BatchSize: 500}),
		Auditor: auditor,
		Policy:  cleanup.Policy{Threshold: 1000},
		Backup:  cleanup.BackupConfig{Dir: filepath.Join(t.TempDir(), "backups")},
		Logger:  slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	// DemoRedis: the demo identities stand in for OPERATORS and APPROVERS; the Redis is the
	// test's own.
	err = console.Run(context.Background(), strings.NewReader(script), out, d, console.Options{DemoRedis: true, Sinks: sinks})
	if err != nil {
		t.Fatalf("console.Run: %v\n%s", err, out)
	}
	audit, err := os.ReadFile(auditPath)
	if err != nil {
		t.Fatal(err)
	}
	return &Result{out: out, audit: string(audit)}
}

// timedWriter records what is written and when.
type timedWriter struct {
	mu     sync.Mutex
	b      strings.Builder
	ends   []int       // length of the output after each write
	stamps []time.Time // time of each write
}

func (w *timedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.b.Write(p)
	w.ends = append(w.ends, w.b.Len())
	w.stamps = append(w.stamps, time.Now())
	return len(p), nil
}

func (w *timedWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

func (w *timedWriter) at(s string) time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	i := strings.Index(w.b.String(), s)
	if i < 0 {
		return time.Time{}
	}
	for k, end := range w.ends {
		if end >= i+len(s) {
			return w.stamps[k]
		}
	}
	return time.Time{}
}
