package bot

import (
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/platform-team/sessionbot/bot/slacktest"
)

// Slack notifies no mention added by chat.update, and the approval card is edited into place.
// So the approvers must hear of a request from new messages: a chat.postMessage in the card's
// thread mentioning them (the user group as <!subteam^…>), and a direct message with the buttons
// to each approver, group members resolved, the requester excepted. A button in the DM works.
func TestE2EApproversAreNotifiedByNewMessages(t *testing.T) {
	const carol, group = "U0E2ECAROL", "S0SECURITY"
	e := newE2E(t, e2eOptions{config: func(c *Config) { c.Approvers = []string{e2eAlice, group} }})
	e.slack.AddUser(carol, "carol", "carol@company.example")
	e.slack.AddUserGroup(group, e2eBob, carol)

	e.command(e2eAlice, e2eCommand)
	card := e.awaitButton("approve")

	var ping []slacktest.Call
	slacktest.WaitFor(t, func() bool {
		ping = nil
		for _, c := range e.slack.Calls("chat.postMessage") {
			if c.Form.Get("thread_ts") == card.TS && strings.Contains(c.Form.Get("text"), "<!subteam^"+group+">") {
				ping = append(ping, c)
			}
		}
		return len(ping) > 0
	}, e2eWait)
	if len(ping) != 1 || ping[0].Form.Get("channel") != e.ops || ping[0].Error != "" {
		t.Errorf("mentions of the approvers = %+v; want one new message in the request's thread in #sre-ops", ping)
	}

	// A DM with the buttons to bob and carol (the group), none to alice (the requester).
	var dms map[string]slacktest.Message
	slacktest.WaitFor(t, func() bool {
		dms = map[string]slacktest.Message{}
		for _, u := range []string{e2eAlice, e2eBob, carol} {
			for _, m := range e.slack.Messages(e.slack.ChannelID(u)) {
				if strings.Contains(string(m.Blocks), `"action_id":"approve"`) {
					dms[u] = m
				}
			}
		}
		return len(dms) >= 2
	}, e2eWait)
	if _, ok := dms[e2eAlice]; ok || len(dms) != 2 {
		t.Errorf("approval DMs went to %v; want bob and carol, not the requester", slices.Sorted(maps.Keys(dms)))
	}
	for _, c := range e.slack.Calls("conversations.open") {
		if c.Form.Get("users") == e2eAlice {
			t.Error("a DM was opened with the requester")
		}
	}
	for u, m := range dms {
		if m.Updates != 0 || !strings.Contains(m.Text, "Your approval is requested") {
			t.Errorf("DM to %s = %q (updates %d); want a new message asking for approval", u, m.Text, m.Updates)
		}
	}

	// Bob approves from his DM: the job runs and the card in #sre-ops reports it.
	dm := dms[e2eBob]
	e.pressIn(e2eBob, dm.Channel, dm.TS, "approve")
	slacktest.WaitFor(t, func() bool {
		m, _ := e.slack.Message(e.ops, card.TS)
		return strings.Contains(string(m.Blocks), "completed")
	}, e2eWait)
	if n := e.sessionCount(); n != 0 {
		t.Errorf("%d sessions left after the approval from the DM; want 0", n)
	}
	e.awaitIncident()
	e.assertNoLeaks()
}

// /sessions in a channel the bot is not in (chat.postMessage answers not_in_channel, or
// channel_not_found for a private one) answers the user alone what to do — invite the bot, or
// use the channel it posts in — instead of "internal error".
func TestE2ECommandWhereTheBotIsNotAMember(t *testing.T) {
	e := newE2E(t, e2eOptions{config: func(c *Config) { c.ApprovalChannel = "#sre-approvals" }})
	for i, code := range []string{"not_in_channel", "channel_not_found"} {
		e.slack.FailNextError("chat.postMessage", 1, code)
		before := len(e.slack.Messages(e.ops))
		e.command(e2eAlice, "cleanup")
		var answers []slacktest.ResponseURLPost
		slacktest.WaitFor(t, func() bool {
			answers = e.slack.ResponseURLPosts()
			return len(answers) > i
		}, e2eWait)
		a := answers[i]
		if a.ResponseType != "ephemeral" || !strings.Contains(a.Text, "I am not a member of it. Invite me here") ||
			!strings.Contains(a.Text, "run the command in #sre-approvals") || strings.Contains(a.Text, "internal error") {
			t.Errorf("%s: answer = %s %q; want an ephemeral saying to invite the bot or use #sre-approvals", code, a.ResponseType, a.Text)
		}
		if n := len(e.slack.Messages(e.ops)); n != before {
			t.Errorf("%s: %d messages posted in the channel; want none", code, n-before)
		}
	}
}
