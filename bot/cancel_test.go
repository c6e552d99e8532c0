package bot

import (
	"context"
	"regexp"
	"strings"
	"testing"

	"github.com/platform-team/sessionbot/bot/chat"
	"github.com/platform-team/sessionbot/cleanup"
)

// slowJob seeds n expired sessions, has alice preview and run their cleanup on a replica with
// slow pacing (10 keys per batch, 40 keys/s) and returns once it has deleted some: the job's
// message and the replica running it, so a cancel arrives while it still runs.
func (h *harness) slowJob(n int) (MessageRef, *Bot) {
	h.t.Helper()
	h.seed(sessionSpec{n: n, expired: true})
	h.command(alice, "cleanup")
	ref, m := h.chat.latest(-1)
	d := h.deps()
	d.Engine = cleanup.NewEngine(cleanup.NewTarget(h.rdb, "session:", "test-target"), cleanup.EngineConfig{BatchSize: 10, MaxRate: 40})
	slow := h.newBot(d)
	h.pressOn(slow, alice, "run", button(h.t, m, "run"), "env-run")
	progressed := regexp.MustCompile(`· deleted [1-9]`)
	h.chat.waitFor(h.t, func() bool { return progressed.MatchString(chat.FormatText(h.chat.msg(ref))) })
	return ref, slow
}

// An approver who is not an operator may stop a running job with `cancel JOB_ID`, as the job's
// Cancel button allows (SPEC §11: the requester, an operator or an approver); someone who is
// neither still may not.
func TestApproverCancelsJobByCommand(t *testing.T) {
	h := newHarness(t)
	ref, slow := h.slowJob(400)
	jobID := regexp.MustCompile(`job-[0-9a-z-]+`).FindString(chat.FormatText(h.chat.msg(ref)))

	typeCommand := func(user, text string) {
		slow.HandleCommand(context.Background(), Command{EnvelopeID: h.envelope(), TeamID: team, UserID: user, UserName: name(user),
			ChannelID: chan1, Text: text})
	}
	typeCommand(eve, "cancel "+jobID)
	wantContains(t, "outsider's cancel", h.chat.lastEphemeral(eve), "not allowed", "Nothing was done")
	typeCommand(bob, "cancel "+jobID)
	slow.Wait()
	wantContains(t, "approver's cancel", h.chat.lastEphemeral(bob), "Cancelling job "+jobID)
	wantContains(t, "report", chat.FormatText(h.chat.msg(ref)), "Cancelled", "those stay deleted")
	wantContains(t, "audit", strings.Join(h.audited("Cancelled"), ""), "User: "+bob+" (bob)", "Job: "+jobID)
	if n := h.sessionCount(); n == 0 || n == 400 {
		t.Errorf("%d sessions left; want a partial run", n)
	}
}
