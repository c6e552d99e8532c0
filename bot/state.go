package bot

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/platform-team/sessionbot/cleanup"
)

// Status is where a request or job is in its life. Requests move
// pending → approved|rejected|expired|cancelled|running, approved → running,
// running → done|failed|cancelled; jobs are running → done|failed|cancelled. Every move is a
// compare-and-set in Redis, so two replicas (or two approvers) can never both make it.
type Status string

// Request and job statuses.
const (
	StatusPending   Status = "pending"
	StatusApproved  Status = "approved"
	StatusRunning   Status = "running"
	StatusDone      Status = "done"
	StatusFailed    Status = "failed"
	StatusRejected  Status = "rejected"
	StatusExpired   Status = "expired"
	StatusCancelled Status = "cancelled"
)

// Job is one execution of a request; a request whose job was interrupted may have several, each
// resuming the one before.
type Job struct {
	ID        string     `json:"id"`
	RequestID string     `json:"request_id"`
	Mode      Mode       `json:"mode"`
	Scope     string     `json:"scope"`
	Reason    string     `json:"reason"`
	Requester Person     `json:"requester"`
	Executor  Person     `json:"executor"`
	Approvals []Person   `json:"approvals,omitempty"` // empty when no approval was needed
	Target    string     `json:"target"`
	Ref       MessageRef `json:"ref"`
	StartedAt time.Time  `json:"started_at"`
	// A resumed job continues ResumeOf under the same request and approval. Backup is the backup
	// id its rounds extend (the first job's id); ValidBefore the still-valid sessions the jobs
	// before it logged out, which count against the request's bound.
	ResumeOf    string `json:"resume_of,omitempty"`
	Backup      string `json:"backup,omitempty"`
	ValidBefore int64  `json:"valid_before,omitempty"`

	// Mutable.
	Status    Status            `json:"-"`
	Progress  *cleanup.Progress `json:"-"`
	Report    *cleanup.Report   `json:"-"`
	Error     string            `json:"-"`
	EndedAt   time.Time         `json:"-"`
	Heartbeat time.Time         `json:"-"`
	Cancel    bool              `json:"-"`
}

// UnmarshalJSON reads a stored job, those written before approvals were counted included: they
// name their one approver as "approver".
func (j *Job) UnmarshalJSON(data []byte) error {
	type stored Job // without this method
	var s struct {
		stored
		Approver *Person `json:"approver"`
	}
	if err := json.Unmarshal(data, &s); err != nil {
		return err
	}
	*j = Job(s.stored)
	if len(j.Approvals) == 0 && s.Approver != nil {
		j.Approvals = []Person{*s.Approver}
	}
	return nil
}

// store keeps requests, jobs, envelope ids and leases in Redis under one key prefix. In a
// Cluster the prefix carries a hash tag so every script's keys share a slot.
type store struct {
	rdb    redis.UniversalClient
	prefix string
	keep   time.Duration // how long decided requests and finished jobs are kept
}

func newStore(rdb redis.UniversalClient) *store {
	p := "sessionbot:"
	if _, ok := rdb.(*redis.ClusterClient); ok {
		p = "sessionbot:{state}:"
	}
	return &store{rdb: rdb, prefix: p, keep: 7 * 24 * time.Hour}
}

func (s *store) reqKey(id string) string   { return s.prefix + "request:" + id }
func (s *store) jobKey(id string) string   { return s.prefix + "job:" + id }
func (s *store) pendingKey() string        { return s.prefix + "pending" }
func (s *store) jobsKey() string           { return s.prefix + "jobs" }
func (s *store) envKey(id string) string   { return s.prefix + "envelope:" + id }
func (s *store) leaseKey(t string) string  { return s.prefix + "lease:" + t }
func (s *store) jobIDKey(id string) string { return s.prefix + "jobid:" + id }

var (
	requestIDRe = regexp.MustCompile(`^[0-9a-f]{32}$`)
	jobIDRe     = regexp.MustCompile(`^job-[0-9a-z-]{4,72}$`) // job-[target-]date-hex
)

