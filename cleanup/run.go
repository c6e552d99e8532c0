package cleanup

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Run executes a cleanup. The returned Report is filled in even when an error stops the run
// (what was deleted so far is counted); Report.Stopped says why it stopped early.
//
// Invariants:
//   - only session keys (the prefix, never the excluded state namespace) are ever deleted;
//   - a key selected by its content is deleted only if it still matches at the moment of
//     deletion: a key that changed since it was read is read again and decided again, so a
//     matching session is never left behind because it was in use, and one that stopped
//     matching is kept (SPEC §12.1);
//   - with a backup, a key is deleted only after a value of it is in a backup file that was
//     written and synced completely; every deleted key's newest value read is in the backup;
//   - a mass logout that completes leaves no session that existed when it started (§12.2);
//   - the bound counts only sessions still valid when deleted (§12.3).
func (e *Engine) Run(ctx context.Context, spec RunSpec) (Report, error) {
	f := spec.Filter.Normalize()
	r := &runner{e: e, f: f, spec: spec, now: e.now(), start: time.Now(), st: &scanState{}}
	r.p = e.pacing(spec.BatchSize, spec.Pause, spec.MaxRate)
	r.users = map[string]string{}
	rep := Report{Filter: f, Mode: ModeExecute, Start: r.start, Remaining: -1}
	switch {
	case f.All:
		rep.Mode = ModeAll
	case f.RepairTTL:
		rep.Mode = ModeRepair
	}
	stop := r.c.report(spec.Progress, "scan", r.start, &r.st.scanned)
	var err error
	switch {
	case f.RepairTTL:
		// Repairs are decided as each orphan is read: a repair reads every orphan again, and
		// writes no backup (it deletes only expired sessions, which a restore would skip).
		err = r.runDirect(ctx)
	case spec.Backup != nil:
		err = r.runWithBackup(ctx, &rep)
	case spec.Selection != nil && !f.All:
		if !spec.Selection.filter.Equal(f) {
			err = errors.New("run: the selection was made for another filter")
			break
		}
		err = r.runSelected(ctx, spec.Selection, &rep)
	default:
		err = r.runDirect(ctx)
	}
	stop()
	r.flushUsers()
	rep.Scanned = r.st.scanned.Load()
	rep.Matched = r.c.matched.Load()
	rep.Deleted = r.c.deleted.Load()
	rep.Repaired = r.c.repaired.Load()
	rep.DeletedValid = r.c.deletedValid.Load()
	rep.Skipped = r.c.skipped.Load()
	rep.Malformed = r.c.malformed.Load()
	rep.Errors = r.c.errors.Load()
	rep.Kept = max(rep.Scanned-rep.Deleted, 0)
	rep.Restarted = r.st.restarted
	for id, name := range r.users {
		rep.Users = append(rep.Users, User{UserID: id, Username: name})
	}
	switch {
	case err == nil:
	case errors.Is(err, ErrBoundReached):
		rep.Stopped = "bound"
	case errors.Is(err, context.Canceled):
		rep.Stopped = "cancelled"
	default:
		rep.Stopped = "error"
		if rep.Errors == 0 {
			rep.Errors = 1
		}
	}
	if err == nil && (spec.Verify || f.All) && rep.Remaining < 0 {
		if n, verr := e.CountKeys(ctx); verr == nil {
			rep.Remaining = n
		}
	}
	rep.End = time.Now()
	return rep, err
}

// Report modes, as in the audit log's Mode: field.
const (
	ModeExecute = "execute"
	ModeAll     = "all"
	ModeRepair  = "repair" // --orphans --repair-ttl
)

// maxSettleRounds bounds how often one key that keeps changing is read again and decided again
// before the run gives up on it and reports failure (never success with a match left behind).
// A key changes between read and delete only if a writer hits it within one round trip, so a
// handful of rounds settles even sessions refreshed every few milliseconds.
const maxSettleRounds = 50

// sweeps is how many times a mass logout scans again after deleting, for sessions created (or
// written back by an application that held them in memory) while it ran.
const sweeps = 2

// runner is one Run in progress.
type runner struct {
	e     *Engine
	f     Filter
	spec  RunSpec
	p     pacing
	now   time.Time
	start time.Time
	st    *scanState
	c     counters

	reservedValid atomic.Int64 // still-valid deletions granted against spec.MaxValid
	malformedSeen distinctKeys // malformed keys counted (a rescan reads them again)
	validListed   distinctKeys // still-valid keys listed in a bounded run's backup rounds
	loggedOut     distinctKeys // still-valid sessions a bounded run deleted, by key

	mu    sync.Mutex
	users map[string]string // user_id → username of deleted sessions (≤ 100)
	ubuf  []string          // user_ids of deleted sessions not yet handed to spec.Deleted
}

