package bot

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/platform-team/sessionbot/cleanup"
)

// Scheduled cleanups (SPEC §13 "Watch and schedules"). Each occurrence is claimed in the state
// Redis by one replica (claimScript): exactly one replica runs it, and a schedule missed while
// no replica ran runs once when one is back, not once per missed period. A run goes through the
// same preview and cleanup.Policy as a typed command: when the policy wants no approval it
// starts as if its requester had pressed Run, as "schedule"; otherwise its approval request is
// posted and waits for approvers like any other. A schedule never starts a second job on a
// target: the job lease decides, and an occurrence that finds a job running is skipped, audited
// and posted.

// KnownTargets is the target lookup ParseSchedules takes: only the names given exist.
func KnownTargets(names ...string) func(string) error {
	return func(name string) error {
		if slices.Contains(names, name) {
			return nil
		}
		return fmt.Errorf("unknown target %q (known: %s)", name, strings.Join(names, ", "))
	}
}

// Schedule is one entry of SCHEDULES.
type Schedule struct {
	Target  string
	Options cleanup.Options // what runs: filters as in the slash command, --reason, --backup
	Every   time.Duration
	Entry   string // as configured, for messages and logs
}

// scope is what the schedule deletes, as audit lines spell it.
func (s Schedule) scope() string { return s.Options.Filter.Normalize().Scope() }

