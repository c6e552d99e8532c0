package cleanup

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// benchSession is a runbook-schema OAuth2 session of the size `make bench` seeds (~530 bytes).
const benchSession = `{"user_id":"auth0|5f8d0d55b54764421b7156c9","username":"john.doe@example.com",` +
	`"auth_method":"oauth2","created_at":"2025-11-26T10:00:00Z","last_activity":"2025-11-26T10:30:00Z",` +
	`"expires_at":"2025-11-26T11:00:00Z","access_token":"eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.` +
	`eyJzdWIiOiJhdXRoMHw1ZjhkMGQ1NWI1NDc2NDQyMWI3MTU2YzkiLCJleHAiOjE3NjQxNTQ4MDB9.` +
	`c2lnbmF0dXJlLXBsYWNlaG9sZGVy","refresh_token":"RT_8f14e45fceea167a",` +
	`"token_expires_at":"2025-11-26T11:00:00Z","cert_cn":null,"cert_fingerprint":null,"cert_not_after":null,` +
	`"crl_status":"valid"}`

func mustTime(t *testing.T, s string) time.Time {
	t.Helper()
	tm, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatal(err)
	}
	return tm
}

func TestDecodeSession(t *testing.T) {
	t0 := mustTime(t, "2025-11-26T10:00:00Z")
	t1 := mustTime(t, "2025-11-26T10:30:00Z")
	t2 := mustTime(t, "2025-11-26T11:00:00Z")
	all := FieldUserID | FieldUsername | FieldAuthMethod | FieldCreatedAt | FieldLastActivity | FieldExpiresAt
	full := Session{UserID: "auth0|5f8d0d55b54764421b7156c9", Username: "john.doe@example.com", AuthMethod: "oauth2",
		CreatedAt: t0, LastActivity: t1, ExpiresAt: t2, Has: all}
	tests := []struct {
		name string
		in   string
		want Session
	}{
		{"runbook session", benchSession, full},
		{"empty object", `{}`, Session{}},
		{"whitespace everywhere", " \t\r\n{ \"user_id\" :\n\"u\" ,\t\"expires_at\"\r: \"2025-11-26T11:00:00Z\" } \n",
			Session{UserID: "u", ExpiresAt: t2, Has: FieldUserID | FieldExpiresAt}},
		{"offset and fraction", `{"created_at":"2025-11-26T12:00:00.123456789+02:00"}`,
			Session{CreatedAt: t0.Add(123456789), Has: FieldCreatedAt}},
		{"python isoformat", `{"created_at":"2025-11-26T10:00:00.000000+00:00"}`, Session{CreatedAt: t0, Has: FieldCreatedAt}},
		{"escapes", `{"username":"a\"b\\c\/d\b\f\n\r\t\u00e9\u20AC\ud83d\ude00"}`,
			Session{Username: "a\"b\\c/d\b\f\n\r\té€😀", Has: FieldUsername}},
		{"lone surrogates", `{"user_id":"\ud83d|\ude00|\ud83d\u0041"}`, Session{UserID: "\ufffd|\ufffd|\ufffdA", Has: FieldUserID}},
		{"raw unicode", `{"user_id":"müller|用户|😀"}`, Session{UserID: "müller|用户|😀", Has: FieldUserID}},
		{"invalid UTF-8 becomes U+FFFD", "{\"user_id\":\"a\xffb\xed\xa0\x80\"}", Session{UserID: "a\ufffdb\ufffd\ufffd\ufffd", Has: FieldUserID}},
		{"escaped key", `{"user\u005fid":"u","auth_metho\u0064":"basic_auth"}`,
			Session{UserID: "u", AuthMethod: "basic_auth", Has: FieldUserID | FieldAuthMethod}},
		{"escaped time", `{"expires_at":"2025-11-26T11:00:00\u005a"}`, Session{ExpiresAt: t2, Has: FieldExpiresAt}},
		{"keys are case-sensitive", `{"User_ID":"u","USERNAME":"n"}`, Session{}},
		{"empty string is present", `{"user_id":""}`, Session{Has: FieldUserID}},
		{"wrong types", `{"user_id":123,"username":null,"auth_method":["oauth2"],"created_at":1764151200,` +
			`"last_activity":{"t":"2025-11-26T10:30:00Z"},"expires_at":true}`, Session{}},
		{"bad times", `{"created_at":"2025-11-26","last_activity":"2025-11-26T10:30:00","expires_at":"2025-13-01T00:00:00Z"}`,
			Session{}},
		{"python naive time", `{"expires_at":"2025-11-26 11:00:00"}`, Session{}},
		{"duplicate keys: last wins", `{"user_id":"a","user_id":"b"}`, Session{UserID: "b", Has: FieldUserID}},
		{"duplicate keys: wrong type last", `{"user_id":"a","expires_at":"2025-11-26T11:00:00Z","user_id":1,"expires_at":"x"}`,
			Session{}},
		{"duplicate keys: good time last", `{"expires_at":"bad","expires_at":"2025-11-26T11:00:00Z"}`,
			Session{ExpiresAt: t2, Has: FieldExpiresAt}},
		{"nested values skipped", `{"meta":{"user_id":"inner","a":[1,-2.5e+3,true,false,null,{"b":[]},[[]],"s"]},` +
			`"list":[],"obj":{},"n":-0.0E-0,"user_id":"outer"}`, Session{UserID: "outer", Has: FieldUserID}},
		{"tokens of every type", `{"access_token":{"jwt":"eyJ"},"refresh_token":["RT"],"cert_fingerprint":12,"auth_method":"mtls_fallback"}`,
			Session{AuthMethod: "mtls_fallback", Has: FieldAuthMethod}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := DecodeSession([]byte(tt.in))
			if !ok || !sameSession(got, tt.want) {
				t.Errorf("DecodeSession(%q) = %+v, %v; want %+v, true", tt.in, got, ok, tt.want)
			}
		})
	}
}

