package bot

import (
	"context"
)

// maxApproverDMs bounds the direct messages one approval request sends: a huge user group in
// APPROVERS is reached through its mention in the request's thread.
const maxApproverDMs = 50

// notifyApprovers makes sure the approvers hear of req. Its card is a message that was edited
// into place (it must exist before the request is stored, and its buttons only after), and Slack
// notifies no mention added by an edit. So the approvers are mentioned in a new message, a reply
// in the card's thread, and each approver (user groups resolved) other than the requester gets
// the card with its buttons in a direct message. A failure is logged: the card stands either way.
func (b *Bot) notifyApprovers(ctx context.Context, req *Request) {
	if len(req.Approvers) == 0 {
		return // nobody to reach: the card says to set APPROVERS
	}
	if _, err := b.chat.Reply(ctx, req.Ref, approvalPingMessage(req)); err != nil {
		b.log.Warn("approval request: mention approvers", "request", req.ID, "err", err)
	}
	sent := 0
	for _, u := range b.access.approverUsers(ctx) {
		if u == req.Requester.ID {
			continue
		}
		if sent == maxApproverDMs {
			b.log.Warn("approval request: direct messages capped; the others see the thread's mention",
				"request", req.ID, "sent", sent)
			return
		}
		sent++
		if err := b.chat.DM(ctx, u, approvalDMMessage(req)); err != nil {
			b.log.Warn("approval request: direct message to approver", "request", req.ID, "user", u, "err", err)
		}
	}
}
