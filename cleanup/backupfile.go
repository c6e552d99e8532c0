package cleanup

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"filippo.io/age"
)

// A Backup is one job's backup: the file of its first round (BACKUP_DIR/<id>.jsonl.gz, or
// .jsonl.gz.age when encrypted) and those of later rounds (<id>.r<k>.jsonl.gz: newer values of
// sessions rewritten while the job ran, and sessions created meanwhile), newest round first.
type Backup struct {
	ID        string
	Files     []string // newest round first
	Size      int64    // bytes on disk, all files
	Modified  time.Time
	Encrypted bool
}

var backupFileRe = regexp.MustCompile(`^(.+?)(?:\.r([0-9]+))?\.jsonl\.gz(\.age)?$`)

// parseBackupName splits a backup file name into its job id and round (1 for the first file).
func parseBackupName(name string) (id string, round int, encrypted, ok bool) {
	m := backupFileRe.FindStringSubmatch(name)
	if m == nil || strings.HasPrefix(name, ".") {
		return "", 0, false, false
	}
	round = 1
	if m[2] != "" {
		round, _ = strconv.Atoi(m[2])
	}
	return m[1], round, m[3] != "", true
}

// NextBackupRound is the round a job resuming the backup id should write first: after every
// round of id in dir, complete or left behind half-written by a run that was interrupted
// (.<id>[.r<k>].tmp), so that nothing of the earlier run is overwritten or collided with.
func NextBackupRound(dir, id string) (int, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return 1, nil
	}
	if err != nil {
		return 0, err
	}
	last := 0
	for _, e := range entries {
		name := e.Name()
		if rest, ok := strings.CutPrefix(name, "."); ok {
			if base, ok := strings.CutSuffix(rest, ".tmp"); ok {
				name = base + ".jsonl.gz"
			}
		}
		if got, round, _, ok := parseBackupName(name); ok && got == id {
			last = max(last, round)
		}
	}
	return last + 1, nil
}

// ListBackups returns the backups in dir, newest first. A missing dir holds none.
func ListBackups(dir string) ([]Backup, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	type file struct {
		path  string
		round int
	}
	byID := map[string]*Backup{}
	files := map[string][]file{}
	for _, e := range entries {
		id, round, enc, ok := parseBackupName(e.Name())
		if !ok || !e.Type().IsRegular() {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			continue // removed meanwhile
		}
		b := byID[id]
		if b == nil {
			b = &Backup{ID: id}
			byID[id] = b
		}
		b.Size += fi.Size()
		b.Encrypted = b.Encrypted || enc
		if fi.ModTime().After(b.Modified) {
			b.Modified = fi.ModTime()
		}
		files[id] = append(files[id], file{filepath.Join(dir, e.Name()), round})
	}
	out := make([]Backup, 0, len(byID))
	for id, b := range byID {
		fs := files[id]
		slices.SortFunc(fs, func(a, b file) int { return cmp.Compare(b.round, a.round) })
		for _, f := range fs {
			b.Files = append(b.Files, f.path)
		}
		out = append(out, *b)
	}
	slices.SortFunc(out, func(a, b Backup) int {
		return cmp.Or(b.Modified.Compare(a.Modified), cmp.Compare(a.ID, b.ID))
	})
	return out, nil
}

// FindBackup finds backup ref: a job id in dir, or the path of one of its files (all of the
// job's files beside it are included).
func FindBackup(dir, ref string) (Backup, error) {
	id := ref
	if strings.ContainsRune(ref, os.PathSeparator) || backupFileRe.MatchString(filepath.Base(ref)) {
		dir = filepath.Dir(ref)
		var ok bool
		if id, _, _, ok = parseBackupName(filepath.Base(ref)); !ok {
			return Backup{}, fmt.Errorf("%s is not a backup file (<job-id>.jsonl.gz or .jsonl.gz.age)", filepath.Base(ref))
		}
	}
	all, err := ListBackups(dir)
	if err != nil {
		return Backup{}, err
	}
	for _, b := range all {
		if b.ID == id {
			return b, nil
		}
	}
	return Backup{}, fmt.Errorf("no backup %q in %s", id, dir)
}

// Reader returns a reader of the backup's records for Restore: newest round first, and each
// session once, with its newest value (a session rewritten while the job ran is recorded in the
// first round and again in a later one). Only the later rounds' keys are remembered to skip the
// older copies; they are the small ones.
func (b Backup) Reader(identities []age.Identity) func(fn func(BackupRecord) error) error {
	return func(fn func(BackupRecord) error) error {
		newer := map[string]struct{}{}
		for i, path := range b.Files {
			oldest := i == len(b.Files)-1
			f, err := os.Open(path)
			if err != nil {
				return err
			}
			err = ReadBackup(f, identities, func(rec BackupRecord) error {
				if _, ok := newer[rec.Key]; ok {
					return nil
				}
				if !oldest {
					newer[rec.Key] = struct{}{}
				}
				return fn(rec)
			})
			f.Close()
			if err != nil {
				return fmt.Errorf("%s: %w", filepath.Base(path), err)
			}
		}
		return nil
	}
}

// Identities loads the age identities that decrypt backups (BACKUP_AGE_IDENTITY_FILE); none
// when it is not set.
func (c BackupConfig) Identities() ([]age.Identity, error) {
	if c.AgeIdentityFile == "" {
		return nil, nil
	}
	return LoadAgeIdentities(c.AgeIdentityFile)
}

// PruneBackups removes the backups in dir last written before now − retention (they hold live
// tokens) and returns them.
func PruneBackups(dir string, retention time.Duration, now time.Time) ([]Backup, error) {
	all, err := ListBackups(dir)
	if err != nil {
		return nil, err
	}
	var pruned []Backup
	for _, b := range all {
		if !b.Modified.Before(now.Add(-retention)) {
			continue
		}
		for _, f := range b.Files {
			if err := os.Remove(f); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return pruned, err
			}
		}
		pruned = append(pruned, b)
	}
	return pruned, nil
}
