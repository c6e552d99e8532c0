package cleanup

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"
	"unicode/utf8"

	"filippo.io/age"
	"github.com/redis/go-redis/v9"
)

// A run's backup holds exactly the keys the run deleted, each with the value it had and a TTL
// that was true when it was read: strings as their raw value, other types (and strings that are
// not UTF-8) as their DUMP payload. The file is private (0600); with recipients it is
// age-encrypted and unreadable without the identity. Decoded here the way an operator's tools
// would (age -d, zcat, one JSON object a line), not with ReadBackup.
func TestRunBackupHoldsExactlyTheDeletedKeys(t *testing.T) {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	targets(t, func(t *testing.T, tgt *Target) {
		tests := []struct {
			name     string
			filter   Filter
			identity age.Identity // nil: plain gzip
		}{
			{"expired plain", Filter{}, nil},
			{"all encrypted", Filter{All: true}, id},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				ctx := context.Background()
				ss := population(200, 80, nil)
				for i := range ss {
					if i%10 == 0 {
						ss[i].ttl = 0
					}
				}
				put(t, tgt, ss...)
				nm := malformed(t, tgt)
				check := unrelated(t, tgt)
				read := time.Now()
				before := keysBefore(t, tgt)
				spec := &BackupSpec{Dir: filepath.Join(t.TempDir(), "backups"), JobID: "job-b"}
				wantName := "job-b.jsonl.gz"
				if tt.identity != nil {
					spec.Recipients = []string{id.Recipient().String()}
					wantName += ".age"
				}
				rep, err := engine(tgt).Run(ctx, RunSpec{Filter: tt.filter, MaxValid: -1, Backup: spec})
				if err != nil {
					t.Fatalf("Run = %v", err)
				}
				elapsed := time.Since(read)
				check()

				after := snapshot(t, tgt.Client(), tgt.Prefix())
				var deleted []string
				for k := range before {
					if _, ok := after[k]; !ok {
						deleted = append(deleted, k)
					}
				}
				want := 80
				if tt.filter.All {
					want = 200 + nm
				}
				if len(deleted) != want || rep.Deleted != int64(want) {
					t.Errorf("%d keys gone, Report.Deleted = %d; want %d", len(deleted), rep.Deleted, want)
				}
				if rep.Backup != filepath.Join(spec.Dir, wantName) {
					t.Errorf("Report.Backup = %q; want %s in %s", rep.Backup, wantName, spec.Dir)
				}
				assertMode(t, rep.Backup, 0o600)

				lines := decodeBackupFile(t, rep.Backup, tt.identity)
				for _, k := range deleted {
					l, ok := lines[k]
					if !ok {
						t.Errorf("deleted key %s… is not in the backup", ShortID(k))
						continue
					}
					delete(lines, k)
					checkBackupLine(t, l, before[k], elapsed)
				}
				for k := range lines {
					t.Errorf("the backup holds %s…, which was not deleted", ShortID(k))
				}
			})
		}
	})
}

// keyBefore is what a key held before a run: its type, raw value (strings), DUMP payload and PTTL.
type keyBefore struct {
	typ   string
	value []byte
	dump  []byte
	pttl  time.Duration // -1: no TTL
}

func keysBefore(t *testing.T, tgt *Target) map[string]keyBefore {
	t.Helper()
	ctx := context.Background()
	c := tgt.Client()
	snap := snapshot(t, c, tgt.Prefix())
	type cmds struct {
		typ  *redis.StatusCmd
		dump *redis.StringCmd
		pttl *redis.DurationCmd
	}
	all := map[string]cmds{}
	_, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for k := range snap {
			all[k] = cmds{p.Type(ctx, k), p.Dump(ctx, k), p.PTTL(ctx, k)}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]keyBefore{}
	for k, cs := range all {
		s := keyBefore{typ: cs.typ.Val(), dump: []byte(cs.dump.Val()), pttl: cs.pttl.Val()}
		if s.typ == "string" {
			s.value = []byte(snap[k])
		}
		out[k] = s
	}
	return out
}

// fileLine is one line of a backup file as SPEC §11 specifies it.
type fileLine struct {
	Key   string  `json:"key"`
	Value *string `json:"value"`
	Type  string  `json:"type"`
	Dump  []byte  `json:"dump"`
	PTTL  *int64  `json:"pttl_ms"`
	At    string  `json:"at"`
}

// decodeBackupFile decodes the backup at path by key; identity nil means plain gzip, and then
// an encrypted file fails the test.
func decodeBackupFile(t *testing.T, path string, identity age.Identity) map[string]fileLine {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var r io.Reader = bytes.NewReader(raw)
	if identity != nil {
		if _, err := gzip.NewReader(bytes.NewReader(raw)); err == nil {
			t.Errorf("%s reads as plain gzip; want it age-encrypted", path)
		}
		if r, err = age.Decrypt(r, identity); err != nil {
			t.Fatalf("age -d %s: %v", path, err)
		}
	}
	zr, err := gzip.NewReader(r)
	if err != nil {
		t.Fatalf("%s is not gzip: %v", path, err)
	}
	out := map[string]fileLine{}
	br := bufio.NewReader(zr)
	for n := 1; ; n++ {
		line, err := br.ReadBytes('\n')
		if errors.Is(err, io.EOF) && len(line) == 0 {
			break
		}
		if err != nil {
			t.Fatalf("line %d: %v (every line ends in a newline)", n, err)
		}
		dec := json.NewDecoder(bytes.NewReader(line))
		dec.DisallowUnknownFields()
		var l fileLine
		if err := dec.Decode(&l); err != nil {
			t.Fatalf("line %d is not one backup record: %v", n, err)
		}
		if _, dup := out[l.Key]; dup {
			t.Errorf("line %d: %s… backed up twice", n, ShortID(l.Key))
		}
		out[l.Key] = l
	}
	return out
}

// checkBackupLine compares a backup line with what its key held when the run started, elapsed
// before the run ended.
func checkBackupLine(t *testing.T, l fileLine, was keyBefore, elapsed time.Duration) {
	t.Helper()
	name := ShortID(l.Key) + "…"
	if was.typ == "string" && utf8.Valid(was.value) {
		if l.Value == nil || *l.Value != string(was.value) || l.Dump != nil || l.Type != "" {
			t.Errorf("%s: backup value %v, type %q, dump %d bytes; want the raw value %.40q", name, l.Value, l.Type, len(l.Dump), was.value)
		}
	} else if l.Value != nil || l.Type != was.typ || !bytes.Equal(l.Dump, was.dump) {
		t.Errorf("%s: backup type %q, dump %q, value %v; want a %s with DUMP %q", name, l.Type, l.Dump, l.Value, was.typ, was.dump)
	}
	switch {
	case l.PTTL == nil:
		t.Errorf("%s: no pttl_ms", name)
	case was.pttl < 0:
		if *l.PTTL != -1 {
			t.Errorf("%s: pttl_ms %d; want -1 (no TTL)", name, *l.PTTL)
		}
	default:
		// Read during the run: at most what it had before, less at most the run's duration.
		hi, lo := was.pttl.Milliseconds(), (was.pttl-elapsed).Milliseconds()-10
		if *l.PTTL > hi || *l.PTTL < lo || *l.PTTL <= 0 {
			t.Errorf("%s: pttl_ms %d; want within [%d, %d]", name, *l.PTTL, lo, hi)
		}
	}
}
