package bot

// Security tests at the boundary: a canary token seeded in every session must reach no output
// (Slack, PagerDuty, audit file and stdout, logs, /metrics); buttons carry opaque ids only;
// configuration never formats a secret; clicks from another workspace or from people outside
// OPERATORS/APPROVERS change nothing.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/platform-team/sessionbot/bot/slack"
	"github.com/platform-team/sessionbot/bot/slacktest"
	"github.com/platform-team/sessionbot/cleanup"
)

// opaqueID is what a button value may be: a request id (hex), never filter text.
var opaqueID = regexp.MustCompile(`^[a-f0-9]{16,64}$`)

// buttonValues returns the value of every button (actions blocks and accessories) in blocks.
func buttonValues(t *testing.T, blocks string) []string {
	t.Helper()
	if blocks == "" {
		return nil
	}
	type element struct {
		Type  string `json:"type"`
		Value string `json:"value"`
	}
	var bs []struct {
		Elements  []element `json:"elements"`
		Accessory *element  `json:"accessory"`
	}
	if err := json.Unmarshal([]byte(blocks), &bs); err != nil {
		t.Fatalf("blocks are not JSON: %v: %.200s", err, blocks)
	}
	var out []string
	for _, b := range bs {
		els := b.Elements
		if b.Accessory != nil {
			els = append(els, *b.Accessory)
		}
		for _, e := range els {
			if e.Type == "button" {
				out = append(out, e.Value)
			}
		}
	}
	return out
}

