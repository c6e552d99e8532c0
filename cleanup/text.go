package cleanup

import (
	"strings"
	"unicode"
)

// InertLine returns text that came from a person (a --reason, a user id, an auth method, a
// name) or from a session's data as one line that reads as stored: every control character
// (newlines and tabs included) and every line or paragraph separator becomes a space, and the
// bidirectional override, embedding, isolate and mark characters are removed. Such text can
// then neither start a new audit line or message paragraph nor make one display in another
// order than it is stored (SPEC §12.6). Invalid UTF-8 becomes U+FFFD.
//
// It is the one home of that rule: the audit log and every chat renderer start from it.
func InertLine(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	clean := true
	for _, r := range s {
		if lineBreaking(r) || bidiControl(r) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		switch {
		case bidiControl(r):
		case lineBreaking(r):
			b.WriteByte(' ')
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

func lineBreaking(r rune) bool {
	return unicode.IsControl(r) || r == '\u2028' || r == '\u2029'
}

// bidiControl reports whether r changes the display order of the text around it: LRE, RLE,
// PDF, LRO, RLO (U+202A–U+202E), LRI, RLI, FSI, PDI (U+2066–U+2069), LRM, RLM and ALM.
func bidiControl(r rune) bool {
	return (r >= '\u202A' && r <= '\u202E') || (r >= '\u2066' && r <= '\u2069') ||
		r == '\u200E' || r == '\u200F' || r == '\u061C'
}
