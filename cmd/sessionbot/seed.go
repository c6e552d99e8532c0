package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/platform-team/sessionbot/cleanup"
)

var seedCommand = &command{
	name:    "seed",
	summary: "write realistic synthetic sessions (demos, staging drills, benchmarks)",
	run:     runSeed,
	help: `sessionbot seed — write synthetic sessions in the runbook's schema

Writes N session keys under SESSION_KEY_PREFIX: JSON values with user_id, username,
auth_method (oauth2 70%, mtls_fallback 20%, basic_auth 10%), times, fake tokens and mTLS fields;
most with a TTL of 30–90 minutes. Fractions are exact (rounded), so the counts a dry run shows
are predictable. The same --seed writes the same sessions.

It refuses a target that already holds session keys, so real sessions are never mixed with
fake ones (--force to add to a test target anyway). Never point it at production.

Usage: sessionbot seed --count N [flags]

Flags:
  --count N         session keys to write (required)
  --expired F       fraction with expires_at in the past (default 0.3)
  --no-ttl F        fraction without a Redis TTL, i.e. orphans (default 0.1)
  --malformed F     fraction of malformed values: bad JSON, missing fields, a hash (default 0)
  --unrelated N     also write N cb:* / feature:* keys a cleanup must never touch (default 0)
  --seed S          random seed (default 1)
  --force           write even if session keys exist already
  --target NAME     the TARGETS_FILE target (needed when the file names several)
  --help            this text

Examples:
  # The runbook's Procedure 1 data: 150 sessions, 45 expired, 105 valid
  sessionbot seed --count 150 --expired 0.3 --unrelated 20
  sessionbot cleanup --dry-run
  # A benchmark-sized target
  sessionbot seed --count 1000000 --malformed 0.01 --unrelated 1000
`,
}

func runSeed(ctx context.Context, c *cli, args []string) error {
	fs := flag.NewFlagSet("seed", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	count := fs.Int("count", 0, "")
	expired := fs.Float64("expired", 0, "")
	noTTL := fs.Float64("no-ttl", 0, "")
	malformed := fs.Float64("malformed", 0, "")
	unrelated := fs.Int("unrelated", 0, "")
	seed := fs.Int64("seed", 1, "")
	force := fs.Bool("force", false, "")
	if err := fs.Parse(args); err != nil {
		return c.asUsage(errors.New(strings.Replace(err.Error(), "flag provided but not defined", "unknown flag", 1)))
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	if fs.NArg() > 0 {
		return c.asUsage(fmt.Errorf("unexpected argument %q", shorten(fs.Arg(0))))
	}
	if *count < 1 {
		return c.asUsage(errors.New("--count N is required (N ≥ 1)"))
	}
	if *unrelated < 0 {
		return c.asUsage(errors.New("--unrelated must not be negative"))
	}
	spec := cleanup.SeedSpec{Count: *count, Unrelated: *unrelated, Seed: *seed}
	for _, fr := range []struct {
		flag string
		v    float64
		set  bool
		dst  *float64
	}{
		{"--expired", *expired, given["expired"], &spec.Expired},
		{"--no-ttl", *noTTL, given["no-ttl"], &spec.NoTTL},
		{"--malformed", *malformed, given["malformed"], &spec.Malformed},
	} {
		if !fr.set {
			continue
		}
		if !(fr.v >= 0 && fr.v <= 1) {
			return c.asUsage(fmt.Errorf("%s must be a fraction between 0 and 1, not %v", fr.flag, fr.v))
		}
		*fr.dst = fr.v
		if fr.v == 0 {
			*fr.dst = -1 // SeedSpec: negative means none, zero the default
		}
	}

	cfg, err := c.config(ctx)
	if err != nil {
		return err
	}
	t, err := c.connect(ctx, cfg)
	if err != nil {
		return err
	}
	defer t.Close()
	spec.Prefix = t.Prefix()
	if !*force {
		n, err := cleanup.NewEngine(t, cfg.Engine).CountKeys(ctx)
		if err != nil {
			return fmt.Errorf("cannot count existing session keys: %w", err)
		}
		if n > 0 {
			return fmt.Errorf("%s already holds %d session keys: refusing to mix synthetic sessions with them (--force on a test target)", t.Name(), n)
		}
	}
	res, err := cleanup.Seed(ctx, t.Client(), spec)
	if err != nil {
		return fmt.Errorf("seed failed: %w", err)
	}
	fmt.Fprintf(c.stdout, "Wrote %d session keys in %s: %d expired, %d still valid, %d malformed; %d without TTL\n",
		res.Count, res.Duration.Round(1e6), res.Expired, res.Valid, res.Malformed, res.NoTTL)
	fmt.Fprintln(c.stdout, "  by auth_method: "+countsText(res.ByAuthMethod))
	if res.Unrelated > 0 {
		fmt.Fprintf(c.stdout, "  and %d unrelated keys (cb:*, feature:*, …) that a cleanup must never touch\n", res.Unrelated)
	}
	return nil
}
