package bot

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/platform-team/sessionbot/bot/pdtest"
	"github.com/platform-team/sessionbot/bot/remote"
	"github.com/platform-team/sessionbot/bot/slack"
	"github.com/platform-team/sessionbot/bot/slacktest"
	"github.com/platform-team/sessionbot/cleanup"
)

const testRoutingKey = "R0UTINGKEY0123456789abcdef012345"

type notifyFixture struct {
	slack *slacktest.Server
	pd    *pdtest.Server
	chat  *slack.Chat
	audit *bytes.Buffer
	n     *Fanout
	ops   string // the job's channel id
}

func newNotifyFixture(t *testing.T, mutate func(*Config)) *notifyFixture {
	t.Helper()
	f := &notifyFixture{slack: slacktest.New(t), pd: pdtest.New(t), audit: &bytes.Buffer{}}
	sc := slack.Config{AppToken: remote.Secret(f.slack.AppToken()), BotToken: remote.Secret(f.slack.BotToken()), APIURL: f.slack.APIURL()}
	cfg := DefaultConfig()
	if mutate != nil {
		mutate(&cfg)
	}
	f.chat = slack.NewChat(sc, slack.WithChatLogger(quietLogger()), slack.WithChatRetry(4, 5*time.Second, 5*time.Millisecond))
	auditor, err := cleanup.NewAuditor(cleanup.AuditConfig{}, f.audit)
	if err != nil {
		t.Fatal(err)
	}
	pd := pagerDutySink(t, testRoutingKey, f.pd.URL(), testRetry(4, 5*time.Second, 5*time.Millisecond))
	f.n = NewFanout(f.chat, append(SlackSinks(cfg, f.chat), pd), WithFanoutAudit(auditor), WithFanoutLogger(quietLogger()),
		WithFanoutSecrets(sc.AppToken, sc.BotToken, testRoutingKey))
	f.ops = f.slack.ChannelID("#sre-ops")
	return f
}

// outcome is a finished job whose message was posted in #sre-ops.
func (f *notifyFixture) outcome(t *testing.T, mode, scope string) JobOutcome {
	t.Helper()
	ref, err := f.chat.Post(context.Background(), "#sre-ops", Message{Text: "job J1", Lines: []string{"report"}})
	if err != nil {
		t.Fatal(err)
	}
	return JobOutcome{
		JobID: "J1", Mode: mode, Scope: scope, Reason: "session secret rotated",
		Requester: Person{ID: "U0ALICE", Name: "alice"}, Approvals: []Person{{ID: "U0BOB", Name: "bob"}}, Executor: Person{ID: "U0BOB", Name: "bob"},
		Report: cleanup.Report{Mode: mode, Scanned: 1500, Matched: 1500, Deleted: 1500, DeletedValid: 1400,
			Start: time.Date(2025, 11, 26, 10, 0, 0, 0, time.UTC), End: time.Date(2025, 11, 26, 10, 0, 3, 0, time.UTC)},
		Target: "127.0.0.1:6379", Thread: ref, At: time.Date(2025, 11, 26, 10, 0, 3, 0, time.UTC),
	}
}

