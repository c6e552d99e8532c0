package slack

import (
	"fmt"
	"regexp"
	"strings"

	slackgo "github.com/slack-go/slack"

	"github.com/platform-team/sessionbot/bot/chat"
)

// Block Kit limits Slack enforces; a message over any of them is refused with invalid_blocks.
// Lengths are in UTF-16 code units, which is how Slack counts characters.
const (
	maxBlocks         = 50
	maxHeaderText     = 150
	maxSectionText    = 3000
	maxFields         = 10
	maxFieldText      = 2000
	maxContextElems   = 10
	maxContextText    = 2000
	maxActionElems    = 25
	maxButtonText     = 75
	maxActionID       = 255
	maxButtonValue    = 2000
	maxConfirmTitle   = 100
	maxConfirmText    = 300
	maxConfirmButton  = 30
	maxFallbackText   = 3000
	actionsBlockID    = "actions"
	defaultConfirmTtl = "Are you sure?"
)

// renderMessage turns m into the fallback text and the blocks of a Slack message. It always
// returns at least one block, so that chat.update replaces old buttons instead of keeping them.
// Every limit of Block Kit is respected: long bodies are split over several sections, extra
// fields and context elements over several blocks, and when the message would exceed 50 blocks
// the body is cut (the buttons are always kept) with a note saying so.
func renderMessage(m chat.Message) (string, []slackgo.Block) {
	var body []slackgo.Block
	n := 0
	id := func(kind string) string { n++; return fmt.Sprintf("%s_%d", kind, n) }

	if t := strings.TrimSpace(m.Title); t != "" {
		body = append(body, slackgo.NewHeaderBlock(
			slackgo.NewTextBlockObject(slackgo.PlainTextType, chat.Truncate(chat.OneLine(chat.PlainText(t)), maxHeaderText), true, false),
			slackgo.HeaderBlockOptionBlockID("header")))
	}
	if len(m.Lines) > 0 {
		text := escapeMrkdwn(strings.Join(m.Lines, "\n"))
		for _, chunk := range chat.SplitText(text, maxSectionText) {
			body = append(body, slackgo.NewSectionBlock(mrkdwn(chunk), nil, nil, slackgo.SectionBlockOptionBlockID(id("body"))))
		}
	}
	for i := 0; i < len(m.Fields); i += maxFields {
		var fields []*slackgo.TextBlockObject
		for _, f := range m.Fields[i:min(i+maxFields, len(m.Fields))] {
			label := escapeMrkdwn(chat.OneLine(f.Label))
			value := escapeMrkdwn(f.Value)
			if strings.TrimSpace(value) == "" {
				value = "–"
			}
			text := value
			if label != "" {
				text = "*" + label + "*\n" + value
			}
			fields = append(fields, mrkdwn(chat.Truncate(text, maxFieldText)))
		}
		body = append(body, slackgo.NewSectionBlock(nil, fields, nil, slackgo.SectionBlockOptionBlockID(id("fields"))))
	}
	var ctx []string
	for _, c := range m.Context {
		if strings.TrimSpace(c) != "" {
			ctx = append(ctx, c)
		}
	}
	for i := 0; i < len(ctx); i += maxContextElems {
		var elems []slackgo.MixedElement
		for _, c := range ctx[i:min(i+maxContextElems, len(ctx))] {
			elems = append(elems, mrkdwn(chat.Truncate(escapeMrkdwn(c), maxContextText)))
		}
		body = append(body, slackgo.NewContextBlock(id("context"), elems...))
	}

	var actions *slackgo.ActionBlock
	if len(m.Buttons) > 0 {
		var elems []slackgo.BlockElement
		seen := map[string]bool{}
		for _, b := range m.Buttons {
			aid := chat.Truncate(b.ActionID, maxActionID)
			if aid == "" || seen[aid] || len(elems) == maxActionElems {
				continue // action_ids must be unique per block
			}
			seen[aid] = true
			elems = append(elems, renderButton(b, aid))
		}
		actions = slackgo.NewActionBlock(actionsBlockID, elems...)
	}

	room := maxBlocks
	if actions != nil {
		room--
	}
	if len(body) > room {
		dropped := len(body) - room + 1
		body = append(body[:room-1], slackgo.NewSectionBlock(
			mrkdwn(fmt.Sprintf("_… %d more block(s) not shown: the message was too long for Slack._", dropped)),
			nil, nil, slackgo.SectionBlockOptionBlockID("truncated")))
	}
	blocks := body
	if actions != nil {
		blocks = append(blocks, actions)
	}

	text := fallbackText(m)
	if len(blocks) == 0 {
		blocks = append(blocks, slackgo.NewSectionBlock(mrkdwn(chat.Truncate(text, maxSectionText)), nil, nil, slackgo.SectionBlockOptionBlockID("text")))
	}
	return text, blocks
}

