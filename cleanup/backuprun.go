package cleanup

import (
	"cmp"
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/redis/go-redis/v9"
)

// runWithBackup runs in rounds. A round's keys are read, written to a backup file that is then
// completed and synced, and only after that deleted; any failure before the file is complete
// deletes nothing of that round. A key is deleted only while it still holds what its file
// holds — strings by compare-and-delete against the backed-up value's digest, other types only
// if still not a string (their DUMP is in the file) — so at every instant, whatever stops the
// process, every session deleted is in a synced file with the value it had when deleted. A key
// that changed since it was read is read again, decided again, and if it still matches (a
// selection by key, --all or --session-id, always does) backed up again in the next round and
// deleted then, however often that takes (up to maxSettleRounds, then the run fails).
//
// (GETDEL, which returns what it removed, was used for selections by key until a seeded chaos
// run killed a replica between a GETDEL and the completion of the next round's file: the newest
// values of sessions an application had rewritten were deleted and lost.)
//
// A mass logout then sweeps: keys that appeared since its scan (new logins, or sessions written
// back by an application that held them in memory) are backed up and deleted in further rounds.
//
// Round 1 writes BACKUP_DIR/<job>.jsonl.gz; round k writes <job>.r<k>.jsonl.gz. A resumed job
// starts at BackupSpec.FirstRound. Report.Backup names every file written, comma-separated.
func (r *runner) runWithBackup(ctx context.Context, rep *Report) error {
	var (
		planned *planBuilder // the first round is the run's preview (RunSpec.Planned)
		nodes   int
	)
	if r.spec.Planned != nil {
		planned = r.e.newPlanBuilder(r.f, r.now)
	}
	scan := func(ctx context.Context, fn batchFunc) (err error) {
		nodes, err = r.e.forEachBatch(ctx, r.f, r.p, r.st, fn)
		return err
	}
	src := scan
	sweepsLeft := 0
	if r.f.All {
		sweepsLeft = sweeps
	}
	first := max(r.spec.Backup.FirstRound, 1)
	cur, err := r.openRound(first)
	if err != nil {
		return err
	}
	for round := first; ; round++ {
		r.c.phase.Store("backup")
		if err := r.backupRound(ctx, cur, src, planned); err != nil {
			cur.abort()
			return err
		}
		if round > first && cur.w.Count() == 0 {
			cur.abort() // a sweep that found nothing: no file
			return nil
		}
		if err := cur.close(rep); err != nil {
			cur.abort()
			return err
		}
		if planned != nil {
			plan := planned.done(nodes, r.st, r.start)
			planned = nil
			if err := r.spec.Planned(plan); err != nil {
				cur.list.remove()
				return err
			}
		}
		if cur.list.n == 0 {
			cur.list.remove() // only newer values of keys already deleted
			return nil
		}
		if round-first >= maxSettleRounds {
			cur.list.remove()
			r.c.errors.Add(1)
			return fmt.Errorf("delete: %d matching sessions kept changing faster than they could be backed up and deleted; they were left in place", cur.list.n)
		}
		next, err := r.openRound(round + 1)
		if err != nil {
			cur.list.remove()
			return err
		}
		r.c.phase.Store("delete")
		err = r.deleteRound(ctx, cur.list, next)
		cur.list.remove()
		if err != nil {
			// The newest values of keys already deleted are in next: keep them.
			next.list.remove()
			if cerr := next.close(rep); cerr != nil {
				next.abort()
			}
			return err
		}
		switch {
		case next.changed.n > 0:
			changed := next.changed
			if err := changed.finish(); err != nil {
				next.abort()
				return fmt.Errorf("backup: key list: %w", err)
			}
			src = func(ctx context.Context, fn batchFunc) error {
				defer changed.remove()
				return r.e.listedKeys(ctx, changed, r.p, fn)
			}
		case sweepsLeft > 0:
			sweepsLeft--
			src = scan
		default:
			src = func(context.Context, batchFunc) error { return nil } // only close next
		}
		cur = next
	}
}

// round is one backup file being written, the list of the keys in it still to be deleted, and
// the keys of the previous round that changed and must be read again.
type round struct {
	w       *BackupWriter
	list    *keyList
	changed *keyList
	mu      sync.Mutex // w and list (the backup stage) and changed (parallel deleters)
}

// noteChanged lists a key to be read again in this round.
func (rd *round) noteChanged(key string) error {
	rd.mu.Lock()
	defer rd.mu.Unlock()
	return rd.changed.add(keyEntry{key: key})
}