// newRequestID is the opaque, unguessable id carried by buttons.
func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// newJobID is a short id people type (status, cancel) and the backup file's name. It is
// reserved with SET NX so two replicas never hand out the same one.
func (s *store) newJobID(ctx context.Context, prefix string, now time.Time) (string, error) {
	for range 10 {
		var b [4]byte
		_, _ = rand.Read(b[:])
		id := prefix + now.UTC().Format("20060102") + "-" + hex.EncodeToString(b[:])
		ok, err := s.rdb.SetNX(ctx, s.jobIDKey(id), 1, s.keep).Result()
		if err != nil {
			return "", fmt.Errorf("reserve job id: %w", err)
		}
		if ok {
			return id, nil
		}
	}
	return "", errors.New("reserve job id: no free id after 10 tries")
}

// firstDelivery reports whether envelope id is seen for the first time. Socket Mode redelivers
// an envelope that was not acked in time; the second delivery must change nothing.
func (s *store) firstDelivery(ctx context.Context, id string) (bool, error) {
	if id == "" {
		return true, nil
	}
	return s.rdb.SetNX(ctx, s.envKey(id), 1, time.Hour).Result()
}

func (s *store) createRequest(ctx context.Context, r *Request) error {
	data, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encode request: %w", err)
	}
	key := s.reqKey(r.ID)
	_, err = s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, key, "data", data, "status", string(StatusPending))
		p.PExpireAt(ctx, key, r.ExpiresAt.Add(s.keep))
		p.ZAdd(ctx, s.pendingKey(), redis.Z{Score: float64(r.ExpiresAt.UnixMilli()), Member: r.ID})
		return nil
	})
	if err != nil {
		return fmt.Errorf("store request: %w", err)
	}
	return nil
}

// errNotFound is returned for an unknown (or long forgotten) request or job.
var errNotFound = errors.New("not found")

func (s *store) request(ctx context.Context, id string) (*Request, error) {
	if !requestIDRe.MatchString(id) {
		return nil, errNotFound
	}
	h, err := s.rdb.HGetAll(ctx, s.reqKey(id)).Result()
	if err != nil {
		return nil, fmt.Errorf("load request: %w", err)
	}
	if h["data"] == "" {
		return nil, errNotFound
	}
	var r Request
	if err := json.Unmarshal([]byte(h["data"]), &r); err != nil {
		return nil, fmt.Errorf("decode request %s: %w", id, err)
	}
	r.Status = Status(h["status"])
	r.JobID = h["job"]
	r.Resumable = h["resumable"] != ""
	// Approvals are the fields approval:1 … approval:N, N = approvals (approveScript).
	n, _ := strconv.Atoi(h["approvals"])
	for i := 1; i <= n; i++ {
		var p Person
		if json.Unmarshal([]byte(h["approval:"+strconv.Itoa(i)]), &p) == nil {
			r.Approvals = append(r.Approvals, p)
		}
	}
	if d := h["decided_by"]; d != "" {
		var p Person
		if json.Unmarshal([]byte(d), &p) == nil {
			r.DecidedBy = &p
		}
	}
	// Before approvals were counted, decided_by held whoever moved the request out of pending,
	// the approver included: of a request that needed approval and started a job, that was its
	// one approval.
	if n == 0 && r.DecidedBy != nil && r.NeedsApproval && r.JobID != "" {
		r.Approvals, r.DecidedBy = []Person{*r.DecidedBy}, nil
	}
	if ms, err := strconv.ParseInt(h["decided_at"], 10, 64); err == nil {
		r.DecidedAt = time.UnixMilli(ms).UTC()
	}
	return &r, nil
}

// transitionScript moves a request from one status to another only if it is still in the
// first, atomically, and records the extra fields given. It returns {1, old} on success and
// {0, current} otherwise ("" when the request does not exist).
var transitionScript = redis.NewScript(`
local cur = redis.call('HGET', KEYS[1], 'status')
if not cur then return {0, ''} end
if cur ~= ARGV[1] then return {0, cur} end
redis.call('HSET', KEYS[1], 'status', ARGV[2])
for i = 4, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i+1]) end
if ARGV[2] ~= 'pending' then redis.call('ZREM', KEYS[2], ARGV[3]) end
return {1, cur}
`)

// transition moves request id from → to. ok is false (and current says where it is) when
// another press, replica or the sweeper got there first.
func (s *store) transition(ctx context.Context, id string, from, to Status, fields ...string) (ok bool, current Status, err error) {
	args := append([]any{string(from), string(to), id}, toAny(fields)...)
	res, err := transitionScript.Run(ctx, s.rdb, []string{s.reqKey(id), s.pendingKey()}, args...).Slice()
	if err != nil {
		return false, "", fmt.Errorf("request %s %s→%s: %w", id, from, to, err)
	}
	n, _ := res[0].(int64)
	cur, _ := res[1].(string)
	if n == 1 {
		return true, to, nil
	}
	return false, Status(cur), nil
}

