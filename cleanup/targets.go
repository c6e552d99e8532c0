package cleanup

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// DefaultTargetName names the one target the single-target variables (REDIS_URL,
// REDIS_CLUSTER_ADDRS, REDIS_SENTINEL_ADDRS) define when TARGETS_FILE is not set.
const DefaultTargetName = "default"

// targetNameRe is what a target's name may be: it appears in audit lines, metric labels, backup
// file names, lease keys and PagerDuty dedup keys.
var targetNameRe = regexp.MustCompile(`^[a-z0-9-]{1,32}$`)

// TargetSpec is one named Redis deployment the bot and the CLI may clean up: where it is, its
// session prefix, the policy its cleanups follow and, for the bot, who approves them and which
// channels' commands default to it.
type TargetSpec struct {
	Name string
	// Redis is the connection (one of URL, ClusterAddrs, SentinelAddrs), the prefix and where
	// the bot's state lives (STATE_REDIS_URL, shared by every target).
	Redis RedisConfig
	// Policy is APPROVAL_THRESHOLD, or the target's approval_threshold.
	Policy Policy
	// Approvers are the target's approvers (Slack ids); empty: APPROVERS.
	Approvers []string
	// Channels are channel ids whose commands go to this target when they name none.
	Channels []string
}

// targetEntry is one entry of TARGETS_FILE as written.
type targetEntry struct {
	Name              string   `yaml:"name"`
	RedisURL          RedisURL `yaml:"redis_url"`
	ClusterAddrs      []string `yaml:"cluster_addrs"`
	SentinelAddrs     []string `yaml:"sentinel_addrs"`
	SentinelMaster    string   `yaml:"sentinel_master"`
	Prefix            *string  `yaml:"prefix"`
	Approvers         []string `yaml:"approvers"`
	ApprovalThreshold *int64   `yaml:"approval_threshold"`
	Channels          []string `yaml:"channels"`
}

// LoadTargets returns the targets cfg names: the entries of cfg.TargetsFile, or, without one,
// a single target named "default" from the single-target variables. policy supplies the
// default APPROVAL_THRESHOLD. Every problem is reported at once, one line each, naming the
// file, the target and the field; a URL's password is never shown.
func LoadTargets(cfg RedisConfig, policy Policy) ([]TargetSpec, error) {
	if cfg.TargetsFile == "" {
		r := cfg
		r.Name = DefaultTargetName
		return []TargetSpec{{Name: DefaultTargetName, Redis: r, Policy: policy}}, nil
	}
	if cfg.URL != "" || len(cfg.ClusterAddrs) > 0 || len(cfg.SentinelAddrs) > 0 || cfg.SentinelMaster != "" {
		return nil, errors.New("TARGETS_FILE: set either TARGETS_FILE or REDIS_URL/REDIS_CLUSTER_ADDRS/REDIS_SENTINEL_ADDRS, not both (the file names every target)")
	}
	data, err := os.ReadFile(cfg.TargetsFile)
	if err != nil {
		return nil, fmt.Errorf("TARGETS_FILE: %w", err)
	}
	return ParseTargets(cfg.TargetsFile, data, cfg, policy)
}

