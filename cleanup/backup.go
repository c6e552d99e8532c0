package cleanup

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
	"unicode/utf8"

	"filippo.io/age"
	"filippo.io/age/armor"
)

// NoTTL is BackupRecord.PTTL for a key without an expiry (pttl_ms -1 in the file).
const NoTTL time.Duration = -1

// BackupRecord is one key in a backup. A string key whose value is valid UTF-8 is stored as
// its raw Value; any other key (another type, or a binary string) as Type and the Dump payload
// of Redis DUMP, restored with RESTORE.
type BackupRecord struct {
	Key   string
	Value []byte
	Type  string // "" or "string" with Value; string|hash|list|set|zset|stream with Dump
	Dump  []byte
	PTTL  time.Duration // remaining TTL when read; NoTTL (any negative) for none
	At    time.Time     // when the key was read; zero: PTTL counts from restore time
}

// ErrBackupNeedsDump is returned by BackupWriter.Write for a string value that is not valid
// UTF-8 and comes without a DUMP payload: JSON cannot carry it losslessly as "value".
var ErrBackupNeedsDump = errors.New("backup: value is not valid UTF-8; store its DUMP payload instead")

// backupLine is the on-disk shape of a record, one JSON object per line.
type backupLine struct {
	Key    string  `json:"key"`
	Value  *string `json:"value,omitempty"`
	Type   string  `json:"type,omitempty"`
	Dump   []byte  `json:"dump,omitempty"` // base64
	PTTLms *int64  `json:"pttl_ms"`
	At     string  `json:"at,omitempty"`
}

var dumpTypes = map[string]bool{"string": true, "hash": true, "list": true, "set": true, "zset": true, "stream": true}

const ageHeader = "age-encryption.org/v1"

// BackupWriter writes one backup file. The data goes to a hidden temporary file that becomes
// the final file only when Close succeeds, so a file with the final name is always complete:
// a failed or aborted backup leaves nothing behind. Not safe for concurrent use.
type BackupWriter struct {
	dir, tmp, final string
	f               *os.File
	out             *countingWriter
	buf             *bufio.Writer
	enc             io.WriteCloser // age; nil when plain
	gz              *gzip.Writer
	count           int64
	err             error // sticky: the first failure
	done            bool
}

// countingWriter counts what reached the file and remembers the first error.
type countingWriter struct {
	w   io.Writer
	n   int64
	err error
}

func (c *countingWriter) Write(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	n, err := c.w.Write(p)
	c.n += int64(n)
	if err == nil && n < len(p) {
		err = io.ErrShortWrite
	}
	c.err = err
	return n, err
}

// CreateBackup starts the backup dir/name.jsonl.gz, or dir/name.jsonl.gz.age encrypted to
// recipients (age X25519 public keys, "age1…") when any are given. dir is created with mode
// 0700; an existing dir that is group- or world-writable is refused, as is an existing backup
// of the same name.
func CreateBackup(dir, name string, recipients []string) (*BackupWriter, error) {
	return createBackup(dir, name, recipients, nil)
}

