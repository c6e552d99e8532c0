package main

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"time"

	"filippo.io/age"
	"github.com/sethvargo/go-envconfig"

	"github.com/platform-team/sessionbot/cleanup"
)

// config is what the command-line subcommands read from the environment: the packages' own
// Config structs, composed. The CLI needs no Slack settings.
type config struct {
	Redis  cleanup.RedisConfig
	Engine cleanup.EngineConfig
	Backup cleanup.BackupConfig
	Audit  cleanup.AuditConfig
	Policy cleanup.Policy
	// Targets are TARGETS_FILE's targets, or the one named default the variables define.
	Targets []cleanup.TargetSpec
	// noTarget, when set, says why Redis and Policy name no target: the command named none
	// (or an unknown one) and there are several. Commands that touch a target refuse with it.
	noTarget error
}

// forTarget makes Redis and Policy those of the target named name (--target; "" for the only
// one). Without one to pick, cfg is returned with noTarget saying why.
func (cfg config) forTarget(name string) config {
	if len(cfg.Targets) == 0 {
		return cfg
	}
	names := strings.Join(cleanup.TargetNames(cfg.Targets), ", ")
	for _, t := range cfg.Targets {
		if t.Name == name || (name == "" && len(cfg.Targets) == 1) {
			cfg.Redis, cfg.Policy = t.Redis, t.Policy
			return cfg
		}
	}
	if name != "" {
		cfg.noTarget = fmt.Errorf("unknown target %q; the targets are %s", shorten(name), names)
	} else {
		cfg.noTarget = fmt.Errorf("TARGETS_FILE names several targets: choose one with --target NAME (%s)", names)
	}
	return cfg
}

// loadConfig reads and validates every setting at once: the error lists each problem on its
// own line, naming the variable, so one run shows everything that needs fixing. Values are
// never echoed for variables that may hold secrets.
func loadConfig(ctx context.Context, getenv func(string) string) (config, error) {
	var c config
	var errs []error
	for _, target := range []any{&c.Redis, &c.Engine, &c.Backup, &c.Audit, &c.Policy} {
		errs = append(errs, decodeEnv(ctx, target, getenv)...)
	}
	if err := c.Redis.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.Engine.BatchSize < 1 || c.Engine.BatchSize > 100_000 {
		errs = append(errs, fmt.Errorf("BATCH_SIZE: %d is out of range (1 to 100000)", c.Engine.BatchSize))
	}
	if c.Engine.Pause < 0 {
		errs = append(errs, fmt.Errorf("BATCH_PAUSE: %s is negative (0s: no pause)", c.Engine.Pause))
	}
	if c.Engine.MaxRate < 0 {
		errs = append(errs, fmt.Errorf("MAX_KEYS_PER_SECOND: %d is negative (0: no limit)", c.Engine.MaxRate))
	}
	if c.Engine.RetryFor < 0 {
		errs = append(errs, fmt.Errorf("REDIS_RETRY_FOR: %s is negative", c.Engine.RetryFor))
	}
	if err := c.Policy.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.Redis.Validate() == nil && c.Policy.Validate() == nil {
		targets, err := cleanup.LoadTargets(c.Redis, c.Policy)
		errs = append(errs, err)
		c.Targets = targets
	}
	if strings.TrimSpace(c.Backup.Dir) == "" {
		errs = append(errs, errors.New("BACKUP_DIR: must not be empty"))
	}
	for _, r := range c.Backup.AgeRecipients {
		if _, err := age.ParseX25519Recipient(strings.TrimSpace(r)); err != nil {
			errs = append(errs, fmt.Errorf("BACKUP_AGE_RECIPIENTS: %q is not an age public key (age1…)", shorten(r)))
		}
	}
	if c.Audit.SyslogAddr != "" {
		// NewAuditor checks the address; the collector is dialled only when a line is logged.
		a, err := cleanup.NewAuditor(cleanup.AuditConfig{SyslogAddr: c.Audit.SyslogAddr}, nil)
		if err != nil {
			errs = append(errs, err)
		} else {
			_ = a.Close()
		}
	}
	return c, joinLines(errs)
}

// secretVars are variables whose values are never shown, even when they fail to parse.
var secretVars = map[string]bool{"REDIS_URL": true, "STATE_REDIS_URL": true}

// decodeEnv fills target from the environment and returns one error per variable that does not
// parse. go-envconfig stops at the first bad field, so a failing variable is masked (its
// default applies) and the struct decoded again until it decodes cleanly.
func decodeEnv(ctx context.Context, target any, getenv func(string) string) []error {
	kinds := envKinds(reflect.TypeOf(target).Elem())
	masked := map[string]bool{}
	var errs []error
	for range len(kinds) + 1 {
		var last string
		look := envconfig.LookuperFunc(func(key string) (string, bool) {
			last = key
			if masked[key] {
				return "", false
			}
			v := getenv(key)
			return v, v != ""
		})
		reflect.ValueOf(target).Elem().SetZero()
		err := envconfig.ProcessWith(ctx, &envconfig.Config{Target: target, Lookuper: look})
		if err == nil {
			return errs
		}
		if last == "" || masked[last] {
			return append(errs, fmt.Errorf("configuration: %v", err))
		}
		masked[last] = true
		if secretVars[last] {
			errs = append(errs, fmt.Errorf("%s: invalid value (%s)", last, kinds[last]))
		} else {
			errs = append(errs, fmt.Errorf("%s: %q is not valid (%s)", last, shorten(getenv(last)), kinds[last]))
		}
	}
	return errs
}

// envKinds maps each variable of a Config struct to what it expects, for error messages.
func envKinds(t reflect.Type) map[string]string {
	out := map[string]string{}
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("env"), ",")
		if name = strings.TrimSpace(name); name == "" {
			continue
		}
		switch {
		case f.Type == reflect.TypeFor[time.Duration]():
			out[name] = "want a duration like 10ms, 2s or 5m"
		case f.Type == reflect.TypeFor[cleanup.Duration]():
			out[name] = "want a duration like 30m, 12h, 7d or 2w"
		case f.Type.Kind() == reflect.Bool:
			out[name] = "want true or false"
		case f.Type.Kind() >= reflect.Int && f.Type.Kind() <= reflect.Uint64:
			out[name] = "want a whole number"
		case f.Type.Kind() == reflect.Slice:
			out[name] = "want a comma-separated list"
		default:
			out[name] = "want text"
		}
	}
	return out
}

// joinLines joins errors so that each problem is one line (errors.Join puts each on its own).
func joinLines(errs []error) error {
	var flat []error
	for _, err := range errs {
		if err == nil {
			continue
		}
		for line := range strings.SplitSeq(err.Error(), "\n") {
			if line = strings.TrimSpace(line); line != "" {
				flat = append(flat, errors.New(line))
			}
		}
	}
	return errors.Join(flat...)
}

// shorten cuts a value shown in an error message to a readable length.
func shorten(s string) string {
	const limit = 40
	if r := []rune(s); len(r) > limit {
		return string(r[:limit]) + "…"
	}
	return s
}
