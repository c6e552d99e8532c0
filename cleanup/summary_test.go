package cleanup

import (
	"strconv"
	"strings"
	"testing"
)

func plain(n int64) string { return strconv.FormatInt(n, 10) }

func TestSummaryLines(t *testing.T) {
	for _, tt := range []struct {
		name string
		plan Plan
		want []string
	}{
		{
			name: "runbook procedure 1",
			plan: Plan{Filter: Filter{}, Found: 150, Matched: 45, Kept: 105},
			want: []string{"Found 150 total session keys", "45 sessions expired (will be deleted)", "105 sessions still valid (will be kept)"},
		},
		{
			// Found = expired + still valid + malformed: the malformed keys are not "still valid".
			name: "expired with malformed",
			plan: Plan{Filter: Filter{Expired: true}, Found: 155, Matched: 45, Kept: 110, Malformed: 5},
			want: []string{"Found 155 total session keys", "45 sessions expired (will be deleted)", "105 sessions still valid (will be kept)",
				"5 malformed sessions (kept; only --all or --session-id remove them)"},
		},
		{
			name: "runbook procedure 3",
			plan: Plan{Filter: Filter{AuthMethod: "basic_auth"}, Found: 500, Matched: 50, Kept: 450},
			want: []string{"Found 500 total session keys", "50 sessions with auth_method=basic_auth (will be deleted)", "450 sessions with other auth methods (will be kept)"},
		},
		{
			name: "auth method with malformed",
			plan: Plan{Filter: Filter{AuthMethod: "basic_auth"}, Found: 507, Matched: 50, Kept: 457, Malformed: 7},
			want: []string{"Found 507 total session keys", "50 sessions with auth_method=basic_auth (will be deleted)", "450 sessions with other auth methods (will be kept)",
				"7 malformed sessions (kept; only --all or --session-id remove them)"},
		},
		{
			name: "other scope, one of each",
			plan: Plan{Filter: Filter{UserID: "auth0|1", OlderThan: 1, OlderThanText: "7d"}, Found: 3, Matched: 1, Kept: 2, Malformed: 1},
			want: []string{"Found 3 total session keys", "1 session matching user_id=auth0|1,older_than=7d (will be deleted)", "1 session (will be kept)",
				"1 malformed session (kept; only --all or --session-id remove them)"},
		},
		{
			name: "one key",
			plan: Plan{Filter: Filter{Orphans: true}, Found: 1, Matched: 0, Kept: 1},
			want: []string{"Found 1 total session key", "0 sessions matching orphans (will be deleted)", "1 session (will be kept)"},
		},
		{
			name: "repair",
			plan: Plan{Filter: Filter{Orphans: true, RepairTTL: true}, Found: 150, Matched: 3, Repaired: 12, Kept: 147, Malformed: 2},
			want: []string{"Found 150 total session keys", "12 sessions will get a TTL (repaired)", "3 sessions expired (will be deleted)",
				"133 sessions (will be kept)", "2 malformed sessions (kept; only --all or --session-id remove them)"},
		},
		{
			name: "all",
			plan: Plan{Filter: Filter{All: true}, Found: 1000, Matched: 1000, Valid: 900},
			want: []string{"Found 1000 total session keys", "1000 sessions will be deleted (ALL)"},
		},
		{
			// --all deletes malformed keys too; they are among the deleted, and counted.
			name: "all with malformed",
			plan: Plan{Filter: Filter{All: true}, Found: 1003, Matched: 1003, Valid: 900, Malformed: 3},
			want: []string{"Found 1003 total session keys", "1003 sessions will be deleted (ALL)", "3 of them malformed (deleted too: --all selects by key)"},
		},
		{
			name: "session ids with malformed",
			plan: Plan{Filter: Filter{SessionIDs: []string{"a", "b"}}, Found: 2, Matched: 2, Malformed: 1},
			want: []string{"Found 2 total session keys", "2 sessions matching session_id=a|b (will be deleted)", "0 sessions (will be kept)",
				"1 of them malformed (deleted too: --session-id selects by key)"},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := SummaryLines(tt.plan, plain)
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("SummaryLines(%+v) =\n%s\nwant\n%s", tt.plan, strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

// The caller chooses how numbers look; the words stay the same.
func TestSummaryLinesNumberFormat(t *testing.T) {
	grouped := func(n int64) string { return "<" + plain(n) + ">" }
	got := SummaryLines(Plan{Filter: Filter{}, Found: 1500, Matched: 450, Kept: 1043, Malformed: 7}, grouped)
	want := []string{"Found <1500> total session keys", "<450> sessions expired (will be deleted)", "<1036> sessions still valid (will be kept)",
		"<7> malformed sessions (kept; only --all or --session-id remove them)"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("SummaryLines(grouped) =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// A repair's report says what its preview said would happen, in the past tense.
func TestRepairLines(t *testing.T) {
	for _, tt := range []struct {
		rep  Report
		want []string
	}{
		{Report{Repaired: 12, Deleted: 3}, []string{"12 sessions got a TTL (repaired)", "3 sessions expired (deleted)"}},
		{Report{Repaired: 1, Deleted: 0}, []string{"1 session got a TTL (repaired)", "0 sessions expired (deleted)"}},
	} {
		if got := RepairLines(tt.rep, plain); strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
			t.Errorf("RepairLines(%+v) = %q; want %q", tt.rep, got, tt.want)
		}
	}
}