// Every path that shows data — stats, previews with samples, runs, a --user-id cleanup with a
// DM, a mass logout with its notifications and PagerDuty events, refusals, status — and then
// every output is searched: the canary in every session's tokens reaches none of them, nor do
// the credentials or the sessions' e-mail usernames (outside the one users.lookupByEmail call
// that needs it), and every button value is an opaque id.
func TestCanaryReachesNoOutput(t *testing.T) {
	f := newFleet(t, fleetOptions{sessions: 1500, config: func(c *Config) {
		c.NotifyAffectedUsers = true
		c.UserNotifyChannel = "#general"
	}})
	r := f.replicas[0]
	user := cleanup.SeedUserID(1)
	email, _ := f.sessionOf(user)
	f.slack.AddUser("U0AFFECTED", "affected", email)

	f.command(flAlice, "stats")
	f.command(flAlice, "cleanup")
	expired := f.awaitButton("run")
	f.slack.WaitAck(t, f.click(flAlice, "", expired.TS, "run"), 3*time.Second)
	f.awaitMessage(expired.TS, "Cleanup completed")

	f.command(flAlice, `cleanup --user-id "`+user+`" --reason "user asked"`)
	var userPreview slacktest.Message
	slacktest.WaitFor(t, func() bool {
		for _, m := range f.slack.Messages(f.ops) {
			if strings.Contains(string(m.Blocks), "user_id=") && strings.Contains(string(m.Blocks), `"action_id":"run"`) {
				userPreview = m
				return true
			}
		}
		return false
	}, flWait)
	f.slack.WaitAck(t, f.click(flAlice, "", userPreview.TS, "run"), 3*time.Second)
	f.awaitMessage(userPreview.TS, "Cleanup completed")
	slacktest.WaitFor(t, func() bool { return len(f.slack.Messages(f.slack.ChannelID("U0AFFECTED"))) == 1 }, flWait)

	req := f.requestMassLogout()
	f.slack.WaitAck(t, f.click(flErin, "", req.TS, "approve"), 3*time.Second)
	f.slack.WaitAck(t, f.click(flBob, "", req.TS, "approve"), 3*time.Second)
	f.awaitMessage(req.TS, "Cleanup completed")
	f.command(flAlice, "status")
	slacktest.WaitFor(t, func() bool { return len(f.pd.ChangeEvents()) == 3 }, flWait)
	r.stop()

	srv := httptest.NewServer(r.metrics.Handler())
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	metricsBody, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	audit, err := os.ReadFile(r.auditPath)
	if err != nil {
		t.Fatal(err)
	}
	var pdBodies strings.Builder
	for _, req := range f.pd.Requests("") {
		pdBodies.Write(req.Body)
		pdBodies.WriteByte('\n')
	}

	// The search finds what is there: the e-mail went, once, to users.lookupByEmail.
	if got := f.slack.RequestsContaining(email); len(got) != 1 || !strings.Contains(got[0], "email=") {
		t.Errorf("requests carrying the affected user's e-mail = %q; want the one users.lookupByEmail", got)
	}
	if got := f.slack.RequestsContaining(flCanary); len(got) > 0 {
		t.Errorf("%d requests to Slack carry the canary, e.g. %.300s", len(got), got[0])
	}
	outputs := map[string]string{
		"audit file": string(audit), "audit stdout": r.stdout.String(), "logs": r.logs.String(),
		"metrics": string(metricsBody), "pagerduty": pdBodies.String(),
	}
	for what, out := range outputs {
		if out == "" && what != "metrics" {
			t.Errorf("%s is empty: the test saw nothing", what)
		}
		secrets := []string{flCanary, f.slack.BotToken(), f.slack.AppToken(), email, "@example.com"}
		if what != "pagerduty" {
			secrets = append(secrets, flRKey) // PagerDuty needs its routing key, nobody else sees it
		}
		for _, s := range secrets {
			if strings.Contains(out, s) {
				t.Errorf("%s contains %q", what, s)
			}
		}
	}
	if len(f.slack.RequestsContaining(flRKey)) > 0 {
		t.Error("a request to Slack carries the PagerDuty routing key")
	}

	buttons := 0
	for _, c := range f.slack.AllCalls() {
		if !strings.HasPrefix(c.Method, "chat.") {
			if c.Method != "users.lookupByEmail" && strings.Contains(fmt.Sprint(c.Form), "@example.com") {
				t.Errorf("%s carries a session's e-mail: %v", c.Method, c.Form)
			}
			continue
		}
		for _, field := range []string{"text", "blocks"} {
			if v := c.Form.Get(field); strings.Contains(v, "@example.com") || strings.Contains(v, "access_token") {
				t.Errorf("%s %s carries session data: %.300s", c.Method, field, v)
			}
		}
		for _, v := range buttonValues(t, c.Form.Get("blocks")) {
			buttons++
			if !opaqueID.MatchString(v) {
				t.Errorf("%s: button value %q is not an opaque id", c.Method, v)
			}
		}
	}
	for _, p := range f.slack.ResponseURLPosts() {
		for _, v := range buttonValues(t, string(p.Blocks)) {
			buttons++
			if !opaqueID.MatchString(v) {
				t.Errorf("response_url: button value %q is not an opaque id", v)
			}
		}
	}
	if buttons < 6 {
		t.Errorf("saw %d buttons; want those of three previews and a running job", buttons)
	}
}

// Configuration printed with any verb, marshalled or logged shows no secret: the Slack tokens.
// (STATE_REDIS_URL is cleanup.RedisConfig's, a cleanup.RedisURL; the sinks' secrets are tested
// in their packages and, composed, by cmd/sessionbot.)
func TestConfigNeverFormatsSecrets(t *testing.T) {
	sc := slack.Config{AppToken: "xapp-1-A0-1-appsecretvalue", BotToken: "xoxb-1-2-botsecretvalue",
		APIURL: "https://slack.com/api/"}
	cfg := DefaultConfig()
	composed := struct {
		Bot   Config
		Slack slack.Config
	}{cfg, sc}
	for name, v := range map[string]any{"slack.Config": sc, "Config": cfg, "composed": composed, "*slack.Config": &sc, "*Config": &cfg} {
		j, _ := json.Marshal(v)
		out := fmt.Sprintf("%v %+v %#v %s %q", v, v, v, v, v) + string(j)
		for _, secret := range []string{"appsecretvalue", "botsecretvalue"} {
			if strings.Contains(out, secret) {
				t.Errorf("%s formats a secret (%s): %s", name, secret, out)
			}
		}
	}
}

