package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/sethvargo/go-envconfig"

	"github.com/platform-team/sessionbot/bot"
	"github.com/platform-team/sessionbot/bot/slack"
	"github.com/platform-team/sessionbot/cleanup"
)

// version is stamped at build time (-ldflags "-X main.version=…").
var version = "dev"

var serveCommand = &command{
	name:    "serve",
	summary: "run the Slack bot (Socket Mode): /sessions previews, approvals, cleanups, notifications",
	run:     runServe,
	help: `sessionbot serve — the Slack bot

Connects to Slack over Socket Mode (no inbound HTTP needed), answers the slash command, runs
approved cleanups and notifies NOTIFY_CHANNEL and, when configured, PagerDuty, e-mail and a
webhook for the signed-out users. Requests, approvals and jobs live in Redis (STATE_REDIS_URL,
default the target itself under sessionbot: keys), so several replicas can serve one workspace
and a restarted bot honours what was decided before.

Usage: sessionbot serve

Required:   SLACK_APP_TOKEN (xapp-…), SLACK_BOT_TOKEN (xoxb-…), OPERATORS, APPROVERS
Target:     REDIS_URL | REDIS_CLUSTER_ADDRS | REDIS_SENTINEL_ADDRS (+ REDIS_SENTINEL_MASTER), or
            TARGETS_FILE (YAML: several named targets, each with its own prefix, approvers,
            approval_threshold and default channels; STATE_REDIS_URL required with more than
            one). Every slash command then takes --target NAME; a channel listed under a
            target's channels defaults to it.
Optional:   SLACK_COMMAND, SLACK_TEAM_ID, APPROVAL_TTL, APPROVAL_THRESHOLD, APPROVALS_REQUIRED,
            NOTIFY_CHANNEL, APPROVAL_CHANNEL, USER_NOTIFY_CHANNEL, NOTIFY_AFFECTED_USERS,
            PAGERDUTY_ROUTING_KEY, PAGERDUTY_EVENTS_URL, SMTP_URL, NOTIFY_EMAIL_FROM, NOTIFY_EMAIL_TO,
            NOTIFY_WEBHOOK_URL, NOTIFY_WEBHOOK_SECRET, STATE_REDIS_URL, BACKUP_DIR,
            BACKUP_AGE_RECIPIENTS, BACKUP_RETENTION, AUDIT_LOG, AUDIT_SYSLOG_ADDR, AUDIT_FORMAT,
            SUPPORT_CONTACT, ONCALL_TEXT, TEMPLATES_DIR, LOG_LEVEL, METRICS_ADDR
            (default :9090: /metrics, /healthz, /readyz)
Watch:      WATCH_INTERVAL (default 0: off), WATCH_CHANNEL (default NOTIFY_CHANNEL),
            WATCH_MEMORY_PERCENT (80), WATCH_ORPHANS (1000), WATCH_COOLDOWN (6h), WATCH_MAX_KEYS
Schedules:  SCHEDULES="default: every 6h; default: --orphans every 1d" (TARGET: FILTERS every
            DURATION; FILTERS as in /sessions cleanup, none = expired; run as "schedule" when
            no approval is needed, otherwise an approval request is posted in WATCH_CHANNEL)
Durations accept d and w (APPROVAL_TTL=1d). A Redis that does not answer at start does not
stop serve: /readyz is 503 with the reason, and Slack is connected once Redis answers.
See README.md, "Configuration", for every variable.

Example (the tokens come from the Slack app; see README.md, "Deploying"):
  SLACK_APP_TOKEN=xapp-… SLACK_BOT_TOKEN=xoxb-… \
  OPERATORS=S0PLATFORM APPROVERS=U0VPENG,U0SECOFF \
  REDIS_URL=redis://:password@redis:6379/0 AUDIT_LOG=/var/log/session-cleanup-audit.log \
  sessionbot serve
Then in Slack: /sessions help
`,
}

