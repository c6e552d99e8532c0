package email_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"math/big"
	"mime"
	"net"
	"net/mail"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/platform-team/sessionbot/bot"
	"github.com/platform-team/sessionbot/bot/email"
	"github.com/platform-team/sessionbot/bot/remote"
	"github.com/platform-team/sessionbot/bot/sinktest"
	"github.com/platform-team/sessionbot/cleanup"
	"github.com/platform-team/sessionbot/cleanup/redistest"
)

const (
	smtpUser = "sessionbot"
	smtpPass = "hunter2-smtp-password"
	canary   = "CANARY-mail-3e1f-TOKEN"
	reason   = "session secret rotated (INC-7)"
)

// smtpServer is a real SMTP server (github.com/emersion/go-smtp) on a loopback port: AUTH PLAIN,
// offered only over TLS (STARTTLS, or TLS from the start), with a self-signed certificate.
type smtpServer struct {
	addr string
	pool *x509.CertPool // trusts the server's certificate

	mu       sync.Mutex
	refuse   func(stage string) error // non-nil error: the answer to MAIL or DATA
	attempts int                      // MAIL commands
	auths    int
	mails    []received
}

type received struct {
	from string
	to   []string
	data string
	tls  bool
	user string
}

type serverOptions struct {
	implicitTLS  bool   // smtps: TLS from the first byte
	noTLS        bool   // neither STARTTLS nor TLS
	insecureAuth bool   // offer AUTH without TLS
	host         string // listen address; default 127.0.0.1
}

func startSMTP(t *testing.T, o serverOptions) *smtpServer {
	t.Helper()
	cert, pool := selfSigned(t)
	srv := &smtpServer{pool: pool}
	s := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) { return &session{srv: srv, conn: c}, nil }))
	s.Domain = "localhost"
	s.AllowInsecureAuth = o.insecureAuth
	s.ReadTimeout, s.WriteTimeout = 10*time.Second, 10*time.Second
	tlsConfig := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if !o.noTLS {
		s.TLSConfig = tlsConfig
	}
	if o.host == "" {
		o.host = "127.0.0.1"
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(o.host, "0"))
	if err != nil {
		t.Fatal(err)
	}
	if o.implicitTLS {
		ln = tls.NewListener(ln, tlsConfig)
	}
	srv.addr = ln.Addr().String()
	go func() { _ = s.Serve(ln) }()
	t.Cleanup(func() { _ = s.Close() })
	return srv
}

// selfSigned makes a certificate for 127.0.0.1 and localhost, and a pool that trusts it.
func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "sessionbot test SMTP"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv4(127, 0, 0, 2)}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA: true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}

func (s *smtpServer) refuseWith(f func(stage string) error) {
	s.mu.Lock()
	s.refuse = f
	s.mu.Unlock()
}

func (s *smtpServer) answer(stage string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if stage == "MAIL" {
		s.attempts++
	}
	if s.refuse != nil {
		return s.refuse(stage)
	}
	return nil
}

func (s *smtpServer) received() []received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.mails)
}

func (s *smtpServer) counts() (attempts, auths int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.attempts, s.auths
}

// session is one SMTP connection to smtpServer.
type session struct {
	srv  *smtpServer
	conn *smtp.Conn
	user string
	from string
	to   []string
}

var _ smtp.AuthSession = (*session)(nil)

func (s *session) AuthMechanisms() []string { return []string{sasl.Plain} }

func (s *session) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, pass string) error {
		s.srv.mu.Lock()
		s.srv.auths++
		s.srv.mu.Unlock()
		if user != smtpUser || pass != smtpPass {
			return errors.New("invalid credentials")
		}
		s.user = user
		return nil
	}), nil
}

func (s *session) Mail(from string, _ *smtp.MailOptions) error {
	if s.user == "" {
		return smtp.ErrAuthRequired
	}
	if err := s.srv.answer("MAIL"); err != nil {
		return err
	}
	s.from = from
	return nil
}

