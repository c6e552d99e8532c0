package cleanup

import (
	"bytes"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

var auditT0 = time.Date(2025, 11, 26, 10, 0, 0, 0, time.UTC)

func TestAuditEventString(t *testing.T) {
	cet := time.FixedZone("CET", 3600)
	tests := []struct {
		name string
		ev   AuditEvent
		want string
	}{
		{
			name: "started",
			ev: Event(auditT0, EventCleanupStarted, "User", "U123 (alice)", "Mode", "all",
				"Filters", "all", "Approved-By", "U456 (bob)", "Reason", "INC-42 token leak"),
			want: "2025-11-26T10:00:00Z | Cleanup Started | User: U123 (alice) | Mode: all | Filters: all | Approved-By: U456 (bob) | Reason: INC-42 token leak",
		},
		{
			name: "scanned",
			ev:   Event(auditT0.Add(5*time.Second), EventSessionsScanned, "Total", "1000", "Matched", "150", "Kept", "850"),
			want: "2025-11-26T10:00:05Z | Sessions Scanned | Total: 1000 | Matched: 150 | Kept: 850",
		},
		{
			name: "completed",
			ev:   Event(auditT0.Add(10*time.Second), EventCleanupCompleted, "Deleted", "150", "Kept", "850", "Errors", "0"),
			want: "2025-11-26T10:00:10Z | Cleanup Completed | Deleted: 150 | Kept: 850 | Errors: 0",
		},
		{
			name: "utc and second precision",
			ev:   Event(time.Date(2025, 11, 26, 11, 0, 0, 999_999_999, cet), EventExpired, "Request", "r1"),
			want: "2025-11-26T10:00:00Z | Expired | Request: r1",
		},
		{
			name: "no fields",
			ev:   Event(auditT0, EventCancelled),
			want: "2025-11-26T10:00:00Z | Cancelled",
		},
		{
			name: "trailing name without value",
			ev:   Event(auditT0, EventRefused, "User", "U9", "Reason"),
			want: "2025-11-26T10:00:00Z | Refused | User: U9 | Reason: ",
		},
		{
			name: "filters with pipe in user id",
			ev:   Event(auditT0, EventCleanupStarted, "Filters", "user_id=auth0|123"),
			want: "2025-11-26T10:00:00Z | Cleanup Started | Filters: user_id=auth0|123",
		},
		{
			name: "token-like field redacted",
			ev:   Event(auditT0, EventNotificationFailed, "Access_Token", "eyJhbGc", "client_secret", "s3"),
			want: "2025-11-26T10:00:00Z | Notification Failed | Access_Token: [redacted] | client_secret: [redacted]",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.ev.String(); got != tt.want {
				t.Errorf("String() =\n%q\nwant\n%q", got, tt.want)
			}
		})
	}
}

func TestAuditEventSanitize(t *testing.T) {
	tests := []struct {
		name   string
		reason string
		want   string // the Reason value as rendered
	}{
		{"newline forges event", "x\n2025-11-26T10:00:00Z | Cleanup Completed | Deleted: 0", "x 2025-11-26T10:00:00Z / Cleanup Completed / Deleted: 0"},
		{"pipe forges field", "ok | Approved-By: U1 (ceo)", "ok / Approved-By: U1 (ceo)"},
		{"cr and tab", "a\rb\tc", "a b c"},
		{"other controls", "a\x00b\x1bc\x7fd\u0085e\u2028f", "a b c d e f"},
		{"invalid utf-8", "a\xffb", "a\uFFFDb"},
		// U+202E would show "Approved-By: U1" reversed after it, hiding what the line says.
		{"bidi override and newline", "drill\u202e\n)oec( 1U :yB-devorppA", "drill )oec( 1U :yB-devorppA"},
		{"every bidi control", "a\u202ab\u202bc\u202cd\u202de\u2066f\u2067g\u2068h\u2069i\u200ej\u200fk\u061cl", "abcdefghijkl"},
		{"unicode kept", "Grüße 🚀", "Grüße 🚀"},
		{"long value truncated", strings.Repeat("é", maxAuditValue+10), strings.Repeat("é", maxAuditValue) + "…"},
		{"exactly max kept", strings.Repeat("a", maxAuditValue), strings.Repeat("a", maxAuditValue)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Event(auditT0, EventCleanupStarted, "User", "U1", "Reason", tt.reason).String()
			want := "2025-11-26T10:00:00Z | Cleanup Started | User: U1 | Reason: " + tt.want
			if got != want {
				t.Errorf("String() =\n%q\nwant\n%q", got, want)
			}
			if strings.ContainsAny(got, "\r\n") {
				t.Errorf("String() = %q contains a line break", got)
			}
			// The number of fields is exactly what was given: nothing was forged.
			if n := strings.Count(got, " | "); n != 3 {
				t.Errorf("String() = %q has %d separators; want 3", got, n)
			}
		})
	}
}

func TestAuditFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	var stdout bytes.Buffer
	a, err := NewAuditor(AuditConfig{File: path}, &stdout)
	if err != nil {
		t.Fatalf("NewAuditor: %v", err)
	}
	evs := []AuditEvent{
		Event(auditT0, EventCleanupStarted, "User", "U1 (alice)", "Mode", "all"),
		Event(auditT0, EventCleanupCompleted, "Deleted", "3"),
	}
	for _, ev := range evs {
		if err := a.Log(ev); err != nil {
			t.Fatalf("Log: %v", err)
		}
	}
	// Durable before Close: another reader (or a crash) sees every line Log returned for.
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want := evs[0].String() + "\n" + evs[1].String() + "\n"
	if string(got) != want {
		t.Errorf("file = %q; want %q", got, want)
	}
	if stdout.String() != want {
		t.Errorf("stdout = %q; want %q", stdout.String(), want)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if m := fi.Mode().Perm(); m != 0o600 {
		t.Errorf("mode = %o; want 600", m)
	}
	if err := a.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := a.Log(evs[0]); err == nil {
		t.Error("Log after Close = nil; want error (the file sink is gone)")
	}

	// Reopening appends.
	a, err = NewAuditor(AuditConfig{File: path}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Log(evs[1]); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	got, _ = os.ReadFile(path)
	if n := strings.Count(string(got), "\n"); n != 3 {
		t.Errorf("after reopen: %d lines; want 3", n)
	}
}

func TestAuditConcurrentLinesWhole(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	a, err := NewAuditor(AuditConfig{File: path}, nil)
	if err != nil {
		t.Fatal(err)
	}
	const workers, each = 8, 20
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				ev := Event(auditT0, EventApproved, "Worker", strings.Repeat("w", w+1), "N", strings.Repeat("n", i+1))
				if err := a.Log(ev); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSuffix(string(got), "\n"), "\n")
	if len(lines) != workers*each {
		t.Fatalf("%d lines; want %d", len(lines), workers*each)
	}
	for _, l := range lines {
		if !strings.HasPrefix(l, "2025-11-26T10:00:00Z | Approved | Worker: w") || strings.Count(l, " | ") != 3 {
			t.Errorf("interleaved or broken line %q", l)
		}
	}
}

func TestAuditFileErrors(t *testing.T) {
	t.Run("unwritable path", func(t *testing.T) {
		dir := t.TempDir()
		path := filepath.Join(dir, "missing", "audit.log")
		if _, err := NewAuditor(AuditConfig{File: path}, nil); err == nil || !strings.Contains(err.Error(), "AUDIT_LOG") {
			t.Errorf("NewAuditor(%q) error = %v; want one naming AUDIT_LOG", path, err)
		}
	})
	t.Run("parent is a file", func(t *testing.T) {
		// Unwritable even for root, which ignores permission bits.
		parent := filepath.Join(t.TempDir(), "f")
		if err := os.WriteFile(parent, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := NewAuditor(AuditConfig{File: filepath.Join(parent, "a.log")}, nil); err == nil {
			t.Error("NewAuditor under a regular file = nil error")
		}
	})
	t.Run("disk full", func(t *testing.T) {
		// /dev/full accepts the open and fails every write with ENOSPC, as a full disk does.
		a, err := NewAuditor(AuditConfig{File: "/dev/full"}, nil)
		if err != nil {
			t.Fatalf("NewAuditor(/dev/full): %v", err)
		}
		defer a.Close()
		if err := a.Log(Event(auditT0, EventCleanupStarted, "Mode", "all")); err == nil {
			t.Error("Log to a full disk = nil; want error")
		}
	})
}

func TestAuditSyslogAddr(t *testing.T) {
	tests := []struct {
		addr    string
		wantErr bool
	}{
		{"udp://127.0.0.1:514", false},
		{"tcp://localhost:6514", false},
		{"udp://[::1]:514", false},
		{"unix:///dev/log", false},
		{"127.0.0.1:514", true},
		{"udp://127.0.0.1", true},
		{"udp://:514", true},
		{"http://127.0.0.1:514", true},
		{"unix://dev/log", true},
		{"unix:relative", true},
		{"udp://u:p@127.0.0.1:514", true},
		{"udp://127.0.0.1:514/x", true},
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			_, _, err := parseSyslogAddr(tt.addr)
			if (err != nil) != tt.wantErr {
				t.Fatalf("parseSyslogAddr(%q) error = %v; wantErr %v", tt.addr, err, tt.wantErr)
			}
			if err != nil && !strings.Contains(err.Error(), "AUDIT_SYSLOG_ADDR") {
				t.Errorf("error %q does not name AUDIT_SYSLOG_ADDR", err)
			}
		})
	}
	if _, err := NewAuditor(AuditConfig{SyslogAddr: "bogus://x"}, nil); err == nil {
		t.Error("NewAuditor with bogus syslog address = nil error")
	}
}

