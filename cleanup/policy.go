package cleanup

import "fmt"

// Policy decides what a destructive action needs before it runs: a second person, a backup,
// and how many still-valid sessions the run may log out (SPEC §4, §6, §11, §12.3). The bot and
// the command line both ask it; neither decides on its own.
type Policy struct {
	// Threshold: a cleanup that would log out more still-valid sessions than this needs a second
	// person (on the command line: typing the count) and writes a backup first; a run that
	// needed no approval never logs out more than this many.
	Threshold int64 `env:"APPROVAL_THRESHOLD, default=1000"`
}

// Validate reports a setting that cannot be used, naming its variable.
func (p Policy) Validate() error {
	if p.Threshold < 0 {
		return fmt.Errorf("APPROVAL_THRESHOLD: %d is out of range (want 0 or more still-valid sessions)", p.Threshold)
	}
	return nil
}

// Decision is what a Policy requires of one cleanup or restore. It is decided once, when the
// preview is shown, and the run is bound to it.
type Decision struct {
	// NeedsApproval: an approver other than the requester must approve (the bot), or the
	// operator must type the number of sessions (the command line).
	NeedsApproval bool
	// Why says why approval is needed; empty when it is not.
	Why string
	// Backup: every deleted session is written to a backup before anything is deleted.
	Backup bool
	// BackupWhy says why a backup is, or is not, written.
	BackupWhy string
	// MaxValid is the most still-valid sessions the run may log out (RunSpec.MaxValid);
	// negative: unbounded (--all). A restore deletes nothing: it is 0.
	MaxValid int64
}

// Decide is the decision for a cleanup previewed as plan, with the options it was asked with.
//
// Approval: --all, and any cleanup that would log out more than Threshold still-valid (not
// expired, not malformed) sessions; deleting expired or malformed sessions logs nobody out and
// never needs it. Backup: for --all, for runs that need approval and whenever --backup is given;
// --no-backup skips it. Bound: an approved run may log out what was previewed + 10% + 10
// (ValidBound), --all is unbounded; a run that needed no approval never logs out more than
// Threshold still-valid sessions, whatever appears after its preview.
//
// A repair (--orphans --repair-ttl) logs nobody out: it gives still-valid orphans their TTL and
// deletes only expired ones, so its repairs never count as logouts (plan.Valid counts none of
// them, and nothing asks for approval), it needs no backup (a restore skips expired sessions)
// and its bound is 0: a key that would log a user out is repaired, never deleted.
func (p Policy) Decide(plan Plan, opts Options) Decision {
	f := plan.Filter.Normalize()
	var d Decision
	switch {
	case f.All:
		d.NeedsApproval, d.Why = true, "a mass logout (--all) logs out every user"
	case plan.Valid > p.Threshold:
		d.NeedsApproval, d.Why = true, fmt.Sprintf("it logs out %d still-valid sessions, more than APPROVAL_THRESHOLD (%d)", plan.Valid, p.Threshold)
	}

	switch {
	case f.RepairTTL:
		d.BackupWhy = "not needed (a repair deletes only expired sessions)"
	case opts.NoBackup:
		d.BackupWhy = "skipped (--no-backup)"
	case opts.Backup:
		d.Backup, d.BackupWhy = true, "asked for (--backup)"
	case f.All:
		d.Backup, d.BackupWhy = true, "required for a mass logout (--all)"
	case d.NeedsApproval:
		d.Backup, d.BackupWhy = true, "required above APPROVAL_THRESHOLD"
	default:
		d.BackupWhy = "not required (--backup forces one)"
	}

	switch {
	case f.All:
		d.MaxValid = -1
	case f.RepairTTL:
		d.MaxValid = 0
	case d.NeedsApproval:
		d.MaxValid = ValidBound(plan.Valid)
	default:
		d.MaxValid = min(ValidBound(plan.Valid), p.Threshold)
	}
	return d
}

// DecideUpfront is the decision for a cleanup of f before any preview, when nothing in it depends
// on what a preview finds: a mass logout (--all) always needs approval, writes a backup unless
// --no-backup, and is unbounded. ok is false for every other filter.
func (p Policy) DecideUpfront(f Filter, opts Options) (d Decision, ok bool) {
	if !f.Normalize().All {
		return Decision{}, false
	}
	return p.Decide(Plan{Filter: f}, opts), true
}

// DecideRestore is the decision for a restore: putting sessions back logs users in again, so
// it always needs a second person; it deletes nothing, so it needs no backup and no bound.
func (p Policy) DecideRestore() Decision {
	return Decision{
		NeedsApproval: true,
		Why:           "a restore logs users back in",
		BackupWhy:     "not needed (a restore deletes nothing)",
	}
}
