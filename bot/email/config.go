package email

import (
	"errors"
	"fmt"
	"net"
	"net/mail"
	"net/url"
	"strconv"
	"strings"

	"github.com/platform-team/sessionbot/bot/remote"
)

// Config is the e-mail sink's part of the configuration (SPEC §13).
type Config struct {
	// URL is the SMTP server, smtp://[user:pass@]host:port (STARTTLS when the server offers it;
	// port 587 when omitted) or smtps://… (TLS from the start; port 465); empty disables e-mail.
	// The password in it is a secret: never printed. It is sent only over TLS (or to localhost).
	URL remote.Secret `env:"SMTP_URL"`
	// From is the sender of the Mass Logout Executed notices, e.g. "sessionbot <sessionbot@example.com>".
	From string `env:"NOTIFY_EMAIL_FROM"`
	// To are the recipients of the Mass Logout Executed notices, comma-separated.
	To []string `env:"NOTIFY_EMAIL_TO"`
}

// Enabled reports whether an SMTP server is configured.
func (c Config) Enabled() bool { return c.URL != "" }

// Secrets are SMTP_URL and the password in it: never to be shown, even quoted by a server.
func (c Config) Secrets() []remote.Secret {
	out := []remote.Secret{c.URL}
	if srv, err := parseServer(c.URL); err == nil && srv.pass != "" {
		out = append(out, remote.Secret(srv.pass))
	}
	return out
}

// Validate reports every problem at once (joined), one line each naming its variable; it never
// shows SMTP_URL's value.
func (c Config) Validate() error {
	var errs []error
	to := recipients(c.To)
	if !c.Enabled() {
		if strings.TrimSpace(c.From) != "" {
			errs = append(errs, errors.New("NOTIFY_EMAIL_FROM: set, but SMTP_URL is not (e-mail needs a server)"))
		}
		if len(to) > 0 {
			errs = append(errs, errors.New("NOTIFY_EMAIL_TO: set, but SMTP_URL is not (e-mail needs a server)"))
		}
		return errors.Join(errs...)
	}
	if _, err := parseServer(c.URL); err != nil {
		errs = append(errs, err)
	}
	if strings.TrimSpace(c.From) == "" {
		errs = append(errs, errors.New("NOTIFY_EMAIL_FROM: required with SMTP_URL (the sender of the notices)"))
	} else if _, err := mail.ParseAddress(c.From); err != nil {
		errs = append(errs, fmt.Errorf("NOTIFY_EMAIL_FROM: %q is not an e-mail address", c.From))
	}
	if len(to) == 0 {
		errs = append(errs, errors.New("NOTIFY_EMAIL_TO: required with SMTP_URL (comma-separated recipients)"))
	}
	for _, a := range to {
		if _, err := mail.ParseAddress(a); err != nil {
			errs = append(errs, fmt.Errorf("NOTIFY_EMAIL_TO: %q is not an e-mail address", a))
		}
	}
	return errors.Join(errs...)
}

// recipients returns the non-empty, trimmed entries of NOTIFY_EMAIL_TO.
func recipients(list []string) []string {
	var out []string
	for _, s := range list {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// server is SMTP_URL, parsed.
type server struct {
	addr        string // host:port
	host        string // for TLS and PLAIN auth
	implicitTLS bool   // smtps://
	user, pass  string // empty user: no AUTH
}

// parseServer parses SMTP_URL; its errors never show the value, which may hold a password.
func parseServer(s remote.Secret) (server, error) {
	const want = "want smtp://[user:pass@]host:port or smtps://[user:pass@]host:port"
	u, err := url.Parse(strings.TrimSpace(s.Reveal()))
	if err != nil {
		return server{}, fmt.Errorf("SMTP_URL: not a URL (%s)", want)
	}
	var srv server
	port := ""
	switch u.Scheme {
	case "smtp":
		port = "587"
	case "smtps":
		port, srv.implicitTLS = "465", true
	default:
		return server{}, fmt.Errorf("SMTP_URL: the scheme must be smtp (STARTTLS when offered) or smtps (TLS) (%s)", want)
	}
	srv.host = u.Hostname()
	if srv.host == "" {
		return server{}, fmt.Errorf("SMTP_URL: no host (%s)", want)
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return server{}, fmt.Errorf("SMTP_URL: the port must be 1 to 65535 (%s)", want)
		}
		port = p
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return server{}, fmt.Errorf("SMTP_URL: must not carry a path, a query or a fragment (%s)", want)
	}
	if u.User != nil {
		srv.user = u.User.Username()
		srv.pass, _ = u.User.Password()
		if srv.user == "" {
			return server{}, fmt.Errorf("SMTP_URL: a password needs a user (%s)", want)
		}
	}
	srv.addr = net.JoinHostPort(srv.host, port)
	return srv, nil
}
