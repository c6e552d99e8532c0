// Package bot is the chat layer: command routing, who may do what, the approval state machine,
// jobs and their progress, and notifications. Transports (Slack Socket Mode, the console) sit at
// its edge behind chat.Chat, so the core never knows which one it talks to.
package bot

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/platform-team/sessionbot/cleanup"
)

// Defaults for the timing knobs of Deps.
const (
	DefaultProgressInterval = 2 * time.Second
	DefaultSweepInterval    = 15 * time.Second
	DefaultLeaseTTL         = 30 * time.Second
)

// MaxPreviews is how many previews and stats scans a Bot runs at once on each target (SPEC
// §12.7): more would load production Redis for nobody's benefit. Others wait for a slot.
const MaxPreviews = 2

// Deps is everything a Bot needs. Chat, Auditor and Targets (or Engine) are required.
type Deps struct {
	Config Config
	Chat   Chat
	// Targets are the Redis deployments the bot serves, each with its engine, policy, approvers
	// and default channels. Empty: one target, Engine with Policy, named after Engine's target.
	Targets []Target
	// Engine and Policy make the one target when Targets is empty.
	Engine   *cleanup.Engine
	Auditor  *cleanup.Auditor
	Notifier Notifier // nil: no notifications
	// Policy decides approval, backup and the still-valid bound of every request. Its zero value
	// (APPROVAL_THRESHOLD 0) asks for approval before any still-valid session is logged out.
	Policy  cleanup.Policy
	Metrics *Metrics // nil: no metrics
	// State holds requests, approvals, jobs, envelope ids and leases; nil: the engine's target
	// (keys under sessionbot:, never under the session prefix).
	State  redis.UniversalClient
	Backup cleanup.BackupConfig
	// Watch configures the watcher and the schedules; its zero value is invalid: start from
	// DefaultWatchConfig.
	Watch WatchConfig
	// Schedules are the scheduled cleanups (ParseSchedules of Watch.Schedules); nil: none.
	Schedules []Schedule
	Now       func() time.Time // nil: time.Now
	Logger    *slog.Logger     // nil: discard

	// ProgressInterval is the least time between two progress updates of a message (2 s).
	ProgressInterval time.Duration
	// SweepInterval is how often expired requests are looked for (15 s; must be under 1 min).
	SweepInterval time.Duration
	// LeaseTTL bounds how long a crashed replica's job blocks the target (30 s).
	LeaseTTL time.Duration
}

// Bot is the transport-agnostic core: it answers commands and button presses, keeps requests
// and jobs in Redis, and runs cleanups. Transports call HandleCommand and HandleAction after
// they have acknowledged the delivery; slow work continues in goroutines the Bot owns.
type Bot struct {
	cfg       Config
	chat      Chat
	targets   *targets
	audit     *cleanup.Auditor
	notify    Notifier
	metrics   *Metrics
	st        *store
	backup    cleanup.BackupConfig
	now       func() time.Time
	log       *slog.Logger
	access    *access
	watch     WatchConfig
	schedules []Schedule
	replica   string // this process, in the watch lease

	progressEvery time.Duration
	sweepEvery    time.Duration
	leaseTTL      time.Duration

	// ctx is the lifetime of the work goroutines; Close cancels it.
	ctx      context.Context
	stop     context.CancelFunc
	wg       sync.WaitGroup
	previews sync.WaitGroup // previews and stats, a subset of wg
	mu       sync.Mutex
	closed   bool
	jobs     map[string]context.CancelFunc // jobs running in this process
	// localClaims are watch cooldowns kept here while the state Redis refuses writes (OOM).
	localClaims map[string]time.Time
}

