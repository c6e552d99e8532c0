package cleanup

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// SCAN MATCH with the pattern of a prefix returns exactly the keys that literally start with the
// prefix, whatever glob characters it holds. Asked of a real redis-server: its glob is the one
// that counts.
func TestMatchPatternIsLiteral(t *testing.T) {
	c := sharedStandalone(t).Client()
	t.Cleanup(func() { _ = c.Close() })
	ctx := context.Background()
	base := strings.TrimSuffix(uniquePrefix(t), "session:")
	tests := []struct {
		prefix string
		others []string // keys a glob reading of prefix would match
	}{
		{"a*b:", []string{"aXb:1", "ab:1", "aXYb:1"}},
		{"a?b:", []string{"aXb:1"}},
		{"a[12]:", []string{"a1:1", "a2:1"}},
		{"a[^x]:", []string{"ay:1"}},
		{`a\b:`, []string{"ab:1"}},
		{"a]b[:", []string{"a]b:1"}},
		{"*", []string{"x", "session:1"}},
	}
	for i, tt := range tests {
		t.Run(tt.prefix, func(t *testing.T) {
			ns := fmt.Sprintf("%sc%d:", base, i)
			want := []string{ns + tt.prefix + "1", ns + tt.prefix + "x:y"}
			for _, k := range append(slices.Clone(want), prefixed(ns, tt.others)...) {
				if err := c.Set(ctx, k, "v", 0).Err(); err != nil {
					t.Fatal(err)
				}
			}
			pattern := matchPattern(ns + tt.prefix)
			var got []string
			iter := c.Scan(ctx, 0, pattern, 1000).Iterator()
			for iter.Next(ctx) {
				got = append(got, iter.Val())
			}
			if err := iter.Err(); err != nil {
				t.Fatal(err)
			}
			slices.Sort(got)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("SCAN MATCH %q = %q; want %q", pattern, got, want)
			}
		})
	}
}

func prefixed(ns string, keys []string) []string {
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = ns + k
	}
	return out
}

// The engine's last line of defence: whatever a SCAN or a caller hands it, only keys that start
// with the prefix and are outside the excluded namespace (the bot's state) are read for
// deletion or deleted.
func TestIsSessionKey(t *testing.T) {
	plain := NewTarget(nil, "session:", "plain")
	wide := NewTarget(nil, "session", "wide") // overlaps the state namespace
	wide.Exclude(StateNamespace)
	tests := []struct {
		t    *Target
		key  string
		want bool
	}{
		{plain, "session:a1b2c3d4", true},
		{plain, "session:", true},
		{plain, "cb:session:a1b2c3d4", false},
		{plain, "Session:a1b2c3d4", false},
		{plain, "sessions:index", false},
		{plain, "session", false},
		{plain, "", false},
		{wide, "session:a1b2c3d4", true},
		{wide, "sessions:index", true},
		{wide, "sessionbot:lease:prod", false},
		{wide, "sessionbot:request:0123", false},
		{wide, "cb:payments", false},
	}
	for _, tt := range tests {
		if got := tt.t.IsSessionKey(tt.key); got != tt.want {
			t.Errorf("Target(prefix %q, exclude %q).IsSessionKey(%q) = %v; want %v", tt.t.prefix, tt.t.exclude, tt.key, got, tt.want)
		}
	}
	keys := []string{"session:1", "cb:1", "sessionbot:job:1", "sessions:2", "other"}
	if got, want := wide.sessionKeysOnly(slices.Clone(keys)), []string{"session:1", "sessions:2"}; !slices.Equal(got, want) {
		t.Errorf("sessionKeysOnly(%q) = %q; want %q", keys, got, want)
	}
	if got, want := plain.sessionKeysOnly(slices.Clone(keys)), []string{"session:1"}; !slices.Equal(got, want) {
		t.Errorf("sessionKeysOnly(%q) = %q; want %q", keys, got, want)
	}
}