// serveConfig holds what only serve reads.
type serveConfig struct {
	// MetricsAddr serves /metrics (Prometheus), /healthz and /readyz.
	MetricsAddr string `env:"METRICS_ADDR, default=:9090"`
	// SampleEvery is how often the session gauges are sampled, by one replica: the holder of the sampler lease.
	SampleEvery time.Duration `env:"SESSION_SAMPLE_INTERVAL, default=1m"`
	// SampleKeys bounds each sample's SCAN, so a huge keyspace costs no more than this budget.
	SampleKeys int64 `env:"SESSION_SAMPLE_MAX_KEYS, default=200000"`
	// LogLevel is the least severe log line written (JSON on stderr, go-redis's own lines
	// included): debug, info, warn or error.
	LogLevel slog.Level `env:"LOG_LEVEL, default=info"`
}

// redisRetryEvery is how often serve retries a Redis that does not answer at start-up.
const redisRetryEvery = time.Second

// pingAll checks the target and, when separate, the state Redis; the error is /readyz's reason.
func pingAll(ctx context.Context, targets []bot.Target, state redis.UniversalClient) error {
	for _, t := range targets {
		if err := t.Engine.Target().Ping(ctx); err != nil {
			return fmt.Errorf("redis target %s (%s) does not answer: %w", t.Name, t.Engine.Target().Addr(), err)
		}
	}
	if state != nil {
		if err := state.Ping(ctx).Err(); err != nil {
			return fmt.Errorf("STATE_REDIS_URL does not answer: %w", err)
		}
	}
	return nil
}

