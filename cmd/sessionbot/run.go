package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"runtime"
	"slices"
	"strings"

	"github.com/redis/go-redis/v9"
	"golang.org/x/term"

	"github.com/platform-team/sessionbot/cleanup"
)

// Exit codes.
const (
	exitOK     = 0
	exitFailed = 1 // failed, partial, aborted
	exitUsage  = 2 // bad command line or configuration
)

// cli is one invocation: where it reads and writes, and its environment.
type cli struct {
	name   string // subcommand, for messages
	target string // --target NAME, taken from every subcommand but serve (which serves them all)
	getenv func(string) string
	stdin  *bufio.Reader
	stdout io.Writer
	stderr io.Writer
}

// command is one subcommand.
type command struct {
	name    string
	summary string
	help    string // full --help text
	run     func(ctx context.Context, c *cli, args []string) error
}

// commands are the subcommands, in the order `sessionbot help` lists them. serve and console
// (the Slack bot and its terminal twin) are added next to these by the bot.
var commands = []*command{serveCommand, consoleCommand, cleanupCommand, statsCommand, backupCommand, restoreCommand, seedCommand}

func findCommand(name string) *command {
	for _, c := range commands {
		if c.name == name {
			return c
		}
	}
	return nil
}

// run is the whole program: main only adds the process around it. It prints every error
// itself (one line each, on stderr) and returns it so that exitCode can pick the status.
func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	c := &cli{name: "sessionbot", getenv: getenv, stdin: bufio.NewReader(stdin), stdout: stdout, stderr: stderr}
	err := dispatch(ctx, c, args)
	if err != nil && !errors.Is(err, errReported) {
		for line := range strings.SplitSeq(strings.TrimRight(err.Error(), "\n"), "\n") {
			fmt.Fprintf(stderr, "%s: %s\n", c.name, line)
		}
	}
	return err
}

func dispatch(ctx context.Context, c *cli, args []string) error {
	if len(args) == 0 {
		fmt.Fprint(c.stderr, mainUsage())
		return &exitError{code: exitUsage, err: errReported}
	}
	switch args[0] {
	case "version", "--version":
		fmt.Fprintf(c.stdout, "sessionbot %s (%s, %s/%s)\n", version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
		return nil
	case "help", "-h", "--help":
		if len(args) > 1 {
			if cmd := findCommand(args[1]); cmd != nil {
				fmt.Fprint(c.stdout, cmd.help)
				return nil
			}
			return usageError("unknown command %q (run sessionbot help)", args[1])
		}
		fmt.Fprint(c.stdout, mainUsage())
		return nil
	}
	cmd := findCommand(args[0])
	if cmd == nil {
		return usageError("unknown command %q (run sessionbot help)", args[0])
	}
	c.name = "sessionbot " + cmd.name
	if wantsHelp(args[1:]) {
		fmt.Fprint(c.stdout, cmd.help)
		return nil
	}
	args = args[1:]
	if cmd != serveCommand {
		name, rest, err := cleanup.TakeTarget(args)
		if err != nil {
			return c.asUsage(err)
		}
		c.target, args = name, rest
	}
	return cmd.run(ctx, c, args)
}

// wantsHelp reports whether --help (or -h) is among args.
func wantsHelp(args []string) bool {
	return slices.Contains(args, "--help") || slices.Contains(args, "-h")
}

func mainUsage() string {
	var b strings.Builder
	b.WriteString(`sessionbot — clean up OAuth2 sessions in Redis (break-glass command line)

Usage: sessionbot COMMAND [flags]     sessionbot COMMAND --help for its flags and examples

Commands:
`)
	for _, cmd := range commands {
		fmt.Fprintf(&b, "  %-9s %s\n", cmd.name, cmd.summary)
	}
	fmt.Fprintf(&b, "  %-9s %s\n", "version", "print the version (also --version)")
	b.WriteString(`
Exit status: 0 done, 1 failed, partial or aborted, 2 bad command line or configuration.
Configuration comes from the environment; see sessionbot cleanup --help. With TARGETS_FILE
(several named Redis targets) every command but serve takes --target NAME.
`)
	return b.String()
}

// errReported marks an error whose message has already been shown to the operator.
var errReported = errors.New("reported")

// exitError carries the exit status of an error.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// usageError is a mistake on the command line: one line, exit status 2.
func usageError(format string, args ...any) error {
	return &exitError{code: exitUsage, err: fmt.Errorf(format, args...)}
}

// exitCode maps the error run returned to the process exit status.
func exitCode(err error) int {
	var ee *exitError
	var ue *cleanup.UsageError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ee):
		return ee.code
	case errors.As(err, &ue):
		return exitUsage
	}
	return exitFailed
}

// asUsage turns a parse error into a usage error pointing at --help.
func (c *cli) asUsage(err error) error {
	return &exitError{code: exitUsage, err: fmt.Errorf("%v (see %s --help)", err, c.name)}
}

