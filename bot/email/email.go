// Package email is the e-mail sink (SPEC §13): after a mass logout, the runbook's Mass Logout
// Executed notice (the runbook's template is "Slack/Email") goes to NOTIFY_EMAIL_TO as a
// plain-text mail, over SMTP with STARTTLS and AUTH PLAIN (net/smtp). The core (package bot)
// knows nothing of it.
package email

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"net/smtp"
	"os"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/platform-team/sessionbot/bot"
	"github.com/platform-team/sessionbot/cleanup"
	"github.com/platform-team/sessionbot/templates"
)

// Subject starts every notice's subject line.
const Subject = "Mass Logout Executed"

// DefaultRetry retries a notice for about a minute.
var DefaultRetry = bot.Retry{Tries: 8, Budget: time.Minute, Attempt: 20 * time.Second, Base: 2 * time.Second, Max: 15 * time.Second}

// Sink mails the Mass Logout Executed notice. Every failure is retried within Retry: a relay's
// 5xx is as often a passing refusal (a rate limit, greylisting, a full queue) as a lasting one,
// and within a minute retrying costs nothing; what is still failing then is the Fanout's to
// report.
type Sink struct {
	// Retry bounds the delivery of one notice; New sets DefaultRetry.
	Retry bot.Retry
	// TLSConfig is the base of the TLS configuration (STARTTLS and smtps); nil: the system's
	// roots. ServerName is always SMTP_URL's host.
	TLSConfig *tls.Config

	server server
	from   *mail.Address
	to     []*mail.Address
	helo   string
}

var _ bot.Sink = (*Sink)(nil)

// New returns the sink for cfg, which must be enabled and valid (Config.Validate).
func New(cfg Config) (*Sink, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if !cfg.Enabled() {
		return nil, fmt.Errorf("email: SMTP_URL is not set")
	}
	srv, _ := parseServer(cfg.URL)
	from, _ := mail.ParseAddress(cfg.From)
	s := &Sink{Retry: DefaultRetry, server: srv, from: from, helo: "localhost"}
	for _, a := range recipients(cfg.To) {
		addr, _ := mail.ParseAddress(a)
		s.to = append(s.to, addr)
	}
	if h, err := os.Hostname(); err == nil && h != "" && !strings.ContainsAny(h, " \r\n") {
		s.helo = h
	}
	return s, nil
}

// Deliver implements bot.Sink: the notice of a mass logout that logged users out; nothing for
// other runs.
func (s *Sink) Deliver(ctx context.Context, o bot.JobOutcome) error {
	if !o.MassLogoutExecuted() {
		return nil
	}
	msg := s.message(o, time.Now())
	retryAll := func(error) bot.Verdict { return bot.Verdict{Retry: true} }
	if err := s.Retry.Do(ctx, retryAll, func(ctx context.Context) error { return s.send(ctx, msg) }); err != nil {
		return fmt.Errorf("email via %s: %w", s.server.addr, err)
	}
	return nil
}

// send delivers msg in one SMTP session: TLS (from the start, or STARTTLS when the server offers
// it), AUTH PLAIN when SMTP_URL has a user — net/smtp refuses to send the password over a
// connection that is neither TLS nor to localhost — then the envelope and the data.
func (s *Sink) send(ctx context.Context, msg []byte) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", s.server.addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	// net/smtp knows no context: the connection's deadline is the attempt's, and cancelling
	// unblocks whatever is in flight.
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	tlsConfig := &tls.Config{MinVersion: tls.VersionTLS12}
	if s.TLSConfig != nil {
		tlsConfig = s.TLSConfig.Clone()
	}
	tlsConfig.ServerName = s.server.host
	if s.server.implicitTLS {
		tc := tls.Client(conn, tlsConfig)
		if err := tc.HandshakeContext(ctx); err != nil {
			return err
		}
		conn = tc
	}
	c, err := smtp.NewClient(conn, s.server.host)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Hello(s.helo); err != nil {
		return err
	}
	if !s.server.implicitTLS {
		if ok, _ := c.Extension("STARTTLS"); ok {
			if err := c.StartTLS(tlsConfig); err != nil {
				return err
			}
		}
	}
	if s.server.user != "" {
		if err := c.Auth(smtp.PlainAuth("", s.server.user, s.server.pass, s.server.host)); err != nil {
			return err
		}
	}
	if err := c.Mail(s.from.Address); err != nil {
		return err
	}
	for _, a := range s.to {
		if err := c.Rcpt(a.Address); err != nil {
			return err
		}
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write(msg); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	// The server has accepted the message: a failed goodbye must not send it twice.
	_ = c.Quit()
	return nil
}

