package cleanup

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// compareAndDelete unlinks each key only if it is still what the engine decided on: its value
// unchanged ("v": ARGV[i+1] is the value read; "d": ARGV[i+1] is the SHA-1 of the value backed
// up), still not a string ("n": a key of another type, selected by key), and/or still without a
// TTL ("t", for --orphans). A session refreshed between read and delete is therefore kept, for
// the caller to read and decide again. Returns {deleted, changed, flags}: flags has one
// character per key, '1' deleted, '0' kept because it changed, '2' already gone (expired,
// deleted by someone else, lost with a restarted node): neither deleted here nor kept, so not
// counted as changed. One key per call on a Cluster, so it never crosses slots; many per call
// on a single node, to keep round trips few.
//
// Mode "e" (--repair-ttl, with "vt") repairs instead of deleting: a key still unchanged and
// still without a TTL gets EXPIREAT ARGV[#KEYS+1+i] (its expires_at, Unix seconds) and keeps its
// value; flag '1' then means repaired. The checks are the same, so a concurrent change wins.
var compareAndDelete = redis.NewScript(`
local mode = ARGV[1]
local cv = string.find(mode, 'v', 1, true)
local cd = string.find(mode, 'd', 1, true)
local cn = string.find(mode, 'n', 1, true)
local ct = string.find(mode, 't', 1, true)
local ce = string.find(mode, 'e', 1, true)
local deleted, changed = 0, 0
local flags = {}
for i = 1, #KEYS do
  local k = KEYS[i]
  local ok, gone = true, false
  if cv or cd then
    local v = redis.pcall('GET', k)
    if v == false then
      ok, gone = false, true
    elseif type(v) ~= 'string' then
      ok = false
    elseif cv and v ~= ARGV[i+1] then
      ok = false
    elseif cd and redis.sha1hex(v) ~= ARGV[i+1] then
      ok = false
    end
  elseif cn then
    local t = redis.call('TYPE', k)['ok']
    if t == 'none' then
      ok, gone = false, true
    elseif t == 'string' then
      ok = false
    end
  end
  if ok and ct then
    local pttl = redis.call('PTTL', k)
    if pttl == -2 then
      ok, gone = false, true
    elseif pttl ~= -1 then
      ok = false
    end
  end
  local d = 0
  if ok and ce then
    d = redis.call('EXPIREAT', k, ARGV[#KEYS+1+i])
  elseif ok then
    d = redis.call('UNLINK', k)
    deleted = deleted + d
    gone = d == 0
  elseif not gone then
    changed = changed + 1
  end
  flags[i] = d == 1 and '1' or (gone and '2' or '0')
end
return {deleted, changed, table.concat(flags)}
`)

// maxKeysPerCommand bounds the keys in one multi-key command so no single command stalls Redis.
const maxKeysPerCommand = 1000

// keyState classifies what a read found under a key.
type keyState uint8

const (
	stateString  keyState = iota // a string value was read
	stateMissing                 // gone since SCAN (expired or deleted by someone else)
	stateOther                   // not a string (WRONGTYPE): malformed
)

// item is one key in flight through a batch.
type item struct {
	key     string
	val     string
	state   keyState
	typ     string        // Redis type when stateOther
	pttl    time.Duration // valid when ttlRead
	ttlRead bool
	sess    Session
	ok      bool // val decoded as a JSON object
	verdict Verdict
}

// valid reports whether deleting the key logs a user out: a decodable session with a
// well-formed expires_at that has not passed. Expired, malformed (including a session without a
// usable expires_at: nobody can tell whether it is still valid) and absent keys are no logouts
// (SPEC §12.3).
func (it *item) valid(now time.Time) bool {
	return it.state == stateString && it.ok && it.sess.Has.Contains(FieldExpiresAt) && !it.sess.ExpiresAt.Before(now)
}

// userID is the user_id of the session, "" when the value is not a session that names one.
func (it *item) userID() string {
	if it.ok && it.sess.Has.Contains(FieldUserID) {
		return it.sess.UserID
	}
	return ""
}

// malformedFor reports whether the key is malformed for f: not a string, not a JSON object, or
// without a well-formed field f needs — and for selections by key (--all, --session-id), which
// need no field, without a well-formed expires_at, so that a mass logout counts as malformed the
// same keys the default (expired) preview does. Counted the same way in previews, reports and
// audit lines, whether f deletes it (--all, --session-id) or keeps it (content filters).
func (it *item) malformedFor(f Filter) bool {
	need := f.needed()
	if f.selectsByKey() {
		need |= FieldExpiresAt
	}
	return it.state == stateOther || !it.ok || !it.sess.Has.Contains(need)
}