func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.to = append(s.to, to)
	return nil
}

func (s *session) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if err := s.srv.answer("DATA"); err != nil {
		return err
	}
	_, isTLS := s.conn.TLSConnectionState()
	s.srv.mu.Lock()
	s.srv.mails = append(s.srv.mails, received{from: s.from, to: s.to, data: string(b), tls: isTLS, user: s.user})
	s.srv.mu.Unlock()
	return nil
}

func (s *session) Reset()        { s.from, s.to = "", nil }
func (s *session) Logout() error { return nil }

// newSink is the e-mail sink for srv, trusting its certificate.
func newSink(t *testing.T, srv *smtpServer, scheme string) *email.Sink {
	t.Helper()
	s, err := email.New(email.Config{
		URL:  remote.Secret(scheme + "://" + smtpUser + ":" + smtpPass + "@" + srv.addr),
		From: "sessionbot <sessionbot@example.com>",
		To:   []string{"oncall@example.com", " Security Team <security@example.com>"},
	})
	if err != nil {
		t.Fatal(err)
	}
	s.TLSConfig = &tls.Config{RootCAs: srv.pool}
	return s
}

// seeded is a real redis-server with 40 sessions whose tokens carry the canary.
func seeded(t *testing.T) *redistest.Server {
	t.Helper()
	r := redistest.Standalone(t)
	if _, err := cleanup.Seed(context.Background(), r.Client(), cleanup.SeedSpec{Count: 40, Seed: 7, CanaryToken: canary}); err != nil {
		t.Fatal(err)
	}
	return r
}

func TestMassLogoutNoticeIsMailedOverSTARTTLSWithAuth(t *testing.T) {
	srv := startSMTP(t, serverOptions{})
	r := seeded(t)
	res := sinktest.Run(t, r.Client(), sinktest.MassLogout(reason), bot.NamedSink{Name: "email", Sink: newSink(t, srv, "smtp")})

	if keys, err := r.Client().Keys(context.Background(), "session:*").Result(); err != nil || len(keys) != 0 {
		t.Fatalf("%d session keys left (%v); want the mass logout to have run", len(keys), err)
	}
	mails := srv.received()
	if len(mails) != 1 {
		t.Fatalf("received %d mails; want 1\nconsole:\n%s", len(mails), res.Output())
	}
	m := mails[0]
	if !m.tls || m.user != smtpUser {
		t.Errorf("mail over TLS %v, authenticated as %q; want STARTTLS and AUTH as %q", m.tls, m.user, smtpUser)
	}
	if m.from != "sessionbot@example.com" || !slices.Equal(m.to, []string{"oncall@example.com", "security@example.com"}) {
		t.Errorf("envelope from %q to %q; want sessionbot@example.com to oncall@ and security@", m.from, m.to)
	}
	msg, err := mail.ReadMessage(strings.NewReader(m.data))
	if err != nil {
		t.Fatal(err)
	}
	subject, err := new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject"))
	if err != nil || !strings.HasPrefix(subject, "Mass Logout Executed") {
		t.Errorf("Subject = %q; want it to start with Mass Logout Executed", subject)
	}
	if ct := msg.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("Content-Type = %q; want text/plain", ct)
	}
	if from := msg.Header.Get("From"); !strings.Contains(from, "sessionbot@example.com") {
		t.Errorf("From = %q", from)
	}
	body, err := io.ReadAll(msg.Body)
	if err != nil {
		t.Fatal(err)
	}
	text := string(body)
	for _, want := range []string{
		"Mass Logout Executed\r\n",
		"Reason: " + reason,
		"Affected Users: All active users (40 sessions invalidated)",
		"All users must re-authenticate",
		"Action Required:",
		"Support:",
		"Requested by UALICE (alice), approved by UBOB (bob).",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("body lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "*") || strings.Contains(text, ":warning:") {
		t.Errorf("body carries Slack markup:\n%s", text)
	}
	for _, leak := range []string{canary, smtpPass} {
		for where, s := range map[string]string{"mail": m.data, "console": res.Output(), "audit": res.Audit()} {
			if strings.Contains(s, leak) {
				t.Errorf("the %s shows %q", where, leak)
			}
		}
	}
	if strings.Contains(res.Audit(), cleanup.EventNotificationFailed) {
		t.Errorf("a delivered mail was audited as failed:\n%s", res.Audit())
	}
}

