package cleanup

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/redis/go-redis/v9"
)

// Run executes a cleanup. The returned Report is filled in even when an error stops the run
// (what was deleted so far is counted); Report.Stopped says why it stopped early.
//
// Invariants: only keys starting with the prefix are ever deleted; a key selected by its
// content is deleted only if its value is unchanged since it was read (compare-and-delete); with
// a backup, nothing is deleted until the whole backup is written and synced, and only keys whose
// backed-up value is still current are deleted.
func (e *Engine) Run(ctx context.Context, spec RunSpec) (Report, error) {
	f := spec.Filter.Normalize()
	r := &runner{e: e, f: f, spec: spec, now: e.now(), start: time.Now(), st: &scanState{}}
	r.p = e.pacing(spec.BatchSize, spec.Pause, spec.MaxRate)
	r.users = map[string]string{}
	rep := Report{Filter: f, Mode: ModeExecute, Start: r.start, Remaining: -1}
	if f.All {
		rep.Mode = ModeAll
	}
	stop := r.c.report(spec.Progress, "scan", r.start, &r.st.scanned)
	var err error
	if spec.Backup != nil {
		err = r.runWithBackup(ctx, &rep)
	} else {
		err = r.runDirect(ctx)
	}
	stop()
	rep.Scanned = r.st.scanned.Load()
	rep.Matched = r.c.matched.Load()
	rep.Deleted = r.c.deleted.Load()
	rep.DeletedValid = r.c.deletedValid.Load()
	rep.Skipped = r.c.skipped.Load()
	rep.Malformed = r.c.malformed.Load()
	rep.Errors = r.c.errors.Load()
	rep.Kept = rep.Scanned - rep.Deleted
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
	if err == nil && spec.Verify {
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
)

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

	mu    sync.Mutex
	users map[string]string // user_id → username of deleted sessions (≤ 100)
}

