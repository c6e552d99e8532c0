package cleanup

import "fmt"

// SummaryLines are the runbook's dry-run summary of p, worded as SPEC §5 and §11 fix them
// ("Found 150 total session keys" / "45 sessions expired (will be deleted)" / "105 sessions
// still valid (will be kept)"). They are plain text: the bot may set them in a code block or
// add emphasis around them, never change a word. num formats a count (the bot adds thousands
// separators; the command line prints plain numbers that operators compare with wc -l).
//
// The lines add up to Found. Malformed keys have a line of their own: a content filter cannot
// evaluate them, so they are kept and left out of the "will be kept" line (which counts only
// sessions the filter decided on: for the default scope, decodable sessions that have not
// expired; for a repair, those that are neither repaired nor deleted); --all and --session-id
// select by key, so they delete malformed keys with the rest and the malformed line says how
// many of those are malformed.
func SummaryLines(p Plan, num func(int64) string) []string {
	f := p.Filter.Normalize()
	// count spells n things: "1 session", "45 sessions".
	count := func(n int64, thing string) string {
		if n == 1 {
			return num(n) + " " + thing
		}
		return num(n) + " " + thing + "s"
	}
	kept := p.Kept
	if !f.ByKey() {
		kept -= p.Malformed
	}

	lines := []string{"Found " + count(p.Found, "total session key")}
	switch {
	case f.All:
		lines = append(lines, count(p.Matched, "session")+" will be deleted (ALL)")
	case f.RepairTTL:
		lines = append(lines,
			count(p.Repaired, "session")+" will get a TTL (repaired)",
			count(p.Matched, "session")+" expired (will be deleted)",
			count(kept-p.Repaired, "session")+" (will be kept)")
	case f.Scope() == "expired_only":
		lines = append(lines,
			count(p.Matched, "session")+" expired (will be deleted)",
			count(kept, "session")+" still valid (will be kept)")
	case f.Scope() == "auth_method="+f.AuthMethod:
		lines = append(lines,
			count(p.Matched, "session")+" with auth_method="+f.AuthMethod+" (will be deleted)",
			count(kept, "session")+" with other auth methods (will be kept)")
	default:
		lines = append(lines,
			count(p.Matched, "session")+" matching "+f.Scope()+" (will be deleted)",
			count(kept, "session")+" (will be kept)")
	}

	switch {
	case p.Malformed == 0:
	case f.ByKey():
		flag := "--session-id"
		if f.All {
			flag = "--all"
		}
		lines = append(lines, fmt.Sprintf("%s of them malformed (deleted too: %s selects by key)", num(p.Malformed), flag))
	default:
		lines = append(lines, count(p.Malformed, "malformed session")+" (kept; only --all or --session-id remove them)")
	}
	return lines
}

// RepairLines are what a repair (--orphans --repair-ttl) did, worded as its preview's lines in
// the past tense ("12 sessions got a TTL (repaired)" / "3 sessions expired (deleted)"), for the
// report of the run in chat and on the command line.
func RepairLines(r Report, num func(int64) string) []string {
	count := func(n int64) string {
		if n == 1 {
			return num(n) + " session"
		}
		return num(n) + " sessions"
	}
	return []string{
		count(r.Repaired) + " got a TTL (repaired)",
		count(r.Deleted) + " expired (deleted)",
	}
}
