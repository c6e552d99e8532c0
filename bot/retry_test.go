package bot

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestRetryPolicyBackoffIsBoundedAndJittered(t *testing.T) {
	p := Retry{Tries: 4, Budget: time.Minute, Attempt: time.Second, Base: 100 * time.Millisecond, Max: 400 * time.Millisecond}
	seen := map[time.Duration]bool{}
	for attempt := 1; attempt <= 6; attempt++ {
		for range 50 {
			d := p.backoff(attempt)
			if d < p.Base/2 || d > p.Max {
				t.Fatalf("backoff(%d) = %v; want within [%v, %v]", attempt, d, p.Base/2, p.Max)
			}
			seen[d] = true
		}
	}
	if len(seen) < 10 {
		t.Errorf("backoff produced %d distinct waits; want jitter", len(seen))
	}
}

func TestRetryPolicyTimesOutSlowAttempts(t *testing.T) {
	p := Retry{Tries: 3, Budget: 5 * time.Second, Attempt: 20 * time.Millisecond, Base: time.Millisecond, Max: time.Millisecond}
	calls := 0
	err := p.Do(context.Background(), func(error) Verdict { return Verdict{} }, func(ctx context.Context) error {
		calls++
		<-ctx.Done()
		return ctx.Err()
	})
	if calls != 3 || !errors.Is(err, ErrRetriesExhausted) {
		t.Errorf("do = %v after %d calls; want a timeout retried up to 3 tries", err, calls)
	}
}
