package cleanup

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/syslog"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
)

// Audit event names, in the runbook's spelling. Mode and filter values are spelled by callers
// (SPEC §11: Mode is dry-run, execute, all or restore). The typed events of events.go write
// them.
const (
	EventCleanupStarted     = "Cleanup Started"
	EventSessionsScanned    = "Sessions Scanned"
	EventCleanupCompleted   = "Cleanup Completed"
	EventCleanupFailed      = "Cleanup Failed"
	EventRequestCreated     = "Request Created"
	EventApproved           = "Approved"
	EventRejected           = "Rejected"
	EventExpired            = "Expired"
	EventRefused            = "Refused"
	EventCancelled          = "Cancelled"
	EventNotificationFailed = "Notification Failed"
	EventRestoreCompleted   = "Restore Completed"
	EventBackupCompleted    = "Backup Completed"
	EventSymptomDetected    = "Symptom Detected"
	EventCleanupResumed     = "Cleanup Resumed"
)

// maxAuditValue bounds one field value (in runes) so a pasted essay as --reason cannot turn an
// audit line into megabytes; the cut is marked with "…".
const maxAuditValue = 512

// AuditEvent is one line of the audit log.
type AuditEvent struct {
	Time   time.Time
	Event  string
	Fields []AuditField
}

// AuditField is one "Name: Value" part of an audit line, in the order given.
type AuditField struct{ Name, Value string }

// Event builds an AuditEvent from alternating field names and values:
// Event(now, EventCleanupCompleted, "Deleted", "150", "Kept", "850", "Errors", "0").
// A trailing name without a value gets an empty value.
func Event(t time.Time, name string, kv ...string) AuditEvent {
	ev := AuditEvent{Time: t, Event: name, Fields: make([]AuditField, 0, (len(kv)+1)/2)}
	for i := 0; i < len(kv); i += 2 {
		f := AuditField{Name: kv[i]}
		if i+1 < len(kv) {
			f.Value = kv[i+1]
		}
		ev.Fields = append(ev.Fields, f)
	}
	return ev
}

// String renders the event in the runbook's format:
//
//	2025-11-26T10:00:10Z | Cleanup Completed | Deleted: 150 | Kept: 850 | Errors: 0
//
// The time is UTC with second precision. Every name and value is sanitized so that one event is
// always exactly one line with the fields it was given, in the order it is stored: InertLine
// turns control characters (newlines included) into spaces and removes bidirectional overrides,
// and a '|' next to a space or an end becomes '/', so user-supplied text (a --reason, a user id)
// can neither start a new line, nor forge a field, nor make a line read in another order.
// Fields whose name mentions a token or secret are redacted (SPEC §2: such values never reach
// the audit log).
func (e AuditEvent) String() string {
	var b strings.Builder
	b.WriteString(e.Time.UTC().Format("2006-01-02T15:04:05Z"))
	b.WriteString(" | ")
	b.WriteString(sanitizeAudit(e.Event))
	for _, f := range e.Fields {
		b.WriteString(" | ")
		b.WriteString(sanitizeAudit(f.Name))
		b.WriteString(": ")
		if secretName(f.Name) {
			b.WriteString("[redacted]")
			continue
		}
		b.WriteString(sanitizeAudit(f.Value))
	}
	return b.String()
}

// JSON renders the event as one JSON object on one line, for AUDIT_FORMAT=json: "time" and
// "event" first, then each field under its own name, in order, with the same values (and the
// same redaction and length bound) as String.
//
//	{"time":"2025-11-26T10:00:10Z","event":"Cleanup Completed","Deleted":"150","Kept":"850","Errors":"0"}
func (e AuditEvent) JSON() string {
	var b strings.Builder
	b.WriteString(`{"time":`)
	b.WriteString(jsonString(e.Time.UTC().Format("2006-01-02T15:04:05Z")))
	b.WriteString(`,"event":`)
	b.WriteString(jsonString(sanitizeAudit(e.Event)))
	for _, f := range e.Fields {
		b.WriteString(",")
		b.WriteString(jsonString(sanitizeAudit(f.Name)))
		b.WriteString(":")
		if secretName(f.Name) {
			b.WriteString(`"[redacted]"`)
			continue
		}
		b.WriteString(jsonString(sanitizeAudit(f.Value)))
	}
	b.WriteString("}")
	return b.String()
}

