// Command sessionbench is the benchmark behind `make bench` (SPEC §10, issue 11): it starts its
// own redis-server, seeds sessions plus unrelated keys, and measures every way of cleaning them
// up in one run, each scenario from the same snapshot, with a concurrent client doing a GET
// every millisecond to show what each costs other Redis users:
//   - the engine alone, each scenario in a child process so its peak RSS is its own;
//   - what operators run: the sessionbot binary end to end (cleanup --dry-run, --yes with and
//     without pacing, --all with and without backup), and `sessionbot serve` driven through the
//     fake Slack from the button press to the final report;
//   - the runbook's own methods, `redis-cli --scan | xargs -L 1000 redis-cli DEL` twice (the
//     baseline of every "× xargs" ratio: before and after the rest) and its per-key shell loop;
//   - ceilings: plain SCAN, SCAN+MGET, UNLINK and GETDEL loops, what Redis allows on the machine.
//
// It verifies after every scenario that exactly the expected session keys were deleted and every
// unrelated key survived, and exits non-zero otherwise.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"regexp"
	"strings"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "sessionbench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "child" {
		return child(ctx, args[1:], stdout)
	}
	fs := flag.NewFlagSet("sessionbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	fs.IntVar(&o.n, "n", 1_000_000, "sessions to seed")
	fs.IntVar(&o.unrelated, "unrelated", 10_000, "unrelated keys (cb:*, feature:*) that must survive")
	fs.IntVar(&o.clusterN, "cluster-n", 0, "sessions for the 3-master Cluster scenario (default n×0.3; -1 skips it)")
	fs.BoolVar(&o.skipBaselines, "skip-baselines", false, "skip the runbook's redis-cli methods (and so every × xargs ratio)")
	fs.BoolVar(&o.skipBot, "skip-bot", false, "skip the bot rows (sessionbot serve through the fake Slack)")
	fs.IntVar(&o.loopSample, "loop-sample", 2000, "keys the runbook's per-key shell loop deletes (extrapolated to -n)")
	fs.BoolVar(&o.json, "json", false, "print the results as JSON (xargs baseline, rows, ceilings)")
	fs.Func("only", "measure only the scenarios whose name matches this regexp (e.g. 'CLI: cleanup --all'); the xargs baseline always runs", func(s string) error {
		re, err := regexp.Compile(s)
		o.only = re
		return err
	})
	fs.Func("env", "KEY=VALUE for the sessionbot CLI and bot children, repeatable (e.g. -env MAX_KEYS_PER_SECOND=100000)", func(s string) error {
		if k, _, ok := strings.Cut(s, "="); !ok || k == "" {
			return fmt.Errorf("want KEY=VALUE, got %q", s)
		}
		o.env = append(o.env, s)
		return nil
	})
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: sessionbench [-n N] [-only REGEXP] [-env KEY=VALUE]... [-skip-baselines] [-skip-bot] [-json]\n\nMeasures preview, race-safe cleanup and mass logout (engine, CLI and bot) against the runbook's redis-cli methods.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if o.clusterN == 0 {
		o.clusterN = o.n * 3 / 10
	}
	return bench(ctx, o, stdout, stderr)
}