// bounded reports whether the run has a still-valid bound (everything but --all).
func (r *runner) bounded() bool { return r.spec.MaxValid >= 0 && !r.f.All }

// reserve grants up to n more still-valid deletions under spec.MaxValid.
func (r *runner) reserve(n int64) int64 {
	if !r.bounded() {
		return n
	}
	for {
		cur := r.reservedValid.Load()
		grant := min(n, max(r.spec.MaxValid-cur, 0))
		if r.reservedValid.CompareAndSwap(cur, cur+grant) {
			return grant
		}
	}
}

// newLogout reports whether deleting key, a still-valid session, would be a logout the bound
// has not counted yet. A session its application writes back after the run deleted it, and
// that the run deletes again (a rescan after a restart, a later round), is the same logout:
// counting each deletion would spend the bound's margin on no real logout.
func (r *runner) newLogout(key string) bool { return !r.bounded() || !r.loggedOut.has(key) }

// loggedOutKey records that the run deleted key, a still-valid session, and reports whether that
// was a new logout (one counted against the bound).
func (r *runner) loggedOutKey(key string) bool { return !r.bounded() || r.loggedOut.add(key) }

// underBound deletes one batch under the bound: it reserves the batch's validN new logouts,
// trims the batch to what was granted when that is less, runs del, and gives back what del did
// not use. It returns ErrBoundReached once a trimmed batch is done, and del's error counted
// and marked as the delete phase's.
func (r *runner) underBound(validN int64, trim func(grant int64), del func() (deletedValid int64, err error)) error {
	grant := r.reserve(validN)
	boundHit := grant < validN
	if boundHit {
		trim(grant)
	}
	deletedValid, err := del()
	r.release(grant - deletedValid)
	if err != nil {
		r.countError(err)
		return errorf("delete", err)
	}
	if boundHit {
		return ErrBoundReached
	}
	return nil
}

// release gives back grants that were not used (the key changed or was gone).
func (r *runner) release(n int64) {
	if r.bounded() && n > 0 {
		r.reservedValid.Add(-n)
	}
}

func (r *runner) noteUser(it *item) {
	if !it.ok || !it.sess.Has.Contains(FieldUserID) {
		return
	}
	r.mu.Lock()
	if _, ok := r.users[it.sess.UserID]; ok || len(r.users) < 100 {
		r.users[it.sess.UserID] = it.sess.Username
	}
	r.mu.Unlock()
}

// distinctKeys remembers keys by a 64-bit hash (8 bytes of map key each), for counts that a
// rescan from cursor 0 after a node restart, or SCAN returning a key twice, must not inflate.
type distinctKeys struct {
	mu   sync.Mutex
	seed maphash.Seed
	seen map[uint64]struct{}
}

// add records key and reports whether it was new.
func (d *distinctKeys) add(key string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.seen == nil {
		d.seed, d.seen = maphash.MakeSeed(), map[uint64]struct{}{}
	}
	h := maphash.String(d.seed, key)
	if _, ok := d.seen[h]; ok {
		return false
	}
	d.seen[h] = struct{}{}
	return true
}

// has reports whether key was added.
func (d *distinctKeys) has(key string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.seen == nil {
		return false
	}
	_, ok := d.seen[maphash.String(d.seed, key)]
	return ok
}

func (d *distinctKeys) len() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.seen)
}

// countError counts a failed Redis operation as an error of the run, unless it failed because
// the run was stopped: by its caller, or by another batch that reached the bound or failed —
// then that stop is what the report shows, not a spurious error.
func (r *runner) countError(err error) {
	if !errors.Is(err, context.Canceled) {
		r.c.errors.Add(1)
	}
}

// deletedItem counts one key this run removed.
func (r *runner) deletedItem(it *item) {
	r.c.deleted.Add(1)
	if it.valid(r.now) {
		r.c.deletedValid.Add(1)
	}
	r.noteUser(it)
	r.deletedUser(it.userID())
}