// jsonString is s as a JSON string (s is valid text: json.Marshal of a string cannot fail).
func jsonString(s string) string {
	out, _ := json.Marshal(s)
	return string(out)
}

func secretName(name string) bool {
	n := strings.ToLower(name)
	return strings.Contains(n, "token") || strings.Contains(n, "secret")
}

func sanitizeAudit(s string) string {
	s = InertLine(s)
	if r := []rune(s); len(r) > maxAuditValue {
		s = string(r[:maxAuditValue]) + "…"
	}
	return separatorSafe(s)
}

// separatorSafe turns each '|' that touches a space or an end of the value into '/': fields are
// separated by " | ", so only such a '|' could forge one. A '|' inside a word stays, so
// user_id=auth0|123 is audited as written.
func separatorSafe(s string) string {
	if !strings.Contains(s, "|") {
		return s
	}
	rs := []rune(s)
	for i, r := range rs {
		if r != '|' {
			continue
		}
		if i == 0 || i == len(rs)-1 || unicode.IsSpace(rs[i-1]) || unicode.IsSpace(rs[i+1]) {
			rs[i] = '/'
		}
	}
	return string(rs)
}

// syslogQueue bounds the lines waiting for the syslog collector; beyond it lines are dropped
// (and counted) rather than blocking a cleanup.
const syslogQueue = 1024

// syslogDrainTimeout bounds how long Close waits for queued lines to reach the collector.
const syslogDrainTimeout = 2 * time.Second

// Auditor writes audit events to stdout, an append-only file and, optionally, a syslog
// collector. The file is the sink of record: Log fails only when the file write or fsync
// fails, so a caller can refuse a mass logout whose intent cannot be recorded. Syslog is best
// effort and never blocks Log. Safe for concurrent use.
type Auditor struct {
	mu     sync.Mutex // orders lines identically in every sink
	stdout io.Writer
	file   *os.File
	path   string
	format AuditFormat
	closed bool

	queue      chan string // nil without syslog
	done       chan struct{}
	syslogErrs atomic.Int64
	dropped    atomic.Int64
	lastErr    atomic.Pointer[error]
}

// NewAuditor opens the sinks of cfg. The file cfg.File, when set, is opened for appending and
// created with mode 0600 (an existing file keeps its mode). cfg.SyslogAddr, when set, is
// udp://host:port, tcp://host:port or unix:///path/to/socket; the collector is dialled lazily in
// the background, so an unreachable collector is not an error here, but a malformed address is.
func NewAuditor(cfg AuditConfig, stdout io.Writer) (*Auditor, error) {
	a := &Auditor{stdout: stdout, path: cfg.File, format: cfg.Format}
	var network, addr string
	if cfg.SyslogAddr != "" {
		var err error
		if network, addr, err = parseSyslogAddr(cfg.SyslogAddr); err != nil {
			return nil, err
		}
	}
	if cfg.File != "" {
		f, err := os.OpenFile(cfg.File, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			return nil, fmt.Errorf("AUDIT_LOG: %w", err)
		}
		a.file = f
	}
	if network != "" {
		a.queue = make(chan string, syslogQueue)
		a.done = make(chan struct{})
		go a.forward(network, addr)
	}
	return a, nil
}

func parseSyslogAddr(s string) (network, addr string, err error) {
	bad := func(why string) (string, string, error) {
		return "", "", fmt.Errorf("AUDIT_SYSLOG_ADDR %q: %s (want udp://host:port, tcp://host:port or unix:///path)", RedactURL(s), why)
	}
	u, err := url.Parse(s)
	if err != nil {
		return bad("not a URL")
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return bad("unexpected user, query or fragment")
	}
	switch u.Scheme {
	case "udp", "tcp":
		if u.Path != "" || u.Opaque != "" {
			return bad("unexpected path")
		}
		host, port, err := net.SplitHostPort(u.Host)
		if err != nil || host == "" || port == "" {
			return bad("need host:port")
		}
		return u.Scheme, u.Host, nil
	case "unix":
		if u.Host != "" || !strings.HasPrefix(u.Path, "/") {
			return bad("need an absolute socket path")
		}
		return "unix", u.Path, nil
	default:
		return bad("unknown scheme")
	}
}

