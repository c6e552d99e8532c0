package bot

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/platform-team/sessionbot/bot/remote"
	"github.com/platform-team/sessionbot/cleanup"
	"github.com/platform-team/sessionbot/internal/testkit"
)

// sinkFunc is a Sink made of a function.
type sinkFunc func(ctx context.Context, o JobOutcome) error

func (f sinkFunc) Deliver(ctx context.Context, o JobOutcome) error { return f(ctx, o) }

// userIDSink is a sinkFunc that wants JobOutcome.UserIDs.
type userIDSink struct{ sinkFunc }

func (userIDSink) WantsUserIDs() bool { return true }

type fanoutFixture struct {
	chat    *coreChat
	audit   *testkit.SyncBuffer
	metrics *Metrics
	thread  MessageRef
}

func newFanoutFixture(t *testing.T) *fanoutFixture {
	t.Helper()
	f := &fanoutFixture{chat: newCoreChat(), audit: &testkit.SyncBuffer{}, metrics: NewMetrics("test")}
	ref, err := f.chat.Post(context.Background(), chan1, Message{Text: "job J1"})
	if err != nil {
		t.Fatal(err)
	}
	f.thread = ref
	return f
}

func (f *fanoutFixture) fanout(t *testing.T, sinks []NamedSink, opts ...FanoutOption) *Fanout {
	t.Helper()
	a, err := cleanup.NewAuditor(cleanup.AuditConfig{}, f.audit)
	if err != nil {
		t.Fatal(err)
	}
	opts = append([]FanoutOption{WithFanoutAudit(a), WithFanoutMetrics(f.metrics), WithFanoutLogger(quietLogger())}, opts...)
	return NewFanout(f.chat, sinks, opts...)
}

func (f *fanoutFixture) outcome() JobOutcome {
	return JobOutcome{JobID: "J1", Mode: "execute", Scope: "expired_only", Thread: f.thread,
		Report: cleanup.Report{Deleted: 3}}
}

// threadReplies returns the failure reports posted in the job's channel.
func (f *fanoutFixture) threadReplies() []string {
	f.chat.mu.Lock()
	defer f.chat.mu.Unlock()
	var out []string
	for _, p := range f.chat.posts {
		if p.Channel == chan1 && strings.Contains(p.Msg.Text, "Notification failed") {
			out = append(out, strings.Join(p.Msg.Lines, "\n"))
		}
	}
	return out
}

