package main

import (
	"context"
	"os"
	"os/exec"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

// probe is the "other Redis client" of SPEC §10: one connection doing a GET of an unrelated key
// every interval, recording each round trip.
type probe struct {
	c        *redis.Client
	key      string
	interval time.Duration
	stop     chan struct{}
	done     chan struct{}

	mu        sync.Mutex
	recording bool
	lat       []time.Duration
}

type latency struct{ p50, p99, max time.Duration }

func newProbe(addr, key string) *probe {
	p := &probe{
		c:        redis.NewClient(&redis.Options{Addr: addr, PoolSize: 1, MinIdleConns: 1}),
		key:      key,
		interval: time.Millisecond,
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	go p.loop()
	return p
}

func (p *probe) loop() {
	defer close(p.done)
	ctx := context.Background()
	t := time.NewTicker(p.interval)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
		}
		start := time.Now()
		p.c.Get(ctx, p.key)
		d := time.Since(start)
		p.mu.Lock()
		if p.recording {
			p.lat = append(p.lat, d)
		}
		p.mu.Unlock()
	}
}

// record runs fn while recording the probe's latencies and returns their distribution.
// Recording stops even when fn panics (a fake's Fatalf, see fakeTB).
func (p *probe) record(fn func()) latency {
	p.mu.Lock()
	p.lat, p.recording = p.lat[:0], true
	p.mu.Unlock()
	func() {
		defer func() {
			p.mu.Lock()
			p.recording = false
			p.mu.Unlock()
		}()
		fn()
	}()
	p.mu.Lock()
	lat := slices.Clone(p.lat)
	p.mu.Unlock()
	if len(lat) == 0 {
		return latency{}
	}
	slices.Sort(lat)
	q := func(f float64) time.Duration { return lat[min(int(f*float64(len(lat))), len(lat)-1)] }
	return latency{p50: q(0.50), p99: q(0.99), max: lat[len(lat)-1]}
}

// proc is what process measured of one child process.
type proc struct {
	wall  time.Duration
	rssMB float64 // peak RSS, from the child's rusage
	lat   latency
}

// process runs cmd to completion under the probe: its wall time (start to exit), peak RSS and
// the probe's latencies meanwhile.
func (p *probe) process(cmd *exec.Cmd) (proc, error) {
	var (
		pr  proc
		err error
	)
	pr.lat = p.record(func() {
		start := time.Now()
		err = cmd.Run()
		pr.wall = time.Since(start)
	})
	pr.rssMB = peakRSS(cmd.ProcessState)
	return pr, err
}

// peakRSS is an exited child's peak resident set in MB (0 when it did not run).
func peakRSS(ps *os.ProcessState) float64 {
	if ps == nil {
		return 0
	}
	if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
		return float64(ru.Maxrss) / 1024
	}
	return 0
}

func (p *probe) close() {
	close(p.stop)
	<-p.done
	p.c.Close()
}
