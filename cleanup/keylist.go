package cleanup

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// keyList is the phase-1 → phase-2 hand-over of a backed-up run: every key written to the
// backup with the SHA-1 of its value, in a private temporary file next to the backup so memory
// stays bounded by the batch, not the key count. It holds no values.
type keyList struct {
	path string
	f    *os.File
	w    *bufio.Writer
	n    int64
}

type keyEntry struct {
	key    string
	digest []byte // SHA-1 of the string value backed up; nil: not a string (deleted by type)
	valid  bool   // a still-valid session (a logout)
	user   string // user_id of the session, when decodable (for RunSpec.Deleted)
}

func newKeyList(dir, name string) (*keyList, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	path := filepath.Join(dir, "."+name+".keys")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, err
	}
	return &keyList{path: path, f: f, w: bufio.NewWriterSize(f, 64<<10)}, nil
}

// add appends one entry: flags (1: digest follows, 2: valid, 8: user follows), key
// length, key, digest, user length, user.
func (l *keyList) add(en keyEntry) error {
	var hdr [1 + binary.MaxVarintLen64]byte
	if en.digest != nil {
		hdr[0] |= 1
	}
	if en.valid {
		hdr[0] |= 2
	}
	if en.user != "" {
		hdr[0] |= 8
	}
	n := binary.PutUvarint(hdr[1:], uint64(len(en.key)))
	if _, err := l.w.Write(hdr[:1+n]); err != nil {
		return err
	}
	if _, err := l.w.WriteString(en.key); err != nil {
		return err
	}
	if en.digest != nil {
		if _, err := l.w.Write(en.digest); err != nil {
			return err
		}
	}
	if en.user != "" {
		n := binary.PutUvarint(hdr[:], uint64(len(en.user)))
		if _, err := l.w.Write(hdr[:n]); err != nil {
			return err
		}
		if _, err := l.w.WriteString(en.user); err != nil {
			return err
		}
	}
	l.n++
	return nil
}

// finish flushes the list so it can be read back.
func (l *keyList) finish() error {
	if err := l.w.Flush(); err != nil {
		return err
	}
	_, err := l.f.Seek(0, io.SeekStart)
	return err
}

// each reads the list back in batches of n entries.
func (l *keyList) each(n int, fn func([]keyEntry) error) error {
	r := bufio.NewReaderSize(l.f, 64<<10)
	batch := make([]keyEntry, 0, n)
	for {
		flags, err := r.ReadByte()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		size, err := binary.ReadUvarint(r)
		if err != nil {
			return fmt.Errorf("key list: %w", err)
		}
		key := make([]byte, size)
		if _, err := io.ReadFull(r, key); err != nil {
			return fmt.Errorf("key list: %w", err)
		}
		en := keyEntry{key: string(key), valid: flags&2 != 0}
		if flags&1 != 0 {
			en.digest = make([]byte, 20)
			if _, err := io.ReadFull(r, en.digest); err != nil {
				return fmt.Errorf("key list: %w", err)
			}
		}
		if flags&8 != 0 {
			size, err := binary.ReadUvarint(r)
			if err != nil {
				return fmt.Errorf("key list: %w", err)
			}
			user := make([]byte, size)
			if _, err := io.ReadFull(r, user); err != nil {
				return fmt.Errorf("key list: %w", err)
			}
			en.user = string(user)
		}
		batch = append(batch, en)
		if len(batch) == n {
			if err := fn(batch); err != nil {
				return err
			}
			batch = batch[:0]
		}
	}
	if len(batch) > 0 {
		return fn(batch)
	}
	return nil
}

func (l *keyList) remove() {
	if l == nil {
		return
	}
	l.f.Close()
	os.Remove(l.path)
}

// RemoveStaleKeyLists deletes the key lists a crashed run left in dir (they name session keys,
// which may be credentials) and returns how many it removed. Call it at start-up, before any
// run: a live run's list would be removed too.
func RemoveStaleKeyLists(dir string) (int, error) {
	names, err := filepath.Glob(filepath.Join(dir, ".*.keys"))
	if err != nil {
		return 0, err
	}
	n := 0
	for _, name := range names {
		if err := os.Remove(name); err != nil && !errors.Is(err, os.ErrNotExist) {
			return n, err
		}
		n++
	}
	return n, nil
}
