package bot

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"
)

// Retry bounds the retries of one outgoing call of a notification sink (a PagerDuty event, an
// e-mail, a webhook event): at most Tries attempts, all within Budget, each attempt within
// Attempt. Waits grow exponentially from Base to Max with full jitter, so replicas that failed
// together do not retry together; a server-provided wait (Retry-After) is honoured as a minimum,
// and when it does not fit in what is left of the budget the call fails at once rather than
// sleeping in vain. Every notification sink has its own.
type Retry struct {
	Tries   int
	Budget  time.Duration
	Attempt time.Duration
	Base    time.Duration
	Max     time.Duration
}

// DefaultRetry is used for PagerDuty: 4 tries within 30 s. (Slack Web API calls are retried by
// slack-go itself: see bot/slack's Chat.)
var DefaultRetry = Retry{Tries: 4, Budget: 30 * time.Second, Attempt: 10 * time.Second, Base: 500 * time.Millisecond, Max: 8 * time.Second}

// Verdict is how a classifier judges an error.
type Verdict struct {
	Retry bool
	After time.Duration // minimum wait the server asked for (Retry-After), 0 if none
}

// ErrRetriesExhausted marks an error returned after the last allowed attempt.
var ErrRetriesExhausted = errors.New("retries exhausted")

// Do calls f until it succeeds, classify says its error is final, the tries or the budget are
// used up, or ctx ends. An attempt that outlives its own deadline (Attempt) is a timeout and is
// retried whatever classify says. The returned error is f's last error, wrapped with
// ErrRetriesExhausted and the attempt count when it was retried to the end.
func (p Retry) Do(ctx context.Context, classify func(error) Verdict, f func(ctx context.Context) error) error {
	deadline := time.Now().Add(p.Budget)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	var err error
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithDeadline(ctx, minTime(deadline, time.Now().Add(p.Attempt)))
		err = f(actx)
		attemptTimedOut := actx.Err() != nil && ctx.Err() == nil
		cancel()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return err
		}
		v := classify(err)
		if attemptTimedOut {
			v.Retry = true // the attempt's own deadline, not the caller's: a timeout
		}
		if !v.Retry {
			return err
		}
		if attempt >= p.Tries {
			return fmt.Errorf("%w after %d attempts: %w", ErrRetriesExhausted, attempt, err)
		}
		wait := p.backoff(attempt)
		if v.After > wait {
			wait = v.After
		}
		if time.Now().Add(wait).After(deadline) {
			return fmt.Errorf("%w after %d attempts (next wait %v exceeds the %v budget): %w", ErrRetriesExhausted, attempt, wait.Round(time.Millisecond), p.Budget, err)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
	}
}

// backoff is the full-jitter wait before attempt+1: uniform in [Base/2, min(Max, Base·2^(n-1))].
func (p Retry) backoff(attempt int) time.Duration {
	ceil := p.Base << (attempt - 1)
	if ceil > p.Max || ceil <= 0 {
		ceil = p.Max
	}
	lo := p.Base / 2
	if ceil <= lo {
		return ceil
	}
	return lo + rand.N(ceil-lo+1) // #nosec G404 -- jitter needs no cryptographic randomness
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
