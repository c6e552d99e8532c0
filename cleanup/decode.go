package cleanup

import (
	"encoding/binary"
	"math/bits"
	"time"
	"unicode/utf16"
	"unicode/utf8"
)

// DecodeSession extracts the fields filters need from a stored session value. ok is false when
// raw is not exactly one JSON object (surrounding whitespace allowed). A field that is missing,
// of the wrong JSON type, or (for times) not RFC 3339 is left out of Session.Has; it does not
// make the value invalid. Duplicate keys: the last one wins, as with encoding/json.
//
// It is a single-pass scanner that validates the whole value as encoding/json would (json.Valid,
// nesting limit included) and copies nothing but the three extracted strings: tokens and every
// other field are stepped over in place, never decoded, so they cannot outlive the call.
func DecodeSession(raw []byte) (Session, bool) {
	var s Session
	i := skipWS(raw, 0)
	if i >= len(raw) || raw[i] != '{' {
		return Session{}, false
	}
	i = skipWS(raw, i+1)
	if i < len(raw) && raw[i] == '}' {
		i++
	} else {
		for {
			if i >= len(raw) || raw[i] != '"' {
				return Session{}, false
			}
			end, escaped := scanString(raw, i+1)
			if end < 0 {
				return Session{}, false
			}
			field := fieldNamed(raw[i+1:end-1], escaped)
			i = skipWS(raw, end)
			if i >= len(raw) || raw[i] != ':' {
				return Session{}, false
			}
			i = skipWS(raw, i+1)
			if i >= len(raw) {
				return Session{}, false
			}
			if field != 0 && raw[i] == '"' {
				end, escaped := scanString(raw, i+1)
				if end < 0 {
					return Session{}, false
				}
				s.set(field, raw[i+1:end-1], escaped)
				i = end
			} else {
				s.unset(field) // a later duplicate of the wrong type wins too
				if i = skipValue(raw, i); i < 0 {
					return Session{}, false
				}
			}
			i = skipWS(raw, i)
			if i >= len(raw) {
				return Session{}, false
			}
			if raw[i] == ',' {
				i = skipWS(raw, i+1)
				continue
			}
			if raw[i] != '}' {
				return Session{}, false
			}
			i++
			break
		}
	}
	if skipWS(raw, i) != len(raw) {
		return Session{}, false
	}
	return s, true
}

// fieldNamed returns the field a key names, 0 for any other key. key is the raw text between
// the quotes, already validated.
func fieldNamed(key []byte, escaped bool) Fields {
	if escaped {
		// A key spelled with escapes ("user\u005fid") still names the field. Every byte of a
		// field name costs at most 6 bytes of escapes, so longer keys cannot match.
		if len(key) > 6*len("last_activity") {
			return 0
		}
		var buf [3 * 6 * len("last_activity")]byte // unescaping at most triples the length
		key = unescape(buf[:0], key)
	}
	switch string(key) {
	case "user_id":
		return FieldUserID
	case "username":
		return FieldUsername
	case "auth_method":
		return FieldAuthMethod
	case "created_at":
		return FieldCreatedAt
	case "last_activity":
		return FieldLastActivity
	case "expires_at":
		return FieldExpiresAt
	}
	return 0
}

// set records field from the raw text of a JSON string value (between the quotes, validated).
func (s *Session) set(field Fields, raw []byte, escaped bool) {
	s.unset(field)
	switch field {
	case FieldUserID, FieldUsername, FieldAuthMethod:
		v := decodeString(raw, escaped)
		switch field {
		case FieldUserID:
			s.UserID = v
		case FieldUsername:
			s.Username = v
		case FieldAuthMethod:
			s.AuthMethod = v
		}
	case FieldCreatedAt, FieldLastActivity, FieldExpiresAt:
		if escaped {
			var buf [64]byte
			raw = unescape(buf[:0], raw)
		}
		var t time.Time
		if t.UnmarshalText(raw) != nil { // time.Parse(time.RFC3339, …) without allocating
			return
		}
		switch field {
		case FieldCreatedAt:
			s.CreatedAt = t
		case FieldLastActivity:
			s.LastActivity = t
		case FieldExpiresAt:
			s.ExpiresAt = t
		}
	}
	s.Has |= field
}

