package cleanup

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseTargets(t *testing.T) {
	defaults := RedisConfig{Prefix: "session:", StateURL: "redis://state:6379/0"}
	policy := Policy{Threshold: 1000}
	specs, err := ParseTargets("targets.yaml", []byte(`
targets:
  - name: prod-us
    redis_url: redis://:s3cret@10.0.0.1:6379/0
    approvers: [U0123, S0456]
    approval_threshold: 50
    channels: [C0789]
  - name: prod-eu
    cluster_addrs: [10.0.1.1:7000, 10.0.1.2:7000]
    prefix: "sess:"
  - name: staging
    sentinel_addrs: [10.0.2.1:26379]
    sentinel_master: mymaster
`), defaults, policy)
	if err != nil {
		t.Fatalf("ParseTargets: %v", err)
	}
	if got, want := TargetNames(specs), []string{"prod-us", "prod-eu", "staging"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("names = %v; want %v", got, want)
	}
	us, eu, st := specs[0], specs[1], specs[2]
	if us.Redis.Name != "prod-us" || us.Redis.URL.Reveal() != "redis://:s3cret@10.0.0.1:6379/0" || us.Redis.Prefix != "session:" ||
		us.Redis.StateURL != defaults.StateURL || us.Policy.Threshold != 50 ||
		!reflect.DeepEqual(us.Approvers, []string{"U0123", "S0456"}) || !reflect.DeepEqual(us.Channels, []string{"C0789"}) {
		t.Errorf("prod-us = %+v", us)
	}
	if eu.Redis.Prefix != "sess:" || len(eu.Redis.ClusterAddrs) != 2 || eu.Policy.Threshold != 1000 || eu.Approvers != nil {
		t.Errorf("prod-eu = %+v; want prefix sess:, 2 cluster seeds, threshold 1000 (the default), APPROVERS", eu)
	}
	if st.Redis.SentinelMaster != "mymaster" || len(st.Redis.SentinelAddrs) != 1 {
		t.Errorf("staging = %+v", st)
	}
}

