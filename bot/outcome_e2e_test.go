package bot

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/platform-team/sessionbot/bot/pdtest"
	"github.com/platform-team/sessionbot/bot/slacktest"
)

// awaitMessage waits until the message ts in #sre-ops contains want in its fallback text, and
// returns it.
func (e *e2eEnv) awaitMessage(ts, want string) slacktest.Message {
	e.t.Helper()
	var m slacktest.Message
	slacktest.WaitFor(e.t, func() bool {
		var ok bool
		m, ok = e.slack.Message(e.ops, ts)
		return ok && strings.Contains(m.Text, want)
	}, e2eWait)
	return m
}

// Affected users are DMed after a --user-id cleanup only: an auth method that reads like a user
// id ("user_id=x") is no --user-id, and its users hear nothing (with NOTIFY_AFFECTED_USERS on).
func TestE2ENoDMsForAnAuthMethodThatReadsLikeAUserID(t *testing.T) {
	e := newE2E(t, e2eOptions{sessions: 20, config: func(c *Config) { c.NotifyAffectedUsers = true }})
	ctx := context.Background()
	now := time.Now().UTC()
	for i := range 3 {
		v, _ := json.Marshal(map[string]any{
			"user_id": fmt.Sprintf("auth0|%d", 900+i), "username": "alice@company.example", "auth_method": "user_id=x",
			"created_at": now.Add(-time.Hour).Format(time.RFC3339), "last_activity": now.Format(time.RFC3339),
			"expires_at": now.Add(time.Hour).Format(time.RFC3339), "access_token": e2eCanary,
		})
		if err := e.rdb.Set(ctx, fmt.Sprintf("session:odd-auth-method-%02d-0123456789abcdef", i), v, time.Hour).Err(); err != nil {
			t.Fatal(err)
		}
	}
	before := e.sessionCount()

	e.command(e2eAlice, "cleanup --auth-method user_id=x")
	m := e.awaitButton("run")
	e.press(e2eAlice, m.TS, "run")
	e.awaitMessage(m.TS, "Cleanup completed")
	slacktest.WaitFor(t, func() bool { return len(e.pd.ChangeEvents()) == 1 }, e2eWait)
	e.announcer.Wait()

	if n := e.sessionCount(); n != before-3 {
		t.Fatalf("%d sessions left of %d; want the 3 with auth_method user_id=x deleted", n, before)
	}
	if calls := e.slack.Calls("users.lookupByEmail"); len(calls) != 0 {
		t.Errorf("users.lookupByEmail called %d times; want none (no --user-id)", len(calls))
	}
	if dms := e.slack.Messages(e.slack.ChannelID(e2eAlice)); len(dms) != 0 {
		t.Errorf("DMs to the sessions' owner = %+v; want none", dms)
	}
}

// A restore's fallback text (what notifications and screen readers show), its channel summary
// and its PagerDuty summary say how many sessions it restored — never "deleted".
func TestE2ERestoreSaysRestored(t *testing.T) {
	e := newE2E(t, e2eOptions{sessions: 50})
	e.command(e2eAlice, `cleanup --all --reason "drill"`)
	all := e.awaitButton("approve")
	e.press(e2eBob, all.TS, "approve")
	report := e.awaitMessage(all.TS, "Cleanup completed")
	jobID := regexp.MustCompile(`job-[0-9a-z-]+`).FindString(report.Text)
	if jobID == "" || e.sessionCount() != 0 {
		t.Fatalf("mass logout: report %q, %d sessions left", report.Text, e.sessionCount())
	}
	slacktest.WaitFor(t, func() bool { return len(e.pd.ChangeEvents()) == 1 }, e2eWait)

	e.command(e2eAlice, "restore "+jobID+" --reason undo")
	var req slacktest.Message
	slacktest.WaitFor(t, func() bool {
		for _, m := range e.slack.Messages(e.ops) {
			if m.TS != all.TS && strings.Contains(string(m.Blocks), `"action_id":"approve"`) {
				req = m
				return true
			}
		}
		return false
	}, e2eWait)
	e.press(e2eBob, req.TS, "approve")
	restored := e.seeded.Valid // the expired ones are skipped
	done := e.awaitMessage(req.TS, "Restore completed")
	if want := fmt.Sprintf("restored %s", num(restored)); !strings.Contains(done.Text, want) || strings.Contains(done.Text, "deleted") {
		t.Errorf("restore report text = %q; want %q and no \"deleted\"", done.Text, want)
	}
	if n := e.sessionCount(); int64(n) != restored {
		t.Errorf("%d sessions after the restore; want %d", n, restored)
	}

	slacktest.WaitFor(t, func() bool { return len(e.pd.ChangeEvents()) == 2 }, e2eWait)
	e.announcer.Wait()
	var summary string
	for _, ev := range e.pd.ChangeEvents() {
		if strings.Contains(ev.Payload.Summary, "restore") {
			summary = ev.Payload.Summary
		}
	}
	if want := fmt.Sprintf("%s sessions restored", num(restored)); !strings.Contains(summary, want) || strings.Contains(summary, "deleted") {
		t.Errorf("PagerDuty change summary = %q; want %q and no \"deleted\"", summary, want)
	}
	var notice string
	for _, m := range e.slack.Messages("#platform-incidents") {
		if strings.Contains(m.Text, "restore") {
			notice = m.Text
		}
	}
	if want := fmt.Sprintf("Session restore completed: %s restored", num(restored)); notice != want {
		t.Errorf("#platform-incidents restore notice = %q; want %q", notice, want)
	}
	if n := len(e.pd.Requests(pdtest.ChangePath)); n != 2 {
		t.Errorf("change requests = %d; want one per executed run (2)", n)
	}
}