// ops runs batch commands against one master (standalone) or through the cluster client, which
// routes each per-key command to the node owning its slot and follows MOVED/ASK.
type ops struct {
	c     redis.Cmdable
	multi bool // multi-key commands allowed (single node)
	retry func(context.Context, func() error) error
	rtt   roundTrips
	// cadChunk is the most keys one compare-and-delete round trip carries (0: unpacedCADChunk).
	cadChunk int
	// limiter paces the run's writes (nil: not paced): see paceWrite.
	limiter *limiter
}

// paceWrite waits until n keys may be deleted (or rewritten) under the run's rate cap, once per
// batch however many round trips or retries it takes. The pass already charged them as read
// (pacing.step); a write costs the rest of a whole key.
func (o ops) paceWrite(ctx context.Context, n int) error {
	if o.limiter == nil {
		return nil
	}
	return o.limiter.wait(ctx, float64(n)*(1-readShare))
}

// Keys per compare-and-delete round trip. The script costs Redis ~8 µs a key, and Redis runs
// it, or a pipeline of per-key scripts, without serving anyone else: 100 keys hold every other
// client ~0.8 ms, which alone puts a 1 ms GET probe's p99 over 1 ms. Paced runs send pacedCADChunk
// keys at a time (~0.2 ms), one round trip after the other; unpaced runs, whose callers chose
// speed, send bigger ones.
const (
	pacedCADChunk   = 25
	unpacedCADChunk = 500
)

// ops returns the commands of the run's batches on node, sized by its pacing.
func (r *runner) ops(node *redis.Client) ops {
	o := r.e.opsFor(node)
	if r.p.paced() {
		o.cadChunk = pacedCADChunk
	}
	o.limiter = r.p.limiter
	return o
}

func (e *Engine) opsFor(node *redis.Client) ops {
	if e.t.cluster != nil {
		return ops{c: e.t.cluster, multi: false, retry: e.retry, rtt: e.rtt}
	}
	return ops{c: node, multi: true, retry: e.retry, rtt: e.rtt}
}

// pipelined sends fn's commands in one round trip and reports its duration as op.
func (o ops) pipelined(ctx context.Context, op string, n int, fn func(redis.Pipeliner) error) ([]redis.Cmder, error) {
	start := time.Now()
	cmds, err := o.c.Pipelined(ctx, fn)
	o.rtt.observe(op, start, n)
	return cmds, err
}

// readValues fills val/state for every item and, withTTL, pttl too, in one round trip.
func (o ops) readValues(ctx context.Context, items []item, withTTL bool) error {
	var missing []int
	err := o.retry(ctx, func() error {
		missing = missing[:0]
		var (
			mgets []*redis.SliceCmd
			gets  []*redis.StringCmd
			ttls  []*redis.DurationCmd
		)
		_, err := o.pipelined(ctx, "read", len(items), func(p redis.Pipeliner) error {
			if o.multi {
				for start := 0; start < len(items); start += maxKeysPerCommand {
					end := min(start+maxKeysPerCommand, len(items))
					keys := make([]string, end-start)
					for i := range keys {
						keys[i] = items[start+i].key
					}
					mgets = append(mgets, p.MGet(ctx, keys...))
				}
			} else {
				gets = make([]*redis.StringCmd, len(items))
				for i := range items {
					gets[i] = p.Get(ctx, items[i].key)
				}
			}
			if withTTL {
				ttls = make([]*redis.DurationCmd, len(items))
				for i := range items {
					ttls[i] = p.PTTL(ctx, items[i].key)
				}
			}
			return nil
		})
		if err != nil && !pipelineBenign(err) {
			return err
		}
		for j, cmd := range mgets {
			vals, err := cmd.Result()
			if err != nil {
				return err
			}
			for i, v := range vals {
				it := &items[j*maxKeysPerCommand+i]
				if s, ok := v.(string); ok {
					it.val, it.state = s, stateString
				} else {
					it.val, it.state = "", stateMissing
					missing = append(missing, j*maxKeysPerCommand+i)
				}
			}
		}
		for i, cmd := range gets {
			it := &items[i]
			v, err := cmd.Result()
			switch {
			case err == nil:
				it.val, it.state = v, stateString
			case errors.Is(err, redis.Nil), isWrongType(err):
				it.val, it.state = "", stateMissing
				missing = append(missing, i)
			default:
				return err
			}
		}
		for i, cmd := range ttls {
			d, err := cmd.Result()
			if err != nil {
				return err
			}
			if d > 0 {
				d = d.Round(time.Millisecond)
			}
			items[i].pttl, items[i].ttlRead = d, true
		}
		return nil
	})
	if err != nil || len(missing) == 0 {
		return err
	}
	// MGET answers nil both for a vanished key and for a key of another type: ask which.
	return o.retry(ctx, func() error {
		cmds := make([]*redis.StatusCmd, len(missing))
		_, err := o.pipelined(ctx, "read", len(missing), func(p redis.Pipeliner) error {
			for j, i := range missing {
				cmds[j] = p.Type(ctx, items[i].key)
			}
			return nil
		})
		if err != nil {
			return err
		}
		for j, i := range missing {
			if t := cmds[j].Val(); t != "none" && t != "" {
				items[i].state, items[i].typ = stateOther, t
			}
		}
		return nil
	})
}