// A server that refuses — 451 to the data, 554 to the sender — is tried again with backoff; when
// it keeps refusing, Notification Failed is audited and shown in the job's thread, and the
// cleanup itself is done and reported as usual.
func TestRefusingServerIsRetriedThenAuditedWhileTheCleanupIsReported(t *testing.T) {
	for _, tt := range []struct {
		name, stage string
		refusal     *smtp.SMTPError
	}{
		{"451 to DATA", "DATA", &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "queue full, try later"}},
		{"554 to MAIL", "MAIL", &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "relay refused"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := startSMTP(t, serverOptions{})
			srv.refuseWith(func(stage string) error {
				if stage == tt.stage {
					return tt.refusal
				}
				return nil
			})
			r := seeded(t)
			sink := newSink(t, srv, "smtp")
			sink.Retry = bot.Retry{Tries: 3, Budget: 10 * time.Second, Attempt: 5 * time.Second, Base: 10 * time.Millisecond, Max: 20 * time.Millisecond}
			res := sinktest.Run(t, r.Client(), sinktest.MassLogout(reason), bot.NamedSink{Name: "email", Sink: sink})

			if attempts, _ := srv.counts(); attempts != 3 || len(srv.received()) != 0 {
				t.Errorf("%d attempts, %d mails accepted; want 3 refused attempts", attempts, len(srv.received()))
			}
			want := fmt.Sprintf("Notification Failed | Channel: email | Error: email via %s: retries exhausted after 3 attempts: %d", srv.addr, tt.refusal.Code)
			if !strings.Contains(res.Audit(), want) {
				t.Errorf("audit lacks %q:\n%s", want, res.Audit())
			}
			out := res.Output()
			for _, want := range []string{"Cleanup completed: all", "Notification failed* (email)", "The cleanup itself is not affected."} {
				if !strings.Contains(out, want) && !strings.Contains(out, strings.ReplaceAll(want, "*", "")) {
					t.Errorf("console lacks %q:\n%s", want, out)
				}
			}
			if !strings.Contains(res.Audit(), "| Cleanup Completed |") {
				t.Errorf("the cleanup is not audited as completed:\n%s", res.Audit())
			}
			if strings.Contains(res.Audit()+out, smtpPass) {
				t.Error("the SMTP password is shown")
			}
		})
	}
}

// smtps:// speaks TLS from the first byte.
func TestImplicitTLS(t *testing.T) {
	srv := startSMTP(t, serverOptions{implicitTLS: true})
	err := newSink(t, srv, "smtps").Deliver(context.Background(), massLogout())
	if err != nil {
		t.Fatal(err)
	}
	if m := srv.received(); len(m) != 1 || !m[0].tls || m[0].user != smtpUser {
		t.Errorf("received %+v; want one mail over TLS, authenticated", m)
	}
}

// The password is never sent in the clear: against a server that offers AUTH but no TLS (on a
// loopback address that is not localhost to net/smtp), the sink gives up before AUTH.
func TestPasswordIsNeverSentWithoutTLS(t *testing.T) {
	srv := startSMTP(t, serverOptions{noTLS: true, insecureAuth: true, host: "127.0.0.2"})
	s := newSink(t, srv, "smtp")
	s.Retry = bot.Retry{Tries: 1, Budget: 5 * time.Second, Attempt: 5 * time.Second, Base: time.Millisecond, Max: time.Millisecond}
	err := s.Deliver(context.Background(), massLogout())
	if err == nil || !strings.Contains(err.Error(), "unencrypted connection") {
		t.Errorf("Deliver = %v; want a refusal to authenticate over an unencrypted connection", err)
	}
	if _, auths := srv.counts(); auths != 0 || len(srv.received()) != 0 {
		t.Errorf("%d AUTH attempts, %d mails; want none", auths, len(srv.received()))
	}
}

