package cleanup

import (
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestConditions walks every entry of the conditions table through each of its uses: the
// parser, Normalize, Scope, the fields it reads, ByKey, and Decide on a session that matches,
// one that does not, and a malformed one. An entry without a case here fails, and so does a case
// without an entry.
func TestConditions(t *testing.T) {
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	const every = FieldUserID | FieldUsername | FieldAuthMethod | FieldCreatedAt | FieldLastActivity | FieldExpiresAt
	valid := Session{UserID: "auth0|123", AuthMethod: "basic_auth", CreatedAt: now.Add(-8 * 24 * time.Hour),
		ExpiresAt: now.Add(time.Hour), Has: every}
	with := func(change func(*Session)) Session {
		s := valid
		change(&s)
		return s
	}
	cases := map[string]struct {
		args  []string // a command line giving the condition
		scope string   // Scope(), as in the audit log's Filters: field (SPEC §11)
		reads Fields   // needed()
		byKey bool     // ByKey() and selectsByKey()
		keys  []string // keyed conditions: the keys the engine reads under the prefix "session:"
		match probe    // Decide: Delete
		// miss is a key the condition rejects (Decide: Keep). A keyed condition has none: a key it
		// does not name is never read (keys).
		miss *probe
		// malformed is Decide's verdict for match's key holding an undecodable value, or one
		// without the fields the condition reads; malformedMiss, for miss's key.
		malformed, malformedMiss Verdict
	}{
		"expired": {
			args: []string{"--expired"}, scope: "expired_only", reads: FieldExpiresAt,
			match:     probe{with(func(s *Session) { s.ExpiresAt = now.Add(-time.Second) }), true, -2},
			miss:      &probe{with(func(s *Session) { s.ExpiresAt = now }), true, -2},
			malformed: Malformed, malformedMiss: Malformed,
		},
		"orphans": {
			args: []string{"--orphans"}, scope: "orphans",
			match:     probe{valid, true, -1},
			miss:      &probe{valid, true, time.Hour},
			malformed: Malformed, malformedMiss: Keep, // the TTL is checked first
		},
		"auth-method": {
			args: []string{"--auth-method", "basic_auth"}, scope: "auth_method=basic_auth", reads: FieldAuthMethod,
			match:     probe{valid, true, -2},
			miss:      &probe{with(func(s *Session) { s.AuthMethod = "basic_auth2" }), true, -2},
			malformed: Malformed, malformedMiss: Malformed,
		},
		"user-id": {
			args: []string{"--user-id=auth0|123"}, scope: "user_id=auth0|123", reads: FieldUserID,
			match:     probe{valid, true, -2},
			miss:      &probe{with(func(s *Session) { s.UserID = "auth0|1234" }), true, -2},
			malformed: Malformed, malformedMiss: Malformed,
		},
		"older-than": {
			args: []string{"--older-than", "7d"}, scope: "older_than=7d", reads: FieldCreatedAt,
			match:     probe{valid, true, -2},
			miss:      &probe{with(func(s *Session) { s.CreatedAt = now.Add(-7 * 24 * time.Hour) }), true, -2},
			malformed: Malformed, malformedMiss: Malformed,
		},
		"session-id": {
			args:  []string{"--session-id", "0123456789abcdef,fedcba9876543210", "--session-id=0123456789abcdef"},
			scope: "session_id=01234567…|fedcba98…", byKey: true,
			keys:      []string{"session:0123456789abcdef", "session:fedcba9876543210"},
			match:     probe{valid, true, -2},
			malformed: Delete,
		},
	}
	flagged := map[string]bool{}
	for i := range conditions {
		c := &conditions[i]
		flagged[c.flag] = true
		t.Run(c.flag, func(t *testing.T) {
			tc, ok := cases[c.flag]
			if !ok {
				t.Fatalf("condition --%s has no case in TestConditions", c.flag)
			}
			o, err := ParseArgs(tc.args, false)
			if err != nil {
				t.Fatalf("ParseArgs(%q, false) error = %v", tc.args, err)
			}
			f := o.Filter
			for j := range conditions {
				if got, want := conditions[j].set(f), i == j; got != want {
					t.Errorf("ParseArgs(%q): condition --%s set = %v; want %v", tc.args, conditions[j].flag, got, want)
				}
			}
			if f.All {
				t.Errorf("ParseArgs(%q): All = true; want false", tc.args)
			}
			if got := f.Normalize(); !reflect.DeepEqual(got, f) {
				t.Errorf("%+v.Normalize() = %+v; want it unchanged (any condition replaces the default)", f, got)
			}
			all := append([]string{"--all", "--reason", "r"}, tc.args...)
			if _, err := ParseArgs(all, false); err == nil || !strings.Contains(err.Error(), "cannot be combined with --"+c.flag) {
				t.Errorf("ParseArgs(%q) error = %v; want --all cannot be combined with --%s", all, err, c.flag)
			}

			if got := f.Scope(); got != tc.scope {
				t.Errorf("Scope() = %q; want %q", got, tc.scope)
			}
			if got := f.needed(); got != tc.reads || c.reads != tc.reads {
				t.Errorf("needed() = %b (entry reads %b); want %b", got, c.reads, tc.reads)
			}
			if f.ByKey() != tc.byKey || f.selectsByKey() != tc.byKey {
				t.Errorf("ByKey(), selectsByKey() = %v, %v; want %v", f.ByKey(), f.selectsByKey(), tc.byKey)
			}
			if c.keyed {
				if got := sessionKeys("session:", f.SessionIDs); !slices.Equal(got, tc.keys) {
					t.Errorf("keys read = %q; want %q", got, tc.keys)
				}
			}

			decide := func(what string, p probe, want Verdict) {
				t.Helper()
				if got := f.Decide(p.s, p.ok, p.pttl, now); got != want {
					t.Errorf("Decide(%s session, ok=%v, pttl=%v) = %v; want %v", what, p.ok, p.pttl, got, want)
				}
			}
			undecodable := func(p probe) probe { return probe{Session{}, false, p.pttl} }
			decide("matching", tc.match, Delete)
			decide("undecodable matching", undecodable(tc.match), tc.malformed)
			if c.reads != 0 {
				p := tc.match
				p.s.Has &^= c.reads
				decide("matching but fieldless", p, tc.malformed)
			}
			if tc.miss == nil {
				if !c.keyed {
					t.Errorf("case has no session that misses; only a keyed condition may do without one")
				}
				return
			}
			decide("missing", *tc.miss, Keep)
			decide("undecodable missing", undecodable(*tc.miss), tc.malformedMiss)
		})
	}
	for flag := range cases {
		if !flagged[flag] {
			t.Errorf("TestConditions has a case for --%s, which is not in the conditions table", flag)
		}
	}
}

// TestConditionsCoverFilter fails when Filter has a field that no condition covers: the parser,
// Decide and Scope would silently ignore it. All and OlderThanText are not conditions, nor is
// RepairTTL: it changes what happens to a match, not what matches (TestDecideCombined).
func TestConditionsCoverFilter(t *testing.T) {
	notConditions := map[string]bool{"All": true, "OlderThanText": true, "RepairTTL": true}
	covered := make([]int, len(conditions))
	typ := reflect.TypeFor[Filter]()
	for i := range typ.NumField() {
		name := typ.Field(i).Name
		if notConditions[name] {
			continue
		}
		var f Filter
		v := reflect.ValueOf(&f).Elem().Field(i)
		switch v.Kind() {
		case reflect.Bool:
			v.SetBool(true)
		case reflect.String:
			v.SetString("x")
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
			v.SetInt(int64(time.Hour))
		case reflect.Slice:
			v.Set(reflect.MakeSlice(v.Type(), 1, 1))
		default:
			t.Fatalf("Filter.%s is a %v; teach TestConditionsCoverFilter a non-zero value for it", name, v.Kind())
		}
		var set []string
		for j := range conditions {
			if conditions[j].set(f) {
				set = append(set, conditions[j].flag)
				covered[j]++
			}
		}
		if len(set) != 1 {
			t.Errorf("Filter{%s: %v} sets conditions %q; want exactly one entry of the conditions table", name, v, set)
		}
	}
	for j, n := range covered {
		if n != 1 {
			t.Errorf("condition --%s is set by %d Filter fields; want 1", conditions[j].flag, n)
		}
	}
}
