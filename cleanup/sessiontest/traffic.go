package sessiontest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/platform-team/sessionbot/cleanup"
)

// Start starts the application's traffic; Stop ends it.
func (a *App) Start(ctx context.Context) {
	ctx, a.stop = context.WithCancel(ctx)
	writers := max(a.cfg.Writers, 1)
	for w := range writers {
		var mine []string
		for i := w; i < len(a.roles.hot); i += writers {
			mine = append(mine, a.roles.hot[i])
		}
		a.goLoop(ctx, a.cfg.Seed+uint64(w), func(ctx context.Context, rng *rand.Rand) error { return a.refresh(ctx, mine) })
	}
	if len(a.roles.unmatch) > 0 {
		a.goOnce(ctx, a.cfg.Seed+100, func(ctx context.Context, rng *rand.Rand) error { return a.unmatch(ctx, rng) })
	}
	if len(a.roles.logout) > 0 {
		a.goOnce(ctx, a.cfg.Seed+200, func(ctx context.Context, rng *rand.Rand) error { return a.logout(ctx, rng) })
	}
	if len(a.roles.writeBack) > 0 {
		a.goOnce(ctx, a.cfg.Seed+300, func(ctx context.Context, rng *rand.Rand) error { return a.writeBack(ctx, rng) })
	}
	for c := range a.cfg.Creators {
		seq := 0
		a.goLoop(ctx, a.cfg.Seed+400+uint64(c), func(ctx context.Context, rng *rand.Rand) error {
			seq++
			return a.create(ctx, rng, c, seq)
		})
	}
}

// Stop ends the traffic and waits for it; it returns the first Redis error a writer met
// (context cancellation and a server being restarted are not errors).
func (a *App) Stop() error {
	if a.stop != nil {
		a.stop()
	}
	a.wg.Wait()
	return errors.Join(a.errs...)
}

// Writes is how many writes the application made (to show the test was not quiet).
func (a *App) Writes() int64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.writes
}

func (a *App) goLoop(ctx context.Context, seed uint64, step func(context.Context, *rand.Rand) error) {
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		rng := rand.New(rand.NewPCG(seed, seed))
		for ctx.Err() == nil {
			if err := step(ctx, rng); err != nil && !benign(ctx, err) {
				a.fail(err)
				return
			}
		}
	}()
}

func (a *App) goOnce(ctx context.Context, seed uint64, fn func(context.Context, *rand.Rand) error) {
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		rng := rand.New(rand.NewPCG(seed, seed))
		if err := fn(ctx, rng); err != nil && !benign(ctx, err) {
			a.fail(err)
		}
	}()
}

// benign: the traffic was stopped, or a server was restarted under it (fault tests): the
// connection failed, or the new process was still loading its snapshot. Neither ran the command.
func benign(ctx context.Context, err error) bool {
	return ctx.Err() != nil || errors.Is(err, context.Canceled) || !isRedisReply(err) || strings.HasPrefix(err.Error(), "LOADING")
}

func isRedisReply(err error) bool {
	var re redis.Error
	return errors.As(err, &re)
}

func (a *App) fail(err error) {
	a.mu.Lock()
	a.errs = append(a.errs, err)
	a.mu.Unlock()
}