func sameSession(a, b Session) bool {
	return a.UserID == b.UserID && a.Username == b.Username && a.AuthMethod == b.AuthMethod &&
		a.CreatedAt.Equal(b.CreatedAt) && a.LastActivity.Equal(b.LastActivity) && a.ExpiresAt.Equal(b.ExpiresAt) &&
		a.Has == b.Has
}

func TestDecodeSessionMalformed(t *testing.T) {
	tests := []struct {
		name, in string
	}{
		{"empty", ``},
		{"whitespace", " \n"},
		{"null", `null`},
		{"string", `"session"`},
		{"number", `42`},
		{"array", `[{"user_id":"u"}]`},
		{"not JSON", `user_id=u`},
		{"python repr", `{'user_id': 'u'}`},
		{"byte order mark", "\ufeff{}"},
		{"unterminated object", `{"user_id":"u"`},
		{"unterminated string", `{"user_id":"u}`},
		{"unterminated nested", `{"a":[1,{"b":2}`},
		{"trailing garbage", `{"user_id":"u"}x`},
		{"two objects", `{}{}`},
		{"trailing comma", `{"user_id":"u",}`},
		{"trailing comma in array", `{"a":[1,]}`},
		{"leading comma", `{,"a":1}`},
		{"missing colon", `{"user_id" "u"}`},
		{"missing value", `{"user_id":}`},
		{"missing comma", `{"a":1 "b":2}`},
		{"unquoted key", `{user_id:"u"}`},
		{"numeric key", `{1:"u"}`},
		{"mismatched brackets", `{"a":[1}`},
		{"mismatched braces", `{"a":{"b":1]}`},
		{"control character in string", "{\"user_id\":\"a\tb\"}"},
		{"newline in key", "{\"a\nb\":1}"},
		{"bad escape", `{"user_id":"\x41"}`},
		{"short unicode escape", `{"user_id":"\u12"}`},
		{"bad hex", `{"user_id":"\u12g4"}`},
		{"escape at end", `{"user_id":"\`},
		{"leading zero", `{"a":01}`},
		{"bare minus", `{"a":-}`},
		{"plus sign", `{"a":+1}`},
		{"bare dot", `{"a":1.}`},
		{"empty exponent", `{"a":1e}`},
		{"hex number", `{"a":0x10}`},
		{"NaN", `{"a":NaN}`},
		{"bad literal", `{"a":tru}`},
		{"literal with suffix", `{"a":nullx}`},
		{"capital literal", `{"a":True}`},
		{"single quotes", `{"a":'b'}`},
		{"comment", `{"a":1 /* c */}`},
		{"too deep", `{"a":` + strings.Repeat("[", maxDepth) + strings.Repeat("]", maxDepth) + `}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if json.Valid([]byte(tt.in)) && strings.HasPrefix(strings.TrimSpace(tt.in), "{") {
				t.Fatalf("bad test: %q is a valid JSON object", tt.in)
			}
			if got, ok := DecodeSession([]byte(tt.in)); ok || got != (Session{}) {
				t.Errorf("DecodeSession(%.60q) = %+v, %v; want zero, false", tt.in, got, ok)
			}
		})
	}
	deepest := `{"a":` + strings.Repeat("[", maxDepth-1) + strings.Repeat("]", maxDepth-1) + `}`
	if _, ok := DecodeSession([]byte(deepest)); !ok {
		t.Errorf("DecodeSession(nesting depth %d) = false; want true (encoding/json's limit)", maxDepth)
	}
}