func TestAnnouncerMassLogoutPostsRunbookTemplateAndPagerDutyChange(t *testing.T) {
	f := newNotifyFixture(t, func(c *Config) { c.UserNotifyChannel = "#general" })
	o := f.outcome(t, "all", "all")
	f.n.JobFinished(context.Background(), o)
	f.n.Wait()

	msgs := f.slack.Messages("#platform-incidents")
	if len(msgs) != 2 {
		t.Fatalf("#platform-incidents has %d messages; want the template and the summary in its thread", len(msgs))
	}
	tmpl := string(msgs[0].Blocks)
	for _, want := range []string{":warning: *Mass Logout Executed*", "*Timestamp:* 2025-11-26T10:00:03Z",
		"*Affected Users:* All active users (1,500 sessions invalidated)", "*Reason:* session secret rotated",
		"*Action Required:*", "All users must re-authenticate", "*Impact:*", "*Support:*", "platform-team@company.com"} {
		if !strings.Contains(tmpl, jsonString(want)) {
			t.Errorf("template lacks %q; blocks: %s", want, tmpl)
		}
	}
	if msgs[1].ThreadTS != msgs[0].TS || !strings.Contains(string(msgs[1].Blocks), "Mass logout completed") {
		t.Errorf("summary = %+v; want it in the template's thread", msgs[1])
	}
	notice := f.slack.Messages("#general")
	if len(notice) != 1 || !strings.Contains(notice[0].Text, "sign in again") || strings.Contains(string(notice[0].Blocks), "secret rotated") {
		t.Errorf("#general = %+v; want one sign-in notice without the internal reason", notice)
	}

	ch := f.pd.ChangeEvents()
	if len(ch) != 1 {
		t.Fatalf("change events = %d; want 1", len(ch))
	}
	p := ch[0].Payload
	if !strings.Contains(p.Summary, "mass logout") || !strings.Contains(p.Summary, "1,500") || !strings.Contains(p.Summary, "session secret rotated") {
		t.Errorf("summary = %q; want mode, counts and reason", p.Summary)
	}
	if p.CustomDetails["requester"] != "U0ALICE (alice)" || p.CustomDetails["approver"] != "U0BOB (bob)" {
		t.Errorf("custom_details = %v; want requester and approver", p.CustomDetails)
	}
	wantLink := "https://slack.com/archives/" + f.ops + "/p" + strings.ReplaceAll(o.Thread.TS, ".", "")
	if len(ch[0].Links) != 1 || ch[0].Links[0].Href != wantLink {
		t.Errorf("links = %+v; want %s", ch[0].Links, wantLink)
	}
	// A success resolves any alert a previous failure left open (and nothing else).
	if ev := f.pd.Events(); len(ev) != 1 || ev[0].Action != "resolve" || ev[0].DedupKey != "sessionbot/127.0.0.1:6379/cleanup-failed" {
		t.Errorf("alert events = %+v; want one resolve of the target's dedup key", ev)
	}
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return strings.Trim(string(b), `"`)
}

func TestAnnouncerFailedRunTriggersAlertAndNextSuccessResolvesIt(t *testing.T) {
	f := newNotifyFixture(t, nil)
	o := f.outcome(t, "all", "all")
	o.Failed, o.Partial, o.Error = true, true, "redis: connection refused"
	o.Report.Deleted, o.Report.Stopped = 700, "error"
	f.n.JobFinished(context.Background(), o)
	f.n.Wait()

	key := "sessionbot/" + o.Target + "/cleanup-failed"
	ev := f.pd.Events()
	if len(ev) != 1 || ev[0].Action != "trigger" || ev[0].DedupKey != key || ev[0].Payload.Severity != "critical" {
		t.Fatalf("alert events = %+v; want one critical trigger with dedup key %s", ev, key)
	}
	if s := ev[0].Payload.Summary; !strings.Contains(s, "FAILED") || !strings.Contains(s, "700") {
		t.Errorf("alert summary = %q", s)
	}
	if got := f.pd.AlertStatus(testRoutingKey, key); got != "triggered" {
		t.Errorf("alert status = %q; want triggered", got)
	}
	tmpl := f.slack.Messages("#platform-incidents")
	if len(tmpl) == 0 || !strings.Contains(string(tmpl[0].Blocks), "Part of the active users") {
		t.Errorf("a mass logout that stopped part-way still tells people who was logged out; got %+v", tmpl)
	}

	ok := f.outcome(t, "execute", "expired_only")
	ok.Approvals = nil
	f.n.JobFinished(context.Background(), ok)
	f.n.Wait()
	if got := f.pd.AlertStatus(testRoutingKey, key); got != "resolved" {
		t.Errorf("alert status after a successful run = %q; want resolved", got)
	}
	if n := len(f.pd.ChangeEvents()); n != 2 {
		t.Errorf("change events = %d; want one per executed run (2)", n)
	}
}