// deletedUser queues the user_id of a deleted session for spec.Deleted.
func (r *runner) deletedUser(uid string) {
	if r.spec.Deleted == nil || uid == "" {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ubuf = append(r.ubuf, uid)
	if len(r.ubuf) >= 1000 {
		r.spec.Deleted(r.ubuf)
		r.ubuf = nil
	}
}

// flushUsers hands the last queued user_ids to spec.Deleted.
func (r *runner) flushUsers() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.ubuf) > 0 && r.spec.Deleted != nil {
		r.spec.Deleted(r.ubuf)
		r.ubuf = nil
	}
}

// runDirect deletes without a backup, batch by batch: read, decide, compare-and-delete, and
// settle the keys that changed in between. A mass logout selects by key alone and reads nothing.
func (r *runner) runDirect(ctx context.Context) error {
	fn := func(ctx context.Context, node *redis.Client, keys []string) error {
		o := r.ops(node)
		if r.f.All {
			return r.unlinkCounted(ctx, o, keys)
		}
		items, err := r.e.classify(ctx, o, r.f, keys, r.readsValues(), false, r.now)
		if err != nil {
			r.countError(err)
			return err
		}
		del := r.toDelete(items)
		r.c.matched.Add(deletions(del))
		return r.settle(ctx, o, del)
	}
	if _, err := r.e.forEachBatch(ctx, r.f, r.p, r.st, fn); err != nil {
		return err
	}
	if !r.f.All {
		return nil
	}
	for range sweeps {
		before := r.c.deleted.Load()
		if _, err := r.e.scanAll(ctx, r.p, r.st, func(ctx context.Context, node *redis.Client, keys []string) error {
			return r.unlinkCounted(ctx, r.ops(node), keys)
		}); err != nil {
			return err
		}
		if r.c.deleted.Load() == before {
			break
		}
	}
	return nil
}

// readsValues reports whether deciding (or accounting for the bound) needs each key's value:
// every filter but --all. --session-id alone reads values too, so that expired, malformed and
// absent ids never count as logouts against the bound (SPEC §12.3).
func (r *runner) readsValues() bool { return !r.f.All }

// toDelete returns the items decided Delete or Repair and counts the malformed ones.
func (r *runner) toDelete(items []item) []*item {
	var del []*item
	for i := range items {
		it := &items[i]
		if it.state == stateMissing {
			continue
		}
		if it.malformedFor(r.f) && r.malformedSeen.add(it.key) {
			r.c.malformed.Add(1) // once per key, however often a rescan reads it
		}
		if it.verdict == Delete || it.verdict == Repair {
			del = append(del, it)
		}
	}
	return del
}

// deletions counts the items of del decided Delete (the others are repairs).
func deletions(del []*item) int64 {
	var n int64
	for _, it := range del {
		if it.verdict == Delete {
			n++
		}
	}
	return n
}

// logsOut reports whether settling the item logs a user out, as the bound counts it: a
// still-valid session to be deleted that the run has not deleted before. A repair never does.
func (r *runner) logsOut(it *item) bool {
	return it.verdict == Delete && it.valid(r.now) && r.newLogout(it.key)
}

// settle deletes the items decided Delete and repairs those decided Repair, each only if it is
// still exactly what was decided on (compare-and-delete or compare-and-expire on its value, and
// for --orphans on still having no TTL). A key that changed in between is read again and decided
// again: deleted or repaired if it still matches, kept and counted Skipped if it no longer does.
// Still-valid deletions are reserved against the bound before they are attempted, and released
// when the key was not deleted.
func (r *runner) settle(ctx context.Context, o ops, del []*item) error {
	for round := 1; len(del) > 0; round++ {
		if round > maxSettleRounds {
			r.c.errors.Add(1)
			return fmt.Errorf("delete: %d matching sessions kept changing faster than they could be deleted; they were left in place", len(del))
		}
		var validN int64
		for _, it := range del {
			if r.logsOut(it) {
				validN++
			}
		}
		var changed []*item
		err := r.underBound(validN, func(grant int64) { del = r.trimValid(del, grant) }, func() (deletedValid int64, err error) {
			changed, deletedValid, err = r.compareAndDelete(ctx, o, del)
			return deletedValid, err
		})
		if err != nil {
			return err
		}
		if len(changed) == 0 {
			return nil
		}
		keys := make([]string, len(changed))
		for i, it := range changed {
			keys[i] = it.key
		}
		items, err := r.e.classify(ctx, o, r.f, keys, r.readsValues(), false, r.now)
		if err != nil {
			r.countError(err)
			return err
		}
		del = del[:0]
		for i := range items {
			it := &items[i]
			switch {
			case it.state == stateMissing:
				// deleted or expired by someone else meanwhile
			case it.verdict == Delete:
				del = append(del, it)
			case it.verdict == Repair:
				del = append(del, it)
			default:
				r.c.skipped.Add(1) // changed so that it no longer matches: kept
			}
		}
	}
	return nil
}