// readTTLs fills pttl for the items at idx.
func (o ops) readTTLs(ctx context.Context, items []item, idx []int) error {
	if len(idx) == 0 {
		return nil
	}
	return o.retry(ctx, func() error {
		cmds := make([]*redis.DurationCmd, len(idx))
		_, err := o.pipelined(ctx, "ttl", len(idx), func(p redis.Pipeliner) error {
			for j, i := range idx {
				cmds[j] = p.PTTL(ctx, items[i].key)
			}
			return nil
		})
		if err != nil {
			return err
		}
		for j, i := range idx {
			d := cmds[j].Val()
			if d > 0 {
				d = d.Round(time.Millisecond)
			}
			items[i].pttl, items[i].ttlRead = d, true
		}
		return nil
	})
}

// dumps returns DUMP payloads for keys (nil for keys gone since).
func (o ops) dumps(ctx context.Context, keys []string) ([][]byte, error) {
	out := make([][]byte, len(keys))
	err := o.retry(ctx, func() error {
		cmds := make([]*redis.StringCmd, len(keys))
		_, err := o.pipelined(ctx, "dump", len(keys), func(p redis.Pipeliner) error {
			for i, k := range keys {
				cmds[i] = p.Dump(ctx, k)
			}
			return nil
		})
		if err != nil && !pipelineBenign(err) {
			return err
		}
		for i, cmd := range cmds {
			v, err := cmd.Result()
			switch {
			case err == nil:
				out[i] = []byte(v)
			case errors.Is(err, redis.Nil):
				// gone since it was read: nothing to back up, nothing to delete
			default:
				// A key that cannot be backed up must not be deleted: fail the backup.
				return fmt.Errorf("DUMP %s: %w", ShortID(keys[i]), err)
			}
		}
		return nil
	})
	return out, err
}

// unlink deletes keys unconditionally and returns how many existed. A retry re-sends only the
// keys whose UNLINK did not answer: re-sending one already removed would find it gone and leave
// it out of the count. On error, n still counts what was removed before.
func (o ops) unlink(ctx context.Context, keys []string) (int64, error) {
	var n int64
	if err := o.paceWrite(ctx, len(keys)); err != nil {
		return 0, err
	}
	err := o.retry(ctx, func() error {
		if o.multi {
			for len(keys) > 0 {
				end := min(maxKeysPerCommand, len(keys))
				d, err := o.c.Unlink(ctx, keys[:end]...).Result()
				if err != nil {
					return err
				}
				n += d
				keys = keys[end:]
			}
			return nil
		}
		cmds := make([]*redis.IntCmd, len(keys))
		_, _ = o.pipelined(ctx, "unlink", len(keys), func(p redis.Pipeliner) error {
			for i, k := range keys {
				cmds[i] = p.Unlink(ctx, k)
			}
			return nil
		})
		var (
			left     []string
			firstErr error
		)
		for i, c := range cmds {
			d, err := c.Result()
			if err != nil {
				left = append(left, keys[i])
				firstErr = cmp.Or(firstErr, err)
				continue
			}
			n += d
		}
		keys = left
		return firstErr
	})
	return n, err
}

