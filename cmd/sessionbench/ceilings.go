package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// ceilingPage is the SCAN COUNT of the ceiling loops.
const ceilingPage = 1000

// ceilingLoops are plain loops over the session keys, one command (or pipeline) in flight on
// one connection: what Redis itself allows on this machine, against which the other rows can be
// read. Each does something with every SCAN page of session keys: nothing; MGET it; UNLINK it
// in one command; GETDEL each of its keys in one pipeline.
var ceilingLoops = []struct {
	name    string
	deletes bool
	page    func(ctx context.Context, c *redis.Client, keys []string) error
}{
	{"SCAN keys-only", false, func(context.Context, *redis.Client, []string) error { return nil }},
	{"SCAN+MGET", false, func(ctx context.Context, c *redis.Client, keys []string) error {
		return c.MGet(ctx, keys...).Err()
	}},
	{"UNLINK keys-only", true, func(ctx context.Context, c *redis.Client, keys []string) error {
		return c.Unlink(ctx, keys...).Err()
	}},
	{"GETDEL pipelined", true, func(ctx context.Context, c *redis.Client, keys []string) error {
		pipe := c.Pipeline()
		for _, k := range keys {
			pipe.GetDel(ctx, k)
		}
		_, err := pipe.Exec(ctx)
		if errors.Is(err, redis.Nil) { // a key SCAN returned twice
			err = nil
		}
		return err
	}},
}

// ceilingRuns measures every ceiling loop from the snapshot, under the probe, and verifies it.
func (r *runner) ceilingRuns() error {
	c := redis.NewClient(&redis.Options{Addr: r.srv.Addr(), PoolSize: 1})
	defer c.Close()
	for _, cl := range ceilingLoops {
		if !r.o.want("ceiling: " + cl.name) {
			continue
		}
		if err := r.reset(); err != nil {
			return err
		}
		name := "ceiling: " + cl.name
		r.logf("%s…", name)
		var (
			wall time.Duration
			err  error
		)
		lat := r.p.record(func() {
			start := time.Now()
			err = scanPages(r.ctx, c, func(keys []string) error { return cl.page(r.ctx, c, keys) })
			wall = time.Since(start)
		})
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		n, deleted := r.full.seed.Count, int64(0)
		if cl.deletes {
			deleted = n
		}
		r.verify(name, r.full, deleted)
		r.ceilings = append(r.ceilings, row{Scenario: cl.name, Keys: n, Deleted: deleted, Wall: wall, KeysPerSec: perSec(n, wall),
			P50: lat.p50, P99: lat.p99, Max: lat.max})
	}
	return nil
}

// scanPages calls page with each non-empty SCAN page of session keys.
func scanPages(ctx context.Context, c *redis.Client, page func([]string) error) error {
	var cursor uint64
	for {
		keys, next, err := c.Scan(ctx, cursor, "session:*", ceilingPage).Result()
		if err != nil {
			return err
		}
		if len(keys) > 0 {
			if err := page(keys); err != nil {
				return err
			}
		}
		if next == 0 {
			return nil
		}
		cursor = next
	}
}
