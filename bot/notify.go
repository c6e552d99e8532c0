package bot

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/platform-team/sessionbot/bot/chat"
	"github.com/platform-team/sessionbot/bot/remote"
	"github.com/platform-team/sessionbot/cleanup"
)

// Notifier tells people about finished runs. It never blocks or undoes the cleanup: failures are
// retried, reported in the job's thread and audited.
type Notifier interface {
	// JobFinished hands o over and returns at once.
	JobFinished(ctx context.Context, o JobOutcome)
	// Wait blocks until the notifications handed over so far are done (graceful shutdown).
	Wait()
	// WantsUserIDs reports whether JobOutcome.UserIDs is needed: only then does a run collect
	// the distinct user_ids it deletes, which costs memory in proportion to them.
	WantsUserIDs() bool
}

// Sink is one audience of finished runs: a Slack channel, the affected users' DMs, PagerDuty,
// e-mail, a webhook. Adding one is a new type and a line of wiring; the Fanout does the rest.
type Sink interface {
	// Deliver tells the sink's audience about o (which it must not modify), retrying as the
	// sink's own policy says, and returns once everything is delivered or given up on; ctx
	// bounds it all. The error is nil, one failure, or errors.Join of *DeliveryError values
	// when the sink gave up on several deliveries (each is then reported on its own).
	Deliver(ctx context.Context, o JobOutcome) error
}

// UserIDSink is a Sink that needs JobOutcome.UserIDs (the webhook that lets an application tell
// its own users why they were signed out).
type UserIDSink interface {
	Sink
	WantsUserIDs() bool
}

// NamedSink is a Sink with its name: the label its failures are counted under (slack, dm,
// pagerduty, email, webhook) and the channel they are reported as when the error names none.
type NamedSink struct {
	Name string
	Sink Sink
}

// DeliveryError is a delivery a sink gave up on, with where it was going.
type DeliveryError struct {
	Channel string // as reported and audited: a Slack channel, dm:<user>, pagerduty, …
	Err     error
}

// Error is the failure's own text: the channel is reported beside it.
func (e *DeliveryError) Error() string { return e.Err.Error() }

// Unwrap returns the failure.
func (e *DeliveryError) Unwrap() error { return e.Err }

// auditLog is the part of *cleanup.Auditor the Fanout uses.
type auditLog interface {
	Log(cleanup.AuditEvent) error
}

var _ auditLog = (*cleanup.Auditor)(nil)

// DefaultNotifyTimeout bounds each sink's work on one run.
const DefaultNotifyTimeout = 2 * time.Minute

// Fanout implements Notifier over sinks (atlantis's MultiWebhookSender): it hands every outcome
// to each sink in a goroutine of its own, detached from the job's context and bounded by its own
// timeout, so that a failing or slow sink can neither block nor undo the cleanup, nor hold up
// another sink. Each failure a sink gives up on (after its own retries) is reported in the job's
// thread, audited as Notification Failed and counted.
type Fanout struct {
	chat    Chat // where failures are reported, in the job's thread
	sinks   []NamedSink
	audit   auditLog // nil: no audit
	metrics *Metrics
	log     *slog.Logger
	now     func() time.Time
	timeout time.Duration
	secrets []string // never shown, even inside an error from a remote
	busy    deliveries
}

// deliveries counts sink deliveries in flight. Unlike a sync.WaitGroup it may be waited on while
// new deliveries start (a job may finish while the bot shuts down, or while a test waits for an
// earlier one): wait returns once none is in flight.
type deliveries struct {
	mu   sync.Mutex
	n    int
	idle sync.Cond
}

func (d *deliveries) add() {
	d.mu.Lock()
	d.n++
	d.mu.Unlock()
}

func (d *deliveries) done() {
	d.mu.Lock()
	if d.n--; d.n == 0 && d.idle.L != nil {
		d.idle.Broadcast()
	}
	d.mu.Unlock()
}

func (d *deliveries) wait() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.idle.L == nil {
		d.idle.L = &d.mu
	}
	for d.n > 0 {
		d.idle.Wait()
	}
}

var _ Notifier = (*Fanout)(nil)

// FanoutOption configures a Fanout.
type FanoutOption func(*Fanout)

// WithFanoutAudit sets where Notification Failed is audited.
func WithFanoutAudit(a *cleanup.Auditor) FanoutOption {
	return func(f *Fanout) {
		if a != nil {
			f.audit = a
		}
	}
}

// WithFanoutMetrics counts failed notifications in m.
func WithFanoutMetrics(m *Metrics) FanoutOption { return func(f *Fanout) { f.metrics = m } }

// WithFanoutLogger sets the logger (default slog.Default()).
func WithFanoutLogger(l *slog.Logger) FanoutOption { return func(f *Fanout) { f.log = l } }

// WithFanoutClock sets the clock of audit lines and of outcomes without a time (tests).
func WithFanoutClock(now func() time.Time) FanoutOption { return func(f *Fanout) { f.now = now } }

// WithFanoutTimeout bounds each sink's work on one run (default DefaultNotifyTimeout).
func WithFanoutTimeout(d time.Duration) FanoutOption { return func(f *Fanout) { f.timeout = d } }