// getdelResult is what GETDEL did to one key.
type getdelResult struct {
	val       string        // the value removed
	pttl      time.Duration // its PTTL just before (-1: none)
	deleted   bool
	wrongType bool // not a string (any more): not deleted
}

// getdel deletes keys with GETDEL, each returning the value it removed, with the key's PTTL read
// just before in the same pipeline. A retry re-sends only the keys without an answer.
func (o ops) getdel(ctx context.Context, keys []string) ([]getdelResult, error) {
	out := make([]getdelResult, len(keys))
	todo := make([]int, len(keys))
	for i := range todo {
		todo[i] = i
	}
	if err := o.paceWrite(ctx, len(keys)); err != nil {
		return nil, err
	}
	err := o.retry(ctx, func() error {
		ttls := make([]*redis.DurationCmd, len(todo))
		gds := make([]*redis.StringCmd, len(todo))
		_, _ = o.pipelined(ctx, "getdel", len(todo), func(p redis.Pipeliner) error {
			for j, i := range todo {
				ttls[j] = p.PTTL(ctx, keys[i])
				gds[j] = p.GetDel(ctx, keys[i])
			}
			return nil
		})
		var (
			left     []int
			firstErr error
		)
		for j, i := range todo {
			v, err := gds[j].Result()
			switch {
			case err == nil:
				d := ttls[j].Val()
				if d > 0 {
					d = d.Round(time.Millisecond)
				}
				out[i] = getdelResult{val: v, pttl: d, deleted: true}
			case errors.Is(err, redis.Nil):
				// gone already
			case isWrongType(err):
				out[i].wrongType = true
			default:
				left = append(left, i)
				firstErr = cmp.Or(firstErr, err)
			}
		}
		todo = left
		return firstErr
	})
	return out, err
}

// cadResult is what compareAndDelete did to a batch.
type cadResult struct {
	deleted, changed int64
	flags            []byte // per key: '1' deleted, '0' changed (kept), '2' already gone
}

// cad runs compareAndDelete over keys with their expected values or digests and, for mode "e",
// their expiry times (at; nil otherwise). A retry re-sends only the keys without an answer yet:
// one deleted by an earlier attempt would otherwise come back as gone and be missing from the
// count. On error, the result still holds every answer received; keys without one have flag '0'.
func (o ops) cad(ctx context.Context, mode string, keys, expected, at []string) (cadResult, error) {
	r := cadResult{flags: bytes.Repeat([]byte{'0'}, len(keys))}
	if len(keys) == 0 {
		return r, nil
	}
	if err := o.paceWrite(ctx, len(keys)); err != nil {
		return r, err
	}
	todo := make([]int, len(keys))
	for i := range todo {
		todo[i] = i
	}
	err := o.retry(ctx, func() error {
		var err error
		todo, err = o.cadOnce(ctx, mode, keys, expected, at, todo, &r)
		if isNoScript(err) {
			if lerr := o.loadScript(ctx); lerr != nil {
				return lerr
			}
			todo, err = o.cadOnce(ctx, mode, keys, expected, at, todo, &r)
		}
		return err
	})
	return r, err
}

func parseCAD(v any) (cadResult, error) {
	a, ok := v.([]any)
	if !ok || len(a) != 3 {
		return cadResult{}, fmt.Errorf("compare-and-delete: unexpected reply %T", v)
	}
	d, _ := a[0].(int64)
	c, _ := a[1].(int64)
	f, _ := a[2].(string)
	return cadResult{deleted: d, changed: c, flags: []byte(f)}, nil
}

// add records the answer for the keys at idx.
func (r *cadResult) add(idx []int, part cadResult) {
	r.deleted += part.deleted
	r.changed += part.changed
	for j, i := range idx {
		if j < len(part.flags) {
			r.flags[i] = part.flags[j]
		}
	}
}