func TestDecodeSessionAllocs(t *testing.T) {
	raw := []byte(benchSession)
	// user_id and username; "oauth2" is a constant.
	if n := testing.AllocsPerRun(100, func() { DecodeSession(raw) }); n > 2 {
		t.Errorf("DecodeSession(runbook session) allocates %v times; want ≤ 2 (the extracted strings)", n)
	}
}

func BenchmarkDecodeSession(b *testing.B) {
	raw := []byte(benchSession)
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := DecodeSession(raw); !ok {
			b.Fatal("DecodeSession(benchSession) = false")
		}
	}
}

// FuzzDecodeSession checks DecodeSession against encoding/json: the same values are accepted,
// and every extracted field is what encoding/json sees.
func FuzzDecodeSession(f *testing.F) {
	for _, s := range []string{benchSession, `{}`, `{"user_id":1}`, `[]`, `{"a":[{}]}`} {
		f.Add([]byte(s))
	}
	strFields := []struct {
		key   string
		field Fields
		get   func(Session) string
	}{
		{"user_id", FieldUserID, func(s Session) string { return s.UserID }},
		{"username", FieldUsername, func(s Session) string { return s.Username }},
		{"auth_method", FieldAuthMethod, func(s Session) string { return s.AuthMethod }},
	}
	timeFields := []struct {
		key   string
		field Fields
		get   func(Session) time.Time
	}{
		{"created_at", FieldCreatedAt, func(s Session) time.Time { return s.CreatedAt }},
		{"last_activity", FieldLastActivity, func(s Session) time.Time { return s.LastActivity }},
		{"expires_at", FieldExpiresAt, func(s Session) time.Time { return s.ExpiresAt }},
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		s, ok := DecodeSession(raw)
		var m map[string]any
		wantOK := json.Valid(raw) && json.Unmarshal(raw, &m) == nil && m != nil
		if ok != wantOK {
			t.Fatalf("DecodeSession(%q) ok = %v; encoding/json says %v", raw, ok, wantOK)
		}
		if !ok {
			return
		}
		for _, fd := range strFields {
			v, isString := m[fd.key].(string)
			if got := s.Has.Contains(fd.field); got != isString || fd.get(s) != v {
				t.Errorf("DecodeSession(%q): %s = %q (has %v); encoding/json: %q (string %v)", raw, fd.key, fd.get(s), got, v, isString)
			}
		}
		for _, fd := range timeFields {
			var want time.Time
			isTime := false
			if v, isString := m[fd.key].(string); isString {
				if tm, err := time.Parse(time.RFC3339Nano, v); err == nil {
					want, isTime = tm, true
				}
			}
			if got := s.Has.Contains(fd.field); got != isTime || !fd.get(s).Equal(want) {
				t.Errorf("DecodeSession(%q): %s = %v (has %v); encoding/json + time.Parse: %v (time %v)", raw, fd.key, fd.get(s), got, want, isTime)
			}
		}
	})
}

// BenchmarkDecodeSessionStdlib is the encoding/json baseline DecodeSession replaces.
func BenchmarkDecodeSessionStdlib(b *testing.B) {
	raw := []byte(benchSession)
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		var v struct {
			UserID       string    `json:"user_id"`
			Username     string    `json:"username"`
			AuthMethod   string    `json:"auth_method"`
			CreatedAt    time.Time `json:"created_at"`
			LastActivity time.Time `json:"last_activity"`
			ExpiresAt    time.Time `json:"expires_at"`
		}
		if err := json.Unmarshal(raw, &v); err != nil {
			b.Fatal(err)
		}
	}
}
