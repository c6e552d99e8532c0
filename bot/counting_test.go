package bot

import (
	"testing"

	"github.com/platform-team/sessionbot/cleanup"
)

// The preview posted to Slack counts found = expired + still valid + malformed: malformed keys
// are neither "still valid" nor "expired" (SPEC §11, Counting), and the audit line of the
// preview carries the same numbers.
func TestE2EPreviewCountsMalformedApart(t *testing.T) {
	e := newE2E(t, e2eOptions{seed: &cleanup.SeedSpec{Count: 155, Seed: 7, Expired: 45.0 / 155, Malformed: 5.0 / 155, Unrelated: 10}})
	if s := e.seeded; s.Expired != 45 || s.Valid != 105 || s.Malformed != 5 {
		t.Fatalf("seeded %d expired, %d valid, %d malformed; want 45, 105, 5", s.Expired, s.Valid, s.Malformed)
	}
	e.command(e2eAlice, "cleanup")
	m := e.awaitButton("run")
	wantContains(t, "preview", blocksText(string(m.Blocks), m.Text),
		"Found 155 total session keys\n45 sessions expired (will be deleted)\n105 sessions still valid (will be kept)\n"+
			"5 malformed sessions (kept; only --all or --session-id remove them)")
	scanned := e.audited(cleanup.EventSessionsScanned)
	if len(scanned) != 1 {
		t.Fatalf("Sessions Scanned lines = %q; want the preview's", scanned)
	}
	wantContains(t, "audit", scanned[0], "| Total: 155 | Matched: 45 | Kept: 110 | Valid: 0 | Malformed: 5")
}

// An --all preview counts malformed keys like every other preview (they are deleted with the
// rest, and said to be malformed), and its audit line carries the same number: the preview used
// to show "(malformed) 3" in its breakdown while the audit said Malformed: 0 (SPEC §11).
func TestE2EAllPreviewAndAuditAgreeOnMalformed(t *testing.T) {
	e := newE2E(t, e2eOptions{seed: &cleanup.SeedSpec{Count: 155, Seed: 7, Expired: 45.0 / 155, Malformed: 5.0 / 155, Unrelated: 10}})
	e.command(e2eAlice, `cleanup --all --reason "drill"`)
	m := e.awaitButton("approve")
	wantContains(t, "preview", blocksText(string(m.Blocks), m.Text),
		"Found 155 total session keys\n155 sessions will be deleted (ALL)\n5 of them malformed (deleted too: --all selects by key)")
	scanned := e.audited(cleanup.EventSessionsScanned)
	if len(scanned) != 1 {
		t.Fatalf("Sessions Scanned lines = %q; want the preview's", scanned)
	}
	wantContains(t, "audit", scanned[0], "| Total: 155 | Matched: 155 | Kept: 0 |", "| Malformed: 5")
}