// waitForRedis returns once the target (and the state Redis) answer, or ctx's error when serve
// is stopped first. It logs the first failure and the recovery, not every retry.
func waitForRedis(ctx context.Context, log *slog.Logger, targets []bot.Target, state redis.UniversalClient) error {
	tick := time.NewTicker(redisRetryEvery)
	defer tick.Stop()
	for failed := false; ; {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := pingAll(pctx, targets, state)
		cancel()
		if err == nil {
			if failed {
				log.Info("redis answers: ready")
			}
			return nil
		}
		if !failed {
			log.Warn("waiting for redis: not ready until it answers", "err", err)
			failed = true
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

func runServe(ctx context.Context, c *cli, args []string) error {
	if len(args) > 0 {
		return c.asUsage(fmt.Errorf("serve takes no arguments (configuration comes from the environment), got %q", shorten(args[0])))
	}
	look := envconfig.LookuperFunc(func(k string) (string, bool) {
		v := c.getenv(k)
		return v, v != ""
	})
	cfg, cfgErr := loadConfig(ctx, c.getenv)
	// Decoded variable by variable, so that one bad value (APPROVALS_REQUIRED=two) neither hides
	// the others nor empties OPERATORS and APPROVERS.
	bcfg, botErr := bot.LoadConfig(ctx, look)
	scfg, slackErr := slack.LoadConfig(ctx, look)
	ncfg, notifyErr := loadNotifyConfig(ctx, c.getenv)
	var sv serveConfig
	svErr := errors.Join(cleanup.DecodeEnv(ctx, &sv, c.getenv)...)
	var wcfg bot.WatchConfig
	watchErr := errors.Join(append(cleanup.DecodeEnv(ctx, &wcfg, c.getenv), wcfg.Validate())...)
	schedules, schedErr := bot.ParseSchedules(wcfg.Schedules, bot.KnownTargets(cleanup.TargetNames(cfg.Targets)...))
	if len(bcfg.Operators) == 0 {
		botErr = errors.Join(botErr, errors.New("OPERATORS: required by serve (Slack user or user-group ids allowed to use the command)"))
	}
	// APPROVERS may be left empty when every target of TARGETS_FILE names its own approvers.
	ownApprovers := len(cfg.Targets) > 0 && !slices.ContainsFunc(cfg.Targets, func(t cleanup.TargetSpec) bool { return len(t.Approvers) == 0 })
	if len(bcfg.Approvers) == 0 && !ownApprovers {
		botErr = errors.Join(botErr, errors.New("APPROVERS: required by serve (who may approve a mass logout; in TARGETS_FILE, for every target without approvers)"))
	}
	tmplErr := configureTemplates(ctx, c.getenv)
	if err := cleanup.JoinLines(cfgErr, botErr, slackErr, notifyErr, svErr, watchErr, schedErr, tmplErr); err != nil {
		return &exitError{code: exitUsage, err: err}
	}
	log := slog.New(slog.NewJSONHandler(c.stderr, &slog.HandlerOptions{Level: sv.LogLevel}))
	cleanup.LogRedisTo(log)

	audit, err := cleanup.NewAuditor(cfg.Audit, c.stdout)
	if err != nil {
		return fmt.Errorf("cannot open the audit log: %w", err)
	}
	defer audit.Close()
	// Redis may not answer yet (a restarted node, a pod scheduled before its Redis): serve starts
	// not-ready and waits for every target rather than exit and crash-loop.
	var targets []bot.Target
	for _, spec := range cfg.Targets {
		t, err := cleanup.Open(spec.Redis)
		if err != nil {
			return &exitError{code: exitUsage, err: fmt.Errorf("target %s: %w", spec.Name, err)}
		}
		defer t.Close()
		targets = append(targets, bot.Target{Name: spec.Name, Engine: cleanup.NewEngine(t, cfg.Engine), Policy: spec.Policy,
			Approvers: spec.Approvers, Channels: spec.Channels})
	}
	removeStaleKeyLists(c.stderr, cfg.Backup.Dir)
	if len(cfg.Backup.AgeRecipients) == 0 {
		log.Warn("backups are written unencrypted and hold live session tokens: set BACKUP_AGE_RECIPIENTS", "dir", cfg.Backup.Dir)
	}
	state, err := stateClient(cfg.Redis)
	if err != nil {
		return err
	}
	if state != nil {
		defer state.Close()
	}

	metrics := bot.NewMetrics(version)
	for _, t := range targets {
		t.Engine.ObserveCommands(metrics.EngineObserver())
	}
	chat := slack.NewChat(scfg, slack.WithChatLogger(log))
	tr := slack.NewTransport(scfg, bcfg.Command, slack.WithTransportLogger(log), slack.WithTransportMetrics(metrics))
	ready := func(ctx context.Context) error {
		if err := pingAll(ctx, targets, state); err != nil {
			return err
		}
		if !tr.Connected() {
			return errors.New("not connected to Slack")
		}
		return nil
	}
	srv := bot.NewHTTPServer(sv.MetricsAddr, metrics, ready)
	ln, err := net.Listen("tcp", sv.MetricsAddr)
	if err != nil {
		return fmt.Errorf("METRICS_ADDR %s: %w", sv.MetricsAddr, err)
	}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server", "err", err)
		}
	}()
	defer func() {
		shutCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutCtx)
	}()
	// Slack is connected only once Redis answers: until then no command is accepted that could
	// not be served (Slack tells the user the app did not respond).
	if err := waitForRedis(ctx, log, targets, state); err != nil {
		return nil // stopped while waiting: a clean shutdown
	}
	go pruneBackupsHourly(ctx, cfg.Backup, log)

	sinks, err := ncfg.sinks(log)
	if err != nil {
		return err
	}
	ann := bot.NewFanout(chat, append(bot.SlackSinks(bcfg, chat), sinks...), bot.WithFanoutAudit(audit),
		bot.WithFanoutMetrics(metrics), bot.WithFanoutLogger(log), bot.WithFanoutSecrets(append(ncfg.secrets(), scfg.AppToken, scfg.BotToken)...))
	b, err := bot.New(bot.Deps{
		Config: bcfg, Chat: chat, Targets: targets, Auditor: audit, Notifier: ann, Metrics: metrics,
		State: state, Backup: cfg.Backup, Logger: log, Watch: wcfg, Schedules: schedules,
	})
	if err != nil {
		return err
	}
	log.Info("sessionbot serving", "version", version, "targets", strings.Join(cleanup.TargetNames(cfg.Targets), ","), "metrics", ln.Addr().String(), "command", bcfg.Command)
	runCtx, stopRun := context.WithCancel(ctx)
	defer stopRun()
	go func() { _ = b.Run(runCtx) }()
	go b.RunSessionSampler(runCtx, sv.SampleEvery, sv.SampleKeys)

	err = tr.Run(ctx, b)
	// Shut down in order: no new work, running jobs and notifications finish or stop cleanly.
	stopRun()
	b.Close()
	ann.Wait()
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	log.Info("sessionbot stopped")
	return nil
}