// unset forgets field (a duplicate key overrides an earlier value).
func (s *Session) unset(field Fields) {
	if s.Has&field == 0 {
		return
	}
	s.Has &^= field
	switch field {
	case FieldUserID:
		s.UserID = ""
	case FieldUsername:
		s.Username = ""
	case FieldAuthMethod:
		s.AuthMethod = ""
	case FieldCreatedAt:
		s.CreatedAt = time.Time{}
	case FieldLastActivity:
		s.LastActivity = time.Time{}
	case FieldExpiresAt:
		s.ExpiresAt = time.Time{}
	}
}

// decodeString returns the Go string for the raw text of a JSON string, as encoding/json would
// (invalid UTF-8 and lone surrogates become U+FFFD). The common auth methods are not allocated.
func decodeString(raw []byte, escaped bool) string {
	if !escaped && utf8.Valid(raw) {
		switch string(raw) {
		case "oauth2":
			return "oauth2"
		case "mtls_fallback":
			return "mtls_fallback"
		case "basic_auth":
			return "basic_auth"
		}
		return string(raw)
	}
	return string(unescape(make([]byte, 0, len(raw)), raw))
}

// maxDepth is encoding/json's nesting limit: the top-level object counts as 1.
const maxDepth = 10000

// jsonWS reports the four JSON whitespace bytes.
var jsonWS = [256]bool{' ': true, '\t': true, '\n': true, '\r': true}

// plainStr reports the bytes a JSON string may contain as they are: not a quote, a backslash,
// or a control character. Bytes ≥ 0x80 pass: like json.Valid, the scanner does not check UTF-8.
var plainStr = func() (t [256]bool) {
	for c := 0x20; c < 256; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

func skipWS(b []byte, i int) int {
	for i < len(b) && jsonWS[b[i]] {
		i++
	}
	return i
}

// scanString validates a JSON string whose opening quote is at b[i-1]. It returns the index
// after the closing quote (-1 if the string is invalid or unterminated) and whether the string
// has escapes.
func scanString(b []byte, i int) (end int, escaped bool) {
	for {
		if i = plainRun(b, i); i >= len(b) {
			return -1, false
		}
		switch b[i] {
		case '"':
			return i + 1, escaped
		case '\\':
			escaped = true
			if i+1 >= len(b) {
				return -1, false
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(b) || hex4(b[i+2:i+6]) < 0 {
					return -1, false
				}
				i += 6
			default:
				return -1, false
			}
		default: // a control character
			return -1, false
		}
	}
}

// plainRun returns the index of the first byte at or after b[i] that a JSON string may not
// contain as is ('"', '\\' or a control character), or len(b). Tokens make up most of a session,
// so it looks at eight bytes at a time: in each of the masks below the lowest flagged byte is
// exact (false positives only appear above a true one), which is all it needs.
func plainRun(b []byte, i int) int {
	const (
		ones = 0x0101010101010101
		high = 0x8080808080808080
	)
	for ; i+8 <= len(b); i += 8 {
		w := binary.LittleEndian.Uint64(b[i:])
		quote := w ^ (ones * '"')
		backslash := w ^ (ones * '\\')
		special := ((quote - ones) &^ quote) | ((backslash - ones) &^ backslash) | ((w - ones*0x20) &^ w)
		if special &= high; special != 0 {
			return i + bits.TrailingZeros64(special)/8
		}
	}
	for i < len(b) && plainStr[b[i]] {
		i++
	}
	return i
}

// hex4 decodes four hex digits, or returns -1.
func hex4(b []byte) rune {
	var r rune
	for _, c := range b[:4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return -1
		}
		r = r<<4 | rune(c)
	}
	return r
}

// unescape appends to dst the decoded text of a validated JSON string body, following
// encoding/json exactly: invalid UTF-8 bytes and unpaired surrogates become U+FFFD.
func unescape(dst, s []byte) []byte {
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '\\':
			switch s[i+1] {
			case 'b':
				dst = append(dst, '\b')
			case 'f':
				dst = append(dst, '\f')
			case 'n':
				dst = append(dst, '\n')
			case 'r':
				dst = append(dst, '\r')
			case 't':
				dst = append(dst, '\t')
			case 'u':
				r := hex4(s[i+2:])
				i += 6
				if utf16.IsSurrogate(r) {
					if i+6 <= len(s) && s[i] == '\\' && s[i+1] == 'u' {
						if pair := utf16.DecodeRune(r, hex4(s[i+2:])); pair != utf8.RuneError {
							dst = utf8.AppendRune(dst, pair)
							i += 6
							continue
						}
					}
					r = utf8.RuneError
				}
				dst = utf8.AppendRune(dst, r)
				continue
			default: // '"', '\\', '/'
				dst = append(dst, s[i+1])
			}
			i += 2
		case c < utf8.RuneSelf:
			dst = append(dst, c)
			i++
		default:
			r, size := utf8.DecodeRune(s[i:])
			if r == utf8.RuneError && size == 1 {
				dst = utf8.AppendRune(dst, utf8.RuneError)
			} else {
				dst = append(dst, s[i:i+size]...)
			}
			i += size
		}
	}
	return dst
}