// A slow sink holds up neither the caller nor the other sinks.
func TestFanoutSinksDoNotWaitForEachOther(t *testing.T) {
	f := newFanoutFixture(t)
	release := make(chan struct{})
	var fastDone atomic.Bool
	slow := sinkFunc(func(ctx context.Context, _ JobOutcome) error {
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	fast := sinkFunc(func(context.Context, JobOutcome) error { fastDone.Store(true); return nil })
	n := f.fanout(t, []NamedSink{{Name: "webhook", Sink: slow}, {Name: "email", Sink: fast}})

	start := time.Now()
	n.JobFinished(context.Background(), f.outcome())
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Errorf("JobFinished took %v; want it to return at once", d)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !fastDone.Load() && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if !fastDone.Load() {
		t.Fatal("the fast sink did not deliver while the slow one was still busy")
	}
	close(release)
	n.Wait()
	if r := f.threadReplies(); len(r) != 0 || strings.Contains(f.audit.String(), cleanup.EventNotificationFailed) {
		t.Errorf("failures reported for sinks that delivered: %q\n%s", r, f.audit)
	}
}

// Every failure a sink gives up on is reported on its own — in the job's thread, audited as
// Notification Failed with its channel, counted by sink — with secrets redacted; a sink that
// panics or outlives the timeout is a failure like any other.
func TestFanoutReportsEachFailure(t *testing.T) {
	f := newFanoutFixture(t)
	const secret = "hunter2-smtp-password"
	sinks := []NamedSink{
		{Name: "slack", Sink: sinkFunc(func(context.Context, JobOutcome) error {
			return errors.Join(&DeliveryError{Channel: "#platform-incidents", Err: errors.New("channel_not_found")},
				&DeliveryError{Channel: "#general", Err: errors.New("not_in_channel")})
		})},
		{Name: "email", Sink: sinkFunc(func(context.Context, JobOutcome) error {
			return fmt.Errorf("email: 535 authentication failed for smtp://ops:%s@mail", secret)
		})},
		{Name: "pagerduty", Sink: sinkFunc(func(context.Context, JobOutcome) error { panic("nil map") })},
		{Name: "webhook", Sink: sinkFunc(func(ctx context.Context, _ JobOutcome) error { <-ctx.Done(); return ctx.Err() })},
		{Name: "dm", Sink: sinkFunc(func(context.Context, JobOutcome) error { return nil })},
	}
	n := f.fanout(t, sinks, WithFanoutTimeout(200*time.Millisecond), WithFanoutSecrets(remote.Secret(secret)))
	n.JobFinished(context.Background(), f.outcome())
	n.Wait()

	audit := f.audit.String()
	for _, want := range []string{
		"Notification Failed | Channel: #platform-incidents | Error: channel_not_found | Job: J1",
		"Notification Failed | Channel: #general | Error: not_in_channel | Job: J1",
		"Notification Failed | Channel: email | Error: email: 535 authentication failed",
		"Notification Failed | Channel: pagerduty | Error: notification sink panicked: nil map | Job: J1",
		"Notification Failed | Channel: webhook | Error: context deadline exceeded | Job: J1",
	} {
		if !strings.Contains(audit, want) {
			t.Errorf("audit lacks %q:\n%s", want, audit)
		}
	}
	if got := strings.Count(audit, cleanup.EventNotificationFailed); got != 5 {
		t.Errorf("%d Notification Failed lines; want 5:\n%s", got, audit)
	}
	replies := f.threadReplies()
	if len(replies) != 5 {
		t.Errorf("thread replies = %q; want one per failure (5)", replies)
	}
	for _, out := range append(replies, audit) {
		if strings.Contains(out, secret) {
			t.Errorf("a reported failure shows the secret: %s", out)
		}
	}
	for label, want := range map[string]float64{"slack": 2, "email": 1, "pagerduty": 1, "webhook": 1, "dm": 0} {
		if got := value(t, f.metrics, "sessionbot_notification_failures_total", "channel="+label); got != want {
			t.Errorf("notification_failures_total{channel=%s} = %v; want %v", label, got, want)
		}
	}
}

func TestFanoutWantsUserIDsOnlyForASinkThatAsks(t *testing.T) {
	nop := sinkFunc(func(context.Context, JobOutcome) error { return nil })
	for _, tt := range []struct {
		name  string
		sinks []NamedSink
		want  bool
	}{
		{"no sinks", nil, false},
		{"chat only", []NamedSink{{Name: "slack", Sink: nop}}, false},
		{"a user-id sink", []NamedSink{{Name: "slack", Sink: nop}, {Name: "webhook", Sink: userIDSink{nop}}}, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := NewFanout(newCoreChat(), tt.sinks).WantsUserIDs(); got != tt.want {
				t.Errorf("WantsUserIDs() = %v; want %v", got, tt.want)
			}
		})
	}
}

// A run hands the distinct user_ids of the decodable sessions it deleted to the notifier — each
// once, however many sessions a user had and however the engine's batches fell — and collects
// nothing when no sink wants them.
func TestRunCollectsDeletedUserIDsWhenASinkWantsThem(t *testing.T) {
	h := newHarness(t, func(h *harness, _ *Deps) { h.notifier.userIDs = true })
	// 2,700 expired sessions of 1,500 users (auth0|000000000…1499): more than one engine batch
	// of user ids, with duplicates across batches.
	h.seed(sessionSpec{n: 1500, expired: true})
	h.seed(sessionSpec{n: 1200, expired: true, idPrefix: "second"})
	h.seed(sessionSpec{n: 20, userID: "auth0|still-valid"})

	h.command(alice, "cleanup")
	_, m := h.chat.latest(-1)
	h.press(alice, "run", button(t, m, "run"))
	outs := h.notifier.all()
	if len(outs) != 1 || outs[0].Report.Deleted != 2700 {
		t.Fatalf("outcomes = %d (deleted %v); want one run that deleted 2700", len(outs), outs)
	}
	var want []string
	for i := range 1500 {
		want = append(want, fmt.Sprintf("auth0|%09d", i))
	}
	if got := outs[0].UserIDs; !slices.Equal(got, want) {
		t.Errorf("UserIDs = %d ids (first %q); want the 1500 distinct users of the deleted sessions, sorted", len(got), got[:min(3, len(got))])
	}

	// A mass logout: the malformed key it deletes has no user to name.
	if err := h.rdb.Set(context.Background(), "session:broken", "not json", 0).Err(); err != nil {
		t.Fatal(err)
	}
	_, ref := h.requestAll()
	h.press(bob, "approve", button(t, h.chat.msg(ref), "approve"))
	outs = h.notifier.all()
	if len(outs) != 2 || outs[1].Report.Deleted != 21 || !slices.Equal(outs[1].UserIDs, []string{"auth0|still-valid"}) {
		t.Errorf("mass logout outcome: deleted %d, UserIDs %q; want 21 deleted and [auth0|still-valid]", outs[len(outs)-1].Report.Deleted, outs[len(outs)-1].UserIDs)
	}
}

func TestRunCollectsNoUserIDsWhenNoSinkWantsThem(t *testing.T) {
	h := newHarness(t)
	h.seed(sessionSpec{n: 30, expired: true})
	h.command(alice, "cleanup")
	_, m := h.chat.latest(-1)
	h.press(alice, "run", button(t, m, "run"))
	if outs := h.notifier.all(); len(outs) != 1 || outs[0].Report.Deleted != 30 || outs[0].UserIDs != nil {
		t.Errorf("outcomes = %+v; want one with 30 deleted and no UserIDs", outs)
	}
}

// The set of distinct user_ids costs what notify.go says: under 8 MB per 100,000 users of the
// engine's typical "auth0|" + nine digits, strings included.
func TestUserIDSetMemory(t *testing.T) {
	const users = 100_000
	batch := make([]string, 0, 1000)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	s := newUserIDSet()
	for i := range users {
		batch = append(batch, cleanup.SeedUserID(i)) // a fresh string per session, as decoded
		if len(batch) == cap(batch) {
			s.add(batch)
			s.add(batch) // the same users again: no cost
			batch = batch[:0]
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	perUser := float64(after.HeapAlloc-before.HeapAlloc) / users
	t.Logf("%.0f bytes per distinct user_id (%.1f MB per 100,000)", perUser, perUser*100_000/1e6)
	if perUser > 80 {
		t.Errorf("%.0f bytes per distinct user_id; want ≤ 80 (8 MB per 100,000)", perUser)
	}
	if len(s.sorted()) != users {
		t.Errorf("sorted() has %d ids; want %d", len(s.sorted()), users)
	}
}
