package cleanup

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"hash/maphash"
	"io"
	"os"
	"path/filepath"
	"sync"
)

// seenLog is every key a preview found, master by master in the order its SCAN returned them:
// an 8-byte hash of each (never the key: a session key may be a credential), spilled to a
// private file per master, so memory does not grow with the key count.
//
// A later SCAN of the same master meets the keys that are still there in nearly the same order
// (SCAN walks the hash table's buckets in a fixed order, whatever the table's size), so a window
// that slides along the log behind that scan (seenWindow) answers "did the preview see this
// key?" holding a few thousand hashes. When it cannot tell — the order changed, because the
// master restarted or failed over — it answers no, and the key is read again: slower, never
// unsafe.
type seenLog struct {
	dir, name string
	seed      maphash.Seed
	mu        sync.Mutex
	nodes     map[string]*seenFile
}

type seenFile struct {
	path string
	f    *os.File
	w    *bufio.Writer
}

func newSeenLog(dir, name string) *seenLog {
	return &seenLog{dir: dir, name: name, seed: maphash.MakeSeed(), nodes: map[string]*seenFile{}}
}

func (l *seenLog) hash(key string) uint64 { return maphash.String(l.seed, key) }

// add appends keys a preview found on node, in the order it found them.
func (l *seenLog) add(node string, keys []string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	sf := l.nodes[node]
	if sf == nil {
		path := filepath.Join(l.dir, fmt.Sprintf(".%s-%d.keys", l.name, len(l.nodes)))
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
		if err != nil {
			return err
		}
		sf = &seenFile{path: path, f: f, w: bufio.NewWriterSize(f, 32<<10)}
		l.nodes[node] = sf
	}
	var b [8]byte
	for _, k := range keys {
		binary.LittleEndian.PutUint64(b[:], l.hash(k))
		if _, err := sf.w.Write(b[:]); err != nil {
			return err
		}
	}
	return nil
}

// finish flushes every master's log so it can be read back.
func (l *seenLog) finish() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, sf := range l.nodes {
		if err := sf.w.Flush(); err != nil {
			return err
		}
	}
	return nil
}

// remove deletes the files. Safe on nil.
func (l *seenLog) remove() {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, sf := range l.nodes {
		sf.f.Close()
		os.Remove(sf.path)
	}
	l.nodes = map[string]*seenFile{}
}

// seenScan is one later scan's view of a seenLog: a window per master.
type seenScan struct {
	log     *seenLog
	mu      sync.Mutex
	windows map[string]*seenWindow
}

// scan starts a later scan of the masters the log was written from.
func (l *seenLog) scan() *seenScan { return &seenScan{log: l, windows: map[string]*seenWindow{}} }

// fresh returns the keys of a batch the scan found on node that the preview did not find
// there, as far as node's window can tell. A master's batches must come in SCAN order.
func (s *seenScan) fresh(node string, keys []string) ([]string, error) {
	s.mu.Lock()
	w := s.windows[node]
	if w == nil {
		var err error
		if w, err = s.log.window(node); err != nil {
			s.mu.Unlock()
			return nil, err
		}
		s.windows[node] = w
	}
	s.mu.Unlock()
	var out []string
	for _, k := range keys {
		if !w.knows(k) {
			out = append(out, k)
		}
	}
	return out, nil
}

// close releases every window's file.
func (s *seenScan) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, w := range s.windows {
		w.close()
	}
}

// window starts reading node's log from its beginning, for one scan of node. A master the
// preview did not scan gets a window that knows no key.
func (l *seenLog) window(node string) (*seenWindow, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	w := &seenWindow{hash: l.hash, at: map[uint64]int64{}}
	if sf := l.nodes[node]; sf != nil {
		f, err := os.Open(sf.path)
		if err != nil {
			return nil, err
		}
		w.f, w.r = f, bufio.NewReaderSize(f, 32<<10)
	}
	return w, nil
}

// How far a seenWindow reaches along its log: seenAhead hashes past the furthest one found so
// far (the keys between were deleted by the run, or expired, since the preview), and seenBehind
// before where that furthest one stood seenLagHits found keys ago. The lag is for a scan's
// order that differs locally — an unpaced preview handles a master's batches two at a time, a
// resized table splits or merges neighbouring buckets — also across a stretch of keys deleted
// since, which the later scan crosses in one step. A window never holds more than seenMax
// hashes (~1 MB with its map).
const (
	seenAhead   = 8192
	seenBehind  = 1024
	seenLagHits = 1024
	seenMax     = 2*seenAhead + seenBehind
)

// seenWindow answers, for one scan of one master, whether the preview found a key.
type seenWindow struct {
	hash   func(string) uint64
	f      *os.File // nil: no log for this master
	r      *bufio.Reader
	mu     sync.Mutex
	at     map[uint64]int64 // hash → its position in the log, for the hashes in the window
	queue  []uint64         // the window's hashes in log order from queue[head]; the last is at next-1
	head   int
	next   int64              // position of the next hash to read from the log
	anchor int64              // position of the furthest hash found so far
	lag    [seenLagHits]int64 // the anchor after each of the last hits, a ring; lag[lagAt] is the oldest
	lagAt  int
	done   bool // the log is read to its end (or could not be read further: knowing less is safe)
}

// knows reports whether the preview found key on this master, as far as the window can tell.
func (w *seenWindow) knows(key string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.r == nil {
		return false
	}
	w.fill()
	p, ok := w.at[w.hash(key)]
	if !ok {
		return false
	}
	w.anchor = max(w.anchor, p)
	w.lag[w.lagAt] = w.anchor
	w.lagAt = (w.lagAt + 1) % seenLagHits
	w.evict()
	w.fill()
	return true
}

// fill reads the log up to seenAhead hashes past the anchor, or until the window is full.
func (w *seenWindow) fill() {
	var b [8]byte
	for !w.done && w.next <= w.anchor+seenAhead && len(w.queue)-w.head < seenMax {
		if _, err := io.ReadFull(w.r, b[:]); err != nil {
			w.done = true
			return
		}
		h := binary.LittleEndian.Uint64(b[:])
		w.at[h] = w.next
		w.queue = append(w.queue, h)
		w.next++
	}
}

// evict forgets the hashes more than seenBehind before the anchor of seenLagHits hits ago.
func (w *seenWindow) evict() {
	first := w.next - int64(len(w.queue)-w.head) // the log position of queue[head]
	for w.head < len(w.queue) && first < w.lag[w.lagAt]-seenBehind {
		if h := w.queue[w.head]; w.at[h] == first { // not found again further on
			delete(w.at, h)
		}
		w.head++
		first++
	}
	if w.head > len(w.queue)/2 {
		w.queue = w.queue[:copy(w.queue, w.queue[w.head:])]
		w.head = 0
	}
}

// close releases the window's file.
func (w *seenWindow) close() {
	if w.f != nil {
		w.f.Close()
	}
}