// ParseSchedules parses SCHEDULES: entries separated by ";", each "TARGET: FILTERS every
// DURATION" with FILTERS as the slash command takes them (none: expired) and DURATION as
// 6h, 1d or 2w. target says whether a target exists (SingleTarget, or the registry of several).
// Every bad entry is one line of the error, naming the variable and the entry.
func ParseSchedules(text string, target func(name string) error) ([]Schedule, error) {
	var (
		out  []Schedule
		errs []error
		seen = map[string]string{}
	)
	for raw := range strings.SplitSeq(text, ";") {
		entry := strings.Join(strings.Fields(raw), " ")
		if entry == "" {
			continue
		}
		s, err := parseSchedule(entry, target)
		if err != nil {
			errs = append(errs, fmt.Errorf("SCHEDULES: %q: %w", short(entry, 80), err))
			continue
		}
		key := s.Target + " " + s.scope() + " " + s.Every.String()
		if prev, dup := seen[key]; dup {
			errs = append(errs, fmt.Errorf("SCHEDULES: %q: the same cleanup as %q", short(entry, 80), short(prev, 80)))
			continue
		}
		seen[key] = entry
		out = append(out, s)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}

func parseSchedule(entry string, target func(string) error) (Schedule, error) {
	name, rest, ok := strings.Cut(entry, ":")
	if !ok {
		return Schedule{}, errors.New(`want "TARGET: FILTERS every DURATION", e.g. "default: --orphans every 24h"`)
	}
	s := Schedule{Target: strings.TrimSpace(name), Entry: entry}
	if err := target(s.Target); err != nil {
		return Schedule{}, err
	}
	args, err := cleanup.SplitArgs(rest)
	if err != nil {
		return Schedule{}, err
	}
	if len(args) < 2 || args[len(args)-2] != "every" {
		return Schedule{}, errors.New(`no "every DURATION" at the end (e.g. every 6h, every 1d)`)
	}
	var every cleanup.Duration
	if err := every.EnvDecode(args[len(args)-1]); err != nil {
		return Schedule{}, err
	}
	if s.Every = time.Duration(every); s.Every <= 0 {
		return Schedule{}, fmt.Errorf("every %s: the period must be positive", args[len(args)-1])
	}
	if s.Options, err = cleanup.ParseArgs(args[:len(args)-2], false); err != nil {
		return Schedule{}, err
	}
	if s.Options.Filter.All {
		return Schedule{}, errors.New("a mass logout (--all) cannot be scheduled")
	}
	return s, nil
}

// scheduleEvery is how often due schedules are looked for: as often as the shortest period
// needs (at least every SweepInterval, at most every second).
func (b *Bot) scheduleEvery() time.Duration {
	every := b.sweepEvery
	for _, s := range b.schedules {
		every = min(every, s.Every)
	}
	return max(every, time.Second)
}

// RunSchedules starts every schedule that is due and that this replica claims; their previews
// and jobs continue in the background (Wait waits for them). Run calls it periodically; it is
// exported for tests that drive time themselves.
func (b *Bot) RunSchedules(ctx context.Context) {
	for _, s := range b.schedules {
		t, err := b.targets.of(s.Target)
		if err != nil {
			b.log.Error("schedule", "schedule", s.Entry, "err", err)
			continue
		}
		b.runSchedule(ctx, s, t)
	}
}

func (b *Bot) scheduleKey(s Schedule) string {
	return b.st.prefix + "schedule:" + s.Target + ":" + s.scope() + ":" + s.Every.String()
}

// runSchedule runs one occurrence of s on t when it is due and this replica claims it.
func (b *Bot) runSchedule(ctx context.Context, s Schedule, t *target) {
	now := b.now()
	ok, last, err := b.st.claim(ctx, b.scheduleKey(s), now, s.Every)
	if err != nil {
		b.log.Warn("schedule", "schedule", s.Entry, "err", err)
		return
	}
	if !ok {
		return
	}
	if !last.IsZero() && now.Sub(last) >= 2*s.Every {
		b.log.Info("schedule missed while no replica ran; running it once now", "schedule", s.Entry, "last", last)
	}
	channel := b.watch.channel(b.cfg)
	if holder, err := b.st.leaseHolder(ctx, t.Name); err == nil && holder != "" {
		b.scheduleSkipped(ctx, s, channel, nil, holder)
		return
	}
	opts := s.Options
	if opts.Reason == "" {
		opts.Reason = "scheduled: every " + shortDuration(s.Every)
	}
	b.previewFor(ctx, t, scheduleActor, channel, opts, func(ctx context.Context, c Command, ref MessageRef) error {
		return b.scheduledRun(ctx, s, c, t, opts, ref)
	})
}

// scheduledRun previews s's cleanup on ref and, as cleanup.Policy decides, runs it, posts its
// approval request, or says that nothing matched.
func (b *Bot) scheduledRun(ctx context.Context, s Schedule, c Command, t *target, opts cleanup.Options, ref MessageRef) error {
	req, err := b.plan(ctx, c, scheduleActor, t, opts, ref)
	if err != nil {
		b.metrics.scheduledRun(s.Target, "failed")
		return err
	}
	switch {
	case req.Plan.Matched == 0 && req.Plan.Repaired == 0:
		b.metrics.scheduledRun(s.Target, "nothing")
		b.update(ctx, ref, nothingToDoMessage(req))
		return nil
	case req.NeedsApproval:
		b.metrics.scheduledRun(s.Target, "approval")
		return b.publish(ctx, req)
	}
	if err := b.storeRequest(ctx, req); err != nil {
		b.metrics.scheduledRun(s.Target, "failed")
		return err
	}
	// The schedule presses Run: the same transition and job start as a person's press.
	d := Decision{Do: doRun, By: scheduleActor, Start: true}
	moved, _, err := b.st.transition(ctx, req.ID, StatusPending, StatusApproved, decisionFields(d.By, b.now())...)
	if err != nil || !moved {
		b.metrics.scheduledRun(s.Target, "failed")
		return errors.Join(err, fmt.Errorf("scheduled request %s changed before it could start", req.ID))
	}
	req.Status, req.DecidedBy = StatusApproved, &d.By
	err = b.startJob(ctx, req, d, nil)
	var r *refusal
	switch {
	case errors.As(err, &r):
		// A job started on the target since the check: startJob put the request back to
		// pending; nobody is going to press its Run.
		if _, _, err := b.st.transition(ctx, req.ID, StatusPending, StatusCancelled, decisionFields(d.By, b.now())...); err != nil {
			b.log.Warn("cancel skipped scheduled request", "request", req.ID, "err", err)
		}
		holder := strings.TrimPrefix(r.why, "another cleanup is running: ")
		b.scheduleSkipped(ctx, s, c.ChannelID, &ref, holder)
		return nil
	case err != nil:
		b.metrics.scheduledRun(s.Target, "failed")
		return err
	}
	b.metrics.scheduledRun(s.Target, "started")
	return nil
}

// scheduleSkipped audits and posts (on ref, when the occurrence already has a message) that an
// occurrence of s did not run because job holder runs on its target.
func (b *Bot) scheduleSkipped(ctx context.Context, s Schedule, channel string, ref *MessageRef, holder string) {
	now := b.now()
	b.metrics.scheduledRun(s.Target, "skipped")
	_ = b.record(refusedEvent(now, scheduleActor, "scheduled cleanup "+s.scope(), "", "another cleanup is running: "+holder))
	m := Message{
		Text:  "Scheduled cleanup skipped on " + s.Target + ": " + holder + " is running",
		Title: "Scheduled cleanup skipped: " + userText(s.scope()) + " on " + s.Target,
		Lines: []string{fmt.Sprintf("Job %s is running on %s, and a target runs one job at a time. Nothing was done by this schedule.", holder, s.Target)},
		Context: []string{fmt.Sprintf("Schedule `%s`. Next run due %s.", userText(s.Entry), stamp(now.Add(s.Every))),
			fmt.Sprintf("`%s status %s` shows the running job.", b.cfg.Command, holder)},
	}
	if ref != nil {
		b.update(ctx, *ref, m)
		return
	}
	if _, err := b.chat.Post(ctx, channel, m); err != nil {
		b.log.Error("post skipped schedule", "schedule", s.Entry, "err", err)
	}
}

// watchHelp is help's paragraph on what the bot does without anyone typing: the watcher and the
// schedules, as configured.
func watchHelp(cfg Config, w WatchConfig, schedules []Schedule) string {
	channel := channelText(w.channel(cfg))
	lines := []string{"*Watching and schedules*"}
	if w.Interval > 0 {
		lines = append(lines, fmt.Sprintf("Watcher: every %s, posts in %s when Redis memory passes %d%% of maxmemory or more than %s session keys have no TTL, with a ready preview and its buttons; at most once per symptom every %s.",
			shortDuration(time.Duration(w.Interval)), channel, w.MemoryPercent, num(w.Orphans), shortDuration(time.Duration(w.Cooldown))))
	} else {
		lines = append(lines, "Watcher: off (WATCH_INTERVAL).")
	}
	if len(schedules) == 0 {
		lines = append(lines, "Schedules: none (SCHEDULES).")
		return strings.Join(lines, "\n")
	}
	var parts []string
	for _, s := range schedules {
		parts = append(parts, fmt.Sprintf("`%s` on %s every %s", userText(s.scope()), s.Target, shortDuration(s.Every)))
	}
	lines = append(lines, "Schedules: "+strings.Join(parts, "; ")+". Each runs as `schedule` and reports in "+channel+
		" when it needs no approval; otherwise its approval request is posted there.")
	return strings.Join(lines, "\n")
}