func (r *runner) openRound(k int) (*round, error) {
	b := r.spec.Backup
	name := b.JobID
	if k > 1 {
		name = fmt.Sprintf("%s.r%d", b.JobID, k)
	}
	w, err := CreateBackup(b.Dir, name, b.Recipients)
	if err != nil {
		r.countError(err)
		return nil, backupError(err)
	}
	list, err := newKeyList(b.Dir, name)
	if err != nil {
		w.Abort()
		r.countError(err)
		return nil, fmt.Errorf("backup: key list: %w", err)
	}
	changed, err := newKeyList(b.Dir, name+".changed")
	if err != nil {
		w.Abort()
		list.remove()
		r.countError(err)
		return nil, fmt.Errorf("backup: key list: %w", err)
	}
	return &round{w: w, list: list, changed: changed}, nil
}

// close completes the round's backup file (synced) and readies its key list for deletion.
func (rd *round) close(rep *Report) error {
	rd.changed.remove()
	if err := rd.list.finish(); err != nil {
		return fmt.Errorf("backup: key list: %w", err)
	}
	if err := rd.w.Close(); err != nil {
		return backupError(err)
	}
	if rep.Backup == "" {
		rep.Backup = rd.w.Path()
	} else {
		rep.Backup += "," + rd.w.Path()
	}
	return nil
}

func (rd *round) abort() {
	rd.w.Abort()
	rd.list.remove()
	rd.changed.remove()
}

// backupRound reads every key src selects, decides, and writes the matching ones to rd's backup
// file and key list; with planned, it also adds every batch up into the run's plan. A bound
// exceeded stops it before anything of the round is deleted.
//
// Encoding, compressing (and encrypting) the lines is about half a round's CPU. It runs in a
// goroutine of its own (a backupStage), so the next batch is read from Redis meanwhile instead
// of after it: the reads stay one command at a time, only our own CPU work overlaps them.
func (r *runner) backupRound(ctx context.Context, rd *round, src func(context.Context, batchFunc) error, planned *planBuilder) error {
	stage := r.startBackupStage(rd)
	fn := func(ctx context.Context, node *redis.Client, keys []string) error {
		o := r.ops(node)
		items, err := r.e.classify(ctx, o, r.f, keys, true, true, r.now)
		if err != nil {
			return err
		}
		if planned != nil {
			planned.add(items)
		}
		del := r.toDelete(items)
		dumps, err := readDumps(ctx, o, del)
		if err != nil {
			return err
		}
		return stage.send(ctx, backupBatch{del: del, dumps: dumps})
	}
	err := cmp.Or(src(ctx, fn), stage.wait())
	if err != nil && !errors.Is(err, ErrBoundReached) && !errors.Is(err, context.Canceled) {
		r.c.errors.Add(1)
	}
	return err
}

// backupBatch is one batch's items to back up, with the DUMP payloads of those that are not
// UTF-8 strings.
type backupBatch struct {
	del   []*item
	dumps map[string][]byte
}

// backupStage writes batches to a round's backup file and key list, in a goroutine, at most
// backupQueue batches behind the reads. Its first error stops it and is returned by every send
// after, and by wait.
type backupStage struct {
	batches chan backupBatch
	failed  chan struct{} // closed on the first error
	done    chan struct{} // closed when the goroutine ends
	err     error
}

const backupQueue = 4

func (r *runner) startBackupStage(rd *round) *backupStage {
	s := &backupStage{batches: make(chan backupBatch, backupQueue), failed: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		for b := range s.batches {
			if s.err != nil {
				continue // drain: senders see failed
			}
			if err := r.writeBackupBatch(rd, b); err != nil {
				s.err = err
				close(s.failed)
			}
		}
	}()
	return s
}

