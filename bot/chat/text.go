package chat

import (
	"fmt"
	"regexp"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// The text of a Message's fields is Slack mrkdwn, which the core writes with care (user text is
// made inert before it gets there): *bold*, `code`, mentions (<@U…>, <!subteam^S…>, <#C…>),
// dates (<!date^…|fallback>) and the entities &amp; &lt; &gt;. Lengths are counted as Slack
// counts them, in UTF-16 code units. These are the rules every transport and the core share.

var (
	mentionRe = regexp.MustCompile(`<([@#])([A-Z0-9]+)(\|[^>]*)?>`)
	subteamRe = regexp.MustCompile(`<!subteam\^(S[A-Z0-9]+)(\|[^>]*)?>`)
	dateRe    = regexp.MustCompile(`<!date\^[0-9]+\^[^|>]*\|([^>]*)>`)
)

// PlainText turns mrkdwn into the text a plain_text object or the console shows: a mention
// becomes @id or #id, a date its UTC fallback, and the entities the core and the transport write
// become characters again.
func PlainText(s string) string {
	s = mentionRe.ReplaceAllString(s, "$1$2")
	s = subteamRe.ReplaceAllString(s, "@$1")
	s = dateRe.ReplaceAllString(s, "$1")
	if !strings.Contains(s, "&") {
		return s
	}
	return strings.NewReplacer("&lt;", "<", "&gt;", ">", "&amp;", "&").Replace(s)
}

// OneLine joins the words of s with single spaces: one line, no runs of white space.
func OneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// TextLen counts s as Slack does, in UTF-16 code units.
func TextLen(s string) int {
	n := 0
	for _, r := range s {
		n += utf16.RuneLen(r)
	}
	return n
}

// cutIndex returns the largest byte index ≤ len(s) at which s can be cut so that s[:i] is at
// most limit UTF-16 units, never inside a rune or an HTML entity (&amp; &lt; &gt;).
func cutIndex(s string, limit int) int {
	n := 0
	i := 0
	for i < len(s) {
		r, size := utf8.DecodeRuneInString(s[i:])
		u := utf16.RuneLen(r)
		if u < 0 {
			u = 1
		}
		if n+u > limit {
			break
		}
		n += u
		i += size
	}
	if amp := strings.LastIndexByte(s[:i], '&'); amp >= 0 && amp >= i-4 && !strings.Contains(s[amp:i], ";") {
		i = amp
	}
	return i
}

// Truncate shortens s to at most limit UTF-16 units, marking the cut with "…".
func Truncate(s string, limit int) string {
	if TextLen(s) <= limit {
		return s
	}
	return strings.TrimRightFunc(s[:cutIndex(s, limit-1)], func(r rune) bool { return r == ' ' }) + "…"
}

// SplitText splits s into chunks of at most limit UTF-16 units, preferring line breaks, then
// spaces, and never cutting a rune or an entity in two.
func SplitText(s string, limit int) []string {
	var out []string
	for TextLen(s) > limit {
		i := cutIndex(s, limit)
		if nl := strings.LastIndexByte(s[:i], '\n'); nl > 0 {
			i = nl
		} else if sp := strings.LastIndexByte(s[:i], ' '); sp > limit/2 {
			i = sp
		}
		if i == 0 {
			i = cutIndex(s, limit)
		}
		if chunk := strings.TrimRight(s[:i], "\n "); chunk != "" {
			out = append(out, chunk)
		}
		s = strings.TrimLeft(s[i:], "\n")
	}
	if strings.TrimSpace(s) != "" {
		out = append(out, s)
	}
	return out
}

// FormatText renders m as plain text: the console's output and the golden files' format.
// Buttons are listed with their action id; the console adds the line that presses each.
func FormatText(m Message) string {
	var b strings.Builder
	if m.Title != "" {
		b.WriteString("== " + PlainText(m.Title) + " ==\n")
	} else {
		b.WriteString(PlainText(m.Text) + "\n")
	}
	for _, l := range m.Lines {
		b.WriteString(formatBlock(l))
	}
	for _, f := range m.Fields {
		b.WriteString(f.Label + ": " + PlainText(f.Value) + "\n")
	}
	for _, c := range m.Context {
		b.WriteString("(" + PlainText(c) + ")\n")
	}
	for _, btn := range m.Buttons {
		fmt.Fprintf(&b, "[%s] (%s)", btn.Label, btn.ActionID)
		if btn.Confirm != "" {
			fmt.Fprintf(&b, " asks: %s", PlainText(btn.Confirm))
		}
		b.WriteString("\n")
	}
	return b.String()
}

// formatBlock prints a body paragraph; a ``` code block is indented instead of fenced.
func formatBlock(s string) string {
	if strings.HasPrefix(s, "```") && strings.HasSuffix(s, "```") && len(s) >= 6 {
		inner := strings.Trim(strings.TrimSuffix(strings.TrimPrefix(s, "```"), "```"), "\n")
		var b strings.Builder
		for _, l := range strings.Split(inner, "\n") {
			b.WriteString("    " + PlainText(l) + "\n")
		}
		return b.String()
	}
	return PlainText(s) + "\n"
}