// message is the whole mail, headers and body, with bare line feeds (net/smtp's data writer
// sends them as CRLF); its Message-ID is the same for every attempt.
func (s *Sink) message(o bot.JobOutcome, now time.Time) []byte {
	body := body(o)
	encoding := "7bit"
	if !plainASCII(body) {
		var b bytes.Buffer
		w := quotedprintable.NewWriter(&b)
		_, _ = w.Write([]byte(body))
		_ = w.Close()
		body, encoding = b.String(), "quoted-printable"
	}
	to := make([]string, len(s.to))
	for i, a := range s.to {
		to[i] = a.String()
	}
	var id [12]byte
	_, _ = rand.Read(id[:])
	var b strings.Builder
	for _, h := range [][2]string{
		{"From", s.from.String()},
		{"To", strings.Join(to, ", ")},
		{"Subject", subject(o)},
		{"Date", now.Format(time.RFC1123Z)},
		{"Message-ID", "<" + hex.EncodeToString(id[:]) + "@sessionbot>"},
		{"MIME-Version", "1.0"},
		{"Content-Type", "text/plain; charset=utf-8"},
		{"Content-Transfer-Encoding", encoding},
		{"Auto-Submitted", "auto-generated"},
	} {
		b.WriteString(h[0] + ": " + h[1] + "\n")
	}
	b.WriteString("\n")
	b.WriteString(body)
	return []byte(b.String())
}

// subject is "Mass Logout Executed: …" in ASCII, so that it needs no encoding.
func subject(o bot.JobOutcome) string {
	s := Subject + ": all users must re-authenticate"
	if o.StoppedEarly() {
		s = Subject + " part-way: some users must re-authenticate"
	}
	job := cleanup.InertLine(o.JobID)
	if job != "" && plainASCII(job) {
		s += " (job " + job + ")"
	}
	return s
}

// mrkdwnLabel matches the template's Slack decoration at the start of a line: an emoji code and
// a bold label. Values never start a line, so what a person typed keeps its asterisks.
var mrkdwnLabel = regexp.MustCompile(`(?m)^(?::[a-z_]+: )?\*([^*\n]+)\*`)

// body is the notice as plain text: the runbook's Mass Logout Executed template (the same one
// Slack shows, without its mrkdwn), then who ran which job where.
func body(o bot.JobOutcome) string {
	d := o.MassLogoutNotice()
	d.Reason = cleanup.InertLine(d.Reason) // one line: it cannot add sections to the notice
	text := mrkdwnLabel.ReplaceAllString(templates.MassLogout(d), "$1")
	people := "Requested by " + bot.PersonText(o.Requester)
	for i, p := range o.Approvals {
		if i == 0 {
			people += ", approved by "
		} else {
			people += " and "
		}
		people += bot.PersonText(p)
	}
	lines := []string{text, "", "-- ", "Job " + cleanup.InertLine(o.JobID) + ". " + cleanup.InertLine(people) + "."}
	if o.Target != "" {
		lines = append(lines, "Target: "+cleanup.InertLine(o.Target))
	}
	if link := bot.Permalink(o.Thread); link != "" {
		lines = append(lines, "Slack thread: "+link)
	}
	lines = append(lines, "Sent by sessionbot.")
	return strings.Join(lines, "\n") + "\n"
}

// plainASCII reports whether s can be sent as 7bit: ASCII, lines within SMTP's 998 octets.
func plainASCII(s string) bool {
	for _, line := range strings.Split(s, "\n") {
		if len(line) > 998 {
			return false
		}
	}
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}
