package redistest

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

const (
	// clusterMasters is the number of masters of every Cluster.
	clusterMasters = 3
	// clusterTimeout bounds cluster creation and failover.
	clusterTimeout = 30 * time.Second
)

// ClusterOptions configures StartCluster.
type ClusterOptions struct {
	// Replicas is the number of replicas per master (0 or 1 for failover tests).
	Replicas int
	// Args are extra redis-server arguments for every node.
	Args []string
}

// Cluster is a Redis Cluster of 3 masters (and their replicas) on loopback.
type Cluster struct {
	nodes []*Server

	mu     sync.Mutex
	client *redis.ClusterClient
}

// StartCluster starts 3×(1+Replicas) cluster-mode nodes, joins them with
// `redis-cli --cluster create`, and returns once every node reports cluster_state:ok with all
// 16384 slots covered, every replica's link to its master is up, and a ClusterClient can SET and
// GET a key on each master. The caller must call Stop.
func StartCluster(opts ClusterOptions) (*Cluster, error) {
	if opts.Replicas < 0 {
		return nil, fmt.Errorf("redistest: ClusterOptions.Replicas = %d; want >= 0", opts.Replicas)
	}
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		return nil, errors.New("redistest: redis-cli not found on PATH; install it (Debian/Ubuntu: apt-get install redis-tools)")
	}
	n := clusterMasters * (1 + opts.Replicas)
	c := &Cluster{nodes: make([]*Server, n)}
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			c.nodes[i], errs[i] = Start(Options{Args: opts.Args, Cluster: true})
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		c.Stop()
		return nil, err
	}

	ctx, cancel := context.WithTimeout(context.Background(), clusterTimeout)
	defer cancel()
	args := []string{"--cluster", "create"}
	args = append(args, c.Seeds()...)
	args = append(args, "--cluster-replicas", strconv.Itoa(opts.Replicas), "--cluster-yes")
	if out, err := exec.CommandContext(ctx, cli, args...).CombinedOutput(); err != nil {
		c.Stop()
		return nil, fmt.Errorf("redistest: redis-cli --cluster create: %v\n%s", err, out)
	}
	if err := c.waitReady(ctx); err != nil {
		c.Stop()
		return nil, err
	}
	return c, nil
}

// NewCluster starts a Cluster for t (ClusterOptions optional) and stops it when the test ends.
// It fails t, never skips it, when the cluster cannot start.
func NewCluster(t testing.TB, opts ...ClusterOptions) *Cluster {
	t.Helper()
	var o ClusterOptions
	if len(opts) > 0 {
		o = opts[0]
	}
	c, err := StartCluster(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Stop)
	return c
}

// Seeds are the addresses of all nodes, in the form REDIS_CLUSTER_ADDRS takes.
func (c *Cluster) Seeds() []string {
	seeds := make([]string, len(c.nodes))
	for i, s := range c.nodes {
		seeds[i] = s.Addr()
	}
	return seeds
}

// Nodes are all nodes, masters and replicas, in creation order.
func (c *Cluster) Nodes() []*Server { return append([]*Server(nil), c.nodes...) }

// Masters are the running nodes that are masters now (ROLE), in creation order. After a
// failover the set changes.
func (c *Cluster) Masters() []*Server {
	var masters []*Server
	for _, s := range c.nodes {
		if role, err := nodeRole(s); err == nil && role == "master" {
			masters = append(masters, s)
		}
	}
	return masters
}

// Replicas are the running nodes that are replicas now (ROLE), in creation order.
func (c *Cluster) Replicas() []*Server {
	var replicas []*Server
	for _, s := range c.nodes {
		if role, err := nodeRole(s); err == nil && role == "slave" {
			replicas = append(replicas, s)
		}
	}
	return replicas
}

// Client is a go-redis ClusterClient seeded with every node, created once and closed by Stop.
func (c *Cluster) Client() *redis.ClusterClient {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.client == nil {
		c.client = redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Seeds()})
	}
	return c.client
}

