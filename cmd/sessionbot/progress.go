package main

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/platform-team/sessionbot/cleanup"
)

// plainEvery is how often progress is printed when stderr is not a terminal (a log, a pipe).
const plainEvery = 2 * time.Second

// progressBar shows the engine's progress on stderr: a live one-line bar on a terminal, a plain
// line every plainEvery otherwise. The engine calls update from its own goroutine.
type progressBar struct {
	mu    sync.Mutex
	w     io.Writer
	tty   bool
	total int64  // keys expected (the preview's count); 0: unknown
	what  string // "deleted", or "backed up" (counts matched keys written to the backup)
	last  time.Time
	drawn bool
}

func newProgressBar(w io.Writer, tty bool, total int64, what string) *progressBar {
	return &progressBar{w: w, tty: tty, total: total, what: what, last: time.Now()}
}

func (p *progressBar) update(pr cleanup.Progress) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tty {
		fmt.Fprintf(p.w, "\r%s\x1b[K", p.line(pr, true))
		p.drawn = true
		return
	}
	if time.Since(p.last) < plainEvery {
		return
	}
	p.last = time.Now()
	fmt.Fprintf(p.w, "progress: %s\n", p.line(pr, false))
}

// restart ends the live line and counts anew: the run that follows its own preview
// (`cleanup --all --yes`) goes on deleting what it just counted.
func (p *progressBar) restart(total int64, what string) {
	p.done()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.total, p.what = total, what
}

// done ends the live line so that what follows starts on a fresh one.
func (p *progressBar) done() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.drawn {
		fmt.Fprintln(p.w)
		p.drawn = false
	}
}

func (p *progressBar) line(pr cleanup.Progress, bar bool) string {
	var b strings.Builder
	if p.total > 0 {
		frac := min(float64(pr.Scanned)/float64(p.total), 1)
		if bar {
			const width = 24
			n := int(frac * width)
			fmt.Fprintf(&b, "[%s%s] ", strings.Repeat("#", n), strings.Repeat(".", width-n))
		}
		fmt.Fprintf(&b, "%3.0f%% scanned %d/%d", frac*100, pr.Scanned, p.total)
	} else {
		fmt.Fprintf(&b, "scanned %d", pr.Scanned)
	}
	n := pr.Deleted
	if p.what != "deleted" {
		n = pr.Matched
	}
	fmt.Fprintf(&b, ", %s %d", p.what, n)
	if pr.Skipped > 0 {
		fmt.Fprintf(&b, ", changed since read (kept) %d", pr.Skipped)
	}
	if pr.Errors > 0 {
		fmt.Fprintf(&b, ", errors %d", pr.Errors)
	}
	if s := pr.Elapsed.Seconds(); s > 0 {
		fmt.Fprintf(&b, ", %.0f keys/s, %s", float64(pr.Scanned)/s, pr.Elapsed.Round(100*time.Millisecond))
	}
	return b.String()
}
