package cleanup

import (
	"context"
	"crypto/sha1"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Selection is what a preview matched, kept for a run that follows it at once (the CLI's
// `cleanup --yes`): every matched key with the SHA-1 of the value it was decided on, and every
// key the preview found, master by master in SCAN order (a seenLog), both spilled to private
// files so memory does not grow with the key count. The run then deletes from the list —
// compare-and-delete against the digest, changed keys read and decided again — and scans once
// more, reading only the keys the preview did not find (sessions created since), instead of
// reading every session twice.
type Selection struct {
	filter Filter
	list   *keyList
	mu     sync.Mutex // serializes list.add across masters
	seen   *seenLog
	plan   Plan
}

// Close removes the selection's spill files. Safe on nil.
func (s *Selection) Close() {
	if s != nil {
		s.list.remove()
		s.seen.remove()
	}
}

// PreviewSelect is Preview that also returns the Selection a run may start from. dir holds the
// spill file (the backup directory: private, 0700); the caller closes the Selection.
func (e *Engine) PreviewSelect(ctx context.Context, f Filter, progress func(Progress), dir string) (Plan, *Selection, error) {
	f = f.Normalize()
	name := fmt.Sprintf("select-%d", time.Now().UnixNano())
	list, err := newKeyList(dir, name)
	if err != nil {
		return Plan{}, nil, fmt.Errorf("preview: key list: %w", err)
	}
	sel := &Selection{filter: f, list: list, seen: newSeenLog(dir, name+"-seen")}
	plan, err := e.preview(ctx, f, progress, func(node string, items []item) error {
		found := make([]string, 0, len(items))
		for i := range items {
			if items[i].state != stateMissing {
				found = append(found, items[i].key)
			}
		}
		if err := sel.seen.add(node, found); err != nil {
			return fmt.Errorf("preview: key list: %w", err)
		}
		sel.mu.Lock()
		defer sel.mu.Unlock()
		for i := range items {
			it := &items[i]
			if it.state == stateMissing || it.verdict != Delete {
				continue
			}
			en := keyEntry{key: it.key, valid: it.valid(e.now()), user: it.userID()}
			if it.state == stateString {
				sum := sha1.Sum([]byte(it.val))
				en.digest = sum[:]
			}
			if err := list.add(en); err != nil {
				return fmt.Errorf("preview: key list: %w", err)
			}
		}
		return nil
	})
	if err == nil {
		err = list.finish()
	}
	if err == nil {
		err = sel.seen.finish()
	}
	if err != nil {
		sel.Close()
		return plan, nil, err
	}
	sel.plan = plan
	return plan, sel, nil
}

// runSelected deletes what the selection lists, then scans once for keys the preview did not
// see and deletes those that match; the keys it sees in that scan, less what it deleted there,
// are the run's Remaining.
func (r *runner) runSelected(ctx context.Context, sel *Selection, rep *Report) error {
	node, err := r.e.anyNode(ctx)
	if err != nil {
		return err
	}
	o := r.ops(node)
	r.st.scanned.Add(sel.plan.Found)
	r.c.malformed.Add(sel.plan.Malformed)
	err = eachInParallel(ctx, sel.list, r.p.batch, r.workers(), func(ctx context.Context, entries []keyEntry) error {
		return r.p.step(ctx, len(entries), func() error { return r.deleteSelected(ctx, o, entries) })
	})
	if err != nil {
		return err
	}
	// Sessions created since the preview: the only values read again.
	r.c.phase.Store("verify")
	seenAgain, deletedBefore := &scanState{}, r.c.deleted.Load()
	windows := sel.seen.scan()
	defer windows.close()
	_, err = r.e.scanAll(ctx, r.e.countPacing(), seenAgain, func(ctx context.Context, node *redis.Client, keys []string) error {
		fresh, err := windows.fresh(r.e.nodeName(node), keys)
		if err != nil {
			return fmt.Errorf("key list: %w", err)
		}
		if len(fresh) == 0 {
			return nil
		}
		r.st.scanned.Add(int64(len(fresh)))
		o := r.ops(node)
		items, err := r.e.classify(ctx, o, r.f, fresh, true, false, r.now)
		if err != nil {
			r.countError(err)
			return err
		}
		del := r.toDelete(items)
		r.c.matched.Add(int64(len(del)))
		return r.settle(ctx, o, del)
	})
	if err == nil {
		rep.Remaining = max(seenAgain.scanned.Load()-(r.c.deleted.Load()-deletedBefore), 0)
	}
	return err
}

// deleteSelected deletes one batch of the selection: compare-and-delete against the preview's
// digests, still-valid ones reserved against the bound first; keys that changed since are read
// and decided again.
func (r *runner) deleteSelected(ctx context.Context, o ops, entries []keyEntry) error {
	r.c.matched.Add(int64(len(entries)))
	var changed []string
	err := r.underBound(r.logouts(entries), func(grant int64) { entries = r.trimValidEntries(entries, grant) }, func() (deletedValid int64, err error) {
		return r.cadListed(ctx, o, entries, func(key string) error { changed = append(changed, key); return nil })
	})
	if err != nil {
		return err
	}
	if len(changed) > 0 {
		if err := r.resettle(ctx, o, changed); err != nil {
			return err
		}
	}
	return nil
}

// resettle reads keys that changed since the preview, decides them again and settles the ones
// that still match; the others are Skipped.
func (r *runner) resettle(ctx context.Context, o ops, keys []string) error {
	items, err := r.e.classify(ctx, o, r.f, keys, true, false, r.now)
	if err != nil {
		r.countError(err)
		return err
	}
	var del []*item
	for i := range items {
		it := &items[i]
		switch {
		case it.state == stateMissing:
		case it.verdict == Delete:
			del = append(del, it)
		default:
			r.c.skipped.Add(1)
		}
	}
	return r.settle(ctx, o, del)
}

// logouts counts the entries whose deletion the bound counts as a logout (see newLogout).
func (r *runner) logouts(entries []keyEntry) int64 {
	var n int64
	for _, en := range entries {
		if en.valid && r.newLogout(en.key) {
			n++
		}
	}
	return n
}

// trimValidEntries keeps every entry that is no new logout and the first grant that are.
func (r *runner) trimValidEntries(entries []keyEntry, grant int64) []keyEntry {
	out := entries[:0]
	for _, en := range entries {
		if !en.valid || !r.newLogout(en.key) {
			out = append(out, en)
		} else if grant > 0 {
			out = append(out, en)
			grant--
		}
	}
	return out
}
