package templates

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// reset puts the runbook's defaults back when the test ends: Configure sets what every message
// renders with.
func reset(t *testing.T) {
	t.Helper()
	t.Cleanup(func() {
		if err := Configure(Config{}); err != nil {
			t.Fatal(err)
		}
	})
}

// The settings' defaults are the runbook's support lines, so default output is unchanged.
func TestConfigDefaultsAreTheRunbooks(t *testing.T) {
	ct := reflect.TypeFor[Config]()
	for field, want := range map[string]string{"SupportContact": DefaultContact, "OnCall": DefaultOnCall} {
		f, _ := ct.FieldByName(field)
		if !strings.HasSuffix(f.Tag.Get("env"), "default="+want) {
			t.Errorf("%s: env tag %q; want default=%s", field, f.Tag.Get("env"), want)
		}
	}
}

// SUPPORT_CONTACT and ONCALL_TEXT replace the runbook's placeholders in both notices.
func TestConfigureContactAndOnCall(t *testing.T) {
	reset(t)
	if err := Configure(Config{SupportContact: "#help-identity", OnCall: "Page the identity on-call (PD: IDENT)"}); err != nil {
		t.Fatal(err)
	}
	m := MassLogout(MassLogoutData{Timestamp: "2025-11-26T10:00:00Z", AffectedUsers: "All", Reason: "r"})
	if !strings.Contains(m, "- Contact: #help-identity\n- On-call: Page the identity on-call (PD: IDENT)") || strings.Contains(m, DefaultContact) {
		t.Errorf("MassLogout:\n%s", m)
	}
	if n := UserNotice(UserNoticeData{Timestamp: "t"}); !strings.Contains(n, "Contact #help-identity.") {
		t.Errorf("UserNotice:\n%s", n)
	}
}

// A file in TEMPLATES_DIR replaces its namesake; the others stay embedded.
func TestConfigureTemplatesDir(t *testing.T) {
	reset(t)
	dir := t.TempDir()
	write(t, dir, "user_notice.tmpl", "Sign in again please (since {{.Timestamp}}). Help: {{.Contact}}\n")
	if err := os.Mkdir(filepath.Join(dir, "..data"), 0o755); err != nil { // a ConfigMap mount's own
		t.Fatal(err)
	}
	if err := Configure(Config{Dir: dir, SupportContact: "help@example.com"}); err != nil {
		t.Fatal(err)
	}
	if n := UserNotice(UserNoticeData{Timestamp: "T0"}); n != "Sign in again please (since T0). Help: help@example.com" {
		t.Errorf("UserNotice = %q", n)
	}
	if m := MassLogout(MassLogoutData{Reason: "r"}); !strings.Contains(m, "*Action Required:*") {
		t.Errorf("MassLogout is no longer the embedded one:\n%s", m)
	}
}

// A bad override stops start-up with one line per file, naming it and what is wrong; the
// templates in use do not change.
func TestConfigureTemplatesDirErrors(t *testing.T) {
	reset(t)
	dir := t.TempDir()
	write(t, dir, "welcome.tmpl", "hi")
	write(t, dir, "help.tmpl", "Use {{.Command help}")
	write(t, dir, "mass_logout.tmpl", "Logged out at {{.Timestamp}} for {{.AffectedUsers}}")
	write(t, dir, "user_notice.tmpl", "At {{.Timestamp}} ({{.Severity}})")
	err := Configure(Config{Dir: dir})
	if err == nil {
		t.Fatal("Configure accepted bad templates")
	}
	for _, want := range []string{
		"TEMPLATES_DIR: " + filepath.Join(dir, "welcome.tmpl") + ": unknown template (want one of help.tmpl, mass_logout.tmpl, user_notice.tmpl)",
		"TEMPLATES_DIR: " + filepath.Join(dir, "help.tmpl") + ": does not parse: ",
		"TEMPLATES_DIR: " + filepath.Join(dir, "mass_logout.tmpl") + ": missing required field {{.Reason}}",
		"TEMPLATES_DIR: " + filepath.Join(dir, "user_notice.tmpl") + ": does not render: ",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if n := strings.Count(err.Error(), "\n") + 1; n != 4 {
		t.Errorf("%d lines; want 4:\n%v", n, err)
	}
	if m := MassLogout(MassLogoutData{Reason: "r"}); !strings.Contains(m, "*Action Required:*") {
		t.Error("a refused override was used")
	}
	if err := Configure(Config{Dir: filepath.Join(dir, "missing")}); err == nil || !strings.HasPrefix(err.Error(), "TEMPLATES_DIR: ") {
		t.Errorf("missing dir: %v", err)
	}
}

func write(t *testing.T, dir, name, text string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}
