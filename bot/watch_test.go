package bot

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/platform-team/sessionbot/bot/chat"
	"github.com/platform-team/sessionbot/cleanup"
)

const opsChannel = "C0OPS0001"

// watching configures the watcher (checks are driven by calling Watch) with a fresh Metrics.
func watching(orphans int64) harnessOption {
	return func(h *harness, d *Deps) {
		h.defaultTarget = true
		d.Watch = DefaultWatchConfig()
		d.Watch.Interval = cleanup.Duration(watchEvery)
		d.Watch.Channel = opsChannel
		d.Watch.Orphans = orphans
		d.Metrics = NewMetrics("test")
	}
}

const watchEvery = 5 * time.Minute

// postsIn returns the current version of every message posted in channel (not in a thread),
// in order.
func (c *coreChat) postsIn(channel string) ([]MessageRef, []Message) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var refs []MessageRef
	var msgs []Message
	for _, p := range c.posts {
		if p.Channel == channel && p.Thread == nil { // channel messages, not thread replies
			refs = append(refs, p.Ref)
			msgs = append(msgs, c.current[p.Ref])
		}
	}
	return refs, msgs
}

// watchOn checks the target once on b and waits for the previews it started.
func (h *harness) watchOn(b *Bot) {
	h.t.Helper()
	b.Watch(context.Background())
	b.Wait()
}

func TestWatchOrphansPostsOncePerCooldownWithRunButton(t *testing.T) {
	h := newHarness(t, watching(5))
	h.seedOthers()
	ids := h.seed(sessionSpec{n: 8, noTTL: true, idPrefix: "orphan"})
	h.seed(sessionSpec{n: 3})

	h.watchOn(h.bot)
	refs, msgs := h.chat.postsIn(opsChannel)
	if len(msgs) != 2 {
		t.Fatalf("posts in %s = %d; want the symptom and its preview:\n%v", opsChannel, len(msgs), msgs)
	}
	symptom := chat.FormatText(msgs[0])
	wantContains(t, "symptom post", symptom, "Symptom on default: 8 session keys without a TTL",
		"8 of 11 scanned, above WATCH_ORPHANS (5)", "Trend:* first check", "WATCH_COOLDOWN 6h")
	preview := msgs[1]
	wantContains(t, "preview", chat.FormatText(preview), "Dry-run preview: orphans", "8 sessions", "sessionbot (watch)",
		"watch: 8 session keys without a TTL (WATCH_ORPHANS 5)")
	run := button(t, preview, "run")
	// The first check has no trend to tell: the line goes from the threshold to the channel.
	if got := h.audited("Symptom Detected"); len(got) != 1 ||
		!strings.HasSuffix(got[0], "| Symptom Detected | User: watch | Target: default | Symptom: orphans | Seen: 8 | Threshold: 5 | Channel: "+opsChannel) {
		t.Errorf("Symptom Detected lines = %q; want one for 8 orphans", got)
	}
	if got := value(t, h.bot.metrics, "sessionbot_watch_symptoms_total", "symptom=orphans,target=default"); got != 1 {
		t.Errorf("sessionbot_watch_symptoms_total{orphans} = %v; want 1", got)
	}
	if got := value(t, h.bot.metrics, "sessionbot_watch_orphans", "target=default"); got != 8 {
		t.Errorf("sessionbot_watch_orphans = %v; want 8", got)
	}

	// The Run button of the watcher's preview works like any preview's.
	h.press(alice, "run", run)
	if got := h.sessionCount(); got != 3 {
		t.Errorf("sessions left = %d; want the 3 with a TTL", got)
	}
	h.assertOthersIntact()
	wantContains(t, "report", chat.FormatText(h.chat.msg(refs[1])), "Cleanup completed")

	// Within the cooldown: checked, not posted again, on this replica or another.
	h.seed(sessionSpec{n: 7, noTTL: true, idPrefix: "again"})
	h.clock.Advance(time.Hour)
	h.watchOn(h.bot)
	other := h.newBot(h.deps())
	h.watchOn(other)
	if _, msgs := h.chat.postsIn(opsChannel); len(msgs) != 2 {
		t.Fatalf("posts in %s = %d after checks within WATCH_COOLDOWN; want still 2", opsChannel, len(msgs))
	}

	// After the cooldown, a symptom still there is posted again, with its trend.
	h.clock.Advance(6 * time.Hour)
	h.watchOn(h.bot)
	_, msgs = h.chat.postsIn(opsChannel)
	if len(msgs) != 4 {
		t.Fatalf("posts in %s = %d after WATCH_COOLDOWN; want 4", opsChannel, len(msgs))
	}
	wantContains(t, "second symptom post", chat.FormatText(msgs[2]), "7 session keys without a TTL", "*Trend:* +0 since", "(7 then)")
	if got := h.audited("Symptom Detected"); len(got) != 2 {
		t.Errorf("Symptom Detected lines = %d; want 2", len(got))
	}
	h.assertNoLeaks(ids...)
}