// createBackup is CreateBackup with a hook that wraps the file writer (tests inject failures).
func createBackup(dir, name string, recipients []string, wrap func(io.Writer) io.Writer) (*BackupWriter, error) {
	if name == "" || strings.ContainsAny(name, `/\`) || strings.HasPrefix(name, ".") {
		return nil, fmt.Errorf("backup: invalid name %q", name)
	}
	var rcpts []age.Recipient
	if len(recipients) > 0 {
		for _, s := range recipients {
			r, err := age.ParseX25519Recipient(strings.TrimSpace(s))
			if err != nil {
				return nil, fmt.Errorf("BACKUP_AGE_RECIPIENTS: %w", err)
			}
			rcpts = append(rcpts, r)
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("BACKUP_DIR: %w", err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("BACKUP_DIR: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("BACKUP_DIR %s: not a directory", dir)
	}
	if fi.Mode().Perm()&0o022 != 0 {
		return nil, fmt.Errorf("BACKUP_DIR %s: mode %04o is group- or world-writable; backups hold live sessions (chmod 700 it)", dir, fi.Mode().Perm())
	}

	final := filepath.Join(dir, name+".jsonl.gz")
	if rcpts != nil {
		final += ".age"
	}
	if _, err := os.Lstat(final); err == nil {
		return nil, fmt.Errorf("backup: %s already exists", final)
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("backup: %w", err)
	}
	tmp := filepath.Join(dir, "."+name+".tmp")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("backup: %w (another backup of this name running, or a leftover to remove)", err)
	}

	b := &BackupWriter{dir: dir, tmp: tmp, final: final, f: f}
	var w io.Writer = f
	if wrap != nil {
		w = wrap(f)
	}
	b.out = &countingWriter{w: w}
	b.buf = bufio.NewWriterSize(b.out, 64<<10)
	w = b.buf
	if rcpts != nil {
		if b.enc, err = age.Encrypt(b.buf, rcpts...); err != nil {
			b.Abort()
			return nil, fmt.Errorf("backup: %w", err)
		}
		w = b.enc
	}
	// BestSpeed: a mass-logout backup sits on the incident's critical path; session JSON with
	// random tokens compresses little better at higher levels anyway.
	b.gz, _ = gzip.NewWriterLevel(w, gzip.BestSpeed)
	return b, nil
}

// Write appends rec. The first error is sticky: it is returned by every later Write and by
// Close, which then leaves no final file.
func (b *BackupWriter) Write(rec BackupRecord) error {
	line, err := AppendBackupLine(nil, rec)
	if err != nil {
		// A bad record is the caller's mistake, not a broken file: not sticky.
		return err
	}
	return b.WriteLines(line, 1)
}

// AppendBackupLine appends rec's JSON line, newline included, to dst. It needs no writer, so
// callers can encode batches in parallel and hand them to WriteLines in order.
func AppendBackupLine(dst []byte, rec BackupRecord) ([]byte, error) {
	line, err := encodeBackupLine(rec)
	if err != nil {
		return dst, err
	}
	buf := bytes.NewBuffer(dst)
	enc := json.NewEncoder(buf)
	enc.SetEscapeHTML(false) // keep values readable with zcat
	if err := enc.Encode(line); err != nil {
		return dst, fmt.Errorf("backup: %w", err)
	}
	return buf.Bytes(), nil
}

// WriteLines appends n lines encoded by AppendBackupLine. Errors are sticky, as for Write.
func (b *BackupWriter) WriteLines(p []byte, n int64) error {
	if b.err != nil {
		return b.err
	}
	if b.done {
		return errors.New("backup: write after close")
	}
	if _, err := b.gz.Write(p); err != nil {
		b.err = fmt.Errorf("backup: write %s: %w", b.tmp, err)
		return b.err
	}
	b.count += n
	return nil
}

func encodeBackupLine(rec BackupRecord) (backupLine, error) {
	if rec.Key == "" {
		return backupLine{}, errors.New("backup: empty key")
	}
	l := backupLine{Key: rec.Key}
	ms := int64(-1)
	if rec.PTTL >= 0 {
		ms = rec.PTTL.Milliseconds()
	}
	l.PTTLms = &ms
	if !rec.At.IsZero() {
		l.At = rec.At.UTC().Format(time.RFC3339Nano)
	}
	switch {
	case len(rec.Dump) > 0:
		if !dumpTypes[rec.Type] {
			return backupLine{}, fmt.Errorf("backup: key %q: unknown type %q", rec.Key, rec.Type)
		}
		l.Type, l.Dump = rec.Type, rec.Dump
	case rec.Type != "" && rec.Type != "string":
		return backupLine{}, fmt.Errorf("backup: key %q: type %s needs a DUMP payload", rec.Key, rec.Type)
	case !utf8.Valid(rec.Value):
		return backupLine{}, fmt.Errorf("key %q: %w", rec.Key, ErrBackupNeedsDump)
	default:
		v := string(rec.Value)
		l.Value = &v
	}
	return l, nil
}

// Close completes the backup: it finishes gzip and age, syncs the file, renames it to Path and
// syncs the directory. On any error the temporary file is removed and no final file remains.
func (b *BackupWriter) Close() error {
	if b.done {
		if b.err != nil {
			return b.err
		}
		return nil
	}
	b.done = true
	err := b.err
	if err == nil {
		err = b.finish()
	}
	if err != nil {
		b.err = err
		_ = b.f.Close()
		_ = os.Remove(b.tmp)
		return err
	}
	return nil
}

func (b *BackupWriter) finish() error {
	wrap := func(op string, err error) error { return fmt.Errorf("backup: %s %s: %w", op, b.tmp, err) }
	if err := b.gz.Close(); err != nil {
		return wrap("write", err)
	}
	if b.enc != nil {
		if err := b.enc.Close(); err != nil {
			return wrap("write", err)
		}
	}
	if err := b.buf.Flush(); err != nil {
		return wrap("write", err)
	}
	if err := b.f.Sync(); err != nil {
		return wrap("sync", err)
	}
	if err := b.f.Close(); err != nil {
		return wrap("close", err)
	}
	if err := os.Rename(b.tmp, b.final); err != nil {
		return wrap("rename", err)
	}
	// Without syncing the directory, a crash could lose the rename while the caller has
	// already deleted the sessions the backup holds.
	if err := syncDir(b.dir); err != nil {
		_ = os.Remove(b.final)
		return fmt.Errorf("backup: sync dir %s: %w", b.dir, err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// Abort discards the backup, removing the temporary file. It does nothing after a successful
// Close.
func (b *BackupWriter) Abort() {
	if b.done {
		return
	}
	b.done = true
	if b.err == nil {
		b.err = errors.New("backup: aborted")
	}
	_ = b.f.Close()
	_ = os.Remove(b.tmp)
}

// Path is the final file name, which exists only after a successful Close.
func (b *BackupWriter) Path() string { return b.final }

// Count is the number of records written.
func (b *BackupWriter) Count() int64 { return b.count }

// Bytes is the number of (compressed, possibly encrypted) bytes that reached the file so far.
func (b *BackupWriter) Bytes() int64 { return b.out.n }

// ReadBackup decodes a backup from r, calling fn for each record in file order. An age-encrypted
// backup (binary or armored) is decrypted with identities. Every line must be a well-formed
// record: a corrupt line is an error naming its line number, and a truncated file fails the gzip
// checksum. An error from fn stops the read and is returned as is.
func ReadBackup(r io.Reader, identities []age.Identity, fn func(BackupRecord) error) error {
	br := bufio.NewReader(r)
	head, _ := br.Peek(len(armor.Header))
	var src io.Reader = br
	switch {
	case bytes.HasPrefix(head, []byte(ageHeader)), bytes.HasPrefix(head, []byte(armor.Header)):
		if len(identities) == 0 {
			return errors.New("backup is age-encrypted: an identity is needed (BACKUP_AGE_IDENTITY_FILE)")
		}
		if bytes.HasPrefix(head, []byte(armor.Header)) {
			src = armor.NewReader(br)
		}
		d, err := age.Decrypt(src, identities...)
		if err != nil {
			return fmt.Errorf("backup: decrypt: %w", err)
		}
		src = d
	}
	gz, err := gzip.NewReader(src)
	if err != nil {
		return fmt.Errorf("backup: not a gzip file: %w", err)
	}
	lines := bufio.NewReaderSize(gz, 64<<10)
	for n := 1; ; n++ {
		line, err := lines.ReadBytes('\n')
		if len(line) == 0 && err == io.EOF {
			return nil
		}
		if err != nil && err != io.EOF {
			return fmt.Errorf("backup: line %d: %w", n, err)
		}
		rec, derr := decodeBackupLine(line)
		if derr != nil {
			return fmt.Errorf("backup: line %d: %w", n, derr)
		}
		if ferr := fn(rec); ferr != nil {
			return ferr
		}
		if err == io.EOF {
			return nil
		}
	}
}

func decodeBackupLine(line []byte) (BackupRecord, error) {
	if !utf8.Valid(line) {
		// We write only valid UTF-8; encoding/json would silently turn bad bytes into U+FFFD.
		return BackupRecord{}, errors.New("invalid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	var l backupLine
	if err := dec.Decode(&l); err != nil {
		return BackupRecord{}, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return BackupRecord{}, errors.New("trailing data after the record")
	}
	if l.Key == "" {
		return BackupRecord{}, errors.New("missing key")
	}
	if l.PTTLms == nil {
		return BackupRecord{}, errors.New("missing pttl_ms")
	}
	rec := BackupRecord{Key: l.Key, PTTL: NoTTL}
	switch ms := *l.PTTLms; {
	case ms >= 0:
		rec.PTTL = time.Duration(ms) * time.Millisecond
	case ms != -1:
		return BackupRecord{}, fmt.Errorf("pttl_ms %d: want -1 or ≥ 0", ms)
	}
	if l.At != "" {
		at, err := time.Parse(time.RFC3339Nano, l.At)
		if err != nil {
			return BackupRecord{}, fmt.Errorf("at: %w", err)
		}
		rec.At = at
	}
	switch {
	case l.Value != nil && (l.Dump != nil || l.Type != ""):
		return BackupRecord{}, errors.New("both value and type/dump")
	case l.Value != nil:
		rec.Value = []byte(*l.Value)
	case l.Dump == nil:
		return BackupRecord{}, errors.New("neither value nor dump")
	case !dumpTypes[l.Type]:
		return BackupRecord{}, fmt.Errorf("unknown type %q", l.Type)
	default:
		rec.Type, rec.Dump = l.Type, l.Dump
	}
	return rec, nil
}

// LoadAgeIdentities reads age identities (AGE-SECRET-KEY-1… lines) from path.
func LoadAgeIdentities(path string) ([]age.Identity, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("BACKUP_AGE_IDENTITY_FILE: %w", err)
	}
	defer f.Close()
	ids, err := age.ParseIdentities(f)
	if err != nil {
		return nil, fmt.Errorf("BACKUP_AGE_IDENTITY_FILE %s: %w", path, err)
	}
	return ids, nil
}
