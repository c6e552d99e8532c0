package templates

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"text/template"
)

// Config is what an operator may change in the templates (SPEC §13, Operations). The defaults
// are the runbook's, so that an unconfigured bot says exactly what the runbook says.
type Config struct {
	// SupportContact is the support contact in the Mass Logout Executed notice and the users' sign-in notice (the runbook's placeholder by default).
	SupportContact string `env:"SUPPORT_CONTACT, default=platform-team@company.com"`
	// OnCall is the on-call line of the Mass Logout Executed notice.
	OnCall string `env:"ONCALL_TEXT, default=Check PagerDuty rotation"`
	// Dir, when set, is a directory (e.g. a mounted ConfigMap) whose files replace the embedded templates of the same name: help.tmpl, mass_logout.tmpl, user_notice.tmpl (Go text/template). Each is checked at start-up: an unknown name, a parse error or a missing required field stops it, naming the file.
	Dir string `env:"TEMPLATES_DIR"`
}

// active is what MassLogout, UserNotice and Help render with: the embedded templates and the
// runbook's support lines until Configure replaces them, once, at start-up.
var active atomic.Pointer[configured]

type configured struct {
	tmpl            *template.Template
	contact, onCall string
}

func init() {
	active.Store(&configured{tmpl: all, contact: DefaultContact, onCall: DefaultOnCall})
}

// required are the fields each template must show: without them the message would not say
// what it is about (the runbook's Timestamp, Affected Users and Reason; the command's name).
var required = map[string][]string{
	"mass_logout.tmpl": {"Timestamp", "AffectedUsers", "Reason"},
	"user_notice.tmpl": {"Timestamp"},
	"help.tmpl":        {"Command"},
}

// Configure checks c and makes it what every message is rendered with. It is called once, at
// start-up, before any message is rendered. Each problem is one line naming the variable and,
// for a template, its file.
func Configure(c Config) error {
	next := &configured{tmpl: all, contact: c.SupportContact, onCall: c.OnCall}
	if next.contact == "" {
		next.contact = DefaultContact
	}
	if next.onCall == "" {
		next.onCall = DefaultOnCall
	}
	if c.Dir != "" {
		t, err := overrides(c.Dir)
		if err != nil {
			return err
		}
		next.tmpl = t
	}
	active.Store(next)
	return nil
}

// overrides returns the embedded templates with those in dir replacing their namesakes.
func overrides(dir string) (*template.Template, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("TEMPLATES_DIR: %v", err)
	}
	t, err := all.Clone()
	if err != nil {
		return nil, fmt.Errorf("TEMPLATES_DIR: %v", err)
	}
	var errs []error
	for _, e := range entries {
		// A mounted ConfigMap holds ..data and timestamped directories beside its files.
		if e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		name, path := e.Name(), filepath.Join(dir, e.Name())
		if _, ok := required[name]; !ok {
			errs = append(errs, fmt.Errorf("TEMPLATES_DIR: %s: unknown template (want one of %s)", path, strings.Join(templateNames(), ", ")))
			continue
		}
		text, err := os.ReadFile(path)
		if err != nil {
			errs = append(errs, fmt.Errorf("TEMPLATES_DIR: %s: %v", path, errors.Unwrap(err)))
			continue
		}
		if _, err := t.New(name).Parse(string(text)); err != nil {
			errs = append(errs, fmt.Errorf("TEMPLATES_DIR: %s: does not parse: %v", path, err))
			continue
		}
		if err := check(t, name); err != nil {
			errs = append(errs, fmt.Errorf("TEMPLATES_DIR: %s: %v", path, err))
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return t, nil
}

// check renders template name with sample data: it must run (no field the data lacks) and show
// each required field.
func check(t *template.Template, name string) error {
	marks := map[string]string{}
	for _, f := range required[name] {
		marks[f] = "\x00" + f + "\x00"
	}
	var data any
	switch name {
	case "mass_logout.tmpl":
		data = MassLogoutData{Timestamp: marks["Timestamp"], AffectedUsers: marks["AffectedUsers"], Reason: marks["Reason"], Contact: DefaultContact, OnCall: DefaultOnCall}
	case "user_notice.tmpl":
		data = UserNoticeData{Timestamp: marks["Timestamp"], Contact: DefaultContact}
	default:
		data = HelpData{Command: marks["Command"], Threshold: "1,000", TTL: "15m"}
	}
	var b bytes.Buffer
	if err := t.ExecuteTemplate(&b, name, data); err != nil {
		return fmt.Errorf("does not render: %v", err)
	}
	var missing []string
	for _, f := range required[name] {
		if !strings.Contains(b.String(), marks[f]) {
			missing = append(missing, "{{."+f+"}}")
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("missing required field %s", strings.Join(missing, ", "))
	}
	return nil
}

// templateNames are the embedded templates' file names, sorted.
func templateNames() []string {
	names, _ := fs.Glob(files, "*.tmpl")
	slices.Sort(names)
	return names
}