func TestWatchOnlyTheLeaseHolderChecks(t *testing.T) {
	h := newHarness(t, watching(2))
	h.seed(sessionSpec{n: 3, noTTL: true})
	other := h.newBot(h.deps())
	// Both replicas check at once; one holds the target's watch lease and posts.
	done := make(chan struct{})
	go func() { other.Watch(context.Background()); close(done) }()
	h.bot.Watch(context.Background())
	<-done
	h.bot.Wait()
	other.Wait()
	if _, msgs := h.chat.postsIn(opsChannel); len(msgs) != 2 {
		t.Errorf("posts in %s = %d; want one symptom and one preview", opsChannel, len(msgs))
	}
	if got := h.audited("Symptom Detected"); len(got) != 1 {
		t.Errorf("Symptom Detected lines = %d; want 1", len(got))
	}
}

func TestWatchMemorySymptom(t *testing.T) {
	h := newHarness(t, watching(1000))
	ctx := context.Background()
	h.seed(sessionSpec{n: 4, expired: true})
	h.seed(sessionSpec{n: 2})

	// No maxmemory: no memory symptom, whatever the use.
	h.watchOn(h.bot)
	if n := h.chat.postCount(); n != 0 {
		t.Fatalf("posts = %d without maxmemory; want 0", n)
	}

	info, err := h.rdb.Info(ctx, "memory").Result()
	if err != nil {
		t.Fatal(err)
	}
	used, _ := strconv.ParseInt(infoField(info, "used_memory"), 10, 64)
	limit := used * 100 / 88 // about 88% used
	if err := h.rdb.ConfigSet(ctx, "maxmemory", strconv.FormatInt(limit, 10)).Err(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.rdb.ConfigSet(context.Background(), "maxmemory", "0").Err() })

	h.clock.Advance(watchEvery)
	h.watchOn(h.bot)
	_, msgs := h.chat.postsIn(opsChannel)
	if len(msgs) != 2 {
		t.Fatalf("posts in %s = %d; want the memory symptom and its preview", opsChannel, len(msgs))
	}
	wantContains(t, "symptom post", chat.FormatText(msgs[0]), "Symptom on default: Redis memory at", "of maxmemory",
		"above WATCH_MEMORY_PERCENT (80%)", "*Trend:* used_memory +", "(no maxmemory then)")
	wantContains(t, "preview", chat.FormatText(msgs[1]), "Dry-run preview: expired_only", "4 sessions expired (will be deleted)")
	if got := h.audited("Symptom Detected"); len(got) != 1 || !strings.Contains(got[0], "Symptom: memory") || !strings.Contains(got[0], "Threshold: 80%") {
		t.Errorf("Symptom Detected lines = %q; want one memory line", got)
	}
	if got := value(t, h.bot.metrics, "sessionbot_watch_memory_percent", "target=default"); got < 80 {
		t.Errorf("sessionbot_watch_memory_percent = %v; want above 80", got)
	}
	// The state writes of the check itself must not push Redis over the limit mid-test.
	if err := h.rdb.ConfigSet(ctx, "maxmemory", "0").Err(); err != nil {
		t.Fatal(err)
	}
	h.press(alice, "run", button(t, msgs[1], "run"))
	if got := h.sessionCount(); got != 2 {
		t.Errorf("sessions left = %d; want the 2 still valid", got)
	}
}

