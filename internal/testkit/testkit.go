// Package testkit holds the small test helpers that the bot and the command-line tests share, so
// that each exists once. It is imported only by _test.go files.
package testkit

import (
	"bytes"
	"sync"
	"testing"

	"github.com/platform-team/sessionbot/cleanup"
)

// SyncBuffer is a bytes.Buffer safe for concurrent writers and readers (a logger, an audit
// sink or a process's output read while it runs).
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// WriteBackup writes the unencrypted backup file dir/name.jsonl.gz holding recs, as a cleanup
// run would, and returns its path; it fails the test on any error.
func WriteBackup(t testing.TB, dir, name string, recs ...cleanup.BackupRecord) string {
	t.Helper()
	w, err := cleanup.CreateBackup(dir, name, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if err := w.Write(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return w.Path()
}
