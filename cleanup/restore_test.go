package cleanup

import (
	"context"
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/platform-team/sessionbot/cleanup/redistest"
	"github.com/redis/go-redis/v9"
)

// backupFile writes recs to a real backup file and returns a read function over it, as the CLI
// restore does.
func backupFile(t *testing.T, recs []BackupRecord) func(func(BackupRecord) error) error {
	t.Helper()
	path := writeBackup(t, t.TempDir(), "job", nil, recs)
	return func(fn func(BackupRecord) error) error {
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		return ReadBackup(f, nil, fn)
	}
}

func sessionJSON(expires time.Time) []byte {
	return fmt.Appendf(nil, `{"user_id":"auth0|1","auth_method":"oauth2","expires_at":%q,"access_token":"eyJ"}`, expires.UTC().Format(time.RFC3339))
}

func dumpOf(t *testing.T, c *redis.Client, key string) []byte {
	t.Helper()
	d, err := c.Dump(context.Background(), key).Result()
	if err != nil {
		t.Fatalf("DUMP %s: %v", key, err)
	}
	if err := c.Del(context.Background(), key).Err(); err != nil {
		t.Fatal(err)
	}
	return []byte(d)
}

func TestRestore(t *testing.T) {
	ctx := context.Background()
	c := redistest.Standalone(t).Client()
	now := time.Now()

	// Payloads of DUMP from this very server: a hash and a binary string.
	c.HSet(ctx, "session:hash", "user_id", "auth0|2", "n", "1")
	hashDump := dumpOf(t, c, "session:hash")
	bin := []byte{0xff, 0x00, 0xfe, 'x'}
	c.Set(ctx, "session:bin", bin, 0)
	binDump := dumpOf(t, c, "session:bin")
	c.HSet(ctx, "session:hash-live", "live", "yes")
	liveHashDump := dumpOf(t, c, "session:hash-live")

	// Already in Redis before the restore: must survive untouched.
	c.Set(ctx, "session:live", "current", time.Hour)
	c.HSet(ctx, "session:hash-live", "live", "yes")

	valid := sessionJSON(now.Add(time.Hour))
	recs := []BackupRecord{
		{Key: "session:ttl", Value: valid, PTTL: time.Hour, At: now.Add(-10 * time.Minute)},
		{Key: "session:nottl", Value: []byte("not json"), PTTL: NoTTL, At: now.Add(-48 * time.Hour)},
		{Key: "session:noat", Value: []byte(`{"expires_at":"garbage"}`), PTTL: 30 * time.Second},
		{Key: "session:gone-ttl", Value: valid, PTTL: 5 * time.Minute, At: now.Add(-10 * time.Minute)},
		{Key: "session:gone-exp", Value: sessionJSON(now.Add(-time.Second)), PTTL: time.Hour, At: now},
		{Key: "session:gone-exp-nottl", Value: sessionJSON(now.Add(-time.Hour)), PTTL: NoTTL, At: now},
		{Key: "session:live", Value: []byte("stale"), PTTL: time.Hour, At: now},
		{Key: "session:hash", Type: "hash", Dump: hashDump, PTTL: 20 * time.Minute, At: now.Add(-5 * time.Minute)},
		{Key: "session:hash-live", Type: "hash", Dump: liveHashDump, PTTL: NoTTL, At: now},
		{Key: "session:bin", Type: "string", Dump: binDump, PTTL: NoTTL, At: now},
		{Key: "session:bad-dump", Type: "hash", Dump: []byte("not a dump payload"), PTTL: NoTTL, At: now},
		{Key: "cb:breaker", Value: []byte("open"), PTTL: NoTTL, At: now},
		{Key: "sessionbot:state", Value: []byte("x"), PTTL: NoTTL, At: now},
	}
	read := backupFile(t, recs)
	opts := RestoreOptions{Now: func() time.Time { return now }}

	t.Run("dry run writes nothing", func(t *testing.T) {
		rep, err := Restore(ctx, c, "session:", read, RestoreOptions{DryRun: true, Now: opts.Now})
		if err != nil {
			t.Fatal(err)
		}
		want := RestoreReport{Read: 13, Restored: 6, SkippedExpired: 3, SkippedExists: 2, SkippedPrefix: 2}
		if rep != want {
			t.Errorf("dry run report = %+v; want %+v", rep, want)
		}
		if n := c.DBSize(ctx).Val(); n != 2 {
			t.Errorf("DBSIZE after dry run = %d; want 2 (only the live keys)", n)
		}
	})

	rep, err := Restore(ctx, c, "session:", read, opts)
	if err != nil {
		t.Fatalf("Restore: %v", err)
	}
	want := RestoreReport{Read: 13, Restored: 5, SkippedExpired: 3, SkippedExists: 2, SkippedPrefix: 2, Errors: 1}
	if rep != want {
		t.Errorf("report = %+v; want %+v", rep, want)
	}

	tests := []struct {
		key          string
		want         string        // GET value; "" for absent or non-string
		minTTL, maxT time.Duration // PTTL bounds; -1 no TTL, -2 absent
	}{
		{"session:ttl", string(valid), 49*time.Minute + 50*time.Second, 50 * time.Minute},
		{"session:nottl", "not json", -1, -1},
		{"session:noat", `{"expires_at":"garbage"}`, 29 * time.Second, 30 * time.Second},
		{"session:gone-ttl", "", -2, -2},
		{"session:gone-exp", "", -2, -2},
		{"session:gone-exp-nottl", "", -2, -2},
		{"session:live", "current", 59 * time.Minute, time.Hour},
		{"session:hash", "", 14*time.Minute + 50*time.Second, 15 * time.Minute},
		{"session:hash-live", "", -1, -1},
		{"session:bin", string(bin), -1, -1},
		{"session:bad-dump", "", -2, -2},
		{"cb:breaker", "", -2, -2},
		{"sessionbot:state", "", -2, -2},
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			pttl := c.PTTL(ctx, tt.key).Val()
			if pttl < tt.minTTL || pttl > tt.maxT {
				t.Errorf("PTTL %s = %s; want in [%s, %s]", tt.key, pttl, tt.minTTL, tt.maxT)
			}
			if tt.want != "" {
				if got := c.Get(ctx, tt.key).Val(); got != tt.want {
					t.Errorf("GET %s = %q; want %q", tt.key, got, tt.want)
				}
			}
		})
	}
	if got := c.HGetAll(ctx, "session:hash").Val(); !reflect.DeepEqual(got, map[string]string{"user_id": "auth0|2", "n": "1"}) {
		t.Errorf("HGETALL session:hash = %v", got)
	}
	if got := c.HGetAll(ctx, "session:hash-live").Val(); !reflect.DeepEqual(got, map[string]string{"live": "yes"}) {
		t.Errorf("HGETALL session:hash-live = %v; want the live hash untouched", got)
	}

	t.Run("second run restores nothing", func(t *testing.T) {
		rep, err := Restore(ctx, c, "session:", read, opts)
		if err != nil {
			t.Fatal(err)
		}
		want := RestoreReport{Read: 13, SkippedExpired: 3, SkippedExists: 7, SkippedPrefix: 2, Errors: 1}
		if rep != want {
			t.Errorf("report = %+v; want %+v", rep, want)
		}
	})
}

