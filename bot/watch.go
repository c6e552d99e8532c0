package bot

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/platform-team/sessionbot/cleanup"
)

// The watcher looks for the runbook's symptoms ("When to Cleanup Sessions": memory rising,
// session keys without a TTL piling up) on a target every WATCH_INTERVAL, and when one crosses
// its threshold posts what it saw in WATCH_CHANNEL with a ready preview, through the same
// preview and request path as a typed command: whether Run needs an approval is cleanup.Policy's
// call, as always. One replica watches a target at a time (it holds the target's watch lease);
// each symptom is posted at most once per target and WATCH_COOLDOWN, across replicas and
// restarts (the cooldown lives in the state Redis).

// WatchConfig holds the watcher's and the schedules' settings (SPEC §13 "Watch and schedules").
type WatchConfig struct {
	// Interval is how often each target is checked; 0 turns the watcher off.
	Interval cleanup.Duration `env:"WATCH_INTERVAL, default=0"`
	// Channel receives symptom posts, scheduled runs' reports and their approval requests (unless
	// APPROVAL_CHANNEL is set); empty: NOTIFY_CHANNEL.
	Channel string `env:"WATCH_CHANNEL"`
	// MemoryPercent is the percentage of maxmemory above which used_memory is a symptom (on the
	// fullest master; never without maxmemory).
	MemoryPercent int `env:"WATCH_MEMORY_PERCENT, default=80"`
	// Orphans is the number of session keys without a TTL above which they are a symptom.
	Orphans int64 `env:"WATCH_ORPHANS, default=1000"`
	// Cooldown is the least time between two posts about one symptom on one target.
	Cooldown cleanup.Duration `env:"WATCH_COOLDOWN, default=6h"`
	// MaxKeys bounds each check: the TTLs of at most this many session keys are read (keys and
	// TTLs only, never values). A check that stops there says so (log and
	// sessionbot_watch_over_budget_total) and judges on what it counted.
	MaxKeys int64 `env:"WATCH_MAX_KEYS, default=200000"`
	// Schedules are the scheduled cleanups: entries separated by ";", each "TARGET: FILTERS every
	// DURATION" (FILTERS as in the slash command, none: expired; DURATION like 6h, 1d or 2w). They
	// run as "schedule" when they need no approval, else post an approval request.
	Schedules string `env:"SCHEDULES"`
}

// Validate reports every problem at once, each naming its variable. SCHEDULES is checked by
// ParseSchedules, which knows the targets.
func (w WatchConfig) Validate() error {
	var errs []error
	if w.Interval < 0 {
		errs = append(errs, fmt.Errorf("WATCH_INTERVAL: %s is negative (0 turns the watcher off)", time.Duration(w.Interval)))
	}
	if w.Channel != "" && !validChannel(w.Channel) {
		errs = append(errs, fmt.Errorf("WATCH_CHANNEL: %q is not a channel id (C…) or #name", w.Channel))
	}
	if w.MemoryPercent < 1 || w.MemoryPercent > 100 {
		errs = append(errs, fmt.Errorf("WATCH_MEMORY_PERCENT: %d is out of range (1 to 100)", w.MemoryPercent))
	}
	if w.Orphans < 0 {
		errs = append(errs, fmt.Errorf("WATCH_ORPHANS: %d is negative", w.Orphans))
	}
	if w.Cooldown <= 0 {
		errs = append(errs, fmt.Errorf("WATCH_COOLDOWN: %s must be positive", time.Duration(w.Cooldown)))
	}
	if w.MaxKeys < 1 {
		errs = append(errs, fmt.Errorf("WATCH_MAX_KEYS: %d must be at least 1", w.MaxKeys))
	}
	return errors.Join(errs...)
}

// DefaultWatchConfig is the watch configuration with every default applied (the watcher off).
func DefaultWatchConfig() WatchConfig {
	return WatchConfig{MemoryPercent: 80, Orphans: 1000, Cooldown: cleanup.Duration(6 * time.Hour), MaxKeys: 200_000}
}