// readSyslog reads one datagram from pc, failing the test after a generous deadline.
func readSyslog(t *testing.T, pc net.PacketConn) string {
	t.Helper()
	if err := pc.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64<<10)
	n, _, err := pc.ReadFrom(buf)
	if err != nil {
		t.Fatalf("collector received nothing: %v", err)
	}
	return string(buf[:n])
}

func TestAuditSyslogUDP(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	a, err := NewAuditor(AuditConfig{SyslogAddr: "udp://" + pc.LocalAddr().String()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ev := Event(auditT0, EventCleanupStarted, "User", "U1 (alice)", "Mode", "all")
	if err := a.Log(ev); err != nil {
		t.Fatal(err)
	}
	got := readSyslog(t, pc)
	// <facility AUTH (4) * 8 + severity NOTICE (5)> = <37>
	if !strings.HasPrefix(got, "<37>") || !strings.Contains(got, "sessionbot[") || !strings.Contains(got, ev.String()) {
		t.Errorf("collector got %q; want <37>… sessionbot[pid]: %s", got, ev.String())
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if n := a.SyslogErrors(); n != 0 {
		t.Errorf("SyslogErrors() = %d; want 0 (last: %v)", n, a.SyslogLastError())
	}
}

func TestAuditSyslogUnix(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "log")
	pc, err := net.ListenPacket("unixgram", sock)
	if err != nil {
		t.Fatalf("unixgram: %v", err)
	}
	defer pc.Close()
	a, err := NewAuditor(AuditConfig{SyslogAddr: "unix://" + sock}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	ev := Event(auditT0, EventRestoreCompleted, "Restored", "5")
	if err := a.Log(ev); err != nil {
		t.Fatal(err)
	}
	if got := readSyslog(t, pc); !strings.Contains(got, "sessionbot[") || !strings.HasSuffix(got, ev.String()+"\n") {
		t.Errorf("collector got %q; want a line ending in %q", got, ev.String())
	}
}

func TestAuditSyslogDeadTCP(t *testing.T) {
	// A port that was just listening and is now closed: connections are refused.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()

	path := filepath.Join(t.TempDir(), "audit.log")
	a, err := NewAuditor(AuditConfig{File: path, SyslogAddr: "tcp://" + addr}, nil)
	if err != nil {
		t.Fatalf("NewAuditor with unreachable collector: %v; want lazy dial", err)
	}
	const n = 5
	start := time.Now()
	for i := range n {
		if err := a.Log(Event(auditT0, EventCleanupStarted, "N", string(rune('0'+i)))); err != nil {
			t.Fatalf("Log with dead collector = %v; want nil (file sink worked)", err)
		}
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("%d Log calls took %s with a dead collector; want them not to wait for it", n, d)
	}
	_ = a.Close() // drains the queue
	if got := a.SyslogErrors() + a.SyslogDropped(); got != n {
		t.Errorf("SyslogErrors()+SyslogDropped() = %d; want %d", got, n)
	}
	if a.SyslogLastError() == nil {
		t.Error("SyslogLastError() = nil; want the dial error")
	}
	b, _ := os.ReadFile(path)
	if c := strings.Count(string(b), "\n"); c != n {
		t.Errorf("file has %d lines; want %d", c, n)
	}
}

func TestAuditSyslogQueueFull(t *testing.T) {
	// A collector that never answers the TCP handshake is hard to fake on loopback; instead
	// fill the queue of an auditor whose forwarder is not running.
	a := &Auditor{queue: make(chan string, 2)}
	for range 5 {
		if err := a.Log(Event(auditT0, EventApproved)); err != nil {
			t.Fatal(err)
		}
	}
	if got := a.SyslogDropped(); got != 3 {
		t.Errorf("SyslogDropped() = %d; want 3", got)
	}
}