func TestWatchOverBudgetSaysSo(t *testing.T) {
	h := newHarness(t, watching(3), func(_ *harness, d *Deps) { d.Watch.MaxKeys = 5 })
	h.seed(sessionSpec{n: 40, noTTL: true})
	h.watchOn(h.bot)
	_, msgs := h.chat.postsIn(opsChannel)
	if len(msgs) != 2 {
		t.Fatalf("posts in %s = %d; want the symptom and its preview", opsChannel, len(msgs))
	}
	wantContains(t, "symptom post", chat.FormatText(msgs[0]), "at least 5, counted over the first 5 keys (WATCH_MAX_KEYS)")
	if got := value(t, h.bot.metrics, "sessionbot_watch_over_budget_total", "target=default"); got != 1 {
		t.Errorf("sessionbot_watch_over_budget_total = %v; want 1", got)
	}
}

func TestWatchConfigValidate(t *testing.T) {
	if err := DefaultWatchConfig().Validate(); err != nil {
		t.Fatalf("DefaultWatchConfig().Validate() = %v", err)
	}
	w := DefaultWatchConfig()
	w.Interval, w.Channel, w.MemoryPercent, w.Orphans, w.Cooldown, w.MaxKeys = -1, "ops", 0, -1, 0, 0
	err := w.Validate()
	if err == nil {
		t.Fatal("Validate() = nil; want every problem")
	}
	for _, v := range []string{"WATCH_INTERVAL", "WATCH_CHANNEL", "WATCH_MEMORY_PERCENT", "WATCH_ORPHANS", "WATCH_COOLDOWN", "WATCH_MAX_KEYS"} {
		if !strings.Contains(err.Error(), v+":") {
			t.Errorf("Validate() = %v; want a line for %s", err, v)
		}
	}
}

// A target at maxmemory with noeviction that also holds the bot's state refuses every write: the
// symptom is still posted, once per cooldown (kept by the replica); the preview fails (its request
// cannot be stored) and says that nothing was deleted.
func TestWatchMemoryFullStateRefusesWrites(t *testing.T) {
	h := newHarness(t, watching(1000))
	ctx := context.Background()
	h.seed(sessionSpec{n: 4, expired: true})
	info, err := h.rdb.Info(ctx, "memory").Result()
	if err != nil {
		t.Fatal(err)
	}
	used, _ := strconv.ParseInt(infoField(info, "used_memory"), 10, 64)
	for _, kv := range [][2]string{{"maxmemory-policy", "noeviction"}, {"maxmemory", strconv.FormatInt(used/2, 10)}} {
		if err := h.rdb.ConfigSet(ctx, kv[0], kv[1]).Err(); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { _ = h.rdb.ConfigSet(context.Background(), "maxmemory", "0").Err() })

	h.watchOn(h.bot)
	h.clock.Advance(watchEvery)
	h.watchOn(h.bot)
	_, msgs := h.chat.postsIn(opsChannel)
	if len(msgs) != 2 {
		t.Fatalf("posts in %s = %d; want one symptom and its (failed) preview", opsChannel, len(msgs))
	}
	wantContains(t, "symptom post", chat.FormatText(msgs[0]), "Redis memory at", "above WATCH_MEMORY_PERCENT (80%)")
	wantContains(t, "preview", chat.FormatText(msgs[1]), "Preview failed", "Nothing was deleted.")
	if got := h.audited("Symptom Detected"); len(got) != 1 {
		t.Errorf("Symptom Detected lines = %d; want 1", len(got))
	}
	if err := h.rdb.ConfigSet(ctx, "maxmemory", "0").Err(); err != nil {
		t.Fatal(err)
	}
	if got := h.sessionCount(); got != 4 {
		t.Errorf("sessions = %d; want 4 (nothing deleted)", got)
	}
}