// channel is where the watcher and the schedules post.
func (w WatchConfig) channel(c Config) string {
	if w.Channel != "" {
		return w.Channel
	}
	return c.NotifyChannel
}

// The bot's own requesters: who asks when nobody typed anything. Their ids are no Slack ids, so
// no person can press a button as them (the two-person rule holds: any approver may approve).
var (
	scheduleActor = Person{ID: "schedule", Name: "schedule"}
	watchActor    = Person{ID: "watch", Name: "watch"}
)

// Symptoms the watcher looks for.
const (
	symptomMemory  = "memory"
	symptomOrphans = "orphans"
)

// reading is what one check of a target saw; the last one is kept in the state Redis so that the
// next check (on whichever replica) can tell the trend.
type reading struct {
	At       time.Time `json:"at"`
	Used     int64     `json:"used"`
	Max      int64     `json:"max"`
	Orphans  int64     `json:"orphans"`
	Scanned  int64     `json:"scanned"`
	Complete bool      `json:"complete"`
}

func (r reading) percent() float64 { return cleanup.Memory{Used: r.Used, Max: r.Max}.Percent() }

// Watch checks the target once (when this replica holds its watch lease) and posts the symptoms
// that crossed their thresholds, each with a preview that continues in the background (Wait
// waits for it). Run calls it every WATCH_INTERVAL; it is exported for tests that drive time
// themselves.
func (b *Bot) Watch(ctx context.Context) {
	for _, t := range b.targets.list {
		b.watchTarget(ctx, t)
	}
}

// watchTarget checks one target.
func (b *Bot) watchTarget(ctx context.Context, t *target) {
	name, eng := t.Name, t.Engine
	every := max(time.Duration(b.watch.Interval), time.Second)
	ok, err := b.st.holdLease(ctx, "watch:"+name, b.replica, 2*every)
	if isOOM(err) {
		// The state Redis is full and refuses writes (see symptom): a lease that is still
		// there is honoured; without one, every replica checks, each keeping its own cooldown.
		holder, herr := b.st.leaseHolder(ctx, "watch:"+name)
		ok, err = herr == nil && (holder == "" || holder == b.replica), herr
	}
	if err != nil {
		b.log.Warn("watch lease", "target", name, "err", err)
		return
	}
	if !ok {
		return // another replica watches this target
	}
	cctx, cancel := context.WithTimeout(ctx, max(every, time.Minute))
	defer cancel()
	mem, err := eng.Memory(cctx)
	if err != nil {
		b.log.Warn("watch: memory check failed", "target", name, "err", err)
		return
	}
	orphans, err := eng.CountOrphans(cctx, b.watch.MaxKeys)
	if err != nil {
		b.log.Warn("watch: orphan count failed", "target", name, "err", cleanup.RedactKeys(err.Error(), eng.Target().Prefix()))
		return
	}
	r := reading{At: b.now(), Used: mem.Used, Max: mem.Max, Orphans: orphans.Orphans, Scanned: orphans.Scanned, Complete: orphans.Complete}
	prev, err := b.st.swapReading(ctx, name, r)
	if err != nil {
		b.log.Warn("watch: store reading", "target", name, "err", err)
	}
	b.metrics.watchReading(name, r)
	if !r.Complete {
		b.metrics.watchOverBudget(name)
		b.log.Warn("watch: key budget reached; orphans counted over part of the keys only",
			"target", name, "budget", b.watch.MaxKeys, "scanned", r.Scanned, "orphans_at_least", r.Orphans)
	}
	if r.Max > 0 && r.percent() > float64(b.watch.MemoryPercent) {
		b.symptom(ctx, t, symptomMemory, r, prev, mem.Node)
	}
	if r.Orphans > b.watch.Orphans {
		b.symptom(ctx, t, symptomOrphans, r, prev, "")
	}
}

