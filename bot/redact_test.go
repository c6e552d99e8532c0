package bot

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/platform-team/sessionbot/bot/chat"
	"github.com/platform-team/sessionbot/cleanup"
	"github.com/platform-team/sessionbot/cleanup/redistest"
	"github.com/platform-team/sessionbot/internal/testkit"
)

// A restore whose target stops answering half-way fails; no log line, message or audit line
// names a session by its full id (SPEC §12.8), while the log still says which key, shortened.
func TestRestoreFailureShowsNoSessionID(t *testing.T) {
	target := redistest.Standalone(t)
	var logs testkit.SyncBuffer
	h := newHarness(t, func(h *harness, d *Deps) {
		c := redis.NewClient(&redis.Options{Addr: target.Addr(), MaxRetries: -1})
		t.Cleanup(func() { _ = c.Close() })
		d.Engine = cleanup.NewEngine(cleanup.NewTarget(c, "session:", "dying-target"), cleanup.EngineConfig{BatchSize: 100})
		d.State = h.rdb // requests and jobs outlive the target
		d.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	})
	ids := []string{"a1b2c3d4-bearer-credential-0001", "a1b2c3d4-bearer-credential-0002"}
	const backupID = "job-20250101-0badc0de"
	v := []byte(`{"user_id":"auth0|1","auth_method":"oauth2","expires_at":"2099-01-01T00:00:00Z"}`)
	testkit.WriteBackup(t, h.backupDir, backupID,
		cleanup.BackupRecord{Key: "session:" + ids[0], Value: v, PTTL: time.Hour},
		cleanup.BackupRecord{Key: "session:" + ids[1], Value: v, PTTL: time.Hour})

	h.command(carol, "restore "+backupID+" --reason 'undo'")
	ref, m := h.chat.latest(-1)
	wantContains(t, "restore request", chat.FormatText(m), "2 sessions will be restored")
	target.Kill()
	h.press(dave, "approve", button(t, m, "approve"))
	wantContains(t, "report", chat.FormatText(h.chat.msg(ref)), "Failed", "internal error (ref ")

	wantContains(t, "log", logs.String(), "session:a1b2c3d4…")
	for _, id := range ids {
		if strings.Contains(logs.String(), id) {
			t.Errorf("the log names session %s in full:\n%s", id, logs.String())
		}
	}
	h.assertNoLeaks(ids...)
}
