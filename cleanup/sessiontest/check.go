package sessiontest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"filippo.io/age"
	"github.com/redis/go-redis/v9"

	"github.com/platform-team/sessionbot/cleanup"
)

// Check verifies, after Stop, what SPEC §12 promises about the run that returned rep and runErr,
// from Redis, the report and the backup files alone:
//   - no key outside the prefix, and none in the bot's state namespace, was touched;
//   - a run that completed left no session behind that existed before it and still matches its
//     filter (for --all: no session that existed before it at all);
//   - Deleted is exactly what disappeared from Redis without the application deleting it;
//   - Skipped counts only sessions that stopped matching (never a refresh that kept matching),
//     and Malformed no more than the malformed keys there are;
//   - when a backup was written, it holds the last value of every key the run deleted.
//
// It returns every violation found, joined, naming keys by their short id only.
func (a *App) Check(ctx context.Context, rep cleanup.Report, runErr error, identities ...age.Identity) error {
	return a.check(ctx, rep, runErr, true, identities)
}

// CheckInterrupted is Check for a run whose process died part-way, with the report someone
// else rebuilt from the last progress it stored: the run did not complete, and its Deleted is
// a lower bound of what it removed (never more than that). Every other promise holds as for
// Check; rep.Backup names the backup files the run left, if any.
func (a *App) CheckInterrupted(ctx context.Context, rep cleanup.Report, identities ...age.Identity) error {
	return a.check(ctx, rep, errors.New("interrupted"), false, identities)
}

func (a *App) check(ctx context.Context, rep cleanup.Report, runErr error, exact bool, identities []age.Identity) error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	for k, want := range a.unrelated {
		if got, err := a.c.Get(ctx, k).Result(); err != nil || got != want {
			bad("key outside the sessions %q was touched: %q, %v", k, got, err)
		}
	}
	existing, err := a.keys(ctx)
	if err != nil {
		return err
	}
	completed := runErr == nil && rep.Stopped == ""

	// Sessions left behind.
	var survivors []string
	for k := range existing {
		if !a.bornDuring[k] {
			survivors = append(survivors, k)
		}
	}
	sort.Strings(survivors)
	if completed && len(survivors) > 0 {
		vals, ttls, err := a.read(ctx, survivors)
		if err != nil {
			return err
		}
		for i, k := range survivors {
			if a.f.All {
				bad("mass logout completed but %s, which existed before it, survives", short(k, a.cfg.Prefix))
				continue
			}
			s, ok := cleanup.DecodeSession([]byte(vals[i]))
			if vals[i] != "" && acts(a.f.Decide(s, ok, ttls[i], a.cfg.Now)) {
				bad("run completed but %s still matches %s and survives (repair: without a TTL)", short(k, a.cfg.Prefix), a.f.Scope())
			}
		}
	}
	if a.f.All && completed && rep.Remaining < 0 {
		bad("mass logout completed without counting the session keys left")
	}

	// Deleted is exact.
	var runDeleted int64
	deletedKeys := map[string]bool{}
	for k, b := range a.births {
		n := int64(b - a.writerDeaths[k])
		if existing[k] {
			n--
		}
		if n < 0 {
			bad("bookkeeping: %s born %d, deleted by the app %d, exists %v", short(k, a.cfg.Prefix), b, a.writerDeaths[k], existing[k])
		}
		if n > 0 {
			deletedKeys[k] = true
		}
		runDeleted += n
	}
	switch {
	case exact && rep.Deleted != runDeleted:
		bad("report says Deleted %d; %d keys disappeared without the application deleting them", rep.Deleted, runDeleted)
	case !exact && rep.Deleted > runDeleted:
		bad("report says at least %d deleted; only %d keys disappeared without the application deleting them", rep.Deleted, runDeleted)
	}
	if rep.DeletedValid > rep.Deleted {
		bad("report says %d still-valid deleted of %d deleted", rep.DeletedValid, rep.Deleted)
	}

	// Each malformed key is counted once, however often it was scanned (§11).
	if rep.Malformed > int64(a.malformed) {
		bad("report says Malformed %d; only %d malformed keys exist", rep.Malformed, a.malformed)
	}

	// Skipped only for sessions that stopped matching.
	if rep.Skipped > int64(a.unmatched) {
		bad("report says Skipped %d; only %d sessions were changed so that they no longer match", rep.Skipped, a.unmatched)
	}

	// The backup holds the last value of every deleted key.
	if rep.Backup != "" {
		newest := map[string]cleanup.BackupRecord{}
		for _, path := range strings.Split(rep.Backup, ",") {
			if err := readBackup(path, identities, func(r cleanup.BackupRecord) error {
				if !strings.HasPrefix(r.Key, a.cfg.Prefix) || strings.HasPrefix(r.Key, cleanup.StateNamespace) {
					bad("backup %s holds %q, not a session key", path, r.Key)
				}
				newest[r.Key] = r
				return nil
			}); err != nil {
				bad("backup %s: %v", path, err)
			}
		}
		for k := range deletedKeys {
			r, ok := newest[k]
			switch {
			case !ok:
				bad("%s was deleted but is in no backup file", short(k, a.cfg.Prefix))
			case r.Dump == nil && string(r.Value) != a.last[k]:
				bad("%s was deleted; the backup holds an older value than the last one written", short(k, a.cfg.Prefix))
			}
		}
	}
	return errors.Join(errs...)
}

func readBackup(path string, ids []age.Identity, fn func(cleanup.BackupRecord) error) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return cleanup.ReadBackup(f, ids, fn)
}

func short(key, prefix string) string { return cleanup.ShortID(strings.TrimPrefix(key, prefix)) }

// keys returns every key under the prefix, from every master.
func (a *App) keys(ctx context.Context) (map[string]bool, error) {
	out := map[string]bool{}
	var mu sync.Mutex
	scan := func(ctx context.Context, c *redis.Client) error {
		it := c.Scan(ctx, 0, strings.NewReplacer("*", `\*`, "?", `\?`, "[", `\[`).Replace(a.cfg.Prefix)+"*", 1000).Iterator()
		for it.Next(ctx) {
			mu.Lock()
			out[it.Val()] = true
			mu.Unlock()
		}
		return it.Err()
	}
	var err error
	switch c := a.c.(type) {
	case *redis.ClusterClient:
		err = c.ForEachMaster(ctx, scan)
	case *redis.Client:
		err = scan(ctx, c)
	default:
		err = fmt.Errorf("sessiontest: unsupported client %T", a.c)
	}
	return out, err
}

// read returns each key's string value ("" for other types) and PTTL.
func (a *App) read(ctx context.Context, keys []string) ([]string, []time.Duration, error) {
	gets := make([]*redis.StringCmd, len(keys))
	ttls := make([]*redis.DurationCmd, len(keys))
	_, err := a.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range keys {
			gets[i] = p.Get(ctx, k)
			ttls[i] = p.PTTL(ctx, k)
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) && !strings.HasPrefix(err.Error(), "WRONGTYPE") {
		return nil, nil, err
	}
	vals := make([]string, len(keys))
	durs := make([]time.Duration, len(keys))
	for i := range keys {
		vals[i] = gets[i].Val()
		durs[i] = ttls[i].Val()
		if durs[i] > 0 {
			durs[i] = durs[i].Round(time.Millisecond)
		}
	}
	return vals, durs, nil
}