// New checks deps and returns a Bot.
func New(d Deps) (*Bot, error) {
	var errs []error
	if d.Chat == nil {
		errs = append(errs, errors.New("bot: Chat is required"))
	}
	if len(d.Targets) == 0 {
		if d.Engine == nil {
			// newTargets validates the policy of the target Engine makes.
			errs = append(errs, errors.New("bot: Engine is required"), d.Policy.Validate())
		} else {
			d.Targets = []Target{{Name: d.Engine.Target().Name(), Engine: d.Engine, Policy: d.Policy}}
		}
	} else if len(d.Targets) > 1 && d.State == nil {
		errs = append(errs, errors.New("bot: State is required with more than one target (STATE_REDIS_URL)"))
	}
	if d.Auditor == nil {
		errs = append(errs, errors.New("bot: Auditor is required"))
	}
	if err := d.Config.Validate(); err != nil {
		errs = append(errs, err)
	}
	named := d.Engine == nil
	// The caller's slice is left alone (serve's readiness check reads it while New runs).
	d.Targets = slices.Clone(d.Targets)
	for i := range d.Targets {
		if d.Targets[i].Engine != nil {
			d.Targets[i].Engine = d.Targets[i].Engine.WithClock(orNow(d.Now))
		}
	}
	if d.Watch == (WatchConfig{}) {
		d.Watch = DefaultWatchConfig()
	}
	if err := d.Watch.Validate(); err != nil {
		errs = append(errs, err)
	}
	ts, err := newTargets(d.Targets, d.Config)
	errs = append(errs, err)
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	ts.named = named
	for _, t := range ts.list {
		d.Metrics.InitTargets(t.Name)
	}
	if d.State == nil {
		d.State = ts.list[0].Engine.Target().Client()
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if d.ProgressInterval <= 0 {
		d.ProgressInterval = DefaultProgressInterval
	}
	if d.SweepInterval <= 0 || d.SweepInterval > time.Minute {
		d.SweepInterval = DefaultSweepInterval
	}
	if d.LeaseTTL <= 0 {
		d.LeaseTTL = DefaultLeaseTTL
	}
	ctx, stop := context.WithCancel(context.Background())
	b := &Bot{
		cfg:           d.Config,
		chat:          d.Chat,
		targets:       ts,
		audit:         d.Auditor,
		notify:        d.Notifier,
		metrics:       d.Metrics,
		st:            newStore(d.State),
		backup:        d.Backup,
		now:           d.Now,
		log:           d.Logger,
		access:        newAccess(d.Config, ts.approvers(), d.Chat, d.Now, d.Logger),
		watch:         d.Watch,
		schedules:     d.Schedules,
		replica:       newReplicaID(),
		progressEvery: d.ProgressInterval,
		sweepEvery:    d.SweepInterval,
		leaseTTL:      d.LeaseTTL,
		ctx:           ctx,
		stop:          stop,
		jobs:          map[string]context.CancelFunc{},
		localClaims:   map[string]time.Time{},
	}
	return b, nil
}

// Run runs the background loops (the expiry sweeper, and the watcher and the schedules when
// configured) until ctx is done.
func (b *Bot) Run(ctx context.Context) error {
	if b.watch.Interval > 0 || len(b.schedules) > 0 {
		for _, t := range b.targets.list {
			b.metrics.watchTarget(t.Name)
		}
	}
	if b.watch.Interval > 0 {
		go b.repeat(ctx, time.Duration(b.watch.Interval), b.Watch)
	}
	if len(b.schedules) > 0 {
		go b.repeat(ctx, b.scheduleEvery(), b.RunSchedules)
	}
	b.repeat(ctx, b.sweepEvery, b.Sweep)
	return nil
}

// repeat calls fn at once, then every d, until ctx ends or the Bot is closed.
func (b *Bot) repeat(ctx context.Context, d time.Duration, fn func(context.Context)) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		fn(ctx)
		select {
		case <-ctx.Done():
			return
		case <-b.ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Wait blocks until every preview and job started so far has finished, and their
// notifications have been sent.
func (b *Bot) Wait() {
	b.wg.Wait()
	if b.notify != nil {
		b.notify.Wait()
	}
}

// Close cancels running previews and jobs (a job ends as cancelled, with its report) and
// waits for them. Commands arriving afterwards are refused.
func (b *Bot) Close() {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	b.stop()
	b.Wait()
}

// spawn runs fn in a goroutine owned by the Bot, with the Bot's lifetime context.
func (b *Bot) spawn(fn func(ctx context.Context)) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return false
	}
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		fn(b.ctx)
	}()
	return true
}