// send queues a batch, or returns the stage's error.
func (s *backupStage) send(ctx context.Context, b backupBatch) error {
	select {
	case <-s.failed:
		return s.err
	default:
	}
	select {
	case s.batches <- b:
		return nil
	case <-s.failed:
		return s.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// wait ends the stage once every queued batch is written and returns its error. Call it once,
// after the last send.
func (s *backupStage) wait() error {
	close(s.batches)
	<-s.done
	return s.err
}

// writeBackupBatch encodes one batch and writes it to rd: lines to the backup file, entries to
// the key list, still-valid sessions counted against the bound.
func (r *runner) writeBackupBatch(rd *round, b backupBatch) error {
	lines, entries, err := r.encodeBackup(b.del, b.dumps)
	if err != nil {
		return err
	}
	rd.mu.Lock()
	defer rd.mu.Unlock()
	if err := rd.w.WriteLines(lines, int64(len(entries))); err != nil {
		return err
	}
	for _, en := range entries {
		// Distinct keys only: a node rescanned after a restart, or SCAN returning a key
		// twice, lists a key again without logging anyone out twice.
		if en.valid && r.bounded() && r.validListed.add(en.key) && int64(r.validListed.len()) > r.spec.MaxValid {
			return ErrBoundReached
		}
		if err := rd.list.add(en); err != nil {
			return fmt.Errorf("backup: key list: %w", err)
		}
	}
	r.c.matched.Add(int64(len(entries)))
	return nil
}

// readDumps reads the DUMP payloads of the items to delete that JSON cannot carry as a value:
// binary strings and other types (nil: none). A payload is nil for a key gone since.
func readDumps(ctx context.Context, o ops, del []*item) (map[string][]byte, error) {
	var keys []string
	for _, it := range del {
		if it.state != stateString || !utf8.ValidString(it.val) {
			keys = append(keys, it.key)
		}
	}
	if len(keys) == 0 {
		return nil, nil
	}
	ds, err := o.dumps(ctx, keys)
	if err != nil {
		return nil, errorf("dump", err)
	}
	dumps := make(map[string][]byte, len(ds))
	for i, k := range keys {
		dumps[k] = ds[i]
	}
	return dumps, nil
}

// encodeBackup turns the items to delete into backup lines and key-list entries: strings that
// are valid UTF-8 as their value with its digest; binary strings and other types as their DUMP
// payloads. Items gone since they were read are dropped.
func (r *runner) encodeBackup(del []*item, dumps map[string][]byte) ([]byte, []keyEntry, error) {
	at := time.Now()
	var (
		lines   []byte
		entries []keyEntry
	)
	for _, it := range del {
		rec := BackupRecord{Key: it.key, PTTL: it.pttl, At: at}
		en := keyEntry{key: it.key, valid: it.valid(r.now), user: it.userID()}
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
				en.digest = sum[:]
			}
		} else {
			rec.Value = unsafe.Slice(unsafe.StringData(it.val), len(it.val)) // read only
			sum := sha1.Sum(rec.Value)
			en.digest = sum[:]
		}
		var err error
		if lines, err = AppendBackupLine(lines, rec); err != nil {
			return nil, nil, err
		}
		entries = append(entries, en)
		r.noteUser(it)
	}
	return lines, entries, nil
}

// deleteRound deletes the keys of list. Values that GETDEL removed and that differ from the
// backed-up one are written to next's backup file; keys that changed before a compare-and-delete
// are listed in next.changed, to be read again.
func (r *runner) deleteRound(ctx context.Context, list *keyList, next *round) error {
	node, err := r.e.anyNode(ctx)
	if err != nil {
		return err
	}
	o := r.ops(node)
	return eachInParallel(ctx, list, r.p.batch, r.workers(), func(ctx context.Context, entries []keyEntry) error {
		return r.p.step(ctx, len(entries), func() error { return r.deleteEntries(ctx, o, entries, next) })
	})
}

// deleteEntries deletes one batch of a round's key list (cadListed); keys that changed since
// they were backed up go to next, to be read and backed up again.
func (r *runner) deleteEntries(ctx context.Context, o ops, entries []keyEntry, next *round) error {
	validN := r.logouts(entries)
	if grant := r.reserve(validN); grant < validN {
		r.release(grant)
		return ErrBoundReached
	}
	deletedValid, err := r.cadListed(ctx, o, entries, next.noteChanged)
	r.release(validN - deletedValid)
	if err != nil {
		r.countError(err)
		return errorf("delete", err)
	}
	return nil
}

// cadListed compare-and-deletes listed entries — strings against the digest of the value they
// were decided on (and backed up), other types only while still not a string; for --orphans
// also only while still without a TTL — and hands every key that changed since it was read to
// changed.
func (r *runner) cadListed(ctx context.Context, o ops, entries []keyEntry, changed func(string) error) (deletedValid int64, err error) {
	check := ""
	if r.f.Orphans {
		check = "t"
	}
	var strs, others []keyEntry
	for _, en := range entries {
		if en.digest != nil {
			strs = append(strs, en)
		} else {
			others = append(others, en)
		}
	}
	deletedValid, err = r.cadEntries(ctx, o, "d"+check, strs, changed)
	if err != nil {
		return deletedValid, err
	}
	dv, err := r.cadEntries(ctx, o, "n"+check, others, changed)
	return deletedValid + dv, err
}