// Only a mass logout that logged users out is mailed.
func TestOnlyAMassLogoutIsMailed(t *testing.T) {
	srv := startSMTP(t, serverOptions{})
	s := newSink(t, srv, "smtp")
	other := massLogout()
	other.Mode, other.Scope = "execute", "expired_only"
	nothing := massLogout()
	nothing.Failed, nothing.Error, nothing.Report.Deleted = true, "backup failed", 0
	for _, o := range []bot.JobOutcome{other, nothing} {
		if err := s.Deliver(context.Background(), o); err != nil {
			t.Fatal(err)
		}
	}
	if attempts, _ := srv.counts(); attempts != 0 {
		t.Errorf("%d mails attempted; want none for a plain cleanup or a mass logout that deleted nothing", attempts)
	}
}

func massLogout() bot.JobOutcome {
	return bot.JobOutcome{JobID: "J1", Mode: "all", Scope: "all", Reason: reason,
		Requester: bot.Person{ID: "U0ALICE", Name: "alice"}, Report: cleanup.Report{Deleted: 1500},
		At: time.Date(2025, 11, 26, 10, 0, 0, 0, time.UTC)}
}

func TestConfigValidateNamesTheVariable(t *testing.T) {
	const url = "smtp://ops:" + smtpPass + "@mail.example.com:587"
	for _, tt := range []struct {
		name string
		cfg  email.Config
		want []string // each a line of the error; none: valid
	}{
		{"off", email.Config{}, nil},
		{"on", email.Config{URL: url, From: "bot@example.com", To: []string{"a@example.com", "b@example.com"}}, nil},
		{"smtps without port or user", email.Config{URL: "smtps://mail.example.com", From: "bot@example.com", To: []string{"a@example.com"}}, nil},
		{"bad scheme", email.Config{URL: "http://ops:" + smtpPass + "@mail.example.com", From: "bot@example.com", To: []string{"a@example.com"}},
			[]string{"SMTP_URL: the scheme must be smtp"}},
		{"not a URL", email.Config{URL: "smtp://ops:" + smtpPass + "@mail.example.com:%zz", From: "bot@example.com", To: []string{"a@example.com"}},
			[]string{"SMTP_URL: not a URL"}},
		{"bad port", email.Config{URL: "smtp://mail.example.com:99999", From: "bot@example.com", To: []string{"a@example.com"}},
			[]string{"SMTP_URL: the port must be 1 to 65535"}},
		{"recipients without server", email.Config{To: []string{"a@example.com"}}, []string{"NOTIFY_EMAIL_TO: set, but SMTP_URL is not"}},
		{"sender without server", email.Config{From: "bot@example.com"}, []string{"NOTIFY_EMAIL_FROM: set, but SMTP_URL is not"}},
		{"server without addresses", email.Config{URL: url}, []string{"NOTIFY_EMAIL_FROM: required with SMTP_URL", "NOTIFY_EMAIL_TO: required with SMTP_URL"}},
		{"bad addresses", email.Config{URL: url, From: "bot at example", To: []string{"a@example.com", "nobody"}},
			[]string{`NOTIFY_EMAIL_FROM: "bot at example" is not an e-mail address`, `NOTIFY_EMAIL_TO: "nobody" is not an e-mail address`}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v; want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil; want %q", tt.want)
			}
			lines := strings.Split(err.Error(), "\n")
			if len(lines) != len(tt.want) {
				t.Errorf("Validate() = %q; want %d lines", err, len(tt.want))
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %q; want a line with %q", err, w)
				}
			}
			if strings.Contains(err.Error(), smtpPass) {
				t.Errorf("Validate() shows the password: %v", err)
			}
		})
	}
}
