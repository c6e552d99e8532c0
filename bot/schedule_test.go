package bot

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/platform-team/sessionbot/bot/chat"
	"github.com/platform-team/sessionbot/cleanup"
)

// scheduling configures SCHEDULES (checks are driven by calling RunSchedules).
func scheduling(t *testing.T, text string) harnessOption {
	t.Helper()
	s, err := ParseSchedules(text, KnownTargets("default"))
	if err != nil {
		t.Fatalf("ParseSchedules(%q): %v", text, err)
	}
	return func(h *harness, d *Deps) {
		h.defaultTarget = true
		d.Watch = DefaultWatchConfig()
		d.Watch.Channel = opsChannel
		d.Watch.Schedules = text
		d.Schedules = s
		d.Metrics = NewMetrics("test")
	}
}

// schedulesOn runs the due schedules on b and waits for their previews and jobs.
func (h *harness) schedulesOn(b *Bot) {
	h.t.Helper()
	b.RunSchedules(context.Background())
	b.Wait()
}

// jobStarts returns the audit lines of jobs started (not previews).
func (h *harness) jobStarts() []string {
	var out []string
	for _, l := range h.audited("Cleanup Started") {
		if strings.Contains(l, "| Job: ") {
			out = append(out, l)
		}
	}
	return out
}

func TestScheduleRunsWithoutAPerson(t *testing.T) {
	h := newHarness(t, scheduling(t, "default: every 1h"))
	h.seedOthers()
	ids := h.seed(sessionSpec{n: 5, expired: true})
	h.seed(sessionSpec{n: 3})

	h.schedulesOn(h.bot)
	if got := h.sessionCount(); got != 3 {
		t.Fatalf("sessions left = %d; want the 3 still valid", got)
	}
	h.assertOthersIntact()
	_, msgs := h.chat.postsIn(opsChannel)
	if len(msgs) != 1 {
		t.Fatalf("posts in %s = %d; want the scheduled run's message", opsChannel, len(msgs))
	}
	wantContains(t, "report", chat.FormatText(msgs[0]), "Cleanup completed", "5")
	starts := h.jobStarts()
	if len(starts) != 1 || !strings.Contains(starts[0], "Cleanup Started | User: schedule | Mode: execute | Filters: expired_only | Reason: scheduled: every 1h") {
		t.Errorf("job Cleanup Started lines = %q; want one by User: schedule", starts)
	}
	if got := h.audited("Request Created"); len(got) != 1 || !strings.Contains(got[0], "User: schedule") {
		t.Errorf("Request Created lines = %q; want one by User: schedule", got)
	}
	if got := h.audited("Cleanup Completed"); len(got) != 1 {
		t.Errorf("Cleanup Completed lines = %q; want 1", got)
	}
	if got := value(t, h.bot.metrics, "sessionbot_scheduled_runs_total", "result=started,target=default"); got != 1 {
		t.Errorf("sessionbot_scheduled_runs_total{started} = %v; want 1", got)
	}

	// Not due again before its period; due after it (nothing left to delete then).
	h.clock.Advance(59 * time.Minute)
	h.schedulesOn(h.bot)
	if n := h.chat.postCount(); n != 1 {
		t.Fatalf("posts = %d within the period; want still 1", n)
	}
	h.clock.Advance(time.Minute)
	h.schedulesOn(h.bot)
	_, msgs = h.chat.postsIn(opsChannel)
	if len(msgs) != 2 {
		t.Fatalf("posts in %s = %d after the period; want 2", opsChannel, len(msgs))
	}
	wantContains(t, "second run", chat.FormatText(msgs[1]), "nothing to delete")
	if got := len(h.jobStarts()); got != 1 {
		t.Errorf("jobs started = %d; want still 1 (nothing matched)", got)
	}
	h.assertNoLeaks(ids...)
}

