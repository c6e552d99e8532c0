package cleanup

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/redis/go-redis/v9"
)

var backupAt = time.Date(2025, 11, 26, 10, 0, 0, 123456789, time.UTC)

func backupSamples() []BackupRecord {
	return []BackupRecord{
		{Key: "session:a", Value: []byte(`{"user_id":"auth0|1","expires_at":"2025-11-26T11:00:00Z","note":"<&>"}`), PTTL: 3599 * time.Second, At: backupAt},
		{Key: "session:notl", Value: []byte("plain"), PTTL: NoTTL, At: backupAt},
		{Key: "session:empty", Value: []byte{}, PTTL: time.Millisecond, At: backupAt},
		{Key: "session:noat", Value: []byte("x\ny\t\"z\"\u2028"), PTTL: 5 * time.Second},
		{Key: "session:bin", Type: "string", Dump: []byte{0x00, 0x03, 0xff, 0xfe, 0x0a, 0x00, 0x80}, PTTL: time.Hour, At: backupAt},
		{Key: "session:h", Type: "hash", Dump: []byte("\x04\x02payload\x00\xff"), PTTL: NoTTL, At: backupAt},
		{Key: "session:ü 日本", Value: []byte("🚀"), PTTL: 0, At: backupAt},
	}
}

// wantRead is what ReadBackup gives back for a written record: byte slices normalized so that
// an empty value compares equal, and times compared at the precision written.
func normRecord(r BackupRecord) BackupRecord {
	if r.Dump == nil && r.Value == nil {
		r.Value = []byte{}
	}
	if r.Dump != nil && r.Type == "" {
		r.Type = "string"
	}
	if r.PTTL < 0 {
		r.PTTL = NoTTL
	}
	return r
}

