package cleanup

import (
	"testing"
	"time"
)

// probe is what Decide sees of one key.
type probe struct {
	s    Session
	ok   bool
	pttl time.Duration
}

// TestDecideCombined pins Decide's order where conditions meet: --all deletes everything;
// conditions decided by key or TTL are checked first and keep the key when they fail; then a
// value the filter cannot evaluate is Malformed unless the filter selects by key; then the
// content conditions.
func TestDecideCombined(t *testing.T) {
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	expired := probe{Session{AuthMethod: "basic_auth", ExpiresAt: now.Add(-time.Hour), Has: FieldAuthMethod | FieldExpiresAt}, true, -1}
	valid := probe{Session{AuthMethod: "basic_auth", ExpiresAt: now.Add(time.Hour), Has: FieldAuthMethod | FieldExpiresAt}, true, -1}
	noAuth := probe{Session{ExpiresAt: now.Add(-time.Hour), Has: FieldExpiresAt}, true, -1}
	bad := probe{Session{}, false, -1}
	withTTL := func(p probe) probe { p.pttl = time.Hour; return p }
	ids := []string{"a"}
	tests := []struct {
		name  string
		f     Filter
		p     probe
		want  Verdict
		byKey bool
	}{
		{"all deletes a malformed value", Filter{All: true}, withTTL(bad), Delete, true},
		{"session ids delete a malformed value", Filter{SessionIDs: ids}, bad, Delete, true},
		{"session ids and orphans delete a malformed orphan", Filter{SessionIDs: ids, Orphans: true}, bad, Delete, false},
		{"session ids and orphans keep a key with a TTL", Filter{SessionIDs: ids, Orphans: true}, withTTL(bad), Keep, false},
		{"session ids and expired: malformed", Filter{SessionIDs: ids, Expired: true}, bad, Malformed, false},
		{"session ids and expired keep a valid session", Filter{SessionIDs: ids, Expired: true}, valid, Keep, false},
		{"session ids and expired delete an expired session", Filter{SessionIDs: ids, Expired: true}, expired, Delete, false},
		{"orphans and expired keep a malformed key with a TTL", Filter{Orphans: true, Expired: true}, withTTL(bad), Keep, false},
		{"orphans and expired: malformed orphan", Filter{Orphans: true, Expired: true}, bad, Malformed, false},
		{"orphans and expired delete an expired orphan", Filter{Orphans: true, Expired: true}, expired, Delete, false},
		{"orphans and expired keep an expired key with a TTL", Filter{Orphans: true, Expired: true}, withTTL(expired), Keep, false},
		{"expired and auth method: missing auth_method", Filter{Expired: true, AuthMethod: "basic_auth"}, noAuth, Malformed, false},
		{"expired and auth method keep a valid session", Filter{Expired: true, AuthMethod: "basic_auth"}, valid, Keep, false},
		{"expired and auth method delete an expired one", Filter{Expired: true, AuthMethod: "basic_auth"}, expired, Delete, false},
		{"orphans alone decide no content", Filter{Orphans: true}, noAuth, Delete, false},
		{"repair gives a valid orphan its TTL", Filter{Orphans: true, RepairTTL: true}, valid, Repair, false},
		{"repair deletes an expired orphan", Filter{Orphans: true, RepairTTL: true}, expired, Delete, false},
		{"repair keeps a valid key with a TTL", Filter{Orphans: true, RepairTTL: true}, withTTL(valid), Keep, false},
		{"repair: orphan without expires_at is malformed", Filter{Orphans: true, RepairTTL: true},
			probe{Session{AuthMethod: "basic_auth", Has: FieldAuthMethod}, true, -1}, Malformed, false},
		{"repair: undecodable orphan is malformed", Filter{Orphans: true, RepairTTL: true}, bad, Malformed, false},
		{"repair with auth method keeps another method", Filter{Orphans: true, RepairTTL: true, AuthMethod: "oauth2"}, valid, Keep, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.f.Decide(tt.p.s, tt.p.ok, tt.p.pttl, now); got != tt.want {
				t.Errorf("%+v.Decide(%+v, %v, %v) = %v; want %v", tt.f, tt.p.s, tt.p.ok, tt.p.pttl, got, tt.want)
			}
			if got := tt.f.ByKey(); got != tt.byKey {
				t.Errorf("%+v.ByKey() = %v; want %v", tt.f, got, tt.byKey)
			}
		})
	}
}

// TestScopeCombined checks how Scope joins several conditions and spells the default.
func TestScopeCombined(t *testing.T) {
	tests := []struct {
		f    Filter
		want string
	}{
		{Filter{}, "expired_only"},
		{Filter{All: true}, "all"},
		{Filter{Expired: true, AuthMethod: "basic_auth"}, "expired,auth_method=basic_auth"},
		{Filter{OlderThan: 7 * 24 * time.Hour}, "older_than=168h0m0s"},
		{Filter{SessionIDs: []string{"0123456789", "b"}, OlderThan: time.Hour, OlderThanText: "1h", UserID: "u",
			AuthMethod: "m", Orphans: true, Expired: true},
			"expired,orphans,auth_method=m,user_id=u,older_than=1h,session_id=01234567…|b"},
	}
	for _, tt := range tests {
		if got := tt.f.Scope(); got != tt.want {
			t.Errorf("%+v.Scope() = %q; want %q", tt.f, got, tt.want)
		}
	}
}
