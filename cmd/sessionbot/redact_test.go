package main

import (
	"context"
	"io"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/platform-team/sessionbot/cleanup"
	"github.com/platform-team/sessionbot/internal/testkit"
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

// A restore whose Redis dies after the operator confirmed fails without naming a session by
// its full id, on the terminal or in the audit log (SPEC §12.8); the key is named short.
func TestRestoreFailureShowsNoSessionID(t *testing.T) {
	tg := newTarget(t)
	tg.env["REDIS_URL"] = tg.srv.URL() + "?max_retries=-1"
	ids := []string{"a1b2c3d4-bearer-credential-0001", "a1b2c3d4-bearer-credential-0002"}
	v := []byte(`{"user_id":"auth0|1","auth_method":"oauth2","expires_at":"2099-01-01T00:00:00Z"}`)
	path := testkit.WriteBackup(t, t.TempDir(), "incident",
		cleanup.BackupRecord{Key: "session:" + ids[0], Value: v, PTTL: time.Hour},
		cleanup.BackupRecord{Key: "session:" + ids[1], Value: v, PTTL: time.Hour})

	pr, pw := io.Pipe()
	defer pw.Close()
	var out, errb testkit.SyncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(context.Background(), []string{"restore", path, "--reason", "undo"},
			func(k string) string { return tg.env[k] }, pr, &out, &errb)
	}()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(errb.String(), "to confirm") {
		if time.Now().After(deadline) {
			t.Fatalf("no prompt; stdout:\n%s\nstderr:\n%s", out.String(), errb.String())
		}
		runtime.Gosched()
	}
	tg.srv.Kill()
	if _, err := io.WriteString(pw, "2\n"); err != nil {
		t.Fatal(err)
	}
	var err error
	select {
	case err = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("restore did not return after its Redis died")
	}
	if exitCode(err) != exitFailed || !strings.Contains(errb.String(), "restore incomplete: restore: session:a1b2c3d4…:") {
		t.Errorf("exit %d; want %d and the key named short; stderr:\n%s", exitCode(err), exitFailed, errb.String())
	}
	audit := strings.Join(tg.auditLines(), "\n")
	for _, id := range ids {
		for what, text := range map[string]string{"stdout": out.String(), "stderr": errb.String(), "audit": audit} {
			if strings.Contains(text, id) {
				t.Errorf("%s names session %s in full:\n%s", what, id, text)
			}
		}
	}
}
