package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/platform-team/sessionbot/cleanup"
)

// demoSeed is the console's sample data: the runbook's Procedure 1 mix (45 expired, 105 still
// valid) plus 5 malformed values, about 10% orphans (no TTL), basic_auth among the auth methods,
// and unrelated keys that no cleanup may touch.
var demoSeed = cleanup.SeedSpec{Count: 155, Expired: 45.0 / 155, Malformed: 5.0 / 155, Unrelated: 20, Seed: 1}

// startDemoRedis starts an in-memory Redis (miniredis) on loopback, seeded with demoSeed, and
// returns its URL and a function that stops it.
func startDemoRedis(ctx context.Context) (url string, stop func(), err error) {
	m := miniredis.NewMiniRedis()
	if err := m.Start(); err != nil {
		return "", nil, fmt.Errorf("embedded Redis: %w", err)
	}
	url = "redis://" + m.Addr() + "/0"
	client := redis.NewClient(&redis.Options{Addr: m.Addr()})
	defer client.Close()
	if _, err := cleanup.Seed(ctx, client, demoSeed); err != nil {
		m.Close()
		return "", nil, fmt.Errorf("embedded Redis: %s", strings.TrimPrefix(err.Error(), "seed: "))
	}
	return url, m.Close, nil
}
