package cleanup

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// AUDIT_FORMAT=json writes one JSON object per line, in the file and on stdout, with the same
// fields, values and redaction as the runbook's text line; text stays the default.
func TestAuditFormatJSON(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	var stdout bytes.Buffer
	a, err := NewAuditor(AuditConfig{File: path, Format: AuditJSON}, &stdout)
	if err != nil {
		t.Fatal(err)
	}
	ev := Event(auditT0, EventCleanupStarted, "User", "U123 (alice)", "Mode", "all", "Reason", "INC-42\nforged | Mode: x", "Token", "xoxb-secret")
	if err := a.Log(ev); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	file, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(file) != stdout.String() || strings.Count(string(file), "\n") != 1 {
		t.Fatalf("want the same single line in the file and on stdout:\nfile %q\nstdout %q", file, stdout.String())
	}
	want := `{"time":"2025-11-26T10:00:00Z","event":"Cleanup Started","User":"U123 (alice)","Mode":"all","Reason":"INC-42 forged / Mode: x","Token":"[redacted]"}` + "\n"
	if string(file) != want {
		t.Errorf("json line\n got %s\nwant %s", file, want)
	}
	var obj map[string]string
	if err := json.Unmarshal(file, &obj); err != nil || obj["event"] != EventCleanupStarted {
		t.Errorf("not one JSON object: %v %v", obj, err)
	}

	var def AuditConfig
	if errs := DecodeEnv(context.Background(), &def, func(string) string { return "" }); len(errs) > 0 || def.Format != AuditText {
		t.Errorf("default AUDIT_FORMAT = %q, %v; want text", def.Format, errs)
	}
}

// DecodeEnv reports each bad variable once, with its value and what it accepts, keeps the
// default in its place, never shows a secret's value, and reads every duration with d and w.
func TestDecodeEnv(t *testing.T) {
	var c struct {
		// TTL is a duration in Go's own type: still read with days and weeks.
		TTL time.Duration `env:"T_TTL, default=15m"`
		// On is a flag.
		On bool `env:"T_ON, default=true"`
		// N is a number.
		N int `env:"T_N, default=7"`
		// URL is a secret.
		URL RedisURL `env:"T_URL"`
		// Level is a log level.
		Level slog.Level `env:"T_LEVEL, default=info"`
	}
	env := map[string]string{"T_TTL": "1w2d", "T_ON": "yes", "T_N": "seven", "T_LEVEL": "loud"}
	errs := DecodeEnv(context.Background(), &c, func(k string) string { return env[k] })
	var lines []string
	for _, err := range errs {
		lines = append(lines, err.Error())
	}
	want := []string{
		`T_ON: "yes" is not valid (want true or false)`,
		`T_N: "seven" is not valid (want a whole number)`,
		`T_LEVEL: "loud" is not valid (want debug, info, warn or error)`,
	}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
	if c.TTL != 9*24*time.Hour || !c.On || c.N != 7 || c.Level != slog.LevelInfo {
		t.Errorf("decoded %+v; want TTL 216h and the defaults for the bad values", c)
	}
	// A bad secret is named, never shown.
	var s struct {
		// TTL is a duration with no default.
		TTL Duration `env:"T_DUR"`
	}
	if errs := DecodeEnv(context.Background(), &s, func(string) string { return "5 minutes" }); len(errs) != 1 ||
		!strings.Contains(errs[0].Error(), "T_DUR: \"5 minutes\" is not valid (want a duration like 30s, 15m, 12h, 7d or 2w)") {
		t.Errorf("errors %v", errs)
	}
	if got := envValueError("T_URL", reflect.TypeOf(c.URL), "redis://:hunter2@x").Error(); strings.Contains(got, "hunter2") || !strings.Contains(got, "T_URL") {
		t.Errorf("secret error %q", got)
	}
}

// go-redis's own log lines go through slog, as warnings, without a password of a URL, and a
// line repeated at every dial during an outage is not logged again at once.
func TestRedisLogsThroughSlog(t *testing.T) {
	var buf bytes.Buffer
	l := &redisLogger{log: slog.New(slog.NewJSONHandler(&buf, nil))}
	for range 3 { // an outage: the same line at every dial is logged once
		l.Printf(context.Background(), "redis: %s: connection pool: failed to dial after %d attempts\n", "redis://:hunter2@db:6379", 5)
	}
	var rec map[string]any
	if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
		t.Fatalf("not one JSON log line: %q", buf.String())
	}
	if rec["level"] != "WARN" || rec["source"] != "go-redis" || strings.Contains(buf.String(), "hunter2") ||
		rec["msg"] != "redis: redis://[redacted]@db:6379: connection pool: failed to dial after 5 attempts" {
		t.Errorf("log line %s", buf.String())
	}
}