// symptom posts a symptom of target t, unless it was posted less than WATCH_COOLDOWN ago,
// then previews the cleanup that treats it: --orphans for orphans, expired for memory.
func (b *Bot) symptom(ctx context.Context, t *target, kind string, r reading, prev *reading, node string) {
	name := t.Name
	cooldown := time.Duration(b.watch.Cooldown)
	key := b.st.cooldownKey(name, kind)
	ok, _, err := b.st.claim(ctx, key, r.At, cooldown)
	switch {
	case isOOM(err):
		// The state lives on a target at maxmemory that refuses writes: the very symptom to
		// report. This replica keeps the cooldown until Redis takes writes again.
		b.log.Warn("watch: the state Redis refuses writes (OOM); cooldown kept by this replica only", "target", name, "symptom", kind)
		ok = b.claimLocally(key, r.At, cooldown)
	case err != nil:
		b.log.Warn("watch cooldown", "target", name, "symptom", kind, "err", err)
		return
	}
	if !ok {
		return
	}
	channel := b.watch.channel(b.cfg)
	s := symptomOf(kind, r, prev, b.watch, node)
	_ = b.record(cleanup.SymptomDetected{User: personText(watchActor), Target: name, Symptom: kind,
		Seen: s.seen, Threshold: s.threshold, Trend: s.trend, Channel: channel}.Event(r.At))
	b.metrics.watchSymptom(name, kind)
	if _, err := b.chat.Post(ctx, channel, symptomMessage(name, s, b.watch, r.At.Add(cooldown))); err != nil {
		b.log.Error("watch: post symptom", "target", name, "symptom", kind, "err", err)
		return
	}
	opts := cleanup.Options{Filter: cleanup.Filter{Orphans: kind == symptomOrphans}, Reason: s.reason}
	b.previewFor(ctx, t, watchActor, channel, opts, func(ctx context.Context, c Command, ref MessageRef) error {
		return b.preview(ctx, c, watchActor, t, opts, ref)
	})
}

// isOOM reports whether Redis refused a write because it is at maxmemory (noeviction).
func isOOM(err error) bool {
	var rerr redis.Error
	return errors.As(err, &rerr) && strings.HasPrefix(rerr.Error(), "OOM")
}

// claimLocally is claim kept in this process, for when the state Redis refuses writes.
func (b *Bot) claimLocally(key string, now time.Time, period time.Duration) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if last, ok := b.localClaims[key]; ok && now.Sub(last) < period {
		return false
	}
	b.localClaims[key] = now
	return true
}

// previewFor posts "Previewing…" in channel for who (the watcher or a schedule), then runs fn on
// it in the background once one of the target's preview slots is free. A failure replaces the
// message.
func (b *Bot) previewFor(ctx context.Context, t *target, who Person, channel string, opts cleanup.Options, fn func(context.Context, Command, MessageRef) error) {
	scope := opts.Filter.Normalize().Scope()
	ref, err := b.chat.Post(ctx, channel, previewingMessage(scope, who))
	if err != nil {
		b.log.Error("post preview", "channel", channel, "requester", who.ID, "err", err)
		return
	}
	c := Command{TeamID: b.cfg.TeamID, UserID: who.ID, UserName: who.Name, ChannelID: channel}
	ok := b.spawn(func(ctx context.Context) {
		select {
		case t.previews <- struct{}{}:
		case <-ctx.Done():
			return
		}
		defer func() { <-t.previews }()
		ctx, cancel := context.WithTimeout(ctx, previewTimeout)
		defer cancel()
		if err := fn(ctx, c, ref); err != nil {
			b.update(ctx, ref, Message{Text: "Preview failed", Title: "Preview failed: " + userText(scope),
				Lines: []string{b.safeText("preview", err)}, Context: []string{"Nothing was deleted."}})
		}
	})
	if !ok {
		b.update(ctx, ref, Message{Text: "The bot is shutting down; nothing was done."})
	}
}

