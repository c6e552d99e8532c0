package sessiontest

import (
	"context"
	"fmt"

	"github.com/platform-team/sessionbot/cleanup"
)

// CheckUsers verifies, after Stop, that reported — the user_ids a run handed to
// RunSpec.Deleted — are exactly the user_ids of the decodable sessions it deleted.
func (a *App) CheckUsers(ctx context.Context, reported map[string]bool) error {
	existing, err := a.keys(ctx)
	if err != nil {
		return err
	}
	want := map[string]bool{}
	for k, b := range a.births {
		n := b - a.writerDeaths[k]
		if existing[k] {
			n--
		}
		if n <= 0 {
			continue
		}
		if s, ok := cleanup.DecodeSession([]byte(a.last[k])); ok && s.Has.Contains(cleanup.FieldUserID) {
			want[s.UserID] = true
		}
	}
	for u := range want {
		if !reported[u] {
			return fmt.Errorf("user %s had sessions deleted but was not reported (%d reported, %d expected)", u, len(reported), len(want))
		}
	}
	for u := range reported {
		if !want[u] {
			return fmt.Errorf("user %s was reported but none of their sessions was deleted", u)
		}
	}
	return nil
}

// CheckKept verifies, after Stop, that the run deleted no session after it had been changed so
// that it no longer matched (SPEC §12.1: kept only if it no longer matches). Only the
// application's unmatcher touches those keys, and only once, so a key that is gone although
// its change was written (SET XX answered OK) and the application never deleted it was deleted
// by the run after it stopped matching.
func (a *App) CheckKept(ctx context.Context) error {
	existing, err := a.keys(ctx)
	if err != nil {
		return err
	}
	for k := range a.unmatchedKey {
		if !existing[k] && a.writerDeaths[k] == 0 {
			return fmt.Errorf("%s was deleted after it had been changed so that it no longer matched", short(k, a.cfg.Prefix))
		}
	}
	return nil
}