// Stop stops every node (in parallel) and closes Client. It is idempotent.
func (c *Cluster) Stop() {
	c.mu.Lock()
	if c.client != nil {
		_ = c.client.Close()
		c.client = nil
	}
	c.mu.Unlock()
	var wg sync.WaitGroup
	for _, s := range c.nodes {
		if s != nil {
			wg.Go(s.Stop)
		}
	}
	wg.Wait()
}

// Failover promotes replica with CLUSTER FAILOVER (coordinated with its master, no data loss)
// and returns once every running node sees it as a master, the cluster is ok again and Client's
// slot map is refreshed.
func (c *Cluster) Failover(replica *Server) error {
	ctx, cancel := context.WithTimeout(context.Background(), clusterTimeout)
	defer cancel()
	if !c.has(replica) {
		return errors.New("redistest: Failover: server is not a node of this cluster")
	}
	id, err := replica.Client().ClusterMyID(ctx).Result()
	if err != nil {
		return fmt.Errorf("redistest: Failover: CLUSTER MYID on %s: %w", replica.Addr(), err)
	}
	// A manual failover that does not complete within 5 s (CLUSTER_MF_TIMEOUT, e.g. on a loaded
	// machine) is abandoned by Redis: ask again, and the last time FORCE it (no handshake with
	// the master, still elected by the masters).
	const retryAfter = 6 * time.Second
	var asked time.Time
	attempts := 0
	err = poll(ctx, func() error {
		if role, err := nodeRole(replica); err != nil || role != "master" {
			if time.Since(asked) < retryAfter {
				return fmt.Errorf("%s is not master yet (role %q, %v)", replica.Addr(), role, err)
			}
			args := []any{"CLUSTER", "FAILOVER"}
			if attempts++; attempts > 2 {
				args = append(args, "FORCE")
			}
			asked = time.Now()
			if err := replica.Client().Do(ctx, args...).Err(); err != nil {
				return fmt.Errorf("%v on %s: %w", args, replica.Addr(), err)
			}
			return fmt.Errorf("%s is not master yet", replica.Addr())
		}
		for _, s := range c.nodes {
			if !s.Running() {
				continue
			}
			nodes, err := s.Client().ClusterNodes(ctx).Result()
			if err != nil {
				return err
			}
			if !nodeIsMaster(nodes, id) {
				return fmt.Errorf("%s does not see %s as master yet", s.Addr(), replica.Addr())
			}
		}
		return c.checkNodes(ctx)
	})
	if err != nil {
		return fmt.Errorf("redistest: Failover of %s: %w", replica.Addr(), err)
	}
	c.Client().ReloadState(ctx)
	return nil
}

func (c *Cluster) has(s *Server) bool {
	for _, n := range c.nodes {
		if n == s {
			return true
		}
	}
	return false
}