// approveScript counts one approval of a request (SPEC §13 "Approvals"), atomically: only while
// the request is pending and not past its expiry, only once per approver (approver:<id> marks
// who is counted), and only when the count is still the one the approver's decision was made
// on, so that what was decided (and audited: "Approvals: 2/3") is what happened. The approval
// that brings the count to the required number moves the request to approved: of any number of
// presses on any number of replicas, exactly one does, and only it starts the job.
//
// KEYS: request hash, pending set. ARGV: approver id, approver (JSON), now (ms), expires at
// (ms), required, expected count, request id. It returns {result, count}.
var approveScript = redis.NewScript(`
local st = redis.call('HGET', KEYS[1], 'status')
local n = tonumber(redis.call('HGET', KEYS[1], 'approvals') or '0')
if st ~= 'pending' then return {'not_pending', n} end
if tonumber(ARGV[3]) >= tonumber(ARGV[4]) then return {'expired', n} end
if redis.call('HEXISTS', KEYS[1], 'approver:' .. ARGV[1]) == 1 then return {'duplicate', n} end
if n ~= tonumber(ARGV[6]) then return {'stale', n} end
n = n + 1
redis.call('HSET', KEYS[1], 'approvals', n, 'approval:' .. n, ARGV[2], 'approver:' .. ARGV[1], n)
if n < tonumber(ARGV[5]) then return {'counted', n} end
redis.call('HSET', KEYS[1], 'status', 'approved', 'decided_at', ARGV[3])
redis.call('ZREM', KEYS[2], ARGV[7])
return {'approved', n}
`)

// approveResult is what approveScript did.
type approveResult string

const (
	approveCounted    approveResult = "counted"     // counted; more approvals are needed
	approveApproved   approveResult = "approved"    // counted, the last one: the request is approved
	approveNotPending approveResult = "not_pending" // decided meanwhile (or gone)
	approveExpired    approveResult = "expired"     // still pending, but past its expiry
	approveDuplicate  approveResult = "duplicate"   // this approver is already counted
	approveStale      approveResult = "stale"       // another approval was counted since r was read
)

// approve counts who's approval of r, expecting len(r.Approvals) approvals to be counted
// already. Only approveCounted and approveApproved changed anything; on the others the caller
// reads the request again and decides again.
func (s *store) approve(ctx context.Context, r *Request, who Person, now time.Time) (approveResult, error) {
	p, _ := json.Marshal(who)
	res, err := approveScript.Run(ctx, s.rdb, []string{s.reqKey(r.ID), s.pendingKey()},
		who.ID, p, now.UnixMilli(), r.ExpiresAt.UnixMilli(), r.Required, len(r.Approvals), r.ID).Slice()
	if err != nil {
		return "", fmt.Errorf("approve request %s: %w", r.ID, err)
	}
	got, _ := res[0].(string)
	return approveResult(got), nil
}

// reopenScript puts an approved request back to pending (its job could not start), forgetting
// the decision and listing it again for the expiry sweeper. The approval that approved it (by
// ARGV[3], when given) is withdrawn, so that its approver can give it again once the job can
// start; earlier approvals stay counted.
var reopenScript = redis.NewScript(`
if redis.call('HGET', KEYS[1], 'status') ~= 'approved' then return 0 end
redis.call('HSET', KEYS[1], 'status', 'pending')
redis.call('HDEL', KEYS[1], 'decided_by', 'decided_at')
local n = tonumber(redis.call('HGET', KEYS[1], 'approvals') or '0')
if ARGV[3] ~= '' and n > 0 and tonumber(redis.call('HGET', KEYS[1], 'approver:' .. ARGV[3]) or '0') == n then
  redis.call('HDEL', KEYS[1], 'approval:' .. n, 'approver:' .. ARGV[3])
  redis.call('HSET', KEYS[1], 'approvals', n - 1)
end
redis.call('ZADD', KEYS[2], ARGV[1], ARGV[2])
return 1
`)