// config loads the configuration, its Redis and Policy those of the --target; any problem is a
// usage error listing every bad variable.
func (c *cli) config(ctx context.Context) (config, error) {
	cfg, err := loadConfig(ctx, c.getenv)
	if err != nil {
		return cfg, &exitError{code: exitUsage, err: err}
	}
	return cfg.forTarget(c.target), nil
}

// dial connects to the command's target: the one --target names, or the only one.
func (c *cli) dial(ctx context.Context, cfg config) (*cleanup.Target, error) {
	if cfg.noTarget != nil {
		return nil, c.asUsage(cfg.noTarget)
	}
	t, err := cleanup.Connect(ctx, cfg.Redis)
	if err != nil {
		return nil, fmt.Errorf("cannot connect to Redis: %w", err)
	}
	return t, nil
}

// connect dials the configured target and says which one it is, so that nobody cleans up
// production believing it is staging.
func (c *cli) connect(ctx context.Context, cfg config) (*cleanup.Target, error) {
	t, err := c.dial(ctx, cfg)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(c.stdout, "Target: %s (session keys %s*)\n", targetText(t), t.Prefix())
	return t, nil
}

// targetText names t for the operator: its address, and a named target's name before it
// ("prod-eu, 10.0.0.5:6379/0").
func targetText(t *cleanup.Target) string {
	if t.Name() == cleanup.DefaultTargetName || t.Name() == t.Addr() {
		return t.Addr()
	}
	return t.Name() + ", " + t.Addr()
}

// stateClient connects to STATE_REDIS_URL, where serve and console keep requests, approvals and
// jobs; nil when it is not set (they live in the target, under cleanup.StateNamespace).
func stateClient(cfg cleanup.RedisConfig) (redis.UniversalClient, error) {
	if cfg.StateURL == "" {
		return nil, nil
	}
	opt, err := redis.ParseURL(cfg.StateURL.Reveal())
	if err != nil {
		// Validate has checked it; the URL may hold a password: never echo it.
		return nil, &exitError{code: exitUsage, err: errors.New("STATE_REDIS_URL: not a redis:// or rediss:// URL")}
	}
	return redis.NewClient(opt), nil
}

// openAuditAndConnect opens the audit log, then Redis: the audit log first, so nothing happens
// unrecorded (a cleanup refuses to start when its intent cannot be written).
func (c *cli) openAuditAndConnect(ctx context.Context, cfg config) (*auditLog, *cleanup.Target, error) {
	audit, err := c.openAudit(cfg)
	if err != nil {
		return nil, nil, err
	}
	t, err := c.connect(ctx, cfg)
	if err != nil {
		audit.Close()
		return nil, nil, err
	}
	removeStaleKeyLists(c.stderr, cfg.Backup.Dir)
	return audit, t, nil
}

// removeStaleKeyLists deletes the key lists a crashed run left in BACKUP_DIR: they name session
// keys, which may be credentials (SPEC §12.8). A live run's list is unaffected: it reads
// through the file it holds open.
func removeStaleKeyLists(w io.Writer, dir string) {
	n, err := cleanup.RemoveStaleKeyLists(dir)
	switch {
	case err != nil:
		fmt.Fprintf(w, "warning: cannot remove key lists left in BACKUP_DIR by an interrupted run: %v\n", err)
	case n > 0:
		fmt.Fprintf(w, "Removed %d key list(s) an interrupted run left in BACKUP_DIR.\n", n)
	}
}

// isTerminal reports whether w is a terminal (progress bars and prompts adapt to it).
func isTerminal(w any) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// operator names who runs the command for the audit log: --as when given (the operator's own
// name when sudo or a shared account hides it), with the OS account beside it.
func (c *cli) operator(as string) string {
	osUser := c.getenv("SUDO_USER")
	if osUser == "" {
		osUser = c.getenv("USER")
	}
	if osUser == "" {
		if u, err := user.Current(); err == nil {
			osUser = u.Username
		} else {
			osUser = "unknown"
		}
	}
	if as == "" || as == osUser {
		return osUser
	}
	return fmt.Sprintf("%s (os user %s)", as, osUser)
}

// takeFlag removes --name VALUE or --name=VALUE from args, returning the value ("" if absent).
func takeFlag(args []string, name string) (rest []string, value string, err error) {
	flag := "--" + name
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == flag:
			if i+1 >= len(args) || strings.HasPrefix(args[i+1], "--") || args[i+1] == "" {
				return nil, "", fmt.Errorf("%s needs a value", flag)
			}
			value = args[i+1]
			i++
		case strings.HasPrefix(a, flag+"="):
			value = strings.TrimPrefix(a, flag+"=")
			if value == "" {
				return nil, "", fmt.Errorf("%s needs a non-empty value", flag)
			}
		default:
			rest = append(rest, a)
		}
	}
	return rest, value, nil
}
