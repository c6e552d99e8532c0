package console

import (
	"context"
	"strings"
	"testing"

	"github.com/platform-team/sessionbot/bot/chat"
)

// Audit lines on a terminal are dimmed and marked; elsewhere only marked.
func TestAuditWriter(t *testing.T) {
	for _, tt := range []struct {
		tty  bool
		want string
	}{
		{false, "audit │ a | Refused\naudit │ b\n"},
		{true, "\x1b[2maudit │ a | Refused\x1b[0m\n\x1b[2maudit │ b\x1b[0m\n"},
	} {
		var b strings.Builder
		if n, err := AuditWriter(&b, tt.tty).Write([]byte("a | Refused\nb\n")); err != nil || n != 14 {
			t.Errorf("Write = %d, %v; want 14, nil", n, err)
		}
		if b.String() != tt.want {
			t.Errorf("tty %v: wrote %q; want %q", tt.tty, b.String(), tt.want)
		}
	}
}

// The console prints a message as plain text, each button with the line that presses it, and
// resolves a typed token (or none: the latest such button) to the button's value.
func TestChatPrintsAndResolvesButtons(t *testing.T) {
	var b strings.Builder
	c := New(&b)
	if id := c.identify("Bob"); id != "UBOB" || c.identify("bob") != "UBOB" || c.identify("U0ALICE1") != "U0ALICE1" {
		t.Fatalf("identify: Bob = %s, bob = %s, U0ALICE1 = %s", id, c.identify("bob"), c.identify("U0ALICE1"))
	}
	ref, err := c.Post(context.Background(), "#ops", chat.Message{Text: "t", Title: ":rotating_light: Approval needed",
		Lines:   []string{"asked by <@UBOB>"},
		Buttons: []chat.Button{{ActionID: "approve", Label: "Approve", Value: "0123456789abcdef"}}})
	if err != nil || ref != (chat.MessageRef{Channel: "#ops", TS: "1"}) {
		t.Fatalf("Post = %v, %v", ref, err)
	}
	want := "\n── #ops · message 1 ──\n== 🚨 Approval needed ==\nasked by @bob\n  [Approve] type: press approve 01234567\n"
	if b.String() != want {
		t.Errorf("printed %q; want %q", b.String(), want)
	}
	for _, tok := range []string{"", "01234567", "0123456789abcdef"} {
		if v, ok := c.resolve("approve", tok); !ok || v != "0123456789abcdef" {
			t.Errorf("resolve(approve, %q) = %q, %v", tok, v, ok)
		}
	}
	if _, ok := c.resolve("approve", "ffffffff"); ok {
		t.Error("an unknown token resolved")
	}
}
