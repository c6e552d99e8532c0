package bot

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/platform-team/sessionbot/bot/slacktest"
)

// gate holds writes to Redis while it is shut, as a Redis that has stopped answering would: the
// commands of a client that dialled through it stay in flight until it opens.
type gate struct {
	mu   sync.Mutex
	open chan struct{} // closed while the gate is open
}

func newGate() *gate {
	g := &gate{open: make(chan struct{})}
	close(g.open)
	return g
}

// shut holds every write from now on.
func (g *gate) shut() {
	g.mu.Lock()
	defer g.mu.Unlock()
	select {
	case <-g.open:
		g.open = make(chan struct{})
	default:
	}
}

// release lets every held and later write through.
func (g *gate) release() {
	g.mu.Lock()
	defer g.mu.Unlock()
	select {
	case <-g.open:
	default:
		close(g.open)
	}
}

func (g *gate) wait() {
	g.mu.Lock()
	ch := g.open
	g.mu.Unlock()
	<-ch
}

// dial is a go-redis Dialer whose connections pass the gate.
func (g *gate) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	return gatedConn{Conn: c, g: g}, nil
}

type gatedConn struct {
	net.Conn
	g *gate
}

func (c gatedConn) Write(p []byte) (int, error) {
	c.g.wait()
	return c.Conn.Write(p)
}

// At most MaxPreviews previews scan the target at once; the next waits for a slot, and its
// requester is told so (SPEC §12.7). The scans are held in flight by a Redis that stops
// answering, then all of them finish.
func TestE2EPreviewsWaitForASlot(t *testing.T) {
	g := newGate()
	e := newE2E(t, e2eOptions{gate: g})
	g.shut()
	t.Cleanup(g.release)

	for range MaxPreviews + 1 {
		e.command(e2eAlice, "cleanup")
	}
	want := fmt.Sprintf("%d previews are running on this target; yours starts when one finishes.", MaxPreviews)
	told := func() int {
		n := 0
		for _, text := range e.refusalsFor(e2eAlice) {
			if text == want {
				n++
			}
		}
		return n
	}
	started := func() int { return len(e.audited("Cleanup Started")) } // a preview audits when it starts
	slacktest.WaitFor(t, func() bool { return told() == 1 && started() == MaxPreviews }, e2eWait)
	// Nothing finishes while Redis does not answer, so the third cannot have started.
	if n := started(); n != MaxPreviews {
		t.Fatalf("%d previews started while %d held the target; want %d", n, MaxPreviews, MaxPreviews)
	}

	g.release()
	previews := func() int {
		n := 0
		for _, m := range e.slack.Messages(e.ops) {
			if strings.Contains(string(m.Blocks), `"action_id":"run"`) {
				n++
			}
		}
		return n
	}
	slacktest.WaitFor(t, func() bool { return previews() == MaxPreviews+1 }, e2eWait)
	if n := started(); n != MaxPreviews+1 {
		t.Errorf("%d previews started; want %d", n, MaxPreviews+1)
	}
	if n := told(); n != 1 {
		t.Errorf("%d requesters were told to wait; want 1:\n%q", n, e.refusalsFor(e2eAlice))
	}
}