func TestAnnouncerFailedNonMassRunIsAnErrorAlert(t *testing.T) {
	f := newNotifyFixture(t, nil)
	o := f.outcome(t, "execute", "auth_method=basic_auth")
	o.Failed, o.Error, o.Report.Deleted = true, "backup: disk full", 0
	f.n.JobFinished(context.Background(), o)
	f.n.Wait()
	if ev := f.pd.Events(); len(ev) != 1 || ev[0].Payload.Severity != "error" {
		t.Fatalf("alert events = %+v; want one error-severity trigger", ev)
	}
	if msgs := f.slack.Messages("#platform-incidents"); len(msgs) != 1 || strings.Contains(string(msgs[0].Blocks), "Mass Logout") ||
		!strings.Contains(string(msgs[0].Blocks), "cleanup failed") {
		t.Errorf("#platform-incidents = %+v; want one failure summary", msgs)
	}
}

func TestAnnouncerPagerDutyRetries5xxAnd429ButNot400(t *testing.T) {
	f := newNotifyFixture(t, nil)
	f.pd.FailNext(pdtest.ChangePath, 1, http.StatusInternalServerError)
	f.pd.FailNext(pdtest.ChangePath, 1, http.StatusTooManyRequests)
	o := f.outcome(t, "execute", "expired_only")
	f.n.JobFinished(context.Background(), o)
	f.n.Wait()
	if n := len(f.pd.Requests(pdtest.ChangePath)); n != 3 {
		t.Errorf("change requests = %d; want 3 (500, 429, then accepted)", n)
	}
	if n := len(f.pd.ChangeEvents()); n != 1 {
		t.Errorf("change events = %d; want 1", n)
	}
	if strings.Contains(f.audit.String(), cleanup.EventNotificationFailed) {
		t.Errorf("retried-then-accepted event was reported as failed: %s", f.audit)
	}

	f.pd.FailNext(pdtest.ChangePath, 1, http.StatusBadRequest)
	f.n.JobFinished(context.Background(), o)
	f.n.Wait()
	if n := len(f.pd.Requests(pdtest.ChangePath)); n != 4 {
		t.Errorf("change requests = %d; want 4 (a 400 is not retried)", n)
	}
}

func TestAnnouncerReportsFailuresInThreadAuditAndNeverShowsSecrets(t *testing.T) {
	f := newNotifyFixture(t, nil)
	o := f.outcome(t, "execute", "expired_only")
	f.pd.FailNext(pdtest.ChangePath, 10, http.StatusServiceUnavailable)
	f.slack.FailNextError("chat.postMessage", 1, "channel_not_found") // the summary
	f.n.JobFinished(context.Background(), o)
	f.n.Wait()

	var replies []string
	for _, m := range f.slack.Messages(o.Thread.Channel) {
		if m.ThreadTS == o.Thread.TS {
			replies = append(replies, string(m.Blocks))
		}
	}
	// The sinks run side by side: the failures are reported in whichever order they happen.
	sort.Slice(replies, func(i, j int) bool { return strings.Contains(replies[i], "#platform-incidents") })
	if len(replies) != 2 || !strings.Contains(replies[0], "#platform-incidents") || !strings.Contains(replies[0], "channel_not_found") ||
		!strings.Contains(replies[1], "pagerduty") {
		t.Errorf("thread replies = %q; want one per failed notification", replies)
	}
	audit := f.audit.String()
	for _, want := range []string{"Notification Failed | Channel: #platform-incidents | Error: slack chat.postMessage: channel_not_found",
		"Notification Failed | Channel: pagerduty | Error: pagerduty change event: retries exhausted"} {
		if !strings.Contains(audit, want) {
			t.Errorf("audit lacks %q:\n%s", want, audit)
		}
	}
	for _, secret := range []string{testRoutingKey, f.slack.BotToken(), f.slack.AppToken()} {
		if strings.Contains(audit, secret) {
			t.Errorf("audit shows a secret")
		}
	}
	for _, b := range f.slack.AllRequestBodies() {
		if bytes.Contains(b, []byte(testRoutingKey)) {
			t.Errorf("a Slack request carries the PagerDuty routing key: %s", b)
		}
	}
}