// reopen moves r from approved back to pending, withdrawing the last approval when it is
// lastApprover's ("" for a request that was run, not approved); it does nothing when r is
// elsewhere.
func (s *store) reopen(ctx context.Context, r *Request, lastApprover string) error {
	err := reopenScript.Run(ctx, s.rdb, []string{s.reqKey(r.ID), s.pendingKey()}, r.ExpiresAt.UnixMilli(), r.ID, lastApprover).Err()
	if err != nil {
		return fmt.Errorf("reopen request %s: %w", r.ID, err)
	}
	return nil
}

func decisionFields(p Person, at time.Time) []string {
	d, _ := json.Marshal(p)
	return []string{"decided_by", string(d), "decided_at", strconv.FormatInt(at.UnixMilli(), 10)}
}

// dueRequests returns the ids of pending requests whose expiry is at or before now.
func (s *store) dueRequests(ctx context.Context, now time.Time) ([]string, error) {
	return s.rdb.ZRangeByScore(ctx, s.pendingKey(), &redis.ZRangeBy{
		Min: "-inf", Max: strconv.FormatInt(now.UnixMilli(), 10), Count: 100,
	}).Result()
}

func (s *store) forgetPending(ctx context.Context, id string) error {
	return s.rdb.ZRem(ctx, s.pendingKey(), id).Err()
}

func (s *store) createJob(ctx context.Context, j *Job) error {
	data, err := json.Marshal(j)
	if err != nil {
		return fmt.Errorf("encode job: %w", err)
	}
	key := s.jobKey(j.ID)
	_, err = s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, key, "data", data, "status", string(StatusRunning),
			"heartbeat", strconv.FormatInt(j.StartedAt.UnixMilli(), 10))
		p.Expire(ctx, key, s.keep)
		p.ZAdd(ctx, s.jobsKey(), redis.Z{Score: float64(j.StartedAt.UnixMilli()), Member: j.ID})
		// Only the most recent jobs are listed by status.
		p.ZRemRangeByRank(ctx, s.jobsKey(), 0, -201)
		return nil
	})
	if err != nil {
		return fmt.Errorf("store job: %w", err)
	}
	return nil
}

func (s *store) job(ctx context.Context, id string) (*Job, error) {
	if !jobIDRe.MatchString(id) {
		return nil, errNotFound
	}
	h, err := s.rdb.HGetAll(ctx, s.jobKey(id)).Result()
	if err != nil {
		return nil, fmt.Errorf("load job: %w", err)
	}
	if h["data"] == "" {
		return nil, errNotFound
	}
	var j Job
	if err := json.Unmarshal([]byte(h["data"]), &j); err != nil {
		return nil, fmt.Errorf("decode job %s: %w", id, err)
	}
	j.Status = Status(h["status"])
	j.Error = h["error"]
	j.Cancel = h["cancel"] != ""
	if p := h["progress"]; p != "" {
		var pr cleanup.Progress
		if json.Unmarshal([]byte(p), &pr) == nil {
			j.Progress = &pr
		}
	}
	if r := h["report"]; r != "" {
		var rep cleanup.Report
		if json.Unmarshal([]byte(r), &rep) == nil {
			j.Report = &rep
		}
	}
	if ms, err := strconv.ParseInt(h["ended_at"], 10, 64); err == nil {
		j.EndedAt = time.UnixMilli(ms).UTC()
	}
	if ms, err := strconv.ParseInt(h["heartbeat"], 10, 64); err == nil {
		j.Heartbeat = time.UnixMilli(ms).UTC()
	}
	return &j, nil
}

