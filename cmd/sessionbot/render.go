package main

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/platform-team/sessionbot/cleanup"
)

// planDetails says who would be affected: logouts, auth methods, TTLs, redacted samples.
func planDetails(p cleanup.Plan) []string {
	if p.Matched == 0 {
		return nil
	}
	var lines []string
	if p.Valid > 0 {
		lines = append(lines, fmt.Sprintf("  %d of them still valid: those users will be logged out", p.Valid))
	}
	lines = append(lines, "  by auth_method: "+countsText(p.ByAuthMethod))
	lines = append(lines, "  TTL: "+ttlText(p.TTL))
	lines = append(lines, fmt.Sprintf("  estimated memory freed: %s", bytesText(p.Bytes)))
	if len(p.Samples) > 0 {
		lines = append(lines, "  samples (redacted):")
		for _, s := range p.Samples {
			lines = append(lines, "    "+sampleText(s))
		}
	}
	return lines
}

func sampleText(s cleanup.Sample) string {
	if s.Malformed {
		return fmt.Sprintf("%-10s (malformed)  ttl %s", s.ID, ttlValue(s.TTL))
	}
	return fmt.Sprintf("%-10s user_id=%s auth_method=%s created=%s expires=%s ttl %s",
		s.ID, orDash(s.UserID), orDash(s.AuthMethod), stamp(s.CreatedAt), stamp(s.ExpiresAt), ttlValue(s.TTL))
}

// printReport prints the outcome of a run, complete or not; maxValid is the still-valid bound
// it ran under.
func printReport(c *cli, rep cleanup.Report, err error, maxValid int64) {
	w := c.stdout
	switch {
	case err == nil && rep.Errors == 0:
		fmt.Fprintf(w, "Cleanup completed in %s\n", rep.Duration().Round(time.Millisecond))
	case rep.Stopped == "cancelled":
		fmt.Fprintf(w, "Cleanup CANCELLED after %s\n", rep.Duration().Round(time.Millisecond))
	case rep.Stopped == "bound":
		fmt.Fprintf(w, "Cleanup STOPPED after %s: more still-valid sessions match than this run may log out (%d); run a fresh preview\n",
			rep.Duration().Round(time.Millisecond), maxValid)
	default:
		fmt.Fprintf(w, "Cleanup FAILED after %s\n", rep.Duration().Round(time.Millisecond))
	}
	if rep.Mode == cleanup.ModeRepair {
		for _, line := range cleanup.RepairLines(rep, itoa) {
			fmt.Fprintln(w, "  "+line)
		}
	}
	row := func(name string, v any) { fmt.Fprintf(w, "  %-36s %v\n", name+":", v) }
	row("scanned", rep.Scanned)
	row("deleted", rep.Deleted)
	row("  of them still valid (logged out)", rep.DeletedValid)
	row("kept", rep.Kept)
	row("skipped (changed since read, kept)", rep.Skipped)
	row("malformed (kept)", rep.Malformed)
	row("errors", rep.Errors)
	row("duration", rep.Duration().Round(time.Millisecond))
	backup := rep.Backup
	if backup == "" {
		backup = "none"
	}
	row("backup", backup)
	if rep.Remaining >= 0 {
		row("session keys remaining", rep.Remaining)
	} else {
		row("session keys remaining", "not counted")
	}
	for _, n := range rep.Restarted {
		fmt.Fprintf(w, "  note: node %s restarted during the run and was rescanned from the start\n", n)
	}
	if rep.Backup != "" && rep.Deleted > 0 {
		fmt.Fprintf(w, "Undo: sessionbot restore %s --reason \"...\"\n", strings.Split(rep.Backup, ",")[0])
	}
}

// verifyHint is the runbook's own verification step for the scope that ran, with the count the
// engine saw afterwards, so the operator can check with independent tools.
func verifyHint(f cleanup.Filter, rep cleanup.Report, prefix string) []string {
	pattern := fmt.Sprintf("%q", prefix+"*")
	count := fmt.Sprintf("redis-cli --scan --pattern %s | wc -l", pattern)
	expect := ""
	if rep.Remaining >= 0 {
		expect = fmt.Sprintf("   # expected: %d", rep.Remaining)
	}
	switch {
	case f.All:
		return []string{
			"Verify (runbook Procedure 2, step 5):",
			"  " + count + "   # expected: 0 (or only sessions created since)",
			`  redis-cli --scan --pattern "cb:*" | wc -l        # circuit breaker keys still exist`,
			`  redis-cli --scan --pattern "feature:*" | wc -l   # feature store keys still exist`,
			"Next: notify users (runbook Procedure 2, step 6: Mass Logout Executed).",
		}
	case f.Scope() == "expired_only":
		return []string{"Verify (runbook Procedure 1):", "  " + count + expect + " (only valid sessions remain)"}
	case f.RepairTTL:
		return []string{"Verify (runbook Scenario 1): orphans left (only malformed ones, kept):",
			fmt.Sprintf(`  redis-cli --scan --pattern %s | while read key; do [ "$(redis-cli TTL "$key")" = -1 ] && echo "$key"; done | wc -l`, pattern)}
	case f.AuthMethod != "":
		return []string{"Verify (runbook Procedure 3):",
			fmt.Sprintf(`  redis-cli --scan --pattern %s | head -100 | while read key; do redis-cli GET "$key" | jq -r '.auth_method'; done | grep -c %q   # expected: 0`, pattern, f.AuthMethod)}
	case f.UserID != "":
		return []string{"Verify (runbook Procedure 4):",
			fmt.Sprintf(`  redis-cli --scan --pattern %s | while read key; do redis-cli GET "$key" | jq -r '.user_id'; done | grep -cF %q   # expected: 0`, pattern, f.UserID)}
	}
	return []string{"Verify:", "  " + count + expect}
}

func sessions(n int64) string {
	if n == 1 {
		return "session"
	}
	return "sessions"
}

func countsText(m map[string]int64) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if m[keys[i]] != m[keys[j]] {
			return m[keys[i]] > m[keys[j]]
		}
		return keys[i] < keys[j]
	})
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", orDash(k), m[k])
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, ", ")
}

// ttlLabels name TTLHistogram's buckets.
var ttlLabels = [5]string{"≤10m", "≤30m", "≤1h", "≤24h", ">24h"}

func ttlText(h cleanup.TTLHistogram) string {
	parts := []string{fmt.Sprintf("no TTL (-1) %d", h.NoTTL)}
	for i, n := range h.Buckets {
		parts = append(parts, fmt.Sprintf("%s %d", ttlLabels[i], n))
	}
	return strings.Join(parts, ", ")
}

func bytesText(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	v, suffix := float64(n)/unit, "KiB"
	for _, s := range []string{"MiB", "GiB", "TiB"} {
		if v < unit {
			break
		}
		v, suffix = v/unit, s
	}
	return fmt.Sprintf("%.1f %s", v, suffix)
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func ttlValue(d time.Duration) string {
	switch {
	case d == -1:
		return "none (-1)"
	case d < 0:
		return "-"
	}
	return d.Round(time.Second).String()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