// compareAndDelete sends one compare-and-delete for the items of del decided Delete (string
// values compared with what was read; other types deleted only if still not a string) and one
// compare-and-expire for those decided Repair (EXPIREAT their expires_at if the value is
// unchanged and there is still no TTL), and counts what they did. It returns the items that
// changed since they were read and how many still-valid sessions it deleted.
func (r *runner) compareAndDelete(ctx context.Context, o ops, del []*item) (changed []*item, deletedValid int64, err error) {
	var strs, others, repairs []*item
	for _, it := range del {
		switch {
		case it.verdict == Repair:
			repairs = append(repairs, it)
		case it.state == stateString:
			strs = append(strs, it)
		default:
			others = append(others, it)
		}
	}
	tt := ""
	if r.f.Orphans {
		tt = "t"
	}
	for _, group := range []struct {
		items []*item
		mode  string
	}{{strs, "v" + tt}, {others, "n" + tt}, {repairs, "vte"}} {
		if len(group.items) == 0 {
			continue
		}
		ks := make([]string, len(group.items))
		var ex, at []string
		if group.mode[0] == 'v' {
			ex = make([]string, len(group.items))
		}
		if group.mode == "vte" {
			at = make([]string, len(group.items))
		}
		for i, it := range group.items {
			ks[i] = it.key
			if ex != nil {
				ex[i] = it.val
			}
			if at != nil {
				at[i] = strconv.FormatInt(it.sess.ExpiresAt.Unix(), 10)
			}
		}
		// Counted even when the call fails part-way: what it removed before is gone.
		res, cerr := o.cad(ctx, group.mode, ks, ex, at)
		for i, it := range group.items {
			switch res.flags[i] {
			case '1':
				if it.verdict == Repair {
					r.c.repaired.Add(1)
					continue
				}
				r.deletedItem(it)
				if it.valid(r.now) && r.loggedOutKey(it.key) {
					deletedValid++
				}
			case '0':
				if cerr == nil {
					changed = append(changed, it)
				}
			}
		}
		if cerr != nil {
			return nil, deletedValid, cerr
		}
	}
	return changed, deletedValid, nil
}

// unlinkCounted deletes keys selected by key alone, without reading them (--all without a
// backup): every removed key counts as a logout. When the run must name whose sessions it
// deleted (spec.Deleted), it deletes with GETDEL instead and decodes what it removed.
func (r *runner) unlinkCounted(ctx context.Context, o ops, keys []string) error {
	if len(keys) == 0 {
		return nil
	}
	r.c.matched.Add(int64(len(keys)))
	if r.spec.Deleted != nil {
		res, err := o.getdel(ctx, keys)
		for i, g := range res {
			switch {
			case g.deleted:
				it := item{key: keys[i], val: g.val, state: stateString}
				it.sess, it.ok = DecodeSession([]byte(g.val))
				r.deletedItem(&it)
			case g.wrongType:
				n, uerr := o.unlink(ctx, keys[i:i+1])
				r.c.deleted.Add(n)
				err = cmp.Or(err, uerr)
			}
		}
		if err != nil {
			r.countError(err)
			return errorf("delete", err)
		}
		return nil
	}
	n, err := o.unlink(ctx, keys)
	r.c.deleted.Add(n)
	r.c.deletedValid.Add(n)
	if err != nil {
		r.countError(err)
		return errorf("delete", err)
	}
	return nil
}

// trimValid keeps every item that is no logout (expired, malformed, a repair) and the first
// grant still-valid ones.
func (r *runner) trimValid(del []*item, grant int64) []*item {
	out := del[:0]
	for _, it := range del {
		if !r.logsOut(it) {
			out = append(out, it)
		} else if grant > 0 {
			out = append(out, it)
			grant--
		}
	}
	return out
}

// CountKeys counts the session keys (post-run verification), one small SCAN at a time.
func (e *Engine) CountKeys(ctx context.Context) (int64, error) {
	st := &scanState{}
	_, err := e.scanAll(ctx, e.countPacing(), st, func(context.Context, *redis.Client, []string) error { return nil })
	return st.scanned.Load(), err
}