// ParseTargets reads a TARGETS_FILE's contents; file names it in errors. Fields left out take
// their value from defaults (SESSION_KEY_PREFIX, STATE_REDIS_URL) and policy.
func ParseTargets(file string, data []byte, defaults RedisConfig, policy Policy) ([]TargetSpec, error) {
	var doc struct {
		Targets []targetEntry `yaml:"targets"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true) // a misspelt field is an error, not a silently ignored setting
	if err := dec.Decode(&doc); err != nil && !errors.Is(err, io.EOF) {
		var te *yaml.TypeError
		if !errors.As(err, &te) {
			return nil, fmt.Errorf("TARGETS_FILE %s: %s", file, yamlMessage(err.Error()))
		}
		errs := make([]error, len(te.Errors))
		for i, m := range te.Errors {
			errs[i] = fmt.Errorf("TARGETS_FILE %s: %s", file, yamlMessage(m))
		}
		return nil, errors.Join(errs...)
	}
	if len(doc.Targets) == 0 {
		return nil, fmt.Errorf("TARGETS_FILE %s: targets: the list is empty; name at least one target", file)
	}
	var (
		errs  []error
		specs []TargetSpec
		names = map[string]bool{}
		chans = map[string]string{}
	)
	for i, e := range doc.Targets {
		label := e.Name
		if label == "" {
			label = fmt.Sprintf("#%d", i+1)
		}
		bad := func(field, format string, args ...any) {
			errs = append(errs, fmt.Errorf("TARGETS_FILE %s: target %s: %s: %s", file, label, field, fmt.Sprintf(format, args...)))
		}
		switch {
		case e.Name == "":
			bad("name", "required ([a-z0-9-], at most 32 characters)")
		case !targetNameRe.MatchString(e.Name):
			bad("name", "%q is not a target name ([a-z0-9-], at most 32 characters)", short40(e.Name))
		case names[e.Name]:
			bad("name", "%q is used by another target", e.Name)
		}
		names[e.Name] = true

		r := RedisConfig{Name: e.Name, URL: e.RedisURL, ClusterAddrs: e.ClusterAddrs, SentinelAddrs: e.SentinelAddrs,
			SentinelMaster: e.SentinelMaster, Prefix: defaults.Prefix, StateURL: defaults.StateURL}
		if e.Prefix != nil {
			r.Prefix = *e.Prefix
		}
		set := 0
		for _, s := range []bool{e.RedisURL != "", len(e.ClusterAddrs) > 0, len(e.SentinelAddrs) > 0} {
			if s {
				set++
			}
		}
		if set == 0 {
			bad("redis_url", "required (or cluster_addrs, or sentinel_addrs with sentinel_master)")
		}
		// The connection's own checks, spoken in the file's words.
		if err := r.Validate(); err != nil {
			for line := range strings.SplitSeq(err.Error(), "\n") {
				field, msg, _ := strings.Cut(line, ": ")
				bad(yamlField(field), "%s", msg)
			}
		}
		p := policy
		if e.ApprovalThreshold != nil {
			p.Threshold = *e.ApprovalThreshold
			if err := p.Validate(); err != nil {
				bad("approval_threshold", "%d must not be negative", p.Threshold)
			}
		}
		for _, c := range e.Channels {
			if other, ok := chans[c]; ok && other != e.Name {
				bad("channels", "%q is already the default channel of target %s", short40(c), other)
			}
			chans[c] = e.Name
		}
		if slices.Contains(e.Approvers, "") || slices.Contains(e.Channels, "") {
			bad("approvers/channels", "an entry is empty")
		}
		specs = append(specs, TargetSpec{Name: e.Name, Redis: r, Policy: p, Approvers: e.Approvers, Channels: e.Channels})
	}
	if len(specs) > 1 && defaults.StateURL == "" {
		errs = append(errs, fmt.Errorf("STATE_REDIS_URL: required with more than one target in TARGETS_FILE %s (requests, approvals and jobs of every target live there)", file))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return specs, nil
}

// yamlQuoted is a value yaml quotes in a message: it may be a password.
var yamlQuoted = regexp.MustCompile("`[^`]*`")

// yamlMessage makes a yaml error one line without the values it quotes or Go type names.
func yamlMessage(m string) string {
	m = strings.TrimPrefix(m, "yaml: ")
	m, _, _ = strings.Cut(m, " in type cleanup.")
	m = yamlQuoted.ReplaceAllString(m, "(value not shown)")
	return strings.ReplaceAll(m, "\n", "; ")
}

// yamlField maps a RedisConfig variable named in a Validate error to its TARGETS_FILE field.
func yamlField(env string) string {
	switch env {
	case "REDIS_URL":
		return "redis_url"
	case "REDIS_SENTINEL_MASTER":
		return "sentinel_master"
	case "SESSION_KEY_PREFIX":
		return "prefix"
	case "REDIS_CLUSTER_ADDRS/REDIS_SENTINEL_ADDRS":
		return "cluster_addrs/sentinel_addrs"
	case "REDIS_URL, REDIS_CLUSTER_ADDRS and REDIS_SENTINEL_ADDRS":
		return "redis_url, cluster_addrs and sentinel_addrs"
	}
	return env
}

func short40(s string) string {
	if r := []rune(s); len(r) > 40 {
		return string(r[:40]) + "…"
	}
	return s
}

// TargetNames lists the names of specs, for messages that ask for one of them.
func TargetNames(specs []TargetSpec) []string {
	out := make([]string, len(specs))
	for i, s := range specs {
		out[i] = s.Name
	}
	return out
}

// TakeTarget removes --target NAME (or --target=NAME) from args, the same for every slash
// command and CLI subcommand; name is "" when it is not given.
func TakeTarget(args []string) (name string, rest []string, err error) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--target" || a == "-target":
			if i+1 >= len(args) || strings.TrimSpace(args[i+1]) == "" || strings.HasPrefix(args[i+1], "-") {
				return "", nil, &UsageError{Msg: "--target needs a target name"}
			}
			i++
			a = args[i]
		case strings.HasPrefix(a, "--target="):
			a = strings.TrimPrefix(a, "--target=")
			if a == "" {
				return "", nil, &UsageError{Msg: "--target needs a target name"}
			}
		default:
			rest = append(rest, a)
			continue
		}
		if name != "" && name != a {
			return "", nil, &UsageError{Msg: fmt.Sprintf("--target given twice (%q and %q)", short40(name), short40(a))}
		}
		name = a
	}
	return name, rest, nil
}

// BackupOwner names the target a backup was written on, read from its id: the job and CLI ids of
// a named target carry its name (job-prod-eu-…, cli-prod-eu-…), those of the default target do
// not. names are the configured targets; the longest that fits wins.
func BackupOwner(id string, names []string) string {
	rest, ok := strings.CutPrefix(id, "job-")
	if !ok {
		if rest, ok = strings.CutPrefix(id, "cli-"); !ok {
			return DefaultTargetName
		}
	}
	owner := DefaultTargetName
	for _, n := range names {
		if strings.HasPrefix(rest, n+"-") && (owner == DefaultTargetName || len(n) > len(owner)) {
			owner = n
		}
	}
	return owner
}

// CheckRestoreTarget refuses to restore backup id into target when it was written on another of
// the configured targets: sessions of prod-eu never go into prod-us. One target: nothing to check.
func CheckRestoreTarget(id, target string, names []string) error {
	if len(names) < 2 {
		return nil
	}
	if owner := BackupOwner(id, names); owner != target {
		return &UsageError{Msg: fmt.Sprintf("backup %s was written on target %s, not %s: restore it there (--target %s)", id, owner, target, owner)}
	}
	return nil
}