func TestScheduleOverThresholdPostsApprovalRequest(t *testing.T) {
	h := newHarness(t, scheduling(t, "default: --auth-method basic_auth every 1d"),
		func(_ *harness, d *Deps) { d.Policy = cleanup.Policy{Threshold: 2} })
	h.seed(sessionSpec{n: 5, authMethod: "basic_auth"})
	h.seed(sessionSpec{n: 2})

	h.schedulesOn(h.bot)
	if got := h.sessionCount(); got != 7 {
		t.Fatalf("sessions = %d; want all 7 (the run needs approval)", got)
	}
	if got := h.jobStarts(); len(got) != 0 {
		t.Fatalf("jobs started = %q; want none before approval", got)
	}
	_, msgs := h.chat.postsIn(opsChannel)
	if len(msgs) != 1 {
		t.Fatalf("posts in %s = %d; want the approval request", opsChannel, len(msgs))
	}
	wantContains(t, "approval request", chat.FormatText(msgs[0]), "Approval needed", "sessionbot (schedule)")
	if ids := actionIDs(msgs[0]); strings.Contains(strings.Join(ids, ","), "run") {
		t.Errorf("approval request buttons = %v; want no run", ids)
	}

	h.press(bob, "approve", button(t, msgs[0], "approve"))
	if got := h.sessionCount(); got != 2 {
		t.Errorf("sessions left = %d after approval; want 2", got)
	}
	if got := h.audited("Approved"); len(got) != 1 || !strings.Contains(got[0], "Requester: schedule") {
		t.Errorf("Approved lines = %q; want bob's, of the schedule's request", got)
	}
}

func TestScheduleRunsOnceAcrossReplicas(t *testing.T) {
	h := newHarness(t, scheduling(t, "default: every 6h"))
	h.seed(sessionSpec{n: 20, expired: true})
	replicas := []*Bot{h.bot, h.newBot(h.deps()), h.newBot(h.deps())}
	var wg sync.WaitGroup
	for _, b := range replicas {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b.RunSchedules(context.Background())
		}()
	}
	wg.Wait()
	for _, b := range replicas {
		b.Wait()
	}
	if got := h.jobStarts(); len(got) != 1 {
		t.Errorf("jobs started = %d (%q); want exactly 1 across 3 replicas", len(got), got)
	}
	if got := h.audited("Cleanup Started"); len(got) != 2 {
		t.Errorf("Cleanup Started lines = %d; want one preview and one job", len(got))
	}
	if got := h.sessionCount(); got != 0 {
		t.Errorf("sessions left = %d; want 0", got)
	}
}

func TestMissedScheduleRunsOnceAtStart(t *testing.T) {
	h := newHarness(t, scheduling(t, "default: every 1h"))
	h.seed(sessionSpec{n: 3, expired: true, idPrefix: "first"})
	h.schedulesOn(h.bot)
	h.bot.Close()

	// Every replica down for five periods; then two come back.
	h.clock.Advance(5 * time.Hour)
	h.seed(sessionSpec{n: 4, expired: true, idPrefix: "second"})
	a, b := h.newBot(h.deps()), h.newBot(h.deps())
	for range 3 {
		h.schedulesOn(a)
		h.schedulesOn(b)
	}
	if got := h.jobStarts(); len(got) != 2 {
		t.Errorf("jobs started = %d (%q); want 2: the first run, and the missed one once", len(got), got)
	}
	if got := h.sessionCount(); got != 0 {
		t.Errorf("sessions left = %d; want 0", got)
	}
}

func TestScheduleSkippedWhileAJobRuns(t *testing.T) {
	h := newHarness(t, scheduling(t, "default: every 1h"))
	h.seed(sessionSpec{n: 3, expired: true})
	ctx := context.Background()
	const running = "job-20261201-0badcafe"
	if ok, _, err := h.bot.st.acquireLease(ctx, cleanup.DefaultTargetName, running, time.Minute); err != nil || !ok {
		t.Fatalf("acquireLease = %v, %v", ok, err)
	}
	h.schedulesOn(h.bot)
	if got := h.sessionCount(); got != 3 {
		t.Errorf("sessions = %d; want 3 (nothing runs beside a job)", got)
	}
	_, msgs := h.chat.postsIn(opsChannel)
	if len(msgs) != 1 {
		t.Fatalf("posts in %s = %d; want the skip notice", opsChannel, len(msgs))
	}
	wantContains(t, "skip notice", chat.FormatText(msgs[0]), "Scheduled cleanup skipped", running, "Next run due")
	if got := h.audited("Refused"); len(got) != 1 ||
		!strings.Contains(got[0], "User: schedule | Action: scheduled cleanup expired_only | Why: another cleanup is running: "+running) {
		t.Errorf("Refused lines = %q; want the skipped occurrence", got)
	}
	if got := h.jobStarts(); len(got) != 0 {
		t.Errorf("jobs started = %q; want none", got)
	}
}

