// Package remote holds what every adapter that calls an outside service shares — the Slack
// transport and Web API, and the PagerDuty, e-mail and webhook sinks: the type of their
// credentials (Secret), the check of a service's base URL (CheckBaseURL) and which network
// failures are worth retrying (TransientNetError). It is a leaf: it imports only the standard
// library, so that the core (bot) and every adapter may import it without importing each other.
package remote

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"syscall"
)

// Secret is a credential read from the environment. It prints, formats, logs and marshals as
// [redacted] so that a config dumped with %+v, slog or encoding/json never shows it; Reveal is
// the only way to the value, and is called only where the value is sent to its own service.
type Secret string

// Redacted is what a Secret shows instead of its value, and what stands for a secret quoted in
// a reported failure.
const Redacted = "[redacted]"

// Reveal returns the secret value.
func (s Secret) Reveal() string { return string(s) }

// String implements fmt.Stringer.
func (s Secret) String() string { return Redacted }

// GoString implements fmt.GoStringer (%#v).
func (s Secret) GoString() string { return `"` + Redacted + `"` }

// Format implements fmt.Formatter so that every verb (%v, %+v, %s, %q, %x, %d…) is redacted.
func (s Secret) Format(f fmt.State, verb rune) {
	if verb == 'q' {
		_, _ = fmt.Fprintf(f, "%q", Redacted)
		return
	}
	_, _ = f.Write([]byte(Redacted))
}

// MarshalJSON implements json.Marshaler.
func (s Secret) MarshalJSON() ([]byte, error) { return json.Marshal(Redacted) }

// MarshalText implements encoding.TextMarshaler (map keys, YAML, TOML encoders).
func (s Secret) MarshalText() ([]byte, error) { return []byte(Redacted), nil }

// LogValue implements slog.LogValuer.
func (s Secret) LogValue() slog.Value { return slog.StringValue(Redacted) }

// CheckBaseURL checks the setting name, an http(s) URL of a service the bot calls, and returns it
// parsed and re-assembled. Its error names the variable and shows the value only when it cannot
// carry credentials.
func CheckBaseURL(name, raw string) (string, error) {
	shown := fmt.Sprintf(" %q", raw)
	if strings.Contains(raw, "@") {
		shown = "" // may carry credentials
	}
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("%s%s must be an http(s) URL", name, shown)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("%s must not carry credentials, a query or a fragment", name)
	}
	return u.String(), nil
}

// TransientNetError reports whether err is a network failure worth retrying: a timeout, a reset
// or refused connection, or a connection closed mid-response.
func TransientNetError(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return true
	}
	if errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EPIPE) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