// symptomText is a symptom as posted and audited.
type symptomText struct {
	kind, title, seen, threshold, trend, reason string
	lines                                       []string
}

func symptomOf(kind string, r reading, prev *reading, w WatchConfig, node string) symptomText {
	s := symptomText{kind: kind}
	switch kind {
	case symptomMemory:
		where := ""
		if node != "" {
			where = " on master " + node
		}
		s.seen = fmt.Sprintf("%.1f%% of maxmemory", r.percent())
		s.threshold = strconv.Itoa(w.MemoryPercent) + "%"
		s.title = fmt.Sprintf("Redis memory at %.1f%% of maxmemory", r.percent())
		s.reason = fmt.Sprintf("watch: memory at %.1f%% of maxmemory (WATCH_MEMORY_PERCENT %d)", r.percent(), w.MemoryPercent)
		s.lines = []string{fmt.Sprintf("*Memory:* used_memory %s of maxmemory %s%s (*%.1f%%*), above WATCH_MEMORY_PERCENT (%d%%).",
			bytesText(r.Used), bytesText(r.Max), where, r.percent(), w.MemoryPercent)}
		switch {
		case prev != nil && prev.Max > 0:
			s.trend = fmt.Sprintf("%+.1f points since %s (%.1f%% then)", r.percent()-prev.percent(), stamp(prev.At), prev.percent())
		case prev != nil:
			s.trend = fmt.Sprintf("used_memory %s since %s (no maxmemory then)", signedBytes(r.Used-prev.Used), stamp(prev.At))
		}
		s.lines = append(s.lines, "Runbook, Problem 1: memory rising. Deleting expired sessions frees memory and logs nobody out: the preview below shows how much.")
	default:
		s.seen = num(r.Orphans)
		s.threshold = num(w.Orphans)
		s.title = fmt.Sprintf("%s session keys without a TTL", num(r.Orphans))
		s.reason = fmt.Sprintf("watch: %s session keys without a TTL (WATCH_ORPHANS %s)", num(r.Orphans), num(w.Orphans))
		line := fmt.Sprintf("*Session keys without a TTL (TTL -1):* %s of %s scanned, above WATCH_ORPHANS (%s).",
			num(r.Orphans), num(r.Scanned), num(w.Orphans))
		if !r.Complete {
			line = fmt.Sprintf("*Session keys without a TTL (TTL -1):* at least %s, counted over the first %s keys (WATCH_MAX_KEYS), above WATCH_ORPHANS (%s).",
				num(r.Orphans), num(r.Scanned), num(w.Orphans))
		}
		s.lines = []string{line}
		if prev != nil {
			s.trend = fmt.Sprintf("%+d since %s (%s then)", r.Orphans-prev.Orphans, stamp(prev.At), num(prev.Orphans))
		}
		s.lines = append(s.lines, "Runbook, Problem 1: sessions not expiring automatically. They stay until deleted: the `--orphans` preview below shows what Run would delete.")
	}
	if s.trend != "" {
		s.lines = append(s.lines, "*Trend:* "+s.trend+".")
	} else {
		s.lines = append(s.lines, "*Trend:* first check; the next one shows the change.")
	}
	return s
}

// signedBytes is a change of size: "+12.0 KiB", "-3 B".
func signedBytes(n int64) string {
	if n < 0 {
		return "-" + bytesText(-n)
	}
	return "+" + bytesText(n)
}

func symptomMessage(target string, s symptomText, w WatchConfig, next time.Time) Message {
	return Message{
		Text:  "Symptom on " + target + ": " + s.title,
		Title: "Symptom on " + target + ": " + s.title,
		Lines: s.lines,
		Context: []string{fmt.Sprintf("Seen by the watcher (every %s). Not posted again for this symptom on %s before %s (WATCH_COOLDOWN %s).",
			shortDuration(time.Duration(w.Interval)), target, stamp(next), shortDuration(time.Duration(w.Cooldown)))},
	}
}