// reserve grants up to n more still-valid deletions under spec.MaxValid.
func (r *runner) reserve(n int64) int64 {
	if r.spec.MaxValid < 0 || r.f.All {
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

// runDirect deletes in one pass: read, decide, compare-and-delete, batch by batch.
func (r *runner) runDirect(ctx context.Context) error {
	keyOnly := r.f.ByKey()
	fn := func(ctx context.Context, node *redis.Client, keys []string) error {
		o := r.e.opsFor(node)
		if keyOnly {
			if grant := r.reserve(int64(len(keys))); grant < int64(len(keys)) {
				keys = keys[:grant]
				if err := r.unlinkCounted(ctx, o, keys); err != nil {
					return err
				}
				return ErrBoundReached
			}
			return r.unlinkCounted(ctx, o, keys)
		}
		items, err := r.e.classify(ctx, o, r.f, keys, r.f.needsValue(), false, r.now)
		if err != nil {
			r.c.errors.Add(1)
			return err
		}
		del := r.toDelete(items)
		var (
			validN   int64
			boundHit bool
		)
		for _, it := range del {
			if !it.expired(r.now) {
				validN++
			}
		}
		r.c.matched.Add(int64(len(del)))
		if grant := r.reserve(validN); grant < validN {
			del = trimValid(del, grant, r.now)
			boundHit = true
		}
		mode := ""
		if r.f.needsValue() {
			mode += "v"
		}
		if r.f.Orphans {
			mode += "t"
		}
		ks := make([]string, len(del))
		var ex []string
		if strings.Contains(mode, "v") {
			ex = make([]string, len(del))
		}
		for i, it := range del {
			ks[i] = it.key
			if ex != nil {
				ex[i] = it.val
			}
		}
		// Counted even when the call fails part-way: what it removed before is gone.
		res, err := o.cad(ctx, mode, ks, ex)
		r.c.deleted.Add(res.deleted)
		r.c.skipped.Add(res.changed)
		for i, it := range del {
			if i < len(res.flags) && res.flags[i] == '1' {
				if !it.expired(r.now) {
					r.c.deletedValid.Add(1)
				}
				r.noteUser(it)
			}
		}
		if err != nil {
			r.c.errors.Add(1)
			return errorf("delete", err)
		}
		if boundHit {
			return ErrBoundReached
		}
		return nil
	}
	_, err := r.e.forEachBatch(ctx, r.f, r.p, r.st, fn)
	return err
}

// toDelete returns the items decided Delete and counts the malformed ones.
func (r *runner) toDelete(items []item) []*item {
	var del []*item
	for i := range items {
		it := &items[i]
		switch {
		case it.state == stateMissing:
		case it.verdict == Malformed:
			r.c.malformed.Add(1)
		case it.verdict == Delete:
			del = append(del, it)
		}
	}
	return del
}

// unlinkCounted deletes keys selected by key alone (--all, --session-id).
func (r *runner) unlinkCounted(ctx context.Context, o ops, keys []string) error {
	if len(keys) == 0 {
		return nil
	}
	r.c.matched.Add(int64(len(keys)))
	n, err := o.unlink(ctx, keys)
	r.c.deleted.Add(n)
	r.c.deletedValid.Add(n) // not read: every removed session counts as a logout
	if err != nil {
		r.c.errors.Add(1)
		return errorf("delete", err)
	}
	return nil
}

// trimValid keeps every expired item and the first grant still-valid ones.
func trimValid(del []*item, grant int64, now time.Time) []*item {
	out := del[:0]
	for _, it := range del {
		if it.expired(now) {
			out = append(out, it)
		} else if grant > 0 {
			out = append(out, it)
			grant--
		}
	}
	return out
}

// runWithBackup runs in two phases. Phase 1 selects, reads and writes every matching key to the
// backup and a key list (key, SHA-1 of the value backed up); any failure there — a full disk,
// an unwritable directory, a bound exceeded — ends the run with nothing deleted. Phase 2 walks
// the key list and deletes each key only if its value still hashes to what was backed up, so
// every deleted value is in the backup. For a mass logout, sessions refreshed between the two
// phases are backed up again and deleted in a catch-up round (up to 3).
func (r *runner) runWithBackup(ctx context.Context, rep *Report) error {
	b := r.spec.Backup
	src := func(ctx context.Context, fn batchFunc) error {
		_, err := r.e.forEachBatch(ctx, r.f, r.p, r.st, fn)
		return err
	}
	for round := 1; ; round++ {
		name := b.JobID
		if round > 1 {
			name = fmt.Sprintf("%s.r%d", b.JobID, round)
		}
		r.c.phase.Store("backup")
		list, path, err := r.backupPhase(ctx, name, src)
		if path != "" {
			if rep.Backup == "" {
				rep.Backup = path
			} else {
				rep.Backup += "," + path
			}
		}
		if err != nil {
			return err
		}
		r.c.phase.Store("delete")
		changed, err := r.deletePhase(ctx, list)
		list.remove()
		if err != nil || len(changed) == 0 || !r.f.All || round == 3 {
			return err
		}
		// Refreshed since the backup: back up their current values and delete them too.
		keys := changed
		r.c.skipped.Add(-int64(len(keys)))
		r.c.matched.Add(-int64(len(keys)))
		src = func(ctx context.Context, fn batchFunc) error {
			return r.e.explicitKeys(ctx, keys, r.p, &scanState{}, fn)
		}
	}
}

// backupPhase writes the backup and the key list for every key src selects.
func (r *runner) backupPhase(ctx context.Context, name string, src func(context.Context, batchFunc) error) (*keyList, string, error) {
	b := r.spec.Backup
	w, err := CreateBackup(b.Dir, name, b.Recipients)
	if err != nil {
		r.c.errors.Add(1)
		return nil, "", backupError(err)
	}
	list, err := newKeyList(b.Dir, name)
	if err != nil {
		w.Abort()
		r.c.errors.Add(1)
		return nil, "", fmt.Errorf("backup: key list: %w", err)
	}
	var (
		mu     sync.Mutex
		validN int64
	)
	fn := func(ctx context.Context, node *redis.Client, keys []string) error {
		o := r.e.opsFor(node)
		items, err := r.e.classify(ctx, o, r.f, keys, true, true, r.now)
		if err != nil {
			return err
		}
		del := r.toDelete(items)
		var dumpKeys []string
		for _, it := range del {
			if it.state != stateString || !utf8.ValidString(it.val) {
				dumpKeys = append(dumpKeys, it.key)
			}
		}
		var dumps map[string][]byte
		if len(dumpKeys) > 0 {
			ds, err := o.dumps(ctx, dumpKeys)
			if err != nil {
				return errorf("dump", err)
			}
			dumps = make(map[string][]byte, len(ds))
			for i, k := range dumpKeys {
				dumps[k] = ds[i]
			}
		}
		// Encode and hash outside the lock (the expensive part); only appending to the gzip
		// stream and the key list is serial.
		at := time.Now()
		type entry struct {
			it     *item
			digest []byte
		}
		var (
			lines   []byte
			entries []entry
		)
		for _, it := range del {
			rec := BackupRecord{Key: it.key, PTTL: it.pttl, At: at}
			var digest []byte
			if d, ok := dumps[it.key]; ok {
				if d == nil {
					continue // gone since it was read
				}
				rec.Type = it.typ
				if rec.Type == "" {
					rec.Type = "string"
				}
				rec.Dump = d
				if it.state == stateString {
					sum := sha1.Sum([]byte(it.val))
					digest = sum[:]
				}
			} else {
				rec.Value = unsafe.Slice(unsafe.StringData(it.val), len(it.val)) // read only
				sum := sha1.Sum(rec.Value)
				digest = sum[:]
			}
			var err error
			if lines, err = AppendBackupLine(lines, rec); err != nil {
				return err
			}
			entries = append(entries, entry{it, digest})
		}
		mu.Lock()
		defer mu.Unlock()
		if err := w.WriteLines(lines, int64(len(entries))); err != nil {
			return err
		}
		for _, en := range entries {
			valid := !en.it.expired(r.now)
			if valid {
				validN++
			}
			if err := list.add(en.it.key, en.digest, valid); err != nil {
				return fmt.Errorf("backup: key list: %w", err)
			}
			r.c.matched.Add(1)
			r.noteUser(en.it)
		}
		if !r.f.All && r.spec.MaxValid >= 0 && validN > r.spec.MaxValid {
			return ErrBoundReached
		}
		return nil
	}
	if err := src(ctx, fn); err != nil {
		w.Abort()
		list.remove()
		if !errors.Is(err, ErrBoundReached) && !errors.Is(err, context.Canceled) {
			r.c.errors.Add(1)
		}
		return nil, "", err
	}
	if err := list.finish(); err != nil {
		w.Abort()
		list.remove()
		r.c.errors.Add(1)
		return nil, "", fmt.Errorf("backup: key list: %w", err)
	}
	if err := w.Close(); err != nil {
		list.remove()
		r.c.errors.Add(1)
		return nil, "", backupError(err)
	}
	return list, w.Path(), nil
}

// backupError says that the backup failed, once: BackupWriter's errors already start with
// "backup:".
func backupError(err error) error {
	if strings.HasPrefix(err.Error(), "backup:") {
		return err
	}
	return fmt.Errorf("backup: %w", err)
}

// deletePhase deletes the keys of list whose value is unchanged since it was backed up and
// returns the keys that changed in between.
func (r *runner) deletePhase(ctx context.Context, list *keyList) ([]string, error) {
	node, err := r.e.anyNode(ctx)
	if err != nil {
		return nil, err
	}
	o := r.e.opsFor(node)
	var changed []string
	mode := "d"
	if r.f.Orphans {
		mode += "t"
	}
	err = list.each(r.p.batch, func(entries []keyEntry) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		if r.p.limiter != nil {
			if err := r.p.limiter.wait(ctx, len(entries)); err != nil {
				return err
			}
		}
		var cadKeys, digests, plain []string
		var cadEntries []keyEntry
		validPlain := int64(0)
		for _, en := range entries {
			if en.digest == nil {
				plain = append(plain, en.key)
				if en.valid {
					validPlain++
				}
				continue
			}
			cadKeys = append(cadKeys, en.key)
			digests = append(digests, hex.EncodeToString(en.digest))
			cadEntries = append(cadEntries, en)
		}
		if len(plain) > 0 {
			n, err := o.unlink(ctx, plain)
			r.c.deleted.Add(n)
			r.c.deletedValid.Add(min(n, validPlain))
			if err != nil {
				r.c.errors.Add(1)
				return errorf("delete", err)
			}
		}
		// Counted even when the call fails part-way: what it removed before is gone.
		res, err := o.cad(ctx, mode, cadKeys, digests)
		r.c.deleted.Add(res.deleted)
		r.c.skipped.Add(res.changed)
		for i, en := range cadEntries {
			if res.flags[i] == '1' {
				if en.valid {
					r.c.deletedValid.Add(1)
				}
			} else if res.flags[i] == '0' && len(changed) < 100000 {
				changed = append(changed, en.key)
			}
		}
		if err != nil {
			r.c.errors.Add(1)
			return errorf("delete", err)
		}
		if r.p.pause > 0 {
			return sleepUntil(ctx, time.Now().Add(r.p.pause))
		}
		return nil
	})
	return changed, err
}

// CountKeys counts the keys with the prefix (post-run verification), one small SCAN at a time.
func (e *Engine) CountKeys(ctx context.Context) (int64, error) {
	st := &scanState{}
	_, err := e.scanAll(ctx, pacing{batch: max(e.cfg.BatchSize, 500), sequential: true}, st,
		func(context.Context, *redis.Client, []string) error { return nil })
	return st.scanned.Load(), err
}

// Backup writes a backup of the sessions f selects without deleting anything (`sessionbot
// backup`). The Report counts what was written (Matched) and names the file (Backup).
func (e *Engine) Backup(ctx context.Context, f Filter, b *BackupSpec, progress func(Progress)) (Report, error) {
	f = f.Normalize()
	r := &runner{e: e, f: f, spec: RunSpec{Filter: f, MaxValid: -1, Backup: b}, now: e.now(), start: time.Now(), st: &scanState{}}
	r.p = pacing{batch: e.cfg.BatchSize, sequential: true}
	r.users = map[string]string{}
	stop := r.c.report(progress, "backup", r.start, &r.st.scanned)
	list, path, err := r.backupPhase(ctx, b.JobID, func(ctx context.Context, fn batchFunc) error {
		_, err := e.forEachBatch(ctx, f, r.p, r.st, fn)
		return err
	})
	list.remove()
	stop()
	rep := Report{Filter: f, Mode: "backup", Start: r.start, End: time.Now(), Remaining: -1, Backup: path,
		Scanned: r.st.scanned.Load(), Matched: r.c.matched.Load(), Malformed: r.c.malformed.Load(), Errors: r.c.errors.Load()}
	rep.Kept = rep.Scanned
	return rep, err
}
