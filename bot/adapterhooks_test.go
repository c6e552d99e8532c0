package bot

import (
	"context"
	"io"
	"testing"
	"time"
)

// PagerDutySinkForTest builds the bot/pagerduty sink for the internal tests, which exercise it
// end to end against pdtest. That package imports bot, so an internal test cannot import it:
// adapters_test.go (package bot_test, linked into the same test binary) sets this in its init.
var PagerDutySinkForTest func(routingKey, eventsURL string, retry Retry) NamedSink

// pagerDutySink is the PagerDuty sink on eventsURL with routingKey, retrying within retry.
func pagerDutySink(t testing.TB, routingKey, eventsURL string, retry Retry) NamedSink {
	t.Helper()
	if PagerDutySinkForTest == nil {
		t.Fatal("PagerDutySinkForTest is not set: adapters_test.go must be in the test binary")
	}
	return PagerDutySinkForTest(routingKey, eventsURL, retry)
}

// RunDemoConsoleForTest is bot/console's Run on the embedded demo Redis's terms
// (console.Options{DemoRedis: true}), for the internal tests that drive the console end to end on
// the harness. bot/console imports bot too, so adapters_test.go sets it like PagerDutySinkForTest.
var RunDemoConsoleForTest func(ctx context.Context, in io.Reader, out io.Writer, d Deps) error

// runDemoConsole runs the console on in and out with d, as on the embedded demo Redis.
func runDemoConsole(t testing.TB, ctx context.Context, in io.Reader, out io.Writer, d Deps) error {
	t.Helper()
	if RunDemoConsoleForTest == nil {
		t.Fatal("RunDemoConsoleForTest is not set: adapters_test.go must be in the test binary")
	}
	return RunDemoConsoleForTest(ctx, in, out, d)
}

// testRetry is DefaultRetry with tries, budget and the first backoff step overridden, so that
// injected failures are retried quickly.
func testRetry(tries int, budget, base time.Duration) Retry {
	r := DefaultRetry
	r.Tries, r.Budget, r.Base = tries, budget, base
	r.Max = min(r.Max, budget)
	return r
}