func TestRestoreBatchesAndProgress(t *testing.T) {
	ctx := context.Background()
	c := redistest.Standalone(t).Client()
	const n = 1203
	now := time.Now()
	var recs []BackupRecord
	for i := range n {
		recs = append(recs, BackupRecord{Key: fmt.Sprintf("session:%04d", i), Value: []byte("v"), PTTL: time.Hour, At: now})
	}
	read := func(fn func(BackupRecord) error) error {
		for _, r := range recs {
			if err := fn(r); err != nil {
				return err
			}
		}
		return nil
	}
	var progress []int64
	rep, err := Restore(ctx, c, "session:", read, RestoreOptions{Progress: func(r RestoreReport) { progress = append(progress, r.Restored) }})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Restored != n || c.DBSize(ctx).Val() != n {
		t.Errorf("Restored = %d, DBSIZE = %d; want %d", rep.Restored, c.DBSize(ctx).Val(), n)
	}
	if want := []int64{500, 1000, 1203}; !reflect.DeepEqual(progress, want) {
		t.Errorf("progress = %v; want %v", progress, want)
	}
}

func TestRestoreErrors(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Standalone(t)
	rec := BackupRecord{Key: "session:a", Value: []byte("v"), PTTL: NoTTL}
	one := func(fn func(BackupRecord) error) error { return fn(rec) }
	readErr := errors.New("corrupt backup")

	closed := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	_ = closed.Close()
	cancelled, cancel := context.WithCancel(ctx)
	cancel()

	tests := []struct {
		name   string
		ctx    context.Context
		c      redis.UniversalClient
		prefix string
		read   func(func(BackupRecord) error) error
		want   error // errors.Is target; nil: any error
	}{
		{"empty prefix", ctx, srv.Client(), "", one, nil},
		{"read error", ctx, srv.Client(), "session:", func(func(BackupRecord) error) error { return readErr }, readErr},
		{"closed client", ctx, closed, "session:", one, redis.ErrClosed},
		{"cancelled", cancelled, srv.Client(), "session:", one, context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Restore(tt.ctx, tt.c, tt.prefix, tt.read, RestoreOptions{})
			if err == nil || (tt.want != nil && !errors.Is(err, tt.want)) {
				t.Errorf("Restore = %v; want error %v", err, tt.want)
			}
		})
	}
	if n := srv.Client().DBSize(ctx).Val(); n != 0 {
		t.Errorf("DBSIZE = %d; want 0 after failed restores", n)
	}
}