func writeBackup(t *testing.T, dir, name string, recipients []string, recs []BackupRecord) string {
	t.Helper()
	w, err := CreateBackup(dir, name, recipients)
	if err != nil {
		t.Fatalf("CreateBackup: %v", err)
	}
	for _, r := range recs {
		if err := w.Write(r); err != nil {
			t.Fatalf("Write(%q): %v", r.Key, err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if w.Count() != int64(len(recs)) {
		t.Errorf("Count() = %d; want %d", w.Count(), len(recs))
	}
	fi, err := os.Stat(w.Path())
	if err != nil {
		t.Fatalf("final file: %v", err)
	}
	if w.Bytes() != fi.Size() {
		t.Errorf("Bytes() = %d; file size %d", w.Bytes(), fi.Size())
	}
	return w.Path()
}

func readBackupFile(t *testing.T, path string, ids []age.Identity) []BackupRecord {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var got []BackupRecord
	if err := ReadBackup(f, ids, func(r BackupRecord) error { got = append(got, r); return nil }); err != nil {
		t.Fatalf("ReadBackup: %v", err)
	}
	return got
}

func TestBackupRoundTrip(t *testing.T) {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	idFile := filepath.Join(t.TempDir(), "key.txt")
	if err := os.WriteFile(idFile, []byte("# test key\n"+id.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		recipients []string
		wantSuffix string
	}{
		{"plain", nil, ".jsonl.gz"},
		{"encrypted", []string{id.Recipient().String()}, ".jsonl.gz.age"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "backups")
			path := writeBackup(t, dir, "job-1", tt.recipients, backupSamples())
			if want := filepath.Join(dir, "job-1"+tt.wantSuffix); path != want {
				t.Errorf("Path() = %q; want %q", path, want)
			}
			assertMode(t, dir, 0o700)
			assertMode(t, path, 0o600)
			entries, _ := os.ReadDir(dir)
			if len(entries) != 1 {
				t.Errorf("dir holds %d entries; want only the backup (no temp file)", len(entries))
			}

			ids, err := LoadAgeIdentities(idFile)
			if err != nil {
				t.Fatal(err)
			}
			got := readBackupFile(t, path, ids)
			var want []BackupRecord
			for _, r := range backupSamples() {
				want = append(want, normRecord(r))
			}
			if len(got) != len(want) {
				t.Fatalf("read %d records; want %d", len(got), len(want))
			}
			for i := range want {
				if !reflect.DeepEqual(got[i], want[i]) {
					t.Errorf("record %d = %+v; want %+v", i, got[i], want[i])
				}
			}
		})
	}
}

func assertMode(t *testing.T, path string, want os.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != want {
		t.Errorf("mode of %s = %04o; want %04o", path, got, want)
	}
}

func TestBackupFormat(t *testing.T) {
	// The file is plain gzip JSON lines that other tools (zcat | jq) can read.
	dir := t.TempDir()
	path := writeBackup(t, dir, "fmt", nil, []BackupRecord{
		{Key: "session:a", Value: []byte(`{"x":"<1>"}`), PTTL: 3599 * time.Second, At: backupAt},
		{Key: "session:b", Value: []byte("v"), PTTL: NoTTL},
		{Key: "session:c", Type: "hash", Dump: []byte("hi"), PTTL: 1500 * time.Millisecond, At: backupAt},
	})
	f, _ := os.Open(path)
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(zr)
	want := `{"key":"session:a","value":"{\"x\":\"<1>\"}","pttl_ms":3599000,"at":"2025-11-26T10:00:00.123456789Z"}
{"key":"session:b","value":"v","pttl_ms":-1}
{"key":"session:c","type":"hash","dump":"aGk=","pttl_ms":1500,"at":"2025-11-26T10:00:00.123456789Z"}
`
	if string(got) != want {
		t.Errorf("content =\n%s\nwant\n%s", got, want)
	}
}

func TestBackupWriteRejects(t *testing.T) {
	tests := []struct {
		name    string
		rec     BackupRecord
		wantErr error
	}{
		{"non-utf8 value without dump", BackupRecord{Key: "session:x", Value: []byte{0xff}}, ErrBackupNeedsDump},
		{"empty key", BackupRecord{Value: []byte("v")}, nil},
		{"hash without dump", BackupRecord{Key: "session:h", Type: "hash"}, nil},
		{"unknown type", BackupRecord{Key: "session:h", Type: "json", Dump: []byte("x")}, nil},
	}
	w, err := CreateBackup(t.TempDir(), "rej", nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := w.Write(tt.rec)
			if err == nil {
				t.Fatalf("Write(%+v) = nil; want error", tt.rec)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("Write = %v; want %v", err, tt.wantErr)
			}
		})
	}
	// A rejected record is not a broken file: the backup still completes.
	if err := w.Write(BackupRecord{Key: "session:ok", Value: []byte("v"), PTTL: NoTTL}); err != nil {
		t.Fatalf("Write after rejected record: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if w.Count() != 1 {
		t.Errorf("Count() = %d; want 1", w.Count())
	}
}

func TestBackupCreateErrors(t *testing.T) {
	id, _ := age.GenerateX25519Identity()
	open := t.TempDir()
	if err := os.Chmod(open, 0o777); err != nil {
		t.Fatal(err)
	}
	notDir := filepath.Join(t.TempDir(), "file")
	_ = os.WriteFile(notDir, nil, 0o600)
	existing := t.TempDir()
	_ = os.WriteFile(filepath.Join(existing, "dup.jsonl.gz"), nil, 0o600)
	busy := t.TempDir()
	_ = os.WriteFile(filepath.Join(busy, ".busy.tmp"), nil, 0o600)

	tests := []struct {
		name, dir, file string
		recipients      []string
		wantIn          string
	}{
		{"world-writable dir", open, "j", nil, "world-writable"},
		{"dir is a file", notDir, "j", nil, "not a directory"},
		{"bad recipient", t.TempDir(), "j", []string{"age1notakey"}, "BACKUP_AGE_RECIPIENTS"},
		{"good and bad recipient", t.TempDir(), "j", []string{id.Recipient().String(), "ssh-ed25519 AAAA"}, "BACKUP_AGE_RECIPIENTS"},
		{"final exists", existing, "dup", nil, "already exists"},
		{"temp exists", busy, "busy", nil, "leftover"},
		{"name with slash", t.TempDir(), "../x", nil, "invalid name"},
		{"hidden name", t.TempDir(), ".x", nil, "invalid name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, err := CreateBackup(tt.dir, tt.file, tt.recipients)
			if err == nil {
				w.Abort()
				t.Fatalf("CreateBackup(%q, %q) = nil error; want one containing %q", tt.dir, tt.file, tt.wantIn)
			}
			if !strings.Contains(err.Error(), tt.wantIn) {
				t.Errorf("CreateBackup error = %q; want it to contain %q", err, tt.wantIn)
			}
		})
	}

	t.Run("unwritable dir", func(t *testing.T) {
		// A regular file where the directory should be: unwritable even for root (CI runs as root,
		// which ignores permission bits).
		parent := t.TempDir()
		dir := filepath.Join(parent, "backups")
		if err := os.WriteFile(dir, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := CreateBackup(dir, "j", nil); err == nil {
			t.Error("CreateBackup in an unwritable dir = nil error")
		}
		if _, err := os.Stat(filepath.Join(dir, "j.jsonl.gz")); err == nil {
			t.Error("final file exists after failed create")
		}
	})
}

// failAfter passes n bytes through, then fails every write like a full disk.
type failAfter struct {
	w io.Writer
	n int
}

var errDiskFull = errors.New("no space left on device (injected)")

func (f *failAfter) Write(p []byte) (int, error) {
	if len(p) > f.n {
		n, _ := f.w.Write(p[:f.n])
		f.n = 0
		return n, errDiskFull
	}
	f.n -= len(p)
	return f.w.Write(p)
}

func TestBackupWriteFailureLeavesNoFile(t *testing.T) {
	id, _ := age.GenerateX25519Identity()
	// Random letters compress poorly, so gzip must flush to the file long before Close.
	rnd := rand.New(rand.NewPCG(1, 2))
	value := func() []byte {
		v := make([]byte, 20<<10)
		for i := range v {
			v[i] = byte('a' + rnd.IntN(26))
		}
		return v
	}

	tests := []struct {
		name       string
		recipients []string
		limit      int // bytes the "disk" takes
		records    int
	}{
		{"fails mid-way plain", nil, 1000, 10},
		{"fails mid-way encrypted", []string{id.Recipient().String()}, 1000, 10},
		{"fails on final flush", nil, 10, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			w, err := createBackup(dir, "job", tt.recipients, func(w io.Writer) io.Writer { return &failAfter{w: w, n: tt.limit} })
			if err != nil {
				t.Fatal(err)
			}
			var werr error
			for range tt.records {
				if werr = w.Write(BackupRecord{Key: "session:big", Value: value(), PTTL: NoTTL}); werr != nil {
					break
				}
			}
			cerr := w.Close()
			if cerr == nil {
				t.Fatalf("Close() = nil after the disk filled (Write err %v)", werr)
			}
			if !errors.Is(cerr, errDiskFull) {
				t.Errorf("Close() = %v; want the write error", cerr)
			}
			if tt.records > 1 && werr == nil {
				t.Error("every Write succeeded although the disk filled mid-way")
			}
			if werr != nil && w.Write(BackupRecord{Key: "session:z", Value: []byte("z")}) == nil {
				t.Error("Write after a failed Write = nil; want the sticky error")
			}
			assertEmptyDir(t, dir)
		})
	}
}