func renderButton(b chat.Button, actionID string) *slackgo.ButtonBlockElement {
	label := strings.TrimSpace(chat.OneLine(b.Label))
	if label == "" {
		label = actionID
	}
	btn := slackgo.NewButtonBlockElement(actionID, chat.Truncate(b.Value, maxButtonValue),
		slackgo.NewTextBlockObject(slackgo.PlainTextType, chat.Truncate(label, maxButtonText), true, false))
	switch b.Style {
	case "primary":
		btn = btn.WithStyle(slackgo.StylePrimary)
	case "danger":
		btn = btn.WithStyle(slackgo.StyleDanger)
	}
	if c := strings.TrimSpace(b.Confirm); c != "" {
		title := chat.Truncate(label+"?", maxConfirmTitle)
		if label == actionID {
			title = defaultConfirmTtl
		}
		dialog := slackgo.NewConfirmationBlockObject(
			slackgo.NewTextBlockObject(slackgo.PlainTextType, title, false, false),
			slackgo.NewTextBlockObject(slackgo.PlainTextType, chat.Truncate(chat.PlainText(c), maxConfirmText), false, false),
			slackgo.NewTextBlockObject(slackgo.PlainTextType, chat.Truncate(label, maxConfirmButton), false, false),
			slackgo.NewTextBlockObject(slackgo.PlainTextType, "Go back", false, false))
		if b.Style == "danger" {
			dialog = dialog.WithStyle(slackgo.StyleDanger)
		}
		btn = btn.WithConfirm(dialog)
	}
	return btn
}

func mrkdwn(s string) *slackgo.TextBlockObject {
	return slackgo.NewTextBlockObject(slackgo.MarkdownType, s, false, false)
}

// fallbackText is the notification text: m.Text, else the title, else the first line.
func fallbackText(m chat.Message) string {
	t := strings.TrimSpace(m.Text)
	if t == "" {
		t = strings.TrimSpace(m.Title)
	}
	if t == "" && len(m.Lines) > 0 {
		t = strings.TrimSpace(m.Lines[0])
	}
	if t == "" {
		t = "sessionbot"
	}
	return chat.Truncate(escapeMrkdwn(t), maxFallbackText)
}

// mention matches the Slack tokens the core may write on purpose: a user (<@U…>), a user group
// (<!subteam^S…>), a channel (<#C…> or <#C…|name>) or a date as stamp writes it. Everything else
// between < and > (<!channel>, <!here>, links) is escaped. Text from users never gets here with
// a < in it: userText wrote it as &lt; long before.
var mention = regexp.MustCompile(`^<(@[UW][A-Z0-9]{2,}|!subteam\^S[A-Z0-9]{2,}|#C[A-Z0-9]{2,}(\|[a-z0-9_-]{1,80})?|` +
	`!date\^[0-9]{1,12}\^\{date_short_pretty\} \{time\}\|[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}Z)>`)

// entity matches the entities userText writes; they are kept as they are, not escaped twice.
var entity = regexp.MustCompile(`^&(amp|lt|gt);`)

// escapeMrkdwn escapes &, < and > as Slack requires, keeping deliberate user and channel mentions
// and the entities of text that userText already escaped.
func escapeMrkdwn(s string) string {
	if !strings.ContainsAny(s, "&<>") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '&':
			if m := entity.FindString(s[i:]); m != "" {
				b.WriteString(m)
				i += len(m) - 1
				continue
			}
			b.WriteString("&amp;")
		case '>':
			b.WriteString("&gt;")
		case '<':
			if m := mention.FindString(s[i:]); m != "" {
				b.WriteString(m)
				i += len(m) - 1
				continue
			}
			b.WriteString("&lt;")
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}
