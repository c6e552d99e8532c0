package bot

import (
	"encoding/json"
	"strings"
	"time"

	"github.com/platform-team/sessionbot/cleanup"
)

// Kind is the work a request does when it runs.
type Kind string

// Request kinds.
const (
	KindCleanup Kind = "cleanup"
	KindRestore Kind = "restore"
)

// Mode is how a run is named in audit lines, metrics and notifications (SPEC §11 "Audit Mode:").
type Mode string

// Modes of runs and previews.
const (
	ModeDryRun  Mode = "dry-run" // a preview: audited, never deletes
	ModeExecute Mode = cleanup.ModeExecute
	ModeAll     Mode = cleanup.ModeAll    // mass logout
	ModeRepair  Mode = cleanup.ModeRepair // --orphans --repair-ttl
	ModeRestore Mode = "restore"
)

// Request is a previewed cleanup (or restore) waiting for someone to run or approve it. Its
// fields are written once, when the preview is shown: what an approver approves is exactly what
// runs. Only the decision fields (Status, Approvals, DecidedBy, DecidedAt, JobID, Resumable)
// change afterwards; they are stored apart from the immutable JSON.
type Request struct {
	ID            string         `json:"id"`
	Kind          Kind           `json:"kind"`
	Mode          Mode           `json:"mode"`
	Target        string         `json:"target,omitempty"` // the target's name: its job runs there only
	Filter        cleanup.Filter `json:"filter"`
	Scope         string         `json:"scope"`
	Reason        string         `json:"reason"`
	NoBackup      bool           `json:"no_backup"`
	ForceBackup   bool           `json:"force_backup"`
	BackupID      string         `json:"backup_id,omitempty"` // restore
	Requester     Person         `json:"requester"`
	TeamID        string         `json:"team_id"`
	Channel       string         `json:"channel"`
	Ref           MessageRef     `json:"ref"`              // the message with the buttons
	Origin        *MessageRef    `json:"origin,omitempty"` // the preview, when the approval went elsewhere
	Plan          cleanup.Plan   `json:"plan"`
	Restore       *RestorePlan   `json:"restore,omitempty"`
	NeedsApproval bool           `json:"needs_approval"`
	// Required is how many distinct approvers, none of them the requester, a request that
	// NeedsApproval must have before its job starts (APPROVALS_REQUIRED when it was made). A
	// request stored before approvals were counted has none: it needs 1, as it said when shown.
	Required int  `json:"required"`
	Backup   bool `json:"backup"` // a backup is written before deleting
	// MaxValid is the most still-valid sessions the run may log out (cleanup.Policy); negative:
	// unbounded. A request stored without it (0) logs out none.
	MaxValid  int64     `json:"max_valid"`
	Approvers []string  `json:"approvers"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`

	// Decision fields, stored apart from the immutable JSON.
	Status Status `json:"-"`
	// Approvals are the distinct approvers who approved it, in order; the job starts on the
	// Required-th.
	Approvals []Person `json:"-"`
	// DecidedBy is who ran, rejected or cancelled it (approvers are in Approvals).
	DecidedBy *Person   `json:"-"`
	DecidedAt time.Time `json:"-"`
	JobID     string    `json:"-"`
	// Resumable: its job failed part-way (not stopped by its bound, not cancelled), so an
	// operator may resume it until resumeDeadline.
	Resumable bool `json:"-"`
}

// resumeDeadline is when the approval of the request (or the Run that started it) ages out: it
// is as old as APPROVAL_TTL was when the request was made. Until then an interrupted job may be
// resumed without a new approval; after it, only a fresh request runs.
func (r *Request) resumeDeadline() time.Time {
	return r.DecidedAt.Add(r.ExpiresAt.Sub(r.CreatedAt))
}

// UnmarshalJSON reads a stored request, those written by earlier versions included.
func (r *Request) UnmarshalJSON(data []byte) error {
	type stored Request // without this method
	var s stored
	if err := json.Unmarshal(data, &s); err != nil {
		return err
	}
	*r = Request(s)
	r.Required = max(r.Required, 1)
	return nil
}

// approvedBy reports whether id's approval is already counted.
func (r *Request) approvedBy(id string) bool {
	for _, p := range r.Approvals {
		if p.ID == id {
			return true
		}
	}
	return false
}

// approvalCount is the audit log's Approvals: field, "1/2".
func approvalCount(n, required int) string {
	return num(int64(n)) + "/" + num(int64(required))
}

// peopleText spells people in audit lines: "U1 (bob), U2 (dave)".
func peopleText(ps []Person) string {
	parts := make([]string, len(ps))
	for i, p := range ps {
		parts[i] = personText(p)
	}
	return strings.Join(parts, ", ")
}

// backupText is the audit log's Backup: field for the request.
func (r *Request) backupText() string {
	switch {
	case r.Backup:
		return "yes"
	case r.NoBackup:
		return "skipped (--no-backup)"
	}
	return "no"
}

// RestorePlan is the dry-run of a restore, counted from the backup file.
type RestorePlan struct {
	Path       string `json:"path"`
	Records    int64  `json:"records"`
	Expired    int64  `json:"expired"`    // skipped: their TTL ran out since the backup
	Restorable int64  `json:"restorable"` // would be put back
	OutsidePfx int64  `json:"outside_prefix"`
}