func TestBackupClosedFileLeavesNoFile(t *testing.T) {
	// The real OS error path: the descriptor is gone under the writer.
	dir := t.TempDir()
	w, err := CreateBackup(dir, "job", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(BackupRecord{Key: "session:a", Value: []byte("v"), PTTL: NoTTL}); err != nil {
		t.Fatal(err)
	}
	_ = w.f.Close()
	if err := w.Close(); err == nil || !errors.Is(err, os.ErrClosed) {
		t.Errorf("Close() = %v; want an os.ErrClosed error", err)
	}
	assertEmptyDir(t, dir)
}

func TestBackupAbort(t *testing.T) {
	dir := t.TempDir()
	w, err := CreateBackup(dir, "job", nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = w.Write(BackupRecord{Key: "session:a", Value: []byte("v"), PTTL: NoTTL})
	w.Abort()
	if err := w.Close(); err == nil {
		t.Error("Close after Abort = nil; want error")
	}
	assertEmptyDir(t, dir)
}

func assertEmptyDir(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		t.Errorf("left behind: %s", e.Name())
	}
}

func gz(t *testing.T, s string) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	_, _ = zw.Write([]byte(s))
	_ = zw.Close()
	return b.Bytes()
}

func TestBackupReadStrict(t *testing.T) {
	const ok = `{"key":"session:a","value":"v","pttl_ms":-1}` + "\n"
	tests := []struct {
		name    string
		content string
		wantIn  string // "" means success
		want    int    // records read on success
	}{
		{"ok", ok + ok, "", 2},
		{"no final newline", ok + strings.TrimSuffix(ok, "\n"), "", 2},
		{"empty file", "", "", 0},
		{"not json", ok + "KEY: session:a\n", "line 2", 0},
		{"blank line", ok + "\n" + ok, "line 2", 0},
		{"unknown field", `{"key":"session:a","value":"v","pttl_ms":-1,"ttl":3}` + "\n", "line 1", 0},
		{"missing pttl", `{"key":"session:a","value":"v"}` + "\n", "line 1: missing pttl_ms", 0},
		{"bad pttl", `{"key":"session:a","value":"v","pttl_ms":-2}` + "\n", "line 1: pttl_ms", 0},
		{"missing key", `{"value":"v","pttl_ms":-1}` + "\n", "line 1: missing key", 0},
		{"value and dump", `{"key":"k","value":"v","type":"hash","dump":"aGk=","pttl_ms":-1}` + "\n", "line 1: both", 0},
		{"neither", `{"key":"k","pttl_ms":-1}` + "\n", "line 1: neither", 0},
		{"bad type", `{"key":"k","type":"blob","dump":"aGk=","pttl_ms":-1}` + "\n", "line 1: unknown type", 0},
		{"bad base64", `{"key":"k","type":"hash","dump":"!!","pttl_ms":-1}` + "\n", "line 1", 0},
		{"bad at", `{"key":"k","value":"v","pttl_ms":5,"at":"yesterday"}` + "\n", "line 1: at", 0},
		{"trailing data", `{"key":"k","value":"v","pttl_ms":5} {}` + "\n", "line 1: trailing", 0},
		{"invalid utf-8", "{\"key\":\"k\",\"value\":\"\xff\",\"pttl_ms\":5}\n", "line 1: invalid UTF-8", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := 0
			err := ReadBackup(bytes.NewReader(gz(t, tt.content)), nil, func(BackupRecord) error { n++; return nil })
			if tt.wantIn == "" {
				if err != nil || n != tt.want {
					t.Errorf("ReadBackup = %v, %d records; want nil, %d", err, n, tt.want)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantIn) {
				t.Errorf("ReadBackup error = %v; want one containing %q", err, tt.wantIn)
			}
		})
	}
}

