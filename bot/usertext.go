package bot

import (
	"regexp"
	"strings"
	"unicode"

	"github.com/platform-team/sessionbot/cleanup"
)

// Text from people and from session data — a --reason, a scope with its user id or auth
// method, a backup id, a session's fields — reaches Slack only through userText, which makes it
// inert in Slack mrkdwn (SPEC §12.6). Message fields are mrkdwn; chat.PlainText turns them into what
// plain_text objects and the console show.

// userText returns s as Slack mrkdwn that shows s and does nothing else, in running text and
// inside a `code span` or ``` block alike:
//   - it is one line, in stored order (cleanup.InertLine: controls become spaces, bidirectional
//     overrides are removed);
//   - &, < and > are entities, so no <@U…>, <!here>, <!channel>, <!subteam^…>, <#C…> or
//     <url|label> can form;
//   - ` * ~ and any _ that is not inside a word become look-alikes, so s can neither close its
//     code span nor open bold, italics or strike-through;
//   - a URL (scheme://…, www.…) or a bare domain name has its dots and colons replaced by
//     look-alikes, so Slack does not turn it into a link.
func userText(s string) string {
	s = cleanup.InertLine(s)
	if !strings.ContainsAny(s, "&<>`*~_.:") {
		return s
	}
	rs := []rune(s)
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i, r := range rs {
		switch r {
		case '&':
			b.WriteString("&amp;")
		case '<':
			b.WriteString("&lt;")
		case '>':
			b.WriteString("&gt;")
		case '`':
			b.WriteRune('ˋ') // U+02CB MODIFIER LETTER GRAVE ACCENT
		case '*':
			b.WriteRune('∗') // U+2217 ASTERISK OPERATOR
		case '~':
			b.WriteRune('∼') // U+223C TILDE OPERATOR
		case '_':
			// snake_case stays: Slack opens or closes italics only at a word's edge.
			if i > 0 && i < len(rs)-1 && wordRune(rs[i-1]) && wordRune(rs[i+1]) {
				b.WriteRune('_')
			} else {
				b.WriteRune('＿') // U+FF3F FULLWIDTH LOW LINE
			}
		default:
			b.WriteRune(r)
		}
	}
	return unlinkWords(b.String())
}

func wordRune(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) }

// unlinkWords breaks every word Slack would make a link of: one with a scheme (http://…, also
// inside an escaped <url|label>), one with www., or one that is a domain name, with or without a
// path. A user id such as auth0|jane.doe is none of these.
func unlinkWords(s string) string {
	return word.ReplaceAllStringFunc(s, func(w string) string {
		lw := strings.ToLower(w)
		if !strings.Contains(lw, "://") && !strings.Contains(lw, "www.") &&
			!domain.MatchString(strings.Trim(lw, `([{"'.,;:!?)]}`)) {
			return w
		}
		return strings.NewReplacer(".", "\u2024", ":", "\u2236").Replace(w) // ONE DOT LEADER, RATIO
	})
}

var (
	word   = regexp.MustCompile(`\S+`)
	domain = regexp.MustCompile(`^[a-z0-9-]+(\.[a-z0-9-]+)*\.[a-z]{2,}(/.*)?$`)
)
