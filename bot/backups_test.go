package bot

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/platform-team/sessionbot/bot/chat"
)

// lastEphemeralMsg returns the last ephemeral message shown to user.
func (c *coreChat) lastEphemeralMsg(user string) Message {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := len(c.ephemerals) - 1; i >= 0; i-- {
		if c.ephemerals[i].User == user {
			return c.ephemerals[i].Msg
		}
	}
	return Message{}
}

// `backups` lists the backups in BACKUP_DIR for a restore: the id to type, the job that wrote
// it, its size and age, and that it is not encrypted; an empty BACKUP_DIR says so.
func TestBackupsCommand(t *testing.T) {
	h := newHarness(t)
	h.command(alice, "backups")
	wantContains(t, "empty", chat.FormatText(h.chat.lastEphemeralMsg(alice)), "BACKUP_DIR holds no backups")

	h.seed(sessionSpec{n: 3})
	id, _ := h.requestAll()
	h.press(bob, "approve", id)
	if n := h.sessionCount(); n != 0 {
		t.Fatalf("%d sessions left after the approved mass logout", n)
	}
	files, _ := filepath.Glob(filepath.Join(h.backupDir, "*.jsonl.gz"))
	if len(files) != 1 {
		t.Fatalf("backup files = %v; want one", files)
	}
	jobID := strings.TrimSuffix(filepath.Base(files[0]), ".jsonl.gz")

	h.command(alice, "backups")
	got := chat.FormatText(h.chat.lastEphemeralMsg(alice))
	wantContains(t, "backups", got, "== Recent backups ==", "`"+jobID+"` · all `all` by @"+alice+", done · ",
		" · <1m old · *not encrypted* (holds live tokens)", "/sessions restore BACKUP_ID --reason TEXT")

	h.command(alice, "backups now")
	wantContains(t, "with an argument", h.chat.lastEphemeral(alice), "takes no arguments")
	h.command(bob, "backups") // an approver, not an operator: approvers approve restores
	wantContains(t, "approver", chat.FormatText(h.chat.lastEphemeralMsg(bob)), "== Recent backups ==", "`"+jobID+"`")
	h.command(eve, "backups")
	wantContains(t, "outsider", h.chat.lastEphemeral(eve), "not allowed")
}
