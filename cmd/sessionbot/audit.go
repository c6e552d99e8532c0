package main

import (
	"fmt"
	"io"

	"github.com/platform-team/sessionbot/cleanup"
)

// openAudit opens the audit log. Audit lines always go to stderr, so the operator sees what was
// recorded while stdout keeps only the command's own output (it is often piped or pasted into
// an incident channel), and to AUDIT_LOG when it is set. Without AUDIT_LOG a warning says that
// nothing is kept. A set but unwritable AUDIT_LOG is an error: nothing may happen unrecorded.
func (c *cli) openAudit(cfg config) (*auditLog, error) {
	return c.openAuditEcho(cfg, c.stderr)
}

// openAuditEcho is openAudit with the audit lines shown on echo instead of stderr as they are.
func (c *cli) openAuditEcho(cfg config, echo io.Writer) (*auditLog, error) {
	a, err := cleanup.NewAuditor(cfg.Audit, echo)
	if err != nil {
		return nil, fmt.Errorf("cannot open the audit log, nothing done: %w", err)
	}
	if cfg.Audit.File == "" && cfg.Audit.SyslogAddr == "" {
		fmt.Fprintln(c.stderr, "warning: AUDIT_LOG is not set: audit lines go to stderr only and are not kept")
	}
	return &auditLog{Auditor: a, target: cfg.Redis.Name}, nil
}

// auditLog is the command's audit log: every line names the target it acts on (Target:).
type auditLog struct {
	*cleanup.Auditor
	target string
}

// Log writes ev with the target's name.
func (a *auditLog) Log(ev cleanup.AuditEvent) error { return a.Auditor.Log(ev.On(a.target)) }