// pause waits up to max, spread so one-shot roles act throughout a run.
func pause(ctx context.Context, rng *rand.Rand, max time.Duration) bool {
	t := time.NewTimer(time.Duration(rng.Int64N(int64(max))))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// refresh rewrites each key with a new last_activity, keeping its TTL, only if it still exists
// (SET XX KEEPTTL, as a session store's touch does), then waits out Config.RefreshEvery. It
// changes nothing a filter looks at.
func (a *App) refresh(ctx context.Context, keys []string) error {
	if len(keys) == 0 {
		<-ctx.Done()
		return nil
	}
	defer a.pace(ctx, time.Now())
	for _, k := range keys {
		a.mu.Lock()
		s := a.base[k]
		s.LastActivity = s.LastActivity.Add(time.Second)
		a.base[k] = s
		a.mu.Unlock()
		v := string(cleanup.SessionJSON(s))
		ok, err := a.c.SetArgs(ctx, k, v, redis.SetArgs{Mode: "XX", KeepTTL: true}).Result()
		if errors.Is(err, redis.Nil) {
			continue // gone: nothing written
		}
		if err != nil {
			return err
		}
		if ok == "OK" {
			a.mu.Lock()
			a.last[k] = v
			a.writes++
			a.mu.Unlock()
		}
	}
	return nil
}

// pace waits until Config.RefreshEvery has passed since start (or ctx ends), failed passes
// included, so that writers retrying a restarting server do not spin.
func (a *App) pace(ctx context.Context, start time.Time) {
	if a.cfg.RefreshEvery <= 0 {
		return
	}
	t := time.NewTimer(time.Until(start.Add(a.cfg.RefreshEvery)))
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// unmatch changes each of its keys once so that it no longer matches the filter.
func (a *App) unmatch(ctx context.Context, rng *rand.Rand) error {
	for _, k := range a.roles.unmatch {
		if !pause(ctx, rng, 20*time.Millisecond) {
			return nil
		}
		if a.f.Orphans && !a.f.Expired && a.f.AuthMethod == "" && a.f.UserID == "" && a.f.OlderThan == 0 {
			if ok, err := a.c.PExpire(ctx, k, time.Hour).Result(); err != nil {
				return err
			} else if ok {
				a.mu.Lock()
				a.unmatched++
				a.unmatchedKey[k] = true
				a.mu.Unlock()
			}
			continue
		}
		a.mu.Lock()
		s := a.base[k]
		a.mu.Unlock()
		switch {
		case a.f.Expired:
			s.ExpiresAt = a.cfg.Now.Add(time.Hour)
		case a.f.AuthMethod != "":
			s.AuthMethod = a.f.AuthMethod + "-migrated"
		case a.f.UserID != "":
			s.UserID = a.f.UserID + "-other"
		case a.f.OlderThan > 0:
			s.CreatedAt = a.cfg.Now
		default:
			continue // only by-key selections: nothing makes them stop matching
		}
		v := string(cleanup.SessionJSON(s))
		ok, err := a.c.SetArgs(ctx, k, v, redis.SetArgs{Mode: "XX", KeepTTL: true}).Result()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err != nil {
			return err
		}
		if ok == "OK" {
			a.mu.Lock()
			a.last[k] = v
			a.base[k] = s
			a.unmatched++
			a.unmatchedKey[k] = true
			a.writes++
			a.mu.Unlock()
		}
	}
	return nil
}

// logout deletes each of its keys once, as a user logging out.
func (a *App) logout(ctx context.Context, rng *rand.Rand) error {
	for _, k := range a.roles.logout {
		if !pause(ctx, rng, 20*time.Millisecond) {
			return nil
		}
		n, err := a.c.Del(ctx, k).Result()
		if err != nil {
			return err
		}
		a.mu.Lock()
		a.writerDeaths[k] += int(n)
		a.writes++
		a.mu.Unlock()
	}
	return nil
}

// writeBack waits for each of its keys to be deleted, then writes its last value back once
// with a plain SET NX — a request that loaded the session before the logout and saves it after.
func (a *App) writeBack(ctx context.Context, rng *rand.Rand) error {
	pending := append([]string(nil), a.roles.writeBack...)
	for len(pending) > 0 && ctx.Err() == nil {
		var left []string
		for _, k := range pending {
			a.mu.Lock()
			v := a.last[k]
			a.mu.Unlock()
			ok, err := a.c.SetArgs(ctx, k, v, redis.SetArgs{Mode: "NX", TTL: time.Hour}).Result()
			if errors.Is(err, redis.Nil) {
				left = append(left, k) // still there: try again later
				continue
			}
			if err != nil {
				return err
			}
			if ok == "OK" {
				a.mu.Lock()
				a.births[k]++
				a.bornDuring[k] = true
				a.writes++
				a.mu.Unlock()
			}
		}
		pending = left
		if !pause(ctx, rng, 2*time.Millisecond) {
			return nil
		}
	}
	return nil
}

// create logs a new session in that matches the filter where it can.
func (a *App) create(ctx context.Context, rng *rand.Rand, creator, seq int) error {
	if !pause(ctx, rng, 4*time.Millisecond) {
		return nil
	}
	k := fmt.Sprintf("%snew-%d-%d-%016x", a.cfg.Prefix, creator, seq, rng.Uint64())
	a.mu.Lock()
	s := a.session(seq)
	a.mu.Unlock()
	if a.f.UserID != "" {
		s.UserID = a.f.UserID
	}
	if a.f.AuthMethod != "" {
		s.AuthMethod = a.f.AuthMethod
	}
	if a.f.Expired {
		s.ExpiresAt = a.cfg.Now.Add(-time.Minute)
	}
	v := string(cleanup.SessionJSON(s))
	ok, err := a.c.SetArgs(ctx, k, v, redis.SetArgs{Mode: "NX", TTL: time.Hour}).Result()
	if errors.Is(err, redis.Nil) {
		return nil
	}
	if err != nil {
		return err
	}
	if ok == "OK" {
		a.mu.Lock()
		a.births[k]++
		a.bornDuring[k] = true
		a.last[k] = v
		a.base[k] = s
		a.writes++
		a.mu.Unlock()
	}
	return nil
}