// WithFanoutSecrets names credentials that must never be shown, even when a remote's error
// quotes them: they are redacted from every reported failure.
func WithFanoutSecrets(secrets ...remote.Secret) FanoutOption {
	return func(f *Fanout) {
		for _, s := range secrets {
			if len(s) >= 8 {
				f.secrets = append(f.secrets, s.Reveal())
			}
		}
	}
}

// NewFanout returns the Notifier that hands every outcome to sinks and reports their failures
// through chat.
func NewFanout(chat Chat, sinks []NamedSink, opts ...FanoutOption) *Fanout {
	f := &Fanout{chat: chat, sinks: slices.Clone(sinks), log: slog.Default(), now: time.Now, timeout: DefaultNotifyTimeout}
	for _, o := range opts {
		o(f)
	}
	return f
}

// JobFinished implements Notifier. It returns at once; Wait waits for the sinks.
func (f *Fanout) JobFinished(ctx context.Context, o JobOutcome) {
	if o.At.IsZero() {
		o.At = f.now()
	}
	detached := context.WithoutCancel(ctx)
	for _, s := range f.sinks {
		f.busy.add()
		go func() {
			defer f.busy.done()
			ctx, cancel := context.WithTimeout(detached, f.timeout)
			err := deliver(ctx, s.Sink, o)
			cancel()
			if err == nil {
				return
			}
			// The sink's time may be up: reporting gets its own.
			ctx, cancel = context.WithTimeout(detached, f.timeout)
			defer cancel()
			for _, e := range failures(err) {
				channel := s.Name
				if de, ok := e.(*DeliveryError); ok {
					channel = de.Channel
				}
				f.failed(ctx, o, s.Name, channel, e)
			}
		}()
	}
}

// Wait implements Notifier.
func (f *Fanout) Wait() { f.busy.wait() }

// WantsUserIDs implements Notifier: whether any sink is a UserIDSink that wants them.
func (f *Fanout) WantsUserIDs() bool {
	for _, s := range f.sinks {
		if u, ok := s.Sink.(UserIDSink); ok && u.WantsUserIDs() {
			return true
		}
	}
	return false
}

// deliver runs one sink, turning a panic into its failure: a broken sink must not take the bot
// (and the jobs it runs) down with it.
func deliver(ctx context.Context, s Sink, o JobOutcome) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("notification sink panicked: %v", r)
		}
	}()
	return s.Deliver(ctx, o)
}

// failures splits a sink's error into the failures to report: each *DeliveryError of a join on
// its own, anything else as one.
func failures(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs := j.Unwrap()
		all := true
		for _, e := range errs {
			if _, ok := e.(*DeliveryError); !ok {
				all = false
			}
		}
		if all {
			return errs
		}
	}
	return []error{err}
}

// failed reports a notification given up on: in the job's thread, in the audit log and in the
// metrics. Reporting is best effort; a failure to report is logged.
func (f *Fanout) failed(ctx context.Context, o JobOutcome, sink, channel string, err error) {
	msg := chat.Truncate(f.redact(err.Error()), 500)
	f.log.Warn("notification failed", "job", o.JobID, "sink", sink, "channel", channel, "err", msg)
	f.metrics.NotificationFailed(sink)
	if f.audit != nil {
		if aerr := f.audit.Log(cleanup.NotificationFailed{
			Channel: channel, Error: msg, Job: o.JobID}.Event(f.now())); aerr != nil {
			f.log.Error("audit of a failed notification failed", "job", o.JobID, "err", aerr)
		}
	}
	if f.chat == nil || o.Thread.Channel == "" || o.Thread.TS == "" {
		return
	}
	m := Message{
		Text:  fmt.Sprintf(":warning: Notification failed: %s", channel),
		Lines: []string{fmt.Sprintf(":warning: *Notification failed* (%s): `%s`", channel, msg), "The cleanup itself is not affected."},
	}
	if _, rerr := f.chat.Reply(ctx, o.Thread, m); rerr != nil {
		f.log.Error("cannot report a failed notification in the thread", "job", o.JobID, "err", f.redact(rerr.Error()))
	}
}

func (f *Fanout) redact(s string) string {
	for _, sec := range f.secrets {
		s = strings.ReplaceAll(s, sec, remote.Redacted)
	}
	return s
}

// userIDSet collects the distinct user_ids a run deletes (cleanup.RunSpec.Deleted) for the
// sinks that want them. A map of distinct ids is the least a run can keep to say "these users,
// each once" after the last batch: about 5 MB per 100,000 distinct users of the usual
// "auth0|123456789" shape, strings included (TestUserIDSetMemory), plus 1.6 MB for the sorted
// list handed over at the end; nothing at all when no sink wants them.
type userIDSet struct {
	mu  sync.Mutex
	ids map[string]struct{}
}

func newUserIDSet() *userIDSet { return &userIDSet{ids: map[string]struct{}{}} }

// add records a batch of user_ids; it is cleanup.RunSpec.Deleted.
func (s *userIDSet) add(batch []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range batch {
		s.ids[id] = struct{}{}
	}
}

// sorted returns the distinct user_ids, sorted; nil for a nil set.
func (s *userIDSet) sorted() []string {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.ids))
	for id := range s.ids {
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}