func TestAnnouncerDMsAffectedUsersWithoutPostingTheirEmail(t *testing.T) {
	f := newNotifyFixture(t, func(c *Config) { c.NotifyAffectedUsers = true })
	f.slack.AddUser("U0CAROL", "carol", "carol@example.com")
	o := f.outcome(t, "execute", "user_id=auth0|123")
	o.Filter = cleanup.Filter{UserID: "auth0|123"}
	o.Approvals = nil
	o.AffectedUsers = []AffectedUser{{UserID: "auth0|123", Email: "carol@example.com"}, {UserID: "auth0|123", Email: "Carol@example.com"},
		{UserID: "auth0|999", Email: "ghost@example.com"}}
	f.n.JobFinished(context.Background(), o)
	f.n.Wait()

	dm := f.slack.Messages(f.slack.ChannelID("U0CAROL"))
	if len(dm) != 1 || !strings.Contains(dm[0].Text, "sign in again") {
		t.Errorf("DMs to carol = %+v; want exactly one", dm)
	}
	if len(dm) == 1 && !strings.Contains(string(dm[0].Blocks), `!date^1764151203^{date_short_pretty} {time}|2025-11-26 10:00:03Z`) {
		t.Errorf("DM to carol = %s; want the time as a date token (the reader's time zone)", dm[0].Blocks)
	}
	if got := f.slack.Calls("users.lookupByEmail"); len(got) != 2 {
		t.Errorf("users.lookupByEmail calls = %d; want 2 (one per distinct e-mail)", len(got))
	}
	for _, ch := range []string{"#platform-incidents", o.Thread.Channel} {
		for _, m := range f.slack.Messages(ch) {
			if strings.Contains(string(m.Blocks)+m.Text, "@example.com") {
				t.Errorf("%s shows an e-mail: %s", ch, m.Blocks)
			}
		}
	}
	if !strings.Contains(f.audit.String(), "Channel: dm:auth0|999") {
		t.Errorf("the failed lookup is not audited by user_id:\n%s", f.audit)
	}
}

func TestAnnouncerDoesNotBlockTheCaller(t *testing.T) {
	f := newNotifyFixture(t, nil)
	f.pd.Delay(pdtest.ChangePath, 500*time.Millisecond)
	o := f.outcome(t, "execute", "expired_only")
	ctx, cancel := context.WithCancel(context.Background())
	start := time.Now()
	f.n.JobFinished(ctx, o)
	cancel() // the job's context ending does not cut the notifications short
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Errorf("JobFinished took %v; want it to return at once", d)
	}
	f.n.Wait()
	if n := len(f.pd.ChangeEvents()); n != 1 {
		t.Errorf("change events = %d; want 1 despite the cancelled job context", n)
	}
}

func TestPermalink(t *testing.T) {
	for _, tt := range []struct {
		ref  MessageRef
		want string
	}{
		{MessageRef{Channel: "C0123", TS: "1700000000.000100"}, "https://slack.com/archives/C0123/p1700000000000100"},
		{MessageRef{Channel: "#ops", TS: "1700000000.000100"}, ""},
		{MessageRef{}, ""},
	} {
		if got := Permalink(tt.ref); got != tt.want {
			t.Errorf("Permalink(%+v) = %q; want %q", tt.ref, got, tt.want)
		}
	}
}
