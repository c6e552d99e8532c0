package bot

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/sethvargo/go-envconfig"

	"github.com/platform-team/sessionbot/cleanup"
)

func TestConfigDefaults(t *testing.T) {
	c, err := LoadConfig(context.Background(), envconfig.MapLookuper(nil))
	if err != nil {
		t.Fatalf("LoadConfig(empty) = %v", err)
	}
	if c.Command != "/sessions" || c.ApprovalTTL != 15*time.Minute ||
		c.NotifyChannel != "#platform-incidents" || c.NotifyAffectedUsers || c.ApprovalChannel != "" {
		t.Errorf("defaults = %+v", c)
	}
}

func TestConfigParses(t *testing.T) {
	c, err := LoadConfig(context.Background(), envconfig.MapLookuper(map[string]string{
		"OPERATORS": "U123ABC, W456DEF ,S0GROUP1", "APPROVERS": "U999", "APPROVAL_TTL": "5m",
		"APPROVAL_CHANNEL": "C0APPROVE", "NOTIFY_AFFECTED_USERS": "true",
		"SLACK_TEAM_ID": "T0TEAM",
	}))
	if err != nil {
		t.Fatalf("LoadConfig = %v", err)
	}
	if strings.Join(IDs(c.Operators), ",") != "U123ABC,W456DEF,S0GROUP1" || c.ApprovalTTL != 5*time.Minute ||
		!c.NotifyAffectedUsers {
		t.Errorf("config = %+v", c)
	}
}

// Every problem is reported at once, each naming its variable.
func TestConfigValidateJoinsErrors(t *testing.T) {
	_, err := LoadConfig(context.Background(), envconfig.MapLookuper(map[string]string{
		"OPERATORS":      "U123,alice",
		"APPROVERS":      "bob@example.com",
		"APPROVAL_TTL":   "0s",
		"SLACK_COMMAND":  "sessions",
		"SLACK_TEAM_ID":  "acme",
		"NOTIFY_CHANNEL": "platform incidents",
	}))
	if err == nil {
		t.Fatal("LoadConfig accepted bad values")
	}
	msg := err.Error()
	for _, want := range []string{`OPERATORS: "alice"`, `APPROVERS: "bob@example.com"`, "APPROVAL_TTL",
		"SLACK_COMMAND", "SLACK_TEAM_ID", "NOTIFY_CHANNEL"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error does not name %s:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, `"U123"`) {
		t.Errorf("a valid id was reported:\n%s", msg)
	}
}

func TestConfigTypeError(t *testing.T) {
	_, err := LoadConfig(context.Background(), envconfig.MapLookuper(map[string]string{"APPROVAL_TTL": "soon"}))
	if err == nil || !strings.Contains(err.Error(), "APPROVAL_TTL") {
		t.Errorf("LoadConfig(APPROVAL_TTL=soon) = %v; want an error naming APPROVAL_TTL", err)
	}
}

func TestNewRequiresDeps(t *testing.T) {
	_, err := New(Deps{Config: DefaultConfig(), Policy: cleanup.Policy{Threshold: -1}})
	for _, want := range []string{"Chat", "Engine", "Auditor", "APPROVAL_THRESHOLD"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("New(empty, threshold -1) = %v; want an error naming %s", err, want)
		}
	}
}

// APPROVALS_REQUIRED is at least 1, and no more than the approver users listed unless a user
// group is listed (SPEC §13): otherwise no request could ever be approved.
func TestConfigApprovalsRequired(t *testing.T) {
	tests := []struct {
		required, approvers string
		want                int
		err                 string // "" when valid
	}{
		{"", "U0BOB,U0DAVE", 1, ""},
		{"2", "U0BOB,U0DAVE", 2, ""},
		{"2", "U0BOB, U0BOB", 0, "APPROVALS_REQUIRED: 2 approvals can never be given by the 1 users in APPROVERS"},
		{"3", "U0BOB,U0DAVE", 0, "APPROVALS_REQUIRED: 3 approvals can never be given by the 2 users in APPROVERS (list more approvers, or a user group)"},
		{"3", "U0BOB,S0SECURITY", 3, ""},
		{"0", "U0BOB", 0, "APPROVALS_REQUIRED: 0 is out of range (at least 1)"},
		{"-1", "U0BOB", 0, "APPROVALS_REQUIRED: -1 is out of range"},
		{"two", "U0BOB", 0, "APPROVALS_REQUIRED"},
	}
	for _, tt := range tests {
		env := map[string]string{"APPROVERS": tt.approvers}
		if tt.required != "" {
			env["APPROVALS_REQUIRED"] = tt.required
		}
		c, err := LoadConfig(context.Background(), envconfig.MapLookuper(env))
		switch {
		case tt.err == "" && err != nil:
			t.Errorf("LoadConfig(APPROVALS_REQUIRED=%q, APPROVERS=%q) = %v; want no error", tt.required, tt.approvers, err)
		case tt.err == "" && c.ApprovalsRequired != tt.want:
			t.Errorf("LoadConfig(APPROVALS_REQUIRED=%q).ApprovalsRequired = %d; want %d", tt.required, c.ApprovalsRequired, tt.want)
		case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err) || strings.Contains(err.Error(), "\n")):
			t.Errorf("LoadConfig(APPROVALS_REQUIRED=%q, APPROVERS=%q) = %v; want one line containing %q", tt.required, tt.approvers, err, tt.err)
		}
	}
}
