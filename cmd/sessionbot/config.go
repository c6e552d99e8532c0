package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"filippo.io/age"

	"github.com/platform-team/sessionbot/cleanup"
	"github.com/platform-team/sessionbot/templates"
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
		errs = append(errs, cleanup.DecodeEnv(ctx, target, getenv)...)
	}
	if err := c.Redis.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.Engine.BatchSize < 1 || c.Engine.BatchSize > 100_000 {
		errs = append(errs, fmt.Errorf("BATCH_SIZE: %d is out of range (1 to 100000)", c.Engine.BatchSize))
	}
	if c.Engine.MaxRate < 0 {
		errs = append(errs, fmt.Errorf("MAX_KEYS_PER_SECOND: %d is negative (0: no limit)", c.Engine.MaxRate))
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
	return c, cleanup.JoinLines(errs...)
}

// configureTemplates reads SUPPORT_CONTACT, ONCALL_TEXT and TEMPLATES_DIR and makes them what
// every message is rendered with (serve and console, before anything is rendered).
func configureTemplates(ctx context.Context, getenv func(string) string) error {
	var tc templates.Config
	if errs := cleanup.DecodeEnv(ctx, &tc, getenv); len(errs) > 0 {
		return cleanup.JoinLines(errs...)
	}
	return templates.Configure(tc)
}

// shorten cuts a value shown in an error message to a readable length.
func shorten(s string) string {
	const limit = 40
	if r := []rune(s); len(r) > limit {
		return string(r[:limit]) + "…"
	}
	return s
}
