package cleanup

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
)

// RedisURL is a redis:// or rediss:// URL from the environment. It may carry a password, so it
// prints, formats, logs and marshals with the password replaced (url.URL.Redacted) — host and
// database stay visible, they say where the state lives — and as [redacted] when it does not
// parse. Reveal is the way to the value, for redis.ParseURL.
type RedisURL string

// Reveal returns the URL with its password.
func (u RedisURL) Reveal() string { return string(u) }

// String implements fmt.Stringer.
func (u RedisURL) String() string {
	if u == "" {
		return ""
	}
	p, err := url.Parse(string(u))
	if err != nil {
		return "[redacted]"
	}
	return p.Redacted()
}

// GoString implements fmt.GoStringer (%#v).
func (u RedisURL) GoString() string { return strconv.Quote(u.String()) }

// Format implements fmt.Formatter so that every verb prints the redacted form.
func (u RedisURL) Format(f fmt.State, verb rune) {
	if verb == 'q' {
		_, _ = fmt.Fprintf(f, "%q", u.String())
		return
	}
	_, _ = f.Write([]byte(u.String()))
}

// MarshalJSON implements json.Marshaler.
func (u RedisURL) MarshalJSON() ([]byte, error) { return json.Marshal(u.String()) }

// MarshalText implements encoding.TextMarshaler.
func (u RedisURL) MarshalText() ([]byte, error) { return []byte(u.String()), nil }

// LogValue implements slog.LogValuer.
func (u RedisURL) LogValue() slog.Value { return slog.StringValue(u.String()) }

// RedactURL returns a URL-ish setting (REDIS_URL, STATE_REDIS_URL, an address) with its
// credentials replaced by [redacted]. The userinfo is found textually — everything between
// "://" (or the start, without a scheme) and the last '@' — so a URL that does not parse (a bad
// port, a bad %-escape, no scheme) is redacted too.
func RedactURL(raw string) string {
	start, end := userinfo(raw)
	if start == end {
		return raw
	}
	return raw[:start] + redactedText + raw[end:]
}

const redactedText = "[redacted]"

// userinfo returns where the userinfo of raw starts and ends (start == end: none): after "://"
// (or at the start) up to the last '@'. A password may hold '/', '?' or '@' when it is not
// escaped, so nothing before the last '@' is trusted to be the host.
func userinfo(raw string) (start, end int) {
	if i := strings.Index(raw, "://"); i >= 0 {
		start = i + len("://")
	}
	rest := raw[start:]
	at := strings.LastIndexByte(rest, '@')
	if at < 0 {
		return start, start
	}
	return start, start + at
}