func TestBackupReadErrors(t *testing.T) {
	dir := t.TempDir()
	id, _ := age.GenerateX25519Identity()
	other, _ := age.GenerateX25519Identity()
	enc := writeBackup(t, dir, "enc", []string{id.Recipient().String()}, backupSamples())
	plain := writeBackup(t, dir, "plain", nil, backupSamples())
	plainBytes, _ := os.ReadFile(plain)
	encBytes, _ := os.ReadFile(enc)

	stop := errors.New("stop")
	tests := []struct {
		name string
		data []byte
		ids  []age.Identity
		fn   func(BackupRecord) error
		want func(error) bool
	}{
		{"encrypted without identity", encBytes, nil, nil, func(err error) bool { return err != nil && strings.Contains(err.Error(), "BACKUP_AGE_IDENTITY_FILE") }},
		{"encrypted wrong identity", encBytes, []age.Identity{other}, nil, func(err error) bool { return err != nil && strings.Contains(err.Error(), "decrypt") }},
		{"truncated plain", plainBytes[:len(plainBytes)-6], nil, nil, func(err error) bool { return err != nil }},
		{"truncated encrypted", encBytes[:len(encBytes)-20], []age.Identity{id}, nil, func(err error) bool { return err != nil }},
		{"not gzip", []byte("KEY: session:a\n"), nil, nil, func(err error) bool { return err != nil && strings.Contains(err.Error(), "gzip") }},
		{"callback error returned as is", plainBytes, nil, func(BackupRecord) error { return stop }, func(err error) bool { return err == stop }},
		{"multistream", append(append([]byte{}, plainBytes...), plainBytes...), nil, nil, func(err error) bool { return err == nil }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fn := tt.fn
			if fn == nil {
				fn = func(BackupRecord) error { return nil }
			}
			if err := ReadBackup(bytes.NewReader(tt.data), tt.ids, fn); !tt.want(err) {
				t.Errorf("ReadBackup = %v", err)
			}
		})
	}
}