func TestParseTargetsErrors(t *testing.T) {
	withState := RedisConfig{Prefix: "session:", StateURL: "redis://state:6379/0"}
	tests := []struct {
		name     string
		yaml     string
		defaults RedisConfig
		want     []string // each a line of the error
	}{
		{"unknown field", "targets:\n  - name: a\n    redis_url: redis://h:1/0\n    prefx: x\n", withState,
			[]string{"TARGETS_FILE targets.yaml: line 4: field prefx not found"}},
		{"empty", "targets: []\n", withState, []string{"TARGETS_FILE targets.yaml: targets: the list is empty"}},
		{"no name", "targets:\n  - redis_url: redis://h:1/0\n", withState,
			[]string{"TARGETS_FILE targets.yaml: target #1: name: required"}},
		{"bad name", "targets:\n  - name: Prod_US\n    redis_url: redis://h:1/0\n", withState,
			[]string{`TARGETS_FILE targets.yaml: target Prod_US: name: "Prod_US" is not a target name`}},
		{"duplicate", "targets:\n  - name: a\n    redis_url: redis://h:1/0\n  - name: a\n    redis_url: redis://h:2/0\n", withState,
			[]string{`TARGETS_FILE targets.yaml: target a: name: "a" is used by another target`}},
		{"no connection", "targets:\n  - name: a\n", withState,
			[]string{"TARGETS_FILE targets.yaml: target a: redis_url: required"}},
		{"two connections", "targets:\n  - name: a\n    redis_url: redis://h:1/0\n    cluster_addrs: [h:2]\n", withState,
			[]string{"TARGETS_FILE targets.yaml: target a: redis_url, cluster_addrs and sentinel_addrs: set only one"}},
		{"sentinel without master", "targets:\n  - name: a\n    sentinel_addrs: [h:1]\n", withState,
			[]string{"TARGETS_FILE targets.yaml: target a: sentinel_master: required with REDIS_SENTINEL_ADDRS"}},
		{"bad url, password hidden", "targets:\n  - name: a\n    redis_url: 'redis://:pa/ss@h:1/0'\n", withState,
			[]string{"TARGETS_FILE targets.yaml: target a: redis_url: "}},
		{"negative threshold", "targets:\n  - name: a\n    redis_url: redis://h:1/0\n    approval_threshold: -1\n", withState,
			[]string{"TARGETS_FILE targets.yaml: target a: approval_threshold: -1 must not be negative"}},
		{"prefix in state namespace", "targets:\n  - name: a\n    redis_url: redis://h:1/0\n    prefix: 'sessionbot:x'\n", withState,
			[]string{"TARGETS_FILE targets.yaml: target a: prefix: "}},
		{"channel of two targets", "targets:\n  - name: a\n    redis_url: redis://h:1/0\n    channels: [C1]\n  - name: b\n    redis_url: redis://h:2/0\n    channels: [C1]\n", withState,
			[]string{`TARGETS_FILE targets.yaml: target b: channels: "C1" is already the default channel of target a`}},
		{"state required", "targets:\n  - name: a\n    redis_url: redis://h:1/0\n  - name: b\n    redis_url: redis://h:2/0\n", RedisConfig{Prefix: "session:"},
			[]string{"STATE_REDIS_URL: required with more than one target in TARGETS_FILE targets.yaml"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseTargets("targets.yaml", []byte(tt.yaml), tt.defaults, Policy{Threshold: 1000})
			if err == nil {
				t.Fatalf("ParseTargets(%q) = nil error; want %q", tt.yaml, tt.want)
			}
			lines := strings.Split(err.Error(), "\n")
			if len(lines) != len(tt.want) {
				t.Fatalf("ParseTargets error has %d lines; want %d:\n%v", len(lines), len(tt.want), err)
			}
			for i, w := range tt.want {
				if !strings.HasPrefix(lines[i], w) {
					t.Errorf("error line %d = %q; want it to start with %q", i, lines[i], w)
				}
			}
			if strings.Contains(err.Error(), "ss@") || strings.Contains(err.Error(), "pa/") {
				t.Errorf("error shows the password: %v", err)
			}
		})
	}
}

