// Command sessionbot cleans up OAuth2 sessions in Redis: a Slack bot (serve), its terminal twin
// (console), and the same engine as a break-glass command line (cleanup, stats, backup,
// restore, seed). Run `sessionbot help` for the commands.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(exitCode(err))
}