// cadEntries compare-and-deletes entries (by digest, or by still not being a string) and hands
// every key that changed since it was read to changed.
func (r *runner) cadEntries(ctx context.Context, o ops, mode string, entries []keyEntry, changed func(key string) error) (deletedValid int64, err error) {
	if len(entries) == 0 {
		return 0, nil
	}
	keys := make([]string, len(entries))
	var digests []string
	if mode[0] == 'd' {
		digests = make([]string, len(entries))
	}
	for i, en := range entries {
		keys[i] = en.key
		if digests != nil {
			digests[i] = hex.EncodeToString(en.digest)
		}
	}
	// Counted even when the call fails part-way: what it removed before is gone.
	res, err := o.cad(ctx, mode, keys, digests, nil)
	r.c.deleted.Add(res.deleted)
	for i, en := range entries {
		switch res.flags[i] {
		case '1':
			if en.valid {
				r.c.deletedValid.Add(1)
				if r.loggedOutKey(en.key) {
					deletedValid++
				}
			}
			r.deletedUser(en.user)
		case '0':
			if err == nil {
				if cerr := changed(en.key); cerr != nil {
					return deletedValid, cerr
				}
			}
		}
	}
	return deletedValid, err
}

// workers is how many batches of a key list a run works on at once: one when paced (Redis never
// sees two of its commands back to back), three otherwise.
func (r *runner) workers() int {
	if r.p.paced() {
		return 1
	}
	return cmp.Or(r.p.workers, 3)
}

// eachInParallel hands the entries of list to fn in batches of n, with workers batches in
// flight (1: in order, one at a time). The first error stops it and is returned.
func eachInParallel(ctx context.Context, list *keyList, n, workers int, fn func(context.Context, []keyEntry) error) error {
	if workers <= 1 {
		return list.each(n, func(entries []keyEntry) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			return fn(ctx, entries)
		})
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	work := make(chan []keyEntry, workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for entries := range work {
				if ctx.Err() != nil {
					continue
				}
				if err := fn(ctx, entries); err != nil {
					cancel(err)
				}
			}
		}()
	}
	err := list.each(n, func(entries []keyEntry) error {
		select {
		case work <- slices.Clone(entries): // each reuses its slice
			return nil
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	})
	close(work)
	wg.Wait()
	if cause := context.Cause(ctx); cause != nil {
		return cause
	}
	return err
}

// listedKeys feeds fn the keys of a finished key list in batches (no SCAN), on the node that
// holds them (standalone) or through the cluster client.
func (e *Engine) listedKeys(ctx context.Context, list *keyList, p pacing, fn batchFunc) error {
	node, err := e.anyNode(ctx)
	if err != nil {
		return err
	}
	return list.each(p.batch, func(entries []keyEntry) error {
		keys := make([]string, 0, len(entries))
		for _, en := range entries {
			keys = append(keys, en.key)
		}
		return fn(ctx, node, e.t.sessionKeysOnly(keys))
	})
}

// backupError says that the backup failed, once: BackupWriter's errors already start with
// "backup:".
func backupError(err error) error {
	if strings.HasPrefix(err.Error(), "backup:") {
		return err
	}
	return fmt.Errorf("backup: %w", err)
}

// Backup writes a backup of the sessions f selects without deleting anything (`sessionbot
// backup`). The Report counts what was written (Matched) and names the file (Backup).
func (e *Engine) Backup(ctx context.Context, f Filter, b *BackupSpec, progress func(Progress)) (Report, error) {
	f = f.Normalize()
	r := &runner{e: e, f: f, spec: RunSpec{Filter: f, MaxValid: -1, Backup: b}, now: e.now(), start: time.Now(), st: &scanState{}}
	r.p = pacing{batch: e.cfg.BatchSize, sequential: true}
	r.users = map[string]string{}
	stop := r.c.report(progress, "backup", r.start, &r.st.scanned)
	rep := Report{Filter: f, Mode: "backup", Start: r.start, Remaining: -1}
	rd, err := r.openRound(1)
	if err == nil {
		err = r.backupRound(ctx, rd, func(ctx context.Context, fn batchFunc) error {
			_, err := e.forEachBatch(ctx, f, r.p, r.st, fn)
			return err
		}, nil)
		if err == nil {
			err = rd.close(&rep)
		}
		rd.list.remove()
		if err != nil {
			rd.abort()
		}
	}
	stop()
	rep.End = time.Now()
	rep.Scanned, rep.Matched = r.st.scanned.Load(), r.c.matched.Load()
	rep.Malformed, rep.Errors = r.c.malformed.Load(), r.c.errors.Load()
	rep.Kept = rep.Scanned
	return rep, err
}
