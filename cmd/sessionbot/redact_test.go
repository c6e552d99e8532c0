package main

import (
	"strings"
	"testing"
)

// A URL setting that does not parse must not be quoted back with its password (SPEC §11
// Secrets): a bad port, a bad %-escape in the password, no scheme, a '/' or '@' in an unescaped
// password. stats and serve both validate REDIS_URL; serve also STATE_REDIS_URL; and every
// command AUDIT_SYSLOG_ADDR.
func TestMalformedURLsNeverShowTheirPassword(t *testing.T) {
	const pw = "hunter2secret"
	tests := []struct {
		name, variable, value string
	}{
		{"bad port", "REDIS_URL", "redis://app:" + pw + "@redis.internal:notaport/0"},
		{"bad escape in the password", "REDIS_URL", "redis://app:" + pw + "%zz@redis.internal:6379/0"},
		{"no scheme", "REDIS_URL", "app:" + pw + "@redis.internal:6379"},
		{"slash in the password", "REDIS_URL", "redis://app:" + pw[:7] + "/" + pw[7:] + "@redis.internal:6379/0"},
		{"at sign in the password", "REDIS_URL", "redis://app:" + pw[:7] + "@" + pw[7:] + "@redis.internal:x/0"},
		{"unclosed bracket", "REDIS_URL", "rediss://:" + pw + "@[::1/0"},
		{"bad database", "REDIS_URL", "redis://app:" + pw + "@redis.internal:6379/zero"},
		{"state bad port", "STATE_REDIS_URL", "redis://:" + pw + "@state.internal:notaport/1"},
		{"syslog with credentials", "AUDIT_SYSLOG_ADDR", "tcp://log:" + pw + "@collector.internal:514"},
	}
	for _, tt := range tests {
		for _, cmd := range []string{"stats", "serve"} {
			if tt.variable == "STATE_REDIS_URL" && cmd != "serve" {
				continue
			}
			t.Run(cmd+"/"+tt.name, func(t *testing.T) {
				env := map[string]string{"REDIS_URL": "redis://127.0.0.1:1/0", "OPERATORS": "U0OPS", "APPROVERS": "U0APP",
					"SLACK_APP_TOKEN": "xapp-1-A0-1-x", "SLACK_BOT_TOKEN": "xoxb-1-2-x", tt.variable: tt.value}
				inv := runWith(t, env, "", cmd)
				if inv.code != exitUsage {
					t.Errorf("sessionbot %s with a malformed %s: exit %d; want %d; stderr:\n%s", cmd, tt.variable, inv.code, exitUsage, inv.stderr)
				}
				if !strings.Contains(inv.stderr, tt.variable) {
					t.Errorf("stderr does not name %s:\n%s", tt.variable, inv.stderr)
				}
				// Any 5 characters of the password would be a leak, not only all of it.
				for i := 0; i+5 <= len(pw); i++ {
					if part := pw[i : i+5]; strings.Contains(inv.stdout+inv.stderr, part) {
						t.Fatalf("sessionbot %s shows %q of the password of %s:\nstdout:\n%s\nstderr:\n%s", cmd, part, tt.variable, inv.stdout, inv.stderr)
					}
				}
			})
		}
	}
}