// Approvals and cancels from another workspace (SLACK_TEAM_ID is set), from a guest of the
// workspace (in neither OPERATORS nor APPROVERS), and a command from another workspace are
// refused and audited; nothing runs until a real approver approves.
func TestOutsidersCannotApproveOrCommand(t *testing.T) {
	f := newFleet(t, fleetOptions{sessions: 200})
	r := f.replicas[0]
	req := f.requestMassLogout()
	const foreign = "T0FOREIGN1"

	presses := []struct{ user, team, action, why string }{
		{flBob, foreign, "approve", "foreign workspace " + foreign},
		{flCarol, foreign, "reject", "foreign workspace " + foreign},
		{flErin, "", "approve", "not in APPROVERS"},
		{flErin, "", "reject", "not in APPROVERS"},
		{flErin, "", "cancel", "not allowed to cancel"},
		{"U0SLACKCON", foreign, "cancel", "foreign workspace " + foreign},
	}
	for _, p := range presses {
		f.slack.WaitAck(t, f.click(p.user, p.team, req.TS, p.action), 3*time.Second)
	}
	cmd := f.slack.SlashCommand(slacktest.SlashCommand{TeamID: foreign, UserID: flAlice, UserName: "alice", ChannelID: f.ops,
		Command: "/sessions", Text: `cleanup --all --reason "from elsewhere"`})
	f.slack.WaitAck(t, cmd, 3*time.Second)
	slacktest.WaitFor(t, func() bool { return len(f.audited(cleanup.EventRefused)) == len(presses)+1 }, flWait)

	// The clicks are handled concurrently once acked, so their lines may come in any order:
	// each press is found by who pressed what, and every line belongs to exactly one press.
	refused := f.audited(cleanup.EventRefused)
	type press struct{ user, action string }
	byPress := map[press][]map[string]string{}
	for _, l := range refused {
		fields := auditFields(l)
		user, _, _ := strings.Cut(fields["User"], " ")
		byPress[press{user, fields["Action"]}] = append(byPress[press{user, fields["Action"]}], fields)
	}
	for _, p := range presses {
		got := byPress[press{p.user, p.action}]
		if len(got) != 1 || got[0]["Why"] != p.why {
			t.Errorf("Refused lines for %s pressing %s = %v; want one, with Why: %s", p.user, p.action, got, p.why)
		}
	}
	if got := byPress[press{flAlice, "command"}]; len(got) != 1 || got[0]["Why"] != "foreign workspace "+foreign {
		t.Errorf("Refused lines for the foreign command = %v; want one, with Why: foreign workspace %s", got, foreign)
	}
	if len(byPress) != len(presses)+1 {
		t.Errorf("Refused lines = %q; want one per press and one for the command", refused)
	}
	if n := f.sessionCount(); n != int(f.seeded.Count) {
		t.Fatalf("%d of %d sessions left after refused presses", n, f.seeded.Count)
	}
	if got := f.executed(); len(got) != 0 {
		t.Fatalf("a job started: %q", got)
	}
	if got := f.audited(cleanup.EventApproved); len(got) != 0 {
		t.Fatalf("Approved lines = %q", got)
	}
	var top int // messages in the channel, not the approvers' mention in the request's thread
	for _, m := range f.slack.Messages(f.ops) {
		if m.ThreadTS == "" {
			top++
		}
	}
	if top != 1 {
		t.Errorf("%d messages in #sre-ops; want only the approval request (the foreign command posts nothing)", top)
	}
	st, err := newStore(f.rdb).dueRequests(context.Background(), time.Now().Add(time.Hour))
	if err != nil || len(st) != 1 {
		t.Fatalf("pending requests = %v, %v; want the one request, still pending", st, err)
	}

	// The request is intact: the real approver's press runs it.
	f.slack.WaitAck(t, f.click(flBob, "", req.TS, "approve"), 3*time.Second)
	f.awaitMessage(req.TS, "Cleanup completed")
	r.stop()
	if n := f.sessionCount(); n != 0 {
		t.Errorf("%d sessions left after the real approval", n)
	}
}

// auditFields splits an audit line (time | event | Name: value | …) into its named fields.
func auditFields(line string) map[string]string {
	fields := map[string]string{}
	for _, part := range strings.Split(line, " | ") {
		if name, value, ok := strings.Cut(part, ": "); ok {
			fields[name] = value
		}
	}
	return fields
}