// A restore that Redis stops answering names the key it was writing by its short id only: a
// session id may be a bearer credential (SPEC §12.8).
func TestRestoreErrorNamesTheKeyByShortID(t *testing.T) {
	srv := redistest.Standalone(t)
	c := redis.NewClient(&redis.Options{Addr: srv.Addr(), MaxRetries: -1})
	defer c.Close()
	const id = "a1b2c3d4e5f6-bearer-credential-0001"
	read := backupFile(t, []BackupRecord{{Key: "session:" + id, Value: sessionJSON(time.Now().Add(time.Hour)), PTTL: time.Hour}})
	srv.Kill()
	_, err := Restore(context.Background(), c, "session:", read, RestoreOptions{})
	if err == nil {
		t.Fatal("Restore onto a killed server = nil error")
	}
	if strings.Contains(err.Error(), id) {
		t.Errorf("Restore error = %q; it names the full session id", err)
	}
	if want := "session:" + ShortID(id); !strings.Contains(err.Error(), want) {
		t.Errorf("Restore error = %q; want it to name the key as %q", err, want)
	}
}

func TestRedactKeys(t *testing.T) {
	const id = "a1b2c3d4e5f6-bearer-credential"
	for in, want := range map[string]string{
		"restore: session:" + id + ": connection refused":  "restore: session:a1b2c3d4…: connection refused",
		`backup: key "session:` + id + `": unknown type`:   `backup: key "session:a1b2c3d4…": unknown type`,
		"DUMP session:" + id + ", GET session:" + id + ")": "DUMP session:a1b2c3d4…, GET session:a1b2c3d4…)",
		"session:short: no such key":                       "session:short: no such key",
		"no key here":                                      "no key here",
	} {
		if got := RedactKeys(in, "session:"); got != want {
			t.Errorf("RedactKeys(%q) = %q; want %q", in, got, want)
		}
	}
	if got := KeyText("session:", "session:"+id); got != "session:a1b2c3d4…" {
		t.Errorf("KeyText = %q; want session:a1b2c3d4…", got)
	}
}