func TestLoadTargets(t *testing.T) {
	// Without TARGETS_FILE: one target named default, from the single-target variables.
	specs, err := LoadTargets(RedisConfig{URL: "redis://h:1/0", Prefix: "session:"}, Policy{Threshold: 7})
	if err != nil || len(specs) != 1 || specs[0].Name != "default" || specs[0].Redis.Name != "default" ||
		specs[0].Redis.URL != "redis://h:1/0" || specs[0].Policy.Threshold != 7 {
		t.Fatalf("LoadTargets(env) = %+v, %v; want one target named default", specs, err)
	}
	path := filepath.Join(t.TempDir(), "targets.yaml")
	if err := os.WriteFile(path, []byte("targets:\n  - name: a\n    redis_url: redis://h:1/0\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = LoadTargets(RedisConfig{TargetsFile: path, URL: "redis://h:1/0", Prefix: "session:"}, Policy{})
	if err == nil || !strings.HasPrefix(err.Error(), "TARGETS_FILE: set either TARGETS_FILE or REDIS_URL") {
		t.Errorf("LoadTargets(file and REDIS_URL) = %v; want the both-set error", err)
	}
	specs, err = LoadTargets(RedisConfig{TargetsFile: path, Prefix: "session:"}, Policy{})
	if err != nil || len(specs) != 1 || specs[0].Name != "a" {
		t.Errorf("LoadTargets(file) = %+v, %v; want target a", specs, err)
	}
	if _, err := LoadTargets(RedisConfig{TargetsFile: path + ".missing", Prefix: "session:"}, Policy{}); err == nil ||
		!strings.HasPrefix(err.Error(), "TARGETS_FILE: ") {
		t.Errorf("LoadTargets(missing file) = %v; want an error naming TARGETS_FILE", err)
	}
}

func TestTakeTarget(t *testing.T) {
	tests := []struct {
		in       []string
		name     string
		rest     []string
		errorful bool
	}{
		{[]string{"--all", "--reason", "x"}, "", []string{"--all", "--reason", "x"}, false},
		{[]string{"--target", "prod-eu", "--all"}, "prod-eu", []string{"--all"}, false},
		{[]string{"--orphans", "--target=prod-us"}, "prod-us", []string{"--orphans"}, false},
		{[]string{"--target"}, "", nil, true},
		{[]string{"--target="}, "", nil, true},
		{[]string{"--target", "--all"}, "", nil, true},
		{[]string{"--target", "a", "--target", "b"}, "", nil, true},
	}
	for _, tt := range tests {
		name, rest, err := TakeTarget(tt.in)
		if (err != nil) != tt.errorful || name != tt.name || !reflect.DeepEqual(rest, tt.rest) {
			t.Errorf("TakeTarget(%q) = %q, %q, %v; want %q, %q, error %v", tt.in, name, rest, err, tt.name, tt.rest, tt.errorful)
		}
	}
}

func TestParseTargetsTypeErrorHidesValue(t *testing.T) {
	_, err := ParseTargets("t.yaml", []byte("targets:\n  - name: a\n    redis_url: redis://h:1/0\n    approval_threshold: s3cret\n"),
		RedisConfig{Prefix: "session:"}, Policy{})
	if err == nil || strings.Contains(err.Error(), "s3cret") || !strings.HasPrefix(err.Error(), "TARGETS_FILE t.yaml: line 4: ") {
		t.Errorf("ParseTargets(bad threshold) = %v; want one line naming the file and line, without the value", err)
	}
}

func TestAuditEventOn(t *testing.T) {
	ev := CleanupCompleted{Deleted: 3}.Event(time.Date(2025, 11, 26, 10, 0, 0, 0, time.UTC), plain)
	if got, want := ev.On("prod-eu").String(), "2025-11-26T10:00:00Z | Cleanup Completed | Deleted: 3 | Kept: 0 | Errors: 0 | Target: prod-eu"; got != want {
		t.Errorf("On(prod-eu) = %q; want %q", got, want)
	}
	for _, target := range []string{"", DefaultTargetName} {
		if got := ev.On(target).String(); strings.Contains(got, "Target") {
			t.Errorf("On(%q) = %q; want no Target field (the runbook's line)", target, got)
		}
	}
}

// A backup names the target it was written on, and is restored only there (SPEC §13: a mass
// logout on prod-eu never touches prod-us — nor does undoing it).
func TestCheckRestoreTarget(t *testing.T) {
	names := []string{"prod-us", "prod", "prod-eu", DefaultTargetName}
	for _, tt := range []struct {
		id, target string
		ok         bool
	}{
		{"job-prod-eu-20261201-0badc0de", "prod-eu", true},
		{"job-prod-eu-20261201-0badc0de", "prod-us", false},
		{"job-prod-eu-20261201-0badc0de", "prod", false},
		{"job-prod-20261201-0badc0de", "prod", true},
		{"cli-prod-us-20261201T000000Z-abcdef", "prod-us", true},
		{"cli-prod-us-20261201T000000Z-abcdef", DefaultTargetName, false},
		{"job-20261201-0badc0de", DefaultTargetName, true},
		{"job-20261201-0badc0de", "prod-eu", false},
		{"incident", DefaultTargetName, true},
	} {
		err := CheckRestoreTarget(tt.id, tt.target, names)
		if (err == nil) != tt.ok {
			t.Errorf("CheckRestoreTarget(%s, %s) = %v; want ok %v", tt.id, tt.target, err, tt.ok)
		}
	}
	if err := CheckRestoreTarget("job-prod-eu-20261201-0badc0de", "x", []string{"x"}); err != nil {
		t.Errorf("one target: %v; want no check", err)
	}
}