// waitReady polls until the cluster is fully formed and usable through a ClusterClient.
func (c *Cluster) waitReady(ctx context.Context) error {
	err := poll(ctx, func() error { return c.checkNodes(ctx) })
	if err != nil {
		return fmt.Errorf("redistest: cluster not ready: %w", err)
	}
	// A fresh client, so a slot map loaded while the cluster formed is not kept.
	probe := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Seeds()})
	defer probe.Close()
	err = poll(ctx, func() error {
		shards, err := c.nodes[0].Client().ClusterShards(ctx).Result()
		if err != nil {
			return err
		}
		var ranges []redis.SlotRange
		for _, sh := range shards {
			ranges = append(ranges, sh.Slots...)
		}
		if len(ranges) < clusterMasters {
			return fmt.Errorf("CLUSTER SHARDS lists %d slot ranges", len(ranges))
		}
		for _, r := range ranges {
			key := keyInSlots(r.Start, r.End)
			if err := probe.Set(ctx, key, "ok", time.Minute).Err(); err != nil {
				return fmt.Errorf("SET %s: %w", key, err)
			}
			if v, err := probe.Get(ctx, key).Result(); err != nil || v != "ok" {
				return fmt.Errorf("GET %s = %q, %v", key, v, err)
			}
			if err := probe.Del(ctx, key).Err(); err != nil {
				return fmt.Errorf("DEL %s: %w", key, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("redistest: cluster not usable: %w", err)
	}
	return nil
}

// checkNodes returns nil when every running node reports cluster_state:ok, all slots assigned
// and ok, knows every node, (for replicas) has its master link up, and all agree on who
// replicates whom — a master that does not yet know a replica as its own ignores its manual
// failover request.
func (c *Cluster) checkNodes(ctx context.Context) error {
	var topology, first string
	for _, s := range c.nodes {
		if !s.Running() {
			continue
		}
		info, err := s.Client().ClusterInfo(ctx).Result()
		if err != nil {
			return fmt.Errorf("%s: CLUSTER INFO: %w", s.Addr(), err)
		}
		f := infoFields(info)
		want := map[string]string{
			"cluster_state":          "ok",
			"cluster_slots_assigned": "16384",
			"cluster_slots_ok":       "16384",
			"cluster_known_nodes":    strconv.Itoa(len(c.nodes)),
		}
		for k, v := range want {
			if f[k] != v {
				return fmt.Errorf("%s: %s:%s, want %s", s.Addr(), k, f[k], v)
			}
		}
		repl, err := s.Client().Info(ctx, "replication").Result()
		if err != nil {
			return fmt.Errorf("%s: INFO replication: %w", s.Addr(), err)
		}
		r := infoFields(repl)
		if r["role"] == "slave" && r["master_link_status"] != "up" {
			return fmt.Errorf("%s: master_link_status:%s", s.Addr(), r["master_link_status"])
		}
		nodes, err := s.Client().ClusterNodes(ctx).Result()
		if err != nil {
			return fmt.Errorf("%s: CLUSTER NODES: %w", s.Addr(), err)
		}
		if t := nodeTopology(nodes); topology == "" {
			topology, first = t, s.Addr()
		} else if t != topology {
			return fmt.Errorf("%s and %s disagree on the topology:\n%s\nvs\n%s", first, s.Addr(), topology, t)
		}
	}
	return nil
}

// nodeTopology reduces CLUSTER NODES output to "id role master-id" lines, sorted, so the views
// of different nodes compare equal once they agree.
func nodeTopology(nodes string) string {
	var lines []string
	for line := range strings.Lines(nodes) {
		f := strings.Fields(line)
		if len(f) < 4 {
			continue
		}
		role := "master"
		if strings.Contains(","+f[2]+",", ",slave,") {
			role = "replica"
		}
		lines = append(lines, f[0]+" "+role+" "+f[3])
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

// poll calls check until it returns nil or ctx ends, returning check's last error then.
func poll(ctx context.Context, check func() error) error {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		err := check()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return err
		case <-tick.C:
		}
	}
}

func nodeRole(s *Server) (string, error) {
	if !s.Running() {
		return "", errors.New("not running")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	role, err := s.Client().Do(ctx, "ROLE").Slice()
	if err != nil {
		return "", err
	}
	if len(role) == 0 {
		return "", errors.New("empty ROLE reply")
	}
	r, _ := role[0].(string)
	return r, nil
}

// nodeIsMaster reports whether CLUSTER NODES output lists node id with the master flag.
func nodeIsMaster(nodes, id string) bool {
	for line := range strings.Lines(nodes) {
		f := strings.Fields(line)
		if len(f) > 2 && f[0] == id {
			return strings.Contains(","+f[2]+",", ",master,")
		}
	}
	return false
}

// keyInSlots returns a key whose hash slot lies in [start, end].
func keyInSlots(start, end int64) string {
	for i := 0; ; i++ {
		k := "redistest:probe:" + strconv.Itoa(i)
		if s := int64(keySlot(k)); s >= start && s <= end {
			return k
		}
	}
}

// keySlot is Redis Cluster's HASH_SLOT for a key without a hash tag: CRC16 (XMODEM) mod 16384.
func keySlot(key string) uint16 {
	var crc uint16
	for i := 0; i < len(key); i++ {
		crc ^= uint16(key[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc % 16384
}
