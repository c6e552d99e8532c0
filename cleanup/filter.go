package cleanup

import (
	"slices"
	"strings"
	"time"
)

// Filter selects sessions. Conditions combine with AND. The zero Filter (no condition set) means
// "expired", the runbook's Procedure 1; Normalize makes that explicit. Every condition field has
// its entry in the conditions table (conditions.go), which says how it is parsed, spelled and
// decided.
type Filter struct {
	Expired    bool          // expires_at < now
	Orphans    bool          // key has no TTL (PTTL = -1)
	AuthMethod string        // auth_method == AuthMethod, exactly
	UserID     string        // user_id == UserID, exactly
	SessionIDs []string      // keys prefix+id, exactly; selects by key, no SCAN
	OlderThan  time.Duration // created_at < now - OlderThan; a condition only when > 0
	// OlderThanText is OlderThan as the user typed it ("7d"), for scopes and audit lines.
	OlderThanText string
	All           bool // every session key (mass logout); combines with nothing else
	// RepairTTL (--repair-ttl, only with Orphans) is not a condition: it changes what happens to
	// the orphans that match, not which keys match. A matching orphan whose expires_at is still
	// ahead gets its expiry from it (Repair) instead of being deleted; only those already past
	// expires_at are deleted; one without a well-formed expires_at is Malformed (kept).
	RepairTTL bool
}

// Normalize returns f with the implied default made explicit: no condition means Expired.
func (f Filter) Normalize() Filter {
	if !f.All && f.summary().n == 0 {
		f.Expired = true
	}
	return f
}

// Equal reports whether f and g select the same sessions.
func (f Filter) Equal(g Filter) bool {
	return f.Expired == g.Expired && f.Orphans == g.Orphans && f.AuthMethod == g.AuthMethod &&
		f.UserID == g.UserID && slices.Equal(f.SessionIDs, g.SessionIDs) && f.OlderThan == g.OlderThan && f.All == g.All && f.RepairTTL == g.RepairTTL
}

// ByKey reports whether f selects by key alone (no value read needed to decide).
func (f Filter) ByKey() bool {
	u := f.summary()
	return f.All || (u.keyed > 0 && u.keyed == u.n)
}

// selectsByKey reports whether f deletes a key whatever its value (--all, or --session-id
// without a content condition): only these remove malformed values.
func (f Filter) selectsByKey() bool { return f.All || f.summary().selectsByKey() }

// needed returns the session fields f reads.
func (f Filter) needed() Fields { return f.summary().reads }

// summary sums up the conditions a filter sets (All aside), and the fields a repair reads.
type summary struct {
	n     int    // how many
	keyed int    // how many of them are keyed
	reads Fields // the session fields they read
}

func (f Filter) summary() summary {
	var u summary
	for i := range conditions {
		if c := &conditions[i]; c.set(f) {
			u.n++
			if c.keyed {
				u.keyed++
			}
			u.reads |= c.reads
		}
	}
	if f.RepairTTL {
		u.reads |= FieldExpiresAt // the expiry a repair sets
	}
	return u
}

// selectsByKey reports whether the conditions name keys and read no field.
func (u summary) selectsByKey() bool { return u.keyed > 0 && u.reads == 0 }

// Verdict is the decision for one key.
type Verdict uint8

const (
	Keep      Verdict = iota // does not match
	Delete                   // matches
	Malformed                // content filter could not be evaluated: kept, counted apart
	Repair                   // matches, still valid, and RepairTTL: gets EXPIREAT expires_at, kept
)

// Decide applies f to one session. s is the decoded value (ok=false when the value is not a JSON
// object or not a string at all); pttl is the key's PTTL (-1: no TTL). Conditions decided by key
// or TTL come first: a key that fails one is kept, whatever its value. Then a value that f cannot
// evaluate (not decodable, or without a field f reads) is Malformed, unless f selects by key
// (All, SessionIDs without a content condition), which matches malformed values too; every other
// filter (content conditions, and --orphans) never does. Then the content conditions. Last, with
// RepairTTL a match whose expires_at has not passed is Repair: nobody is logged out.
func (f Filter) Decide(s Session, ok bool, pttl time.Duration, now time.Time) Verdict {
	if f.All {
		return Delete
	}
	u := f.summary()
	for i := range conditions {
		if c := &conditions[i]; c.reads == 0 && c.set(f) && !c.match(f, s, pttl, now) {
			return Keep
		}
	}
	if !u.selectsByKey() && (!ok || !s.Has.Contains(u.reads)) {
		return Malformed
	}
	for i := range conditions {
		if c := &conditions[i]; c.reads != 0 && c.set(f) && !c.match(f, s, pttl, now) {
			return Keep
		}
	}
	if f.RepairTTL && !s.ExpiresAt.Before(now) {
		return Repair
	}
	return Delete
}

// ShortID shortens a session id for display: a session id may itself be a bearer credential, so
// only its first 8 characters are ever shown, logged or audited.
func ShortID(id string) string {
	r := []rune(id)
	if len(r) <= 8 {
		return id
	}
	return string(r[:8]) + "…"
}

// Scope spells the filter the way the audit log's Filters: field does: expired_only,
// auth_method=basic_auth, user_id=auth0|123, orphans, older_than=7d, session_id=…, all; several
// conditions are joined with ",".
func (f Filter) Scope() string {
	f = f.Normalize()
	if f.All {
		return "all"
	}
	var (
		parts []string
		last  *condition
	)
	for i := range conditions {
		if c := &conditions[i]; c.set(f) {
			parts = append(parts, c.scope(f))
			last = c
		}
	}
	if len(parts) == 1 && last.alone != "" {
		return last.alone
	}
	return strings.Join(parts, ",")
}
