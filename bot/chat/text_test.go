package chat

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestTruncateAndSplitNeverBreakRunesOrEntities(t *testing.T) {
	for _, tt := range []struct {
		in    string
		limit int
	}{
		{"héllo wörld", 5},
		{"a&amp;b&lt;c", 4},
		{"🙂🙂🙂🙂", 5},
		{strings.Repeat("ж", 10), 3},
	} {
		got := Truncate(tt.in, tt.limit)
		if !utf8.ValidString(got) || TextLen(got) > tt.limit {
			t.Errorf("Truncate(%q, %d) = %q (%d units)", tt.in, tt.limit, got, TextLen(got))
		}
		if i := strings.LastIndexByte(got, '&'); i >= 0 && !strings.Contains(got[i:], ";") {
			t.Errorf("Truncate(%q, %d) = %q cuts an entity", tt.in, tt.limit, got)
		}
		for _, chunk := range SplitText(tt.in, tt.limit+2) {
			if !utf8.ValidString(chunk) || TextLen(chunk) > tt.limit+2 {
				t.Errorf("SplitText(%q, %d) chunk %q", tt.in, tt.limit+2, chunk)
			}
		}
	}
	text := strings.Repeat("word ", 2000)
	var joined strings.Builder
	for _, c := range SplitText(text, 3000) {
		joined.WriteString(c + " ")
	}
	if strings.Join(strings.Fields(joined.String()), " ") != strings.TrimSpace(text) {
		t.Error("SplitText lost or changed words")
	}
}