func TestBackupLoadAgeIdentitiesErrors(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad")
	_ = os.WriteFile(bad, []byte("not a key\n"), 0o600)
	for _, p := range []string{filepath.Join(t.TempDir(), "missing"), bad} {
		if _, err := LoadAgeIdentities(p); err == nil || !strings.Contains(err.Error(), "BACKUP_AGE_IDENTITY_FILE") {
			t.Errorf("LoadAgeIdentities(%q) = %v; want error naming BACKUP_AGE_IDENTITY_FILE", p, err)
		}
	}
}

// Whatever stops a backed-up run, and whenever — a replica killed between two commands — every
// session it has deleted is in a completed, synced backup file with the value it held when it
// was deleted. Checked after every delete command of a mass logout whose first delete races an
// application that rewrites every session of that batch just before it reaches Redis. (A run
// that deleted with GETDEL kept the rewritten values only in memory and in the next round's
// unfinished file until that round closed; a seeded chaos run killed a replica in between.)
func TestBackupHoldsEveryDeletedValueAtEveryInstant(t *testing.T) {
	s := sharedStandalone(t)
	prefix := uniquePrefix(t)
	own := NewTarget(s.Client(), prefix, s.Addr())
	put(t, own, population(500, 100, nil)...)
	dir := t.TempDir()
	ctx := context.Background()
	var (
		mu        sync.Mutex
		rewritten = map[string]string{}
		problems  []string
	)
	deletes := func(cmds []redis.Cmder) []string {
		var keys []string
		for _, c := range cmds {
			switch c.Name() {
			case "evalsha", "unlink", "getdel", "del":
				if k := evalKeys(c); k != nil {
					keys = append(keys, k...)
				} else if len(c.Args()) > 1 {
					keys = append(keys, fmt.Sprint(c.Args()[1]))
				}
			}
		}
		return keys
	}
	h := cmdHook{
		before: func(cmds []redis.Cmder) {
			keys := deletes(cmds)
			mu.Lock()
			defer mu.Unlock()
			if len(keys) == 0 || len(rewritten) > 0 {
				return
			}
			for _, k := range keys { // the application refreshes them all, just before the delete
				v := fmt.Sprintf(`{"user_id":"auth0|1","expires_at":"2099-01-01T00:00:00Z","refreshed":%q}`, k)
				s.Client().Set(ctx, k, v, time.Hour)
				rewritten[k] = v
			}
		},
		after: func(cmds []redis.Cmder) {
			if len(deletes(cmds)) == 0 {
				return
			}
			// The instant after a delete: what is gone must be in a completed file, as it was.
			present, err := readAll(s.Client(), prefix)
			if err != nil {
				panic(err)
			}
			inFiles := map[string]string{}
			paths, _ := filepath.Glob(filepath.Join(dir, "*.jsonl.gz"))
			slices.Sort(paths) // job, job.r2, job.r3…: later rounds hold newer values
			for _, p := range paths {
				f, err := os.Open(p)
				if err != nil {
					panic(err)
				}
				if err := ReadBackup(f, nil, func(r BackupRecord) error { inFiles[r.Key] = string(r.Value); return nil }); err != nil {
					panic(err)
				}
				f.Close()
			}
			mu.Lock()
			defer mu.Unlock()
			for k, v := range rewritten {
				if _, ok := present[k]; !ok && inFiles[k] != v {
					held := "an older value"
					if _, ok := inFiles[k]; !ok {
						held = "nothing"
					}
					problems = append(problems, fmt.Sprintf("%s deleted; completed files hold %s for it", strings.TrimPrefix(k, prefix), held))
				}
			}
		},
	}
	e := NewEngine(hookedTarget(t, s, prefix, h), EngineConfig{BatchSize: 100}).WithClock(func() time.Time { return testNow })
	rep, err := e.Run(ctx, RunSpec{Filter: Filter{All: true}, MaxValid: -1, Backup: &BackupSpec{Dir: dir, JobID: "job"}})
	if err != nil || rep.Deleted != 500 {
		t.Fatalf("Run = deleted %d, %v; want all 500", rep.Deleted, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(rewritten) == 0 {
		t.Fatal("no delete command seen: the test hooks nothing")
	}
	if len(problems) > 0 {
		t.Errorf("%d times a deleted session's last value was in no completed backup file, e.g. %s", len(problems), problems[0])
	}
}
