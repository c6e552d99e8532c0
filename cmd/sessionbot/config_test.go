package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/platform-team/sessionbot/bot"
	"github.com/platform-team/sessionbot/templates"
)

// goodServeEnv is a complete, valid serve configuration (nothing is dialled before the
// configuration is checked).
func goodServeEnv() map[string]string {
	return map[string]string{
		"SLACK_APP_TOKEN": "xapp-1-A0-1-abc", "SLACK_BOT_TOKEN": "xoxb-1-abc",
		"OPERATORS": "U0OPS", "APPROVERS": "U0BOB", "REDIS_URL": "redis://127.0.0.1:1/0",
	}
}

// TestServeConfigErrorsGolden is the whole output of `sessionbot serve` for a set of bad
// settings: one line per bad variable, naming it, its value (a secret's never) and what it
// accepts; no line twice; no "OPERATORS: required" because another variable failed.
// go test ./cmd/sessionbot -run ConfigErrorsGolden -update rewrites the file.
func TestServeConfigErrorsGolden(t *testing.T) {
	env := goodServeEnv()
	for k, v := range map[string]string{
		"APPROVAL_TTL":            "soon",
		"NOTIFY_AFFECTED_USERS":   "yes",
		"APPROVAL_THRESHOLD":      "-5",
		"APPROVALS_REQUIRED":      "two",
		"BATCH_PAUSE":             "-1s",
		"BATCH_SIZE":              "0",
		"SESSION_SAMPLE_INTERVAL": "1 minute",
		"REDIS_URL":               "redis://:hunter2@redis:notaport/0",
		"NOTIFY_CHANNEL":          "platform incidents",
		"LOG_LEVEL":               "verbose",
		"AUDIT_FORMAT":            "xml",
		"TEMPLATES_DIR":           filepath.Join("testdata", "bad-templates"),
	} {
		env[k] = v
	}
	inv := runWith(t, env, "", "serve")
	if inv.code != exitUsage {
		t.Fatalf("exit %d; want %d", inv.code, exitUsage)
	}
	if strings.Contains(inv.stderr, "hunter2") {
		t.Errorf("a password was printed:\n%s", inv.stderr)
	}
	seen := map[string]bool{}
	for line := range strings.SplitSeq(strings.TrimSpace(inv.stderr), "\n") {
		if seen[line] {
			t.Errorf("line printed twice: %s", line)
		}
		seen[line] = true
	}
	for _, wrong := range []string{"OPERATORS", "APPROVERS", "SLACK_", "strconv", "time: "} {
		if strings.Contains(inv.stderr, wrong) {
			t.Errorf("stderr mentions %q, which is not at fault:\n%s", wrong, inv.stderr)
		}
	}
	golden(t, filepath.Join("testdata", "serve_config_errors.txt"), inv.stdout+inv.stderr)
}

// golden compares got with the file at path; -update rewrites it.
func golden(t *testing.T, path, got string) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (go test ./cmd/sessionbot -run %s -update)", err, t.Name())
	}
	if got != string(want) {
		t.Errorf("%s changed (go test ./cmd/sessionbot -run %s -update to accept):\n--- got\n%s\n--- want\n%s", path, t.Name(), got, want)
	}
}

// Every duration setting accepts days and weeks, as --older-than does: one parser for all.
func TestEveryDurationAcceptsDaysAndWeeks(t *testing.T) {
	env := goodServeEnv()
	for k, v := range map[string]string{
		"APPROVAL_TTL": "1d", "BATCH_PAUSE": "0", "REDIS_RETRY_FOR": "1w", "BACKUP_RETENTION": "2w",
		"SESSION_SAMPLE_INTERVAL": "1d12h",
	} {
		env[k] = v
	}
	getenv := func(k string) string { return env[k] }
	ctx := context.Background()
	cfg, err := loadConfig(ctx, getenv)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Engine.RetryFor != 7*24*time.Hour || time.Duration(cfg.Backup.Retention) != 14*24*time.Hour {
		t.Errorf("REDIS_RETRY_FOR=1w, BACKUP_RETENTION=2w read as %s, %s", cfg.Engine.RetryFor, time.Duration(cfg.Backup.Retention))
	}
	bcfg, err := bot.LoadConfig(ctx, lookuper(func(k string) (string, bool) { return env[k], env[k] != "" }))
	if err != nil || bcfg.ApprovalTTL != 24*time.Hour {
		t.Errorf("APPROVAL_TTL=1d: %s, %v; want 24h", bcfg.ApprovalTTL, err)
	}
	inv := runWith(t, map[string]string{"APPROVAL_TTL": "1d", "SESSION_SAMPLE_INTERVAL": "1d12h"}, "", "serve")
	if strings.Contains(inv.stderr, "APPROVAL_TTL") || strings.Contains(inv.stderr, "SESSION_SAMPLE_INTERVAL") {
		t.Errorf("serve refused a duration in days:\n%s", inv.stderr)
	}
}

// AUDIT_FORMAT=json: the CLI's audit file holds one JSON object per line, with the runbook
// line's fields and values.
func TestCleanupAuditFormatJSON(t *testing.T) {
	tg := newTarget(t)
	tg.seed(procedure1)
	tg.env["AUDIT_FORMAT"] = "json"
	tg.env["SUDO_USER"] = "carol"
	if inv := tg.run("", "cleanup", "--reason", "expired"); inv.code != 0 {
		t.Fatalf("cleanup: exit %d; stderr:\n%s", inv.code, inv.stderr)
	}
	lines := tg.auditLines()
	if len(lines) != 3 {
		t.Fatalf("audit log has %d lines; want 3:\n%s", len(lines), strings.Join(lines, "\n"))
	}
	var last map[string]string
	for _, l := range lines {
		if err := json.Unmarshal([]byte(l), &last); err != nil {
			t.Fatalf("audit line is not a JSON object: %v\n%s", err, l)
		}
	}
	if last["event"] != "Cleanup Completed" || last["Deleted"] != "45" || last["Kept"] != "105" || last["time"] == "" {
		t.Errorf("last audit line = %v; want Cleanup Completed, Deleted 45, Kept 105", last)
	}
}

// SUPPORT_CONTACT and ONCALL_TEXT from the environment reach the notices serve and console post.
func TestSupportContactFromEnvironment(t *testing.T) {
	t.Cleanup(func() { _ = templates.Configure(templates.Config{}) })
	env := map[string]string{"SUPPORT_CONTACT": "#help-identity", "ONCALL_TEXT": "Page IDENT on-call"}
	if err := configureTemplates(context.Background(), func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
	m := templates.MassLogout(templates.MassLogoutData{Reason: "r"})
	if !strings.Contains(m, "- Contact: #help-identity\n- On-call: Page IDENT on-call") {
		t.Errorf("Mass Logout Executed notice:\n%s", m)
	}
	if err := configureTemplates(context.Background(), func(string) string { return "" }); err != nil {
		t.Fatal(err)
	}
	if m := templates.MassLogout(templates.MassLogoutData{Reason: "r"}); !strings.Contains(m, "- Contact: platform-team@company.com\n- On-call: Check PagerDuty rotation") {
		t.Errorf("defaults are not the runbook's:\n%s", m)
	}
}
