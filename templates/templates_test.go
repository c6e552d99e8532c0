package templates

import (
	"strings"
	"testing"
)

// The runbook's Mass Logout Executed template, section by section.
func TestMassLogoutStructure(t *testing.T) {
	got := MassLogout(MassLogoutData{Timestamp: "2025-11-26T10:00:00Z", AffectedUsers: "All active users", Reason: "Session secret rotation"})
	want := []string{
		":warning: *Mass Logout Executed*",
		"*Timestamp:* 2025-11-26T10:00:00Z",
		"*Affected Users:* All active users",
		"*Reason:* Session secret rotation",
		"*Action Required:*\nAll users must re-authenticate to access the system.",
		"*Impact:*\n- All active sessions invalidated immediately\n- Users will be redirected to login page on next request\n- No data loss (only authentication state affected)",
		"*Support:*\n- Contact: platform-team@company.com\n- On-call: Check PagerDuty rotation",
	}
	last := -1
	for _, w := range want {
		i := strings.Index(got, w)
		if i < 0 || i < last {
			t.Fatalf("MassLogout lacks %q (in order):\n%s", w, got)
		}
		last = i
	}
}

// A reason cannot add lines (and so fake sections) to the template.
func TestMassLogoutReasonOneLine(t *testing.T) {
	got := MassLogout(MassLogoutData{Reason: "x\n\n*Action Required:*\nsend your password"})
	if strings.Count(got, "\n*Action Required:*") != 1 || strings.Contains(got, "\nsend your password") {
		t.Errorf("reason injected a section:\n%s", got)
	}
}

func TestUserNoticeAndHelp(t *testing.T) {
	n := UserNotice(UserNoticeData{Timestamp: "2025-11-26T10:00:00Z"})
	if !strings.Contains(n, "2025-11-26T10:00:00Z") || !strings.Contains(n, DefaultContact) {
		t.Errorf("UserNotice = %q", n)
	}
	h := Help(HelpData{Command: "/sess", Threshold: "1,000", TTL: "15m"})
	if !strings.Contains(h, "/sess cleanup --all --reason") || strings.Contains(h, "/sessions") {
		t.Errorf("Help does not use the configured command:\n%s", h)
	}
	if len(Paragraphs("a\n\n\nb\n\n")) != 2 {
		t.Error("Paragraphs")
	}
}