func TestParseSchedules(t *testing.T) {
	got, err := ParseSchedules(` default: every 6h ; default: --orphans --reason "ttl bug" every 1d;;default: --auth-method basic_auth --older-than 7d every 2w `, KnownTargets("default"))
	if err != nil {
		t.Fatalf("ParseSchedules: %v", err)
	}
	want := []struct {
		scope, reason string
		every         time.Duration
	}{
		{"expired_only", "", 6 * time.Hour},
		{"orphans", "ttl bug", 24 * time.Hour},
		{"auth_method=basic_auth,older_than=7d", "", 14 * 24 * time.Hour},
	}
	if len(got) != len(want) {
		t.Fatalf("ParseSchedules = %d schedules; want %d", len(got), len(want))
	}
	for i, w := range want {
		if g := got[i]; g.Target != "default" || g.scope() != w.scope || g.Options.Reason != w.reason || g.Every != w.every {
			t.Errorf("schedule %d = %s %q %q every %s; want default %q %q every %s", i, g.Target, g.scope(), g.Options.Reason, g.Every, w.scope, w.reason, w.every)
		}
	}

	for _, tt := range []struct{ in, want string }{
		{"prod-us: every 6h", `SCHEDULES: "prod-us: every 6h": unknown target "prod-us" (known: default)`},
		{"default: --bogus every 6h", `SCHEDULES: "default: --bogus every 6h": unknown flag`},
		{"default: every six hours", `SCHEDULES: "default: every six hours": no "every DURATION" at the end`},
		{"default: every 6x", `SCHEDULES: "default: every 6x": "6x" is not a duration like 30m, 12h, 7d or 2w`},
		{"default: --orphans", `no "every DURATION" at the end`},
		{"every 6h", `want "TARGET: FILTERS every DURATION"`},
		{"default: --all --reason x every 1d", "a mass logout (--all) cannot be scheduled"},
		{"default: --dry-run every 1d", "only available on the command line"},
		{"default: every 6h; default: --expired every 6h", "the same cleanup as"},
	} {
		_, err := ParseSchedules(tt.in, KnownTargets("default"))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseSchedules(%q) = %v; want an error containing %q", tt.in, err, tt.want)
		}
	}
	// Every bad entry is reported, one line each.
	_, err = ParseSchedules("prod: every 1h; default: every 1y", KnownTargets("default"))
	if err == nil || strings.Count(err.Error(), "\n") != 1 {
		t.Errorf("ParseSchedules(two bad entries) = %v; want two lines", err)
	}
}

func TestHelpDescribesWatchAndSchedules(t *testing.T) {
	h := newHarness(t, scheduling(t, "default: every 6h; default: --orphans every 1d"),
		func(_ *harness, d *Deps) { d.Watch.Interval = cleanup.Duration(5 * time.Minute) })
	h.command(alice, "help")
	h.chat.mu.Lock()
	help := chat.FormatText(h.chat.ephemerals[len(h.chat.ephemerals)-1].Msg)
	h.chat.mu.Unlock()
	wantContains(t, "help", help, "*Watching and schedules*",
		"Watcher: every 5m, posts in #"+opsChannel+" when Redis memory passes 80% of maxmemory or more than 1,000 session keys have no TTL",
		"Schedules: `expired_only` on default every 6h; `orphans` on default every 24h.", "runs as `schedule`")

	off := newHarness(t)
	off.command(alice, "help")
	off.chat.mu.Lock()
	help = chat.FormatText(off.chat.ephemerals[len(off.chat.ephemerals)-1].Msg)
	off.chat.mu.Unlock()
	wantContains(t, "help without watch", help, "Watcher: off (WATCH_INTERVAL).", "Schedules: none (SCHEDULES).")
}
