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
// valid), about 10% orphans (no TTL), basic_auth among the auth methods, and unrelated keys that
// no cleanup may touch; demoMalformed adds 5 malformed values.
var demoSeed = cleanup.SeedSpec{Count: 150, Expired: 45.0 / 150, Unrelated: 20, Seed: 1}

// demoMalformed are string values the expired filter cannot evaluate. They are all strings:
// the embedded Redis cannot DUMP other types, and a mass logout with a backup must be able to
// back up every key it deletes.
var demoMalformed = map[string]string{
	"demo-not-json":   `{"user_id": "auth0|1", "expires_at": `,
	"demo-array":      `["not", "an", "object"]`,
	"demo-no-expiry":  `{"user_id":"auth0|2","auth_method":"oauth2"}`,
	"demo-bad-time":   `{"user_id":"auth0|3","auth_method":"basic_auth","expires_at":"next tuesday"}`,
	"demo-plain-text": `logged-in`,
}

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
	for id, v := range demoMalformed {
		if err := m.Set("session:"+id, v); err != nil {
			m.Close()
			return "", nil, fmt.Errorf("embedded Redis: %w", err)
		}
	}
	return url, m.Close, nil
}
