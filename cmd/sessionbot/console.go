package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/sethvargo/go-envconfig"

	"github.com/platform-team/sessionbot/bot"
	"github.com/platform-team/sessionbot/bot/console"
	"github.com/platform-team/sessionbot/cleanup"
)

var consoleCommand = &command{
	name:    "console",
	summary: "the Slack bot in a terminal: type slash commands, press buttons, no Slack needed",
	run:     runConsole,
	help: `sessionbot console — try the bot in a terminal

Runs the same bot as serve, but reads slash commands from standard input and prints what the bot
would post, with a line to type for each button. With none of REDIS_URL, REDIS_CLUSTER_ADDRS and
REDIS_SENTINEL_ADDRS set it starts an embedded in-memory Redis seeded with the runbook's sample
data (150 sessions: 45 expired, 105 still valid, some basic_auth, orphan and malformed ones), so
it works on a machine with nothing but Go. Without OPERATORS/APPROVERS it uses demo identities:
you are alice (an operator); bob is an approver, and /as switches between them. End of input
exits.

Against a real Redis (REDIS_URL, REDIS_CLUSTER_ADDRS or REDIS_SENTINEL_ADDRS set) one console is
one person: it needs OPERATORS and APPROVERS, acts only as the user given with --as (default:
your OS user) and refuses /as, so it can never approve its own requests.

Usage: sessionbot console [--as USER]

Flags:
  --as USER    act as this user (a name or a U… id); fixed for the session on a real Redis
  --target NAME  the TARGETS_FILE target the console serves (needed when the file names several)
  --help       this text

Example session:
  go run ./cmd/sessionbot console
  /sessions cleanup                          # dry-run preview of expired sessions
  press run                                  # run it
  /sessions cleanup --all --reason "drill"   # a mass logout needs a second person
  /as bob
  press approve
  /sessions stats
`,
}

func runConsole(ctx context.Context, c *cli, args []string) error {
	args, as, err := takeFlag(args, "as")
	if err != nil {
		return c.asUsage(err)
	}
	if len(args) > 0 {
		return c.asUsage(fmt.Errorf("unknown argument %q: console takes only --as USER and --target NAME", shorten(args[0])))
	}
	cfg, cfgErr := loadConfig(ctx, c.getenv)
	bcfg, botErr := bot.LoadConfig(ctx, envconfig.LookuperFunc(func(k string) (string, bool) {
		v := c.getenv(k)
		return v, v != ""
	}))
	ncfg, notifyErr := loadNotifyConfig(ctx, c.getenv)
	tmplErr := configureTemplates(ctx, c.getenv)
	if err := cleanup.JoinLines(cfgErr, botErr, notifyErr, tmplErr); err != nil {
		return &exitError{code: exitUsage, err: err}
	}

	// With TARGETS_FILE the console serves the one --target names.
	cfg = cfg.forTarget(c.target)
	demo := c.getenv("REDIS_URL") == "" && c.getenv("REDIS_CLUSTER_ADDRS") == "" && c.getenv("REDIS_SENTINEL_ADDRS") == "" &&
		c.getenv("TARGETS_FILE") == ""
	if demo {
		url, stop, err := startDemoRedis(ctx)
		if err != nil {
			return err
		}
		defer stop()
		cfg.Redis.URL = cleanup.RedisURL(url)
		cfg.Redis.StateURL = "" // the demo's state stays in the demo
		if c.getenv("BACKUP_DIR") == "" {
			dir, err := os.MkdirTemp("", "sessionbot-demo-backups-")
			if err != nil {
				return err
			}
			defer os.RemoveAll(dir)
			cfg.Backup.Dir = dir
		}
		fmt.Fprintln(c.stdout, "Demo Redis: in memory, seeded with 155 sample sessions (45 expired, 105 still valid, 5 malformed; some basic_auth and orphans). Nothing real is touched.")
		if ncfg.enabled() {
			fmt.Fprintln(c.stdout, "Notifications outside the console (PagerDuty, e-mail, webhook) are off on the demo Redis.")
		}
	}
	// Audit lines share the terminal with the bot's messages: marked (and dimmed on a terminal)
	// so that the two are told apart.
	audit, err := c.openAuditEcho(cfg, console.AuditWriter(c.stderr, isTerminal(c.stderr)))
	if err != nil {
		return err
	}
	defer audit.Close()
	t, err := c.dial(ctx, cfg)
	if err != nil {
		return err
	}
	defer t.Close()
	if !demo {
		fmt.Fprintf(c.stdout, "Target: %s (session keys %s*) — a real Redis: commands here really delete.\n", targetText(t), t.Prefix())
	}
	state, err := stateClient(cfg.Redis)
	if err != nil {
		return err
	}
	if state != nil {
		defer state.Close()
	}
	opts := console.Options{DemoRedis: demo, User: as}
	if !demo {
		// Real sessions are deleted: everyone who hears of a run from serve hears of it here.
		if opts.Sinks, err = ncfg.sinks(nil); err != nil {
			return err
		}
		opts.Secrets = ncfg.secrets()
		// One console is one person (SPEC §12.5): who it acts as is fixed here, by default the
		// OS user, and every audit line names the OS user too.
		opts.Operator = c.operator("")
		if opts.User == "" {
			opts.User = opts.Operator
		}
	}
	// The console serves one target, with that target's own approvers when TARGETS_FILE names them.
	target := bot.Target{Name: t.Name(), Engine: cleanup.NewEngine(t, cfg.Engine), Policy: cfg.Policy}
	for _, spec := range cfg.Targets {
		if spec.Name == cfg.Redis.Name {
			target.Approvers = spec.Approvers
		}
	}
	err = console.Run(ctx, c.stdin, c.stdout, bot.Deps{
		Config: bcfg, Targets: []bot.Target{target}, Auditor: audit.Auditor, Backup: cfg.Backup, State: state,
	}, opts)
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}