// skipValue validates the JSON value starting at b[i] (a member of the top-level object) and
// returns the index after it, or -1.
func skipValue(b []byte, i int) int {
	switch b[i] {
	case '"':
		i, _ = scanString(b, i+1)
		return i
	case '{', '[':
		return skipContainer(b, i)
	}
	return skipScalar(b, i)
}

// skipScalar skips a number, true, false or null at b[i], or returns -1. The byte after it is
// left for the caller to check (it must be whitespace, ',', '}' or ']').
func skipScalar(b []byte, i int) int {
	switch b[i] {
	case 't':
		return skipLiteral(b, i, "true")
	case 'f':
		return skipLiteral(b, i, "false")
	case 'n':
		return skipLiteral(b, i, "null")
	}
	// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
	if b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && '1' <= b[i] && b[i] <= '9':
		i = skipDigits(b, i+1)
	default:
		return -1
	}
	if i < len(b) && b[i] == '.' {
		j := skipDigits(b, i+1)
		if j == i+1 {
			return -1
		}
		i = j
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		j := skipDigits(b, i)
		if j == i {
			return -1
		}
		i = j
	}
	return i
}

func skipDigits(b []byte, i int) int {
	for i < len(b) && '0' <= b[i] && b[i] <= '9' {
		i++
	}
	return i
}

func skipLiteral(b []byte, i int, lit string) int {
	if len(b)-i < len(lit) || string(b[i:i+len(lit)]) != lit {
		return -1
	}
	return i + len(lit)
}

// skipMember validates `"key" :` at b[i] and returns the index of the value after it, or -1.
func skipMember(b []byte, i int) int {
	if i >= len(b) || b[i] != '"' {
		return -1
	}
	if i, _ = scanString(b, i+1); i < 0 {
		return -1
	}
	i = skipWS(b, i)
	if i >= len(b) || b[i] != ':' {
		return -1
	}
	return skipWS(b, i+1)
}

// skipContainer validates the object or array at b[i] without recursion: a bit stack records,
// per open container, whether it is an object.
func skipContainer(b []byte, i int) int {
	var objects [maxDepth/64 + 1]uint64
	depth := 0 // open containers below the top-level object
	for {
		if i >= len(b) {
			return -1
		}
		switch c := b[i]; c {
		case '{', '[':
			if depth+1 >= maxDepth {
				return -1
			}
			if c == '{' {
				objects[depth/64] |= 1 << (depth % 64)
			} else {
				objects[depth/64] &^= 1 << (depth % 64)
			}
			depth++
			if i = skipWS(b, i+1); i >= len(b) {
				return -1
			}
			if b[i] == '}' && c == '{' || b[i] == ']' && c == '[' {
				i++
				depth--
				break // an empty container is a complete value
			}
			if c == '{' {
				if i = skipMember(b, i); i < 0 {
					return -1
				}
			}
			continue // to the first element
		case '"':
			if i, _ = scanString(b, i+1); i < 0 {
				return -1
			}
		default:
			if i = skipScalar(b, i); i < 0 {
				return -1
			}
		}
		// A value is complete: close containers until one continues with ','.
		for {
			if depth == 0 {
				return i
			}
			if i = skipWS(b, i); i >= len(b) {
				return -1
			}
			top := depth - 1
			object := objects[top/64]&(1<<(top%64)) != 0
			if b[i] == ',' {
				i = skipWS(b, i+1)
				if object {
					if i = skipMember(b, i); i < 0 {
						return -1
					}
				}
				break
			}
			if object && b[i] != '}' || !object && b[i] != ']' {
				return -1
			}
			i++
			depth--
		}
	}
}
