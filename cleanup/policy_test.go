package cleanup

import (
	"strings"
	"testing"
)

func TestPolicyDecide(t *testing.T) {
	p := Policy{Threshold: 100}
	for _, tt := range []struct {
		name     string
		filter   Filter
		valid    int64
		opts     Options
		approval bool
		backup   bool
		maxValid int64
		why      string // in Why when approval is needed, else in BackupWhy
	}{
		{name: "expired only", filter: Filter{}, valid: 0, approval: false, backup: false, maxValid: 10, why: "not required"},
		{name: "expired with a huge plan", filter: Filter{Expired: true}, valid: 0, approval: false, maxValid: 10},
		{name: "under the threshold", filter: Filter{AuthMethod: "basic_auth"}, valid: 50, maxValid: 65},
		{name: "exactly the threshold", filter: Filter{AuthMethod: "basic_auth"}, valid: 100, approval: false, maxValid: 100},
		{name: "threshold+1", filter: Filter{AuthMethod: "basic_auth"}, valid: 101, approval: true, backup: true, maxValid: 121,
			why: "101 still-valid sessions, more than APPROVAL_THRESHOLD (100)"},
		{name: "threshold+1 --no-backup", filter: Filter{UserID: "auth0|1"}, valid: 101, opts: Options{NoBackup: true},
			approval: true, backup: false, maxValid: 121},
		{name: "under the threshold --backup", filter: Filter{Orphans: true}, valid: 3, opts: Options{Backup: true},
			backup: true, maxValid: 13, why: "--backup"},
		{name: "bound capped at the threshold", filter: Filter{OlderThan: 1}, valid: 95, maxValid: 100},
		{name: "all", filter: Filter{All: true}, valid: 5, approval: true, backup: true, maxValid: -1, why: "--all"},
		{name: "all with no valid session", filter: Filter{All: true}, valid: 0, approval: true, backup: true, maxValid: -1},
		{name: "all --no-backup", filter: Filter{All: true}, valid: 5000, opts: Options{NoBackup: true}, approval: true, maxValid: -1},
		// A repair's plan counts no still-valid session (those are repaired, not deleted): it
		// logs nobody out, needs no approval and no backup, and may log out none.
		{name: "repair", filter: Filter{Orphans: true, RepairTTL: true}, valid: 0, maxValid: 0, why: "a repair deletes only expired"},
		{name: "repair --no-backup", filter: Filter{Orphans: true, RepairTTL: true}, opts: Options{NoBackup: true}, maxValid: 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			plan := Plan{Filter: tt.filter.Normalize(), Found: 10_000, Matched: 10_000, Valid: tt.valid}
			d := p.Decide(plan, tt.opts)
			if d.NeedsApproval != tt.approval || d.Backup != tt.backup || d.MaxValid != tt.maxValid {
				t.Errorf("Decide(valid %d, %+v) = approval %v, backup %v, max valid %d; want %v, %v, %d",
					tt.valid, tt.opts, d.NeedsApproval, d.Backup, d.MaxValid, tt.approval, tt.backup, tt.maxValid)
			}
			if d.NeedsApproval == (d.Why == "") {
				t.Errorf("Decide: approval %v with Why %q; want a reason exactly when approval is needed", d.NeedsApproval, d.Why)
			}
			if d.BackupWhy == "" {
				t.Error("Decide: BackupWhy is empty; want why a backup is or is not written")
			}
			why := d.BackupWhy
			if d.NeedsApproval {
				why = d.Why
			}
			if !strings.Contains(why, tt.why) {
				t.Errorf("Decide: reason %q; want it to mention %q", why, tt.why)
			}
		})
	}
}

// A threshold of 0 asks for approval before any still-valid session is logged out, and an
// unapproved run may then log out none.
func TestPolicyZeroThreshold(t *testing.T) {
	var p Policy
	if d := p.Decide(Plan{Filter: Filter{AuthMethod: "x"}, Valid: 1}, Options{}); !d.NeedsApproval {
		t.Errorf("Decide(1 valid, threshold 0) = %+v; want approval", d)
	}
	if d := p.Decide(Plan{Filter: Filter{Expired: true}, Matched: 500}, Options{}); d.NeedsApproval || d.MaxValid != 0 {
		t.Errorf("Decide(expired, threshold 0) = %+v; want no approval and no still-valid logout", d)
	}
}

func TestPolicyDecideRestore(t *testing.T) {
	d := Policy{Threshold: 1_000_000}.DecideRestore()
	if !d.NeedsApproval || d.Backup || d.Why == "" {
		t.Errorf("DecideRestore() = %+v; want approval, no backup, a reason", d)
	}
}

func TestPolicyValidate(t *testing.T) {
	if err := (Policy{Threshold: -1}).Validate(); err == nil || !strings.HasPrefix(err.Error(), "APPROVAL_THRESHOLD: ") {
		t.Errorf("Validate(-1) = %v; want an error naming APPROVAL_THRESHOLD", err)
	}
	if err := (Policy{}).Validate(); err != nil {
		t.Errorf("Validate(0) = %v; want nil", err)
	}
}