// Log writes ev to every sink, in the configured format. It returns an error only when the audit file could not be
// written and synced; stdout and syslog failures do not fail the caller.
func (a *Auditor) Log(ev AuditEvent) error {
	line := ev.String()
	if a.format == AuditJSON {
		line = ev.JSON()
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.stdout != nil {
		_, _ = io.WriteString(a.stdout, line+"\n")
	}
	if a.closed {
		if a.path != "" {
			return fmt.Errorf("audit: %s: auditor closed", a.path)
		}
		return nil
	}
	if a.queue != nil {
		select {
		case a.queue <- line:
		default:
			a.dropped.Add(1)
		}
	}
	if a.file != nil {
		// One write call per line: with O_APPEND it lands whole even if another process
		// appends to the same file. Sync because the line may record the intent of a mass
		// logout that must survive a crash of this process or host.
		if _, err := a.file.Write([]byte(line + "\n")); err != nil {
			return fmt.Errorf("audit: write %s: %w", a.path, err)
		}
		if err := a.file.Sync(); err != nil {
			return fmt.Errorf("audit: sync %s: %w", a.path, err)
		}
	}
	return nil
}

// forward delivers queued lines to the collector, reconnecting for each line after a failure.
func (a *Auditor) forward(network, addr string) {
	defer close(a.done)
	var w *syslog.Writer
	for line := range a.queue {
		if w == nil {
			var err error
			if w, err = dialSyslog(network, addr); err != nil {
				a.syslogFailed(err)
				continue
			}
		}
		// syslog.Writer reconnects and retries once on a write error.
		if err := w.Notice(line); err != nil {
			a.syslogFailed(err)
			_ = w.Close()
			w = nil
		}
	}
	if w != nil {
		_ = w.Close()
	}
}

func dialSyslog(network, addr string) (*syslog.Writer, error) {
	const prio = syslog.LOG_AUTH | syslog.LOG_NOTICE
	if network != "unix" {
		return syslog.Dial(network, addr, prio, "sessionbot")
	}
	// /dev/log is a datagram socket on most systems; some collectors listen on a stream one.
	w, err := syslog.Dial("unixgram", addr, prio, "sessionbot")
	if err == nil {
		return w, nil
	}
	w, err2 := syslog.Dial("unix", addr, prio, "sessionbot")
	if err2 != nil {
		return nil, errors.Join(err, err2)
	}
	return w, nil
}

func (a *Auditor) syslogFailed(err error) {
	a.syslogErrs.Add(1)
	a.lastErr.Store(&err)
}

// SyslogErrors is the number of lines that could not be delivered to the syslog collector.
func (a *Auditor) SyslogErrors() int64 { return a.syslogErrs.Load() }

// SyslogDropped is the number of lines dropped because the syslog queue was full.
func (a *Auditor) SyslogDropped() int64 { return a.dropped.Load() }

// SyslogLastError is the most recent syslog delivery error, or nil.
func (a *Auditor) SyslogLastError() error {
	if p := a.lastErr.Load(); p != nil {
		return *p
	}
	return nil
}

// Close stops accepting events, waits briefly for queued syslog lines to be delivered, and
// closes the file. It reports a file close error, or that syslog lines were still queued.
func (a *Auditor) Close() error {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return nil
	}
	a.closed = true
	if a.queue != nil {
		close(a.queue)
	}
	a.mu.Unlock()

	var errs []error
	if a.done != nil {
		t := time.NewTimer(syslogDrainTimeout)
		select {
		case <-a.done:
			t.Stop()
		case <-t.C:
			errs = append(errs, fmt.Errorf("audit: syslog collector did not take %d queued lines within %s", len(a.queue), syslogDrainTimeout))
		}
	}
	if a.file != nil {
		if err := a.file.Close(); err != nil {
			errs = append(errs, fmt.Errorf("audit: close %s: %w", a.path, err))
		}
	}
	return errors.Join(errs...)
}
