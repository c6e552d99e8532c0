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
	if strings.Join(ids(c.Operators), ",") != "U123ABC,W456DEF,S0GROUP1" || c.ApprovalTTL != 5*time.Minute ||
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
