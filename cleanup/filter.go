package cleanup

import (
	"slices"
	"strings"
	"time"
)

// Filter selects sessions. Conditions combine with AND. The zero Filter (no condition set) means
// "expired", the runbook's Procedure 1; Normalize makes that explicit.
type Filter struct {
	Expired    bool          // expires_at < now
	Orphans    bool          // key has no TTL (PTTL = -1)
	AuthMethod string        // auth_method == AuthMethod, exactly
	UserID     string        // user_id == UserID, exactly
	SessionIDs []string      // keys prefix+id, exactly; selects by key, no SCAN
	OlderThan  time.Duration // created_at < now - OlderThan
	// OlderThanText is OlderThan as the user typed it ("7d"), for scopes and audit lines.
	OlderThanText string
	All           bool // every session key (mass logout); combines with nothing else
}

// Normalize returns f with the implied default made explicit: no condition means Expired.
func (f Filter) Normalize() Filter {
	if !f.Expired && !f.Orphans && f.AuthMethod == "" && f.UserID == "" &&
		len(f.SessionIDs) == 0 && f.OlderThan == 0 && !f.All {
		f.Expired = true
	}
	return f
}

// Equal reports whether f and g select the same sessions.
func (f Filter) Equal(g Filter) bool {
	return f.Expired == g.Expired && f.Orphans == g.Orphans && f.AuthMethod == g.AuthMethod &&
		f.UserID == g.UserID && slices.Equal(f.SessionIDs, g.SessionIDs) && f.OlderThan == g.OlderThan && f.All == g.All
}

// ByKey reports whether f selects by key alone (no value read needed to decide).
func (f Filter) ByKey() bool {
	return f.All || (len(f.SessionIDs) > 0 && !f.needsValue() && !f.Orphans)
}

// needsValue reports whether deciding needs the session's JSON value.
func (f Filter) needsValue() bool {
	return f.Expired || f.AuthMethod != "" || f.UserID != "" || f.OlderThan > 0
}

// needed returns the session fields f reads.
func (f Filter) needed() Fields {
	var n Fields
	if f.Expired {
		n |= FieldExpiresAt
	}
	if f.AuthMethod != "" {
		n |= FieldAuthMethod
	}
	if f.UserID != "" {
		n |= FieldUserID
	}
	if f.OlderThan > 0 {
		n |= FieldCreatedAt
	}
	return n
}

// Verdict is the decision for one key.
type Verdict uint8

const (
	Keep      Verdict = iota // does not match
	Delete                   // matches
	Malformed                // content filter could not be evaluated: kept, counted apart
)

// selectsByKey reports whether f deletes a key whatever its value (--all, or --session-id
// without a content condition): only these remove malformed values.
func (f Filter) selectsByKey() bool {
	return f.All || (len(f.SessionIDs) > 0 && !f.needsValue())
}

// Decide applies f to one session. s is the decoded value (ok=false when the value is not a JSON
// object or not a string at all); pttl is the key's PTTL (-1: no TTL). Selections by key (All,
// SessionIDs) match malformed values too; every other filter (content conditions, and
// --orphans) never does.
func (f Filter) Decide(s Session, ok bool, pttl time.Duration, now time.Time) Verdict {
	if f.All {
		return Delete
	}
	if f.Orphans && pttl != -1 {
		return Keep
	}
	if !f.selectsByKey() && (!ok || !s.Has.Contains(f.needed())) {
		return Malformed
	}
	if f.needsValue() {
		if f.Expired && !s.ExpiresAt.Before(now) {
			return Keep
		}
		if f.AuthMethod != "" && s.AuthMethod != f.AuthMethod {
			return Keep
		}
		if f.UserID != "" && s.UserID != f.UserID {
			return Keep
		}
		if f.OlderThan > 0 && !s.CreatedAt.Before(now.Add(-f.OlderThan)) {
			return Keep
		}
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
// auth_method=basic_auth, user_id=auth0|123, orphans, older_than=7d, session_id=…, all.
func (f Filter) Scope() string {
	f = f.Normalize()
	if f.All {
		return "all"
	}
	var parts []string
	if f.Expired {
		if f.AuthMethod == "" && f.UserID == "" && !f.Orphans && f.OlderThan == 0 && len(f.SessionIDs) == 0 {
			return "expired_only"
		}
		parts = append(parts, "expired")
	}
	if f.Orphans {
		parts = append(parts, "orphans")
	}
	if f.AuthMethod != "" {
		parts = append(parts, "auth_method="+f.AuthMethod)
	}
	if f.UserID != "" {
		parts = append(parts, "user_id="+f.UserID)
	}
	if f.OlderThan > 0 {
		t := f.OlderThanText
		if t == "" {
			t = f.OlderThan.String()
		}
		parts = append(parts, "older_than="+t)
	}
	if len(f.SessionIDs) > 0 {
		ids := make([]string, len(f.SessionIDs))
		for i, id := range f.SessionIDs {
			ids[i] = ShortID(id)
		}
		parts = append(parts, "session_id="+strings.Join(ids, "|"))
	}
	return strings.Join(parts, ",")
}