// spawnPreview is spawn for previews and stats, which WaitPreviews waits for. fn runs once one of
// t's MaxPreviews slots is free; when none is, the person who asked (c) is told so first.
func (b *Bot) spawnPreview(ctx context.Context, c Command, t *target, fn func(ctx context.Context)) bool {
	b.previews.Add(1)
	held := false
	select {
	case t.previews <- struct{}{}:
		held = true
	default:
		where := "this target"
		if len(b.targets.list) > 1 {
			where = "target `" + t.Name + "`"
		}
		b.ephemeral(ctx, c.ChannelID, c.UserID, c.ResponseURL, Message{Text: fmt.Sprintf(
			"%d previews are running on %s; yours starts when one finishes.", cap(t.previews), where)})
	}
	ok := b.spawn(func(ctx context.Context) {
		defer b.previews.Done()
		if !held {
			select {
			case t.previews <- struct{}{}:
			case <-ctx.Done():
				return
			}
		}
		defer func() { <-t.previews }()
		fn(ctx)
	})
	if !ok {
		b.previews.Done()
		if held {
			<-t.previews
		}
	}
	return ok
}

// WaitPreviews blocks until the previews started so far have been shown.
func (b *Bot) WaitPreviews() { b.previews.Wait() }

// UserError is an error meant for people: its message is safe to show in chat as is.
type UserError struct{ Msg string }

func (e *UserError) Error() string { return e.Msg }

func userErrorf(format string, args ...any) error {
	return &UserError{Msg: fmt.Sprintf(format, args...)}
}

// safeText turns err into text fit for chat: a UserError or UsageError as userText, anything else as
// "internal error (ref …)" with the full chain logged under that ref (session keys shortened).
func (b *Bot) safeText(what string, err error) string {
	// Both kinds of message quote what the user typed: shown inert.
	var ue *UserError
	if errors.As(err, &ue) {
		return userText(ue.Msg)
	}
	var pe *cleanup.UsageError
	if errors.As(err, &pe) {
		return userText(pe.Msg)
	}
	var r [4]byte
	_, _ = rand.Read(r[:])
	ref := hex.EncodeToString(r[:])
	// Engine and backup errors may name a session key in full; the log gets its short form.
	msg := err.Error()
	for _, t := range b.targets.list {
		msg = cleanup.RedactKeys(msg, t.Engine.Target().Prefix())
	}
	b.log.Error(what, "ref", ref, "err", msg)
	return "internal error (ref " + ref + ")"
}

// record writes one audit line. The error matters only to callers that must not proceed
// without a record (the start of a destructive run); everyone else has it logged and counted.
func (b *Bot) record(ev cleanup.AuditEvent) error {
	if err := b.audit.Log(ev); err != nil {
		b.metrics.AuditError("file")
		b.log.Error("audit write failed", "event", ev.Event, "err", err)
		return err
	}
	return nil
}

// recordOn writes one audit line of work on target: with its Target: field when the bot's targets
// are named (Deps.Targets); see record.
func (b *Bot) recordOn(target string, ev cleanup.AuditEvent) error {
	if b.targets.named {
		ev = ev.On(target)
	}
	return b.record(ev)
}

// orNow is now, or time.Now when nil.
func orNow(now func() time.Time) func() time.Time {
	if now == nil {
		return time.Now
	}
	return now
}

// personText spells a person in audit lines: "U123 (alice)".
func personText(p Person) string {
	if p.Name == "" || p.Name == p.ID {
		return p.ID
	}
	return p.ID + " (" + p.Name + ")"
}

// reply shows m only to the person who typed the command or pressed the button.
func (b *Bot) ephemeral(ctx context.Context, channel, user, responseURL string, m Message) {
	if err := b.chat.Ephemeral(ctx, channel, user, responseURL, m); err != nil {
		b.log.Warn("ephemeral reply failed", "user", user, "err", err)
	}
}

// update replaces a posted message, logging (not failing) when the transport refuses.
func (b *Bot) update(ctx context.Context, ref MessageRef, m Message) {
	if ref.TS == "" {
		return
	}
	if err := b.chat.Update(ctx, ref, m); err != nil {
		b.log.Warn("message update failed", "channel", ref.Channel, "ts", ref.TS, "err", err)
	}
}