// recentJobs returns up to n jobs, newest first.
func (s *store) recentJobs(ctx context.Context, n int64) ([]*Job, error) {
	ids, err := s.rdb.ZRevRange(ctx, s.jobsKey(), 0, n-1).Result()
	if err != nil {
		return nil, fmt.Errorf("list jobs: %w", err)
	}
	var jobs []*Job
	for _, id := range ids {
		j, err := s.job(ctx, id)
		if errors.Is(err, errNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		jobs = append(jobs, j)
	}
	return jobs, nil
}

// setProgress stores the job's heartbeat, and its progress when p is not nil.
func (s *store) setProgress(ctx context.Context, id string, p *cleanup.Progress, now time.Time) error {
	fields := []any{"heartbeat", strconv.FormatInt(now.UnixMilli(), 10)}
	if p != nil {
		data, _ := json.Marshal(p)
		fields = append(fields, "progress", data)
	}
	return s.rdb.HSet(ctx, s.jobKey(id), fields...).Err()
}

// finishJobScript ends a running job exactly once.
var finishJobScript = redis.NewScript(`
if redis.call('HGET', KEYS[1], 'status') ~= 'running' then return 0 end
redis.call('HSET', KEYS[1], 'status', ARGV[1], 'report', ARGV[2], 'error', ARGV[3], 'ended_at', ARGV[4])
return 1
`)

func (s *store) finishJob(ctx context.Context, id string, st Status, rep *cleanup.Report, errText string, at time.Time) (bool, error) {
	var data []byte
	if rep != nil {
		data, _ = json.Marshal(rep)
	}
	n, err := finishJobScript.Run(ctx, s.rdb, []string{s.jobKey(id)},
		string(st), data, errText, strconv.FormatInt(at.UnixMilli(), 10)).Int()
	if err != nil {
		return false, fmt.Errorf("finish job %s: %w", id, err)
	}
	return n == 1, nil
}

// requestCancel flags a running job for cancellation; the replica running it sees the flag at
// its next progress tick. It returns false when the job is not running.
var requestCancelScript = redis.NewScript(`
if redis.call('HGET', KEYS[1], 'status') ~= 'running' then return 0 end
redis.call('HSET', KEYS[1], 'cancel', ARGV[1])
return 1
`)

func (s *store) requestCancel(ctx context.Context, id string, by Person) (bool, error) {
	d, _ := json.Marshal(by)
	n, err := requestCancelScript.Run(ctx, s.rdb, []string{s.jobKey(id)}, d).Int()
	if err != nil {
		return false, fmt.Errorf("cancel job %s: %w", id, err)
	}
	return n == 1, nil
}

func (s *store) cancelledBy(ctx context.Context, id string) (*Person, error) {
	d, err := s.rdb.HGet(ctx, s.jobKey(id), "cancel").Result()
	if errors.Is(err, redis.Nil) || d == "" {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var p Person
	if json.Unmarshal([]byte(d), &p) != nil {
		return &Person{}, nil
	}
	return &p, nil
}

// Leases: one destructive job per target at a time, across replicas. The holder renews it;
// a crashed holder's lease runs out after leaseTTL.

// acquireLease takes the target's lease for jobID, or returns the id of the job holding it.
func (s *store) acquireLease(ctx context.Context, target, jobID string, ttl time.Duration) (ok bool, holder string, err error) {
	ok, err = s.rdb.SetNX(ctx, s.leaseKey(target), jobID, ttl).Result()
	if err != nil {
		return false, "", fmt.Errorf("lease %s: %w", target, err)
	}
	if ok {
		return true, jobID, nil
	}
	holder, err = s.rdb.Get(ctx, s.leaseKey(target)).Result()
	if errors.Is(err, redis.Nil) {
		// Released in between: one more try.
		ok, err = s.rdb.SetNX(ctx, s.leaseKey(target), jobID, ttl).Result()
		if err != nil {
			return false, "", fmt.Errorf("lease %s: %w", target, err)
		}
		if ok {
			return true, jobID, nil
		}
		holder = "another job"
	} else if err != nil {
		return false, "", fmt.Errorf("lease %s: %w", target, err)
	}
	return false, holder, nil
}

var renewLeaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
`)

var releaseLeaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
return 1
`)

// renewLease extends the lease; false means it is no longer ours.
func (s *store) renewLease(ctx context.Context, target, jobID string, ttl time.Duration) (bool, error) {
	n, err := renewLeaseScript.Run(ctx, s.rdb, []string{s.leaseKey(target)}, jobID, ttl.Milliseconds()).Int()
	return n == 1, err
}

func (s *store) releaseLease(ctx context.Context, target, jobID string) error {
	return releaseLeaseScript.Run(ctx, s.rdb, []string{s.leaseKey(target)}, jobID).Err()
}

func (s *store) leaseHolder(ctx context.Context, target string) (string, error) {
	h, err := s.rdb.Get(ctx, s.leaseKey(target)).Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	return h, err
}

func toAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// backupID is the id the job's backup files are named after: its own, or for a resumed job that
// of the first job, whose backup it extends.
func (j *Job) backupID() string {
	if j.Backup != "" {
		return j.Backup
	}
	return j.ID
}
