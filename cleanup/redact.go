package cleanup

import "strings"

// KeyText names a session key in an error or a log line: the prefix and the ShortID of the
// session id, never the whole id — a session id may itself be a bearer credential (SPEC §12.8).
func KeyText(prefix, key string) string {
	id, ok := strings.CutPrefix(key, prefix)
	if !ok {
		return ShortID(key)
	}
	return prefix + ShortID(id)
}

// RedactKeys shortens every session key in msg (prefix followed by an id, up to a space, a quote
// or punctuation that ends a word in an error message) to KeyText. It is for errors that come
// from code that names keys in full, before they reach a log, a terminal, chat or the audit.
func RedactKeys(msg, prefix string) string {
	if prefix == "" {
		return msg
	}
	var b strings.Builder
	for {
		i := strings.Index(msg, prefix)
		if i < 0 {
			b.WriteString(msg)
			return b.String()
		}
		b.WriteString(msg[:i+len(prefix)])
		rest := msg[i+len(prefix):]
		end := strings.IndexAny(rest, " \t\n\"'`,;)")
		if end < 0 {
			end = len(rest)
		}
		id := strings.TrimSuffix(rest[:end], ":")
		b.WriteString(ShortID(id))
		msg = rest[len(id):]
	}
}
