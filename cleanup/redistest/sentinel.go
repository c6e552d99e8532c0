package redistest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// SentinelMaster is the master name the Sentinel of StartSentinel monitors.
const SentinelMaster = "sessions"

// sentinelTimeout bounds start-up and failover of a Sentinel deployment.
const sentinelTimeout = 30 * time.Second

// Sentinel is a Redis Sentinel deployment on loopback: a master, one replica and one Sentinel
// (quorum 1) that monitors them as SentinelMaster.
type Sentinel struct {
	nodes    [2]*Server // master and replica at start; Failover swaps their roles
	sentinel *Server
}

// NewSentinel starts a Sentinel deployment for t and stops it when the test ends.
func NewSentinel(t testing.TB) *Sentinel {
	t.Helper()
	s, err := StartSentinel()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s
}

// StartSentinel starts a master, a replica of it and a Sentinel monitoring them, and returns
// once the Sentinel knows the replica and the replica's link to its master is up. The caller must
// call Stop.
func StartSentinel() (*Sentinel, error) {
	d := &Sentinel{}
	var err error
	if d.nodes[0], err = Start(Options{}); err != nil {
		return nil, err
	}
	if d.nodes[1], err = Start(Options{Args: []string{"--replicaof", "127.0.0.1", strconv.Itoa(d.nodes[0].Port())}}); err != nil {
		d.Stop()
		return nil, err
	}
	conf := fmt.Sprintf("sentinel monitor %[1]s 127.0.0.1 %[2]d 1\n"+
		"sentinel down-after-milliseconds %[1]s 1000\n"+
		"sentinel failover-timeout %[1]s 5000\n"+
		"sentinel parallel-syncs %[1]s 1\n", SentinelMaster, d.nodes[0].Port())
	if d.sentinel, err = Start(Options{SentinelConfig: conf}); err != nil {
		d.Stop()
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), sentinelTimeout)
	defer cancel()
	if err := poll(ctx, func() error { return d.replicaReady(ctx, d.nodes[1], d.nodes[0]) }); err != nil {
		d.Stop()
		return nil, fmt.Errorf("redistest: Sentinel deployment not ready: %w", err)
	}
	return d, nil
}

// Addrs are the Sentinels' addresses, as REDIS_SENTINEL_ADDRS takes them.
func (d *Sentinel) Addrs() []string { return []string{d.sentinel.Addr()} }

// Master is the server the Sentinel currently names master.
func (d *Sentinel) Master() (*Server, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	addr, err := d.masterAddr(ctx)
	if err != nil {
		return nil, err
	}
	for _, s := range d.nodes {
		if s.Addr() == addr {
			return s, nil
		}
	}
	return nil, fmt.Errorf("redistest: Sentinel names %s master, which is not a node of this deployment", addr)
}

// Failover asks the Sentinel to fail over (SENTINEL FAILOVER: the replica is promoted, the old
// master reconfigured as its replica) and returns once the Sentinel names the replica master, the
// replica says it is one. (The old master is reconfigured as a replica later, when the Sentinel
// next reads its INFO: up to 10 s; clients that follow the Sentinel have moved on by then.)
func (d *Sentinel) Failover() error {
	ctx, cancel := context.WithTimeout(context.Background(), sentinelTimeout)
	defer cancel()
	old, err := d.Master()
	if err != nil {
		return err
	}
	next := d.nodes[0]
	if next == old {
		next = d.nodes[1]
	}
	sc := d.sentinel.Client()
	var asked time.Time
	return poll(ctx, func() error {
		addr, err := d.masterAddr(ctx)
		if err != nil {
			return err
		}
		if addr != next.Addr() {
			// A failover still in progress refuses another (INPROG); ask again after a while.
			if time.Since(asked) > 6*time.Second {
				asked = time.Now()
				if err := sc.Do(ctx, "SENTINEL", "FAILOVER", SentinelMaster).Err(); err != nil && !strings.Contains(err.Error(), "INPROG") {
					return fmt.Errorf("SENTINEL FAILOVER: %w", err)
				}
			}
			return fmt.Errorf("the Sentinel still names %s master", addr)
		}
		if role, err := nodeRole(next); err != nil || role != "master" {
			return fmt.Errorf("%s: role %q (%v)", next.Addr(), role, err)
		}
		return nil
	})
}

// Stop stops the Sentinel and both servers. It is idempotent.
func (d *Sentinel) Stop() {
	for _, s := range []*Server{d.sentinel, d.nodes[1], d.nodes[0]} {
		if s != nil {
			s.Stop()
		}
	}
}

func (d *Sentinel) masterAddr(ctx context.Context) (string, error) {
	hp, err := d.sentinel.Client().Do(ctx, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", SentinelMaster).StringSlice()
	if err != nil {
		return "", fmt.Errorf("SENTINEL GET-MASTER-ADDR-BY-NAME: %w", err)
	}
	if len(hp) != 2 {
		return "", fmt.Errorf("SENTINEL GET-MASTER-ADDR-BY-NAME: %q", hp)
	}
	return net.JoinHostPort(hp[0], hp[1]), nil
}

// replicaReady checks that replica replicates master with its link up, and that the Sentinel
// lists it as a healthy replica (so that it can be promoted).
func (d *Sentinel) replicaReady(ctx context.Context, replica, master *Server) error {
	info, err := replica.Client().Info(ctx, "replication").Result()
	if err != nil {
		return err
	}
	f := infoFields(info)
	if f["role"] != "slave" || f["master_port"] != strconv.Itoa(master.Port()) || f["master_link_status"] != "up" {
		return fmt.Errorf("%s: role %s, master port %s, link %s", replica.Addr(), f["role"], f["master_port"], f["master_link_status"])
	}
	replicas, err := d.sentinel.Client().Do(ctx, "SENTINEL", "REPLICAS", SentinelMaster).Slice()
	if err != nil {
		return fmt.Errorf("SENTINEL REPLICAS: %w", err)
	}
	for _, r := range replicas {
		fields := map[string]string{}
		switch r := r.(type) {
		case []any: // RESP2: a flat list of names and values
			for i := 0; i+1 < len(r); i += 2 {
				fields[fmt.Sprint(r[i])] = fmt.Sprint(r[i+1])
			}
		case map[any]any: // RESP3
			for k, v := range r {
				fields[fmt.Sprint(k)] = fmt.Sprint(v)
			}
		}
		if fields["name"] == replica.Addr() && !strings.Contains(fields["flags"], "down") && !strings.Contains(fields["flags"], "disconnected") {
			return nil
		}
	}
	return errors.New("the Sentinel does not list " + replica.Addr() + " as a healthy replica yet")
}

// Client is a Sentinel-aware go-redis client of the current master.
func (d *Sentinel) Client() *redis.Client {
	return redis.NewFailoverClient(&redis.FailoverOptions{MasterName: SentinelMaster, SentinelAddrs: d.Addrs()})
}
