package cleanup

import (
	"strings"
	"time"
)

// A condition is one filter flag and everything the code knows about it. The parser (ParseArgs),
// Normalize, ByKey, the fields a decision reads, Decide and Scope all walk the conditions table,
// so a new condition is one Filter field and one entry here; TestConditions walks every entry
// through each of those uses. --all is not a condition: it combines with nothing and selects
// every key, and each of those functions handles it on its own.
type condition struct {
	flag string // the command-line flag without its dashes
	kind int    // what the flag's value is: flagBool, flagString, flagMulti or flagAge

	// reads is the set of session fields match reads. 0 means the condition is decided by the key
	// or its TTL, before the value is looked at: a key that fails it is kept whatever its value.
	reads Fields
	// keyed marks a condition that names the keys themselves: the engine reads exactly those
	// keys (no SCAN), and without a content condition they are deleted whatever their values.
	// A condition with reads == 0 that is not keyed is decided by the key's TTL.
	keyed bool

	set func(f Filter) bool // whether f has the condition
	// record stores the flag's value ("" for a flagBool) in f; its errors are *UsageError.
	record func(f *Filter, flag, value string) error
	// match is the predicate. pttl is the key's PTTL: -1 without a TTL, -2 when the engine did
	// not read it (it reads it whenever Orphans is set).
	match func(f Filter, s Session, pttl time.Duration, now time.Time) bool
	scope func(f Filter) string // the condition in a scope and in the audit log's Filters: field
	alone string                // if not "", the scope when no other condition is set
}

// conditions is every filter condition, in the order Scope spells them (SPEC §11).
var conditions = []condition{
	{
		flag: "expired", kind: flagBool, reads: FieldExpiresAt,
		set:    func(f Filter) bool { return f.Expired },
		record: func(f *Filter, _, _ string) error { f.Expired = true; return nil },
		match: func(_ Filter, s Session, _ time.Duration, now time.Time) bool {
			return s.ExpiresAt.Before(now)
		},
		scope: func(Filter) string { return "expired" },
		alone: "expired_only",
	},
	{
		flag: "orphans", kind: flagBool,
		set:    func(f Filter) bool { return f.Orphans },
		record: func(f *Filter, _, _ string) error { f.Orphans = true; return nil },
		match:  func(_ Filter, _ Session, pttl time.Duration, _ time.Time) bool { return pttl == -1 },
		scope:  func(Filter) string { return "orphans" },
	},
	{
		flag: "auth-method", kind: flagString, reads: FieldAuthMethod,
		set:    func(f Filter) bool { return f.AuthMethod != "" },
		record: func(f *Filter, _, value string) error { f.AuthMethod = value; return nil },
		match: func(f Filter, s Session, _ time.Duration, _ time.Time) bool {
			return s.AuthMethod == f.AuthMethod
		},
		scope: func(f Filter) string { return "auth_method=" + f.AuthMethod },
	},
	{
		flag: "user-id", kind: flagString, reads: FieldUserID,
		set:    func(f Filter) bool { return f.UserID != "" },
		record: func(f *Filter, _, value string) error { f.UserID = value; return nil },
		match: func(f Filter, s Session, _ time.Duration, _ time.Time) bool {
			return s.UserID == f.UserID
		},
		scope: func(f Filter) string { return "user_id=" + f.UserID },
	},
	{
		flag: "older-than", kind: flagAge, reads: FieldCreatedAt,
		set: func(f Filter) bool { return f.OlderThan > 0 },
		record: func(f *Filter, flag, value string) error {
			d, err := parseDuration(flag, value, false)
			if err != nil {
				return err
			}
			f.OlderThan, f.OlderThanText = d, value
			return nil
		},
		match: func(f Filter, s Session, _ time.Duration, now time.Time) bool {
			return s.CreatedAt.Before(now.Add(-f.OlderThan))
		},
		scope: func(f Filter) string {
			t := f.OlderThanText
			if t == "" {
				t = f.OlderThan.String()
			}
			return "older_than=" + t
		},
	},
	{
		flag: "session-id", kind: flagMulti, keyed: true,
		set: func(f Filter) bool { return len(f.SessionIDs) > 0 },
		record: func(f *Filter, flag, value string) error {
			for id := range strings.SplitSeq(value, ",") {
				if id == "" {
					return usagef("%s has an empty id in %s", flag, quote(value))
				}
				if !contains(f.SessionIDs, id) {
					f.SessionIDs = append(f.SessionIDs, id)
				}
			}
			return nil
		},
		// The engine reads only the listed keys (sessionKeys), so every key decided is one of them.
		match: func(Filter, Session, time.Duration, time.Time) bool { return true },
		scope: func(f Filter) string {
			ids := make([]string, len(f.SessionIDs))
			for i, id := range f.SessionIDs {
				ids[i] = ShortID(id)
			}
			return "session_id=" + strings.Join(ids, "|")
		},
	},
}