// cadOnce sends compareAndDelete for the keys at todo, records the answers in r and returns the
// indexes still without an answer, with the first error.
func (o ops) cadOnce(ctx context.Context, mode string, keys, expected, at []string, todo []int, r *cadResult) ([]int, error) {
	args := func(idx []int) ([]string, []any) {
		ks := make([]string, len(idx))
		a := make([]any, 0, 2*len(idx)+1)
		a = append(a, mode)
		for j, i := range idx {
			ks[j] = keys[i]
			if expected != nil {
				a = append(a, expected[i])
			}
		}
		for _, i := range idx {
			if at != nil {
				a = append(a, at[i])
			}
		}
		return ks, a
	}
	chunk := cmp.Or(o.cadChunk, unpacedCADChunk)
	if o.multi {
		for len(todo) > 0 {
			idx := todo[:min(chunk, len(todo))]
			ks, a := args(idx)
			start := time.Now()
			v, err := compareAndDelete.EvalSha(ctx, o.c, ks, a...).Result()
			o.rtt.observe("cad", start, len(idx))
			if err != nil {
				return todo, err
			}
			part, err := parseCAD(v)
			if err != nil {
				return todo, err
			}
			r.add(idx, part)
			todo = todo[len(idx):]
		}
		return nil, nil
	}
	// A Cluster: one script per key (each key may live on another node), pipelined chunk keys
	// at a time.
	var (
		left     []int
		firstErr error
	)
	for len(todo) > 0 {
		group := todo[:min(chunk, len(todo))]
		todo = todo[len(group):]
		l, err := o.cadPipelined(ctx, group, args, r)
		left = append(left, l...)
		firstErr = cmp.Or(firstErr, err)
	}
	return left, firstErr
}

// cadPipelined sends one compareAndDelete per key of todo in one pipeline, records the answers
// in r and returns the indexes without an answer, with the first error.
func (o ops) cadPipelined(ctx context.Context, todo []int, args func([]int) ([]string, []any), r *cadResult) ([]int, error) {
	cmds := make([]*redis.Cmd, len(todo))
	_, _ = o.pipelined(ctx, "cad", len(todo), func(p redis.Pipeliner) error {
		for j, i := range todo {
			ks, a := args([]int{i})
			cmds[j] = compareAndDelete.EvalSha(ctx, p, ks, a...)
		}
		return nil
	})
	var (
		left     []int
		firstErr error
	)
	for j, i := range todo {
		part, err := cmds[j].Val(), cmds[j].Err()
		var res cadResult
		if err == nil {
			res, err = parseCAD(part)
		}
		if err != nil {
			left = append(left, i)
			firstErr = cmp.Or(firstErr, err)
			continue
		}
		r.add([]int{i}, res)
	}
	return left, firstErr
}

// loadScript loads compareAndDelete on every master (after a restart or failover the script
// cache is empty, and pipelines have no EVALSHA→EVAL fallback).
func (o ops) loadScript(ctx context.Context) error {
	if cc, ok := o.c.(*redis.ClusterClient); ok {
		return cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
			return compareAndDelete.Load(ctx, c).Err()
		})
	}
	return compareAndDelete.Load(ctx, o.c).Err()
}

// retry runs op until it succeeds, fails permanently, or transient errors outlast RetryFor.
func (e *Engine) retry(ctx context.Context, op func() error) error {
	deadline := time.Now().Add(e.cfg.RetryFor)
	backoff := 20 * time.Millisecond
	for {
		err := op()
		if err == nil || ctx.Err() != nil || !transient(err) || time.Now().After(deadline) {
			if err != nil && ctx.Err() != nil {
				return ctx.Err()
			}
			return err
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		backoff = min(backoff*2, 500*time.Millisecond)
	}
}

// transient reports whether err may go away by itself: network trouble, a loading or
// failing-over server, a cluster in reconfiguration.
func transient(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, redis.ErrClosed) || errors.Is(err, redis.Nil) {
		return false
	}
	var rerr redis.Error
	if errors.As(err, &rerr) {
		msg := rerr.Error()
		for _, p := range []string{"LOADING", "TRYAGAIN", "CLUSTERDOWN", "MASTERDOWN", "READONLY", "BUSY", "MOVED", "ASK", "NOSCRIPT"} {
			if strings.HasPrefix(msg, p) {
				return true
			}
		}
		return false
	}
	return true
}

func isWrongType(err error) bool {
	return err != nil && strings.HasPrefix(err.Error(), "WRONGTYPE")
}

func isNoScript(err error) bool {
	return err != nil && strings.HasPrefix(err.Error(), "NOSCRIPT")
}

// pipelineBenign reports whether a pipeline's first error is one the caller checks per command.
func pipelineBenign(err error) bool {
	return errors.Is(err, redis.Nil) || isWrongType(err)
}

// errorf wraps a Redis error for people: which phase failed, without any key or value.
func errorf(phase string, err error) error {
	return fmt.Errorf("%s: %w", phase, err)
}
