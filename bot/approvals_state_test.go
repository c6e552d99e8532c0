package bot

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/platform-team/sessionbot/cleanup/redistest"
)

// approvalStore is a store on a fresh redis-server, and a pending request in it needing
// required approvals.
func approvalStore(t *testing.T, required int) (*store, *Request) {
	t.Helper()
	srv := redistest.Standalone(t)
	rdb := srv.Client()
	t.Cleanup(func() { _ = rdb.Close() })
	st := newStore(rdb)
	return st, newStoredRequest(t, st, required)
}

func newStoredRequest(t *testing.T, st *store, required int) *Request {
	t.Helper()
	now := time.Now().UTC()
	r := &Request{ID: newRequestID(), Kind: KindCleanup, Mode: ModeAll, Scope: "all", Requester: Person{ID: alice, Name: "alice"},
		NeedsApproval: true, Required: required, Approvers: []string{bob, dave}, CreatedAt: now, ExpiresAt: now.Add(15 * time.Minute)}
	if err := st.createRequest(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	return r
}

// approveAsAct counts who's approval the way act does: on a stale count it reads the request
// again and tries again; anything else is final.
func approveAsAct(t *testing.T, st *store, id string, who Person, now time.Time) approveResult {
	t.Helper()
	for range maxRounds {
		r, err := st.request(context.Background(), id)
		if err != nil {
			t.Error(err)
			return ""
		}
		res, err := st.approve(context.Background(), r, who, now)
		if err != nil {
			t.Error(err)
			return ""
		}
		if res != approveStale {
			return res
		}
	}
	t.Errorf("approval of %s by %s stayed stale", id, who.ID)
	return ""
}

func mustRequest(t *testing.T, st *store, id string) *Request {
	t.Helper()
	r, err := st.request(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// Two approvers pressing at once on two replicas: with two approvals required, exactly one of
// them approves the request (and so starts its job) and the other is counted first; the same
// approver pressing many times at once is counted once and never approves it.
func TestApproveScriptConcurrent(t *testing.T) {
	st, _ := approvalStore(t, 2)
	now := time.Now()
	for round := range 30 {
		r := newStoredRequest(t, st, 2)
		var (
			wg      sync.WaitGroup
			mu      sync.Mutex
			results = map[approveResult]int{}
		)
		presses := []Person{{ID: bob}, {ID: dave}, {ID: bob}, {ID: dave}, {ID: bob}, {ID: dave}}
		for _, who := range presses {
			wg.Add(1)
			go func() {
				defer wg.Done()
				res := approveAsAct(t, st, r.ID, who, now)
				mu.Lock()
				results[res]++
				mu.Unlock()
			}()
		}
		wg.Wait()
		if results[approveApproved] != 1 || results[approveCounted] != 1 {
			t.Fatalf("round %d: results %v; want exactly one counted and one approved", round, results)
		}
		got := mustRequest(t, st, r.ID)
		if got.Status != StatusApproved || len(got.Approvals) != 2 || got.Approvals[0].ID == got.Approvals[1].ID {
			t.Fatalf("round %d: request %s with approvals %v; want approved by bob and dave", round, got.Status, got.Approvals)
		}
	}

	same := newStoredRequest(t, st, 2)
	var wg sync.WaitGroup
	var counted, approved sync.Map
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			switch approveAsAct(t, st, same.ID, Person{ID: bob}, now) {
			case approveCounted:
				counted.Store(i, true)
			case approveApproved:
				approved.Store(i, true)
			}
		}()
	}
	wg.Wait()
	if n := mapLen(&counted); n != 1 || mapLen(&approved) != 0 {
		t.Errorf("bob pressing 20 times at once: %d counted, %d approved; want 1 and 0", n, mapLen(&approved))
	}
	if got := mustRequest(t, st, same.ID); got.Status != StatusPending || len(got.Approvals) != 1 {
		t.Errorf("request %s with %v; want pending with bob's one approval", got.Status, got.Approvals)
	}
}

func mapLen(m *sync.Map) int {
	n := 0
	m.Range(func(any, any) bool { n++; return true })
	return n
}

// The script counts an approval only while the request is pending, unexpired, and counted as
// its approver saw it; reopen withdraws the approval that approved it, and only that one.
func TestApproveScriptRules(t *testing.T) {
	ctx := context.Background()
	st, r := approvalStore(t, 2)
	now := time.Now()
	bobP, daveP := Person{ID: bob, Name: "bob"}, Person{ID: dave, Name: "dave"}

	if res, err := st.approve(ctx, r, bobP, r.ExpiresAt); err != nil || res != approveExpired {
		t.Errorf("approve at the expiry = %q, %v; want %q", res, err, approveExpired)
	}
	stale := mustRequest(t, st, r.ID) // read before bob's approval
	if res, _ := st.approve(ctx, stale, bobP, now); res != approveCounted {
		t.Fatalf("first approval = %q; want %q", res, approveCounted)
	}
	if res, _ := st.approve(ctx, stale, daveP, now); res != approveStale {
		t.Errorf("approval decided on a stale count = %q; want %q", res, approveStale)
	}
	if res, _ := st.approve(ctx, mustRequest(t, st, r.ID), bobP, now); res != approveDuplicate {
		t.Errorf("bob again = %q; want %q", res, approveDuplicate)
	}
	if got := mustRequest(t, st, r.ID); got.Status != StatusPending || len(got.Approvals) != 1 || got.Approvals[0] != bobP {
		t.Fatalf("after refused approvals: %s %v; want pending, approved by bob only", got.Status, got.Approvals)
	}
	if n, _ := st.rdb.ZScore(ctx, st.pendingKey(), r.ID).Result(); n == 0 {
		t.Error("a request one approval short left the sweeper's list")
	}

	if res, _ := st.approve(ctx, mustRequest(t, st, r.ID), daveP, now); res != approveApproved {
		t.Fatalf("second approval = %q; want %q", res, approveApproved)
	}
	if err := st.rdb.ZScore(ctx, st.pendingKey(), r.ID).Err(); err == nil {
		t.Error("an approved request is still listed for the expiry sweeper")
	}
	// The job could not start: dave's approval is withdrawn, bob's stays; dave may approve again.
	if err := st.reopen(ctx, r, dave); err != nil {
		t.Fatal(err)
	}
	if got := mustRequest(t, st, r.ID); got.Status != StatusPending || len(got.Approvals) != 1 || got.Approvals[0] != bobP {
		t.Fatalf("after reopen: %s %v; want pending, approved by bob", got.Status, got.Approvals)
	}
	if res, _ := st.approve(ctx, mustRequest(t, st, r.ID), daveP, now); res != approveApproved {
		t.Errorf("dave again after reopen = %q; want %q", res, approveApproved)
	}
	if ok, _, err := st.transition(ctx, r.ID, StatusApproved, StatusRunning); err != nil || !ok {
		t.Fatal(ok, err)
	}
	if res, _ := st.approve(ctx, mustRequest(t, st, r.ID), Person{ID: "UFRANK01"}, now); res != approveNotPending {
		t.Errorf("approval of a running request = %q; want %q", res, approveNotPending)
	}
	if res, _ := st.approve(ctx, &Request{ID: newRequestID(), ExpiresAt: r.ExpiresAt, Required: 1}, bobP, now); res != approveNotPending {
		t.Errorf("approval of a missing request = %q; want %q", res, approveNotPending)
	}
}

// Requests and jobs written by the version before approvals were counted are read as they were
// meant: a missing required count is one approval, an old single approver is the approval.
func TestStateWrittenByEarlierVersion(t *testing.T) {
	ctx := context.Background()
	st, _ := approvalStore(t, 1)
	bobJSON := `{"ID":"` + bob + `","Name":"bob"}`
	put := func(status string, needsApproval bool, fields ...any) string {
		t.Helper()
		id := newRequestID()
		data := fmt.Sprintf(`{"id":%q,"kind":"cleanup","mode":"all","scope":"all","requester":{"ID":%q,"Name":"alice"},"needs_approval":%v,"approvers":[%q],"expires_at":%q}`,
			id, alice, needsApproval, bob, time.Now().Add(time.Hour).UTC().Format(time.RFC3339))
		if err := st.rdb.HSet(ctx, st.reqKey(id), append([]any{"data", data, "status", status}, fields...)...).Err(); err != nil {
			t.Fatal(err)
		}
		return id
	}

	pending := mustRequest(t, st, put("pending", true))
	if pending.Required != 1 || pending.Kind != KindCleanup || pending.Mode != ModeAll || len(pending.Approvals) != 0 {
		t.Errorf("old pending request = required %d, %s/%s, approvals %v; want 1 required, cleanup/all, none", pending.Required,
			pending.Kind, pending.Mode, pending.Approvals)
	}
	if res, _ := st.approve(ctx, pending, Person{ID: bob}, time.Now()); res != approveApproved {
		t.Errorf("one approval of an old pending request = %q; want %q", res, approveApproved)
	}

	started := mustRequest(t, st, put("done", true, "decided_by", bobJSON, "job", "job-20250101-00000001"))
	if len(started.Approvals) != 1 || started.Approvals[0].ID != bob || started.DecidedBy != nil {
		t.Errorf("old approved request: approvals %v, decided by %v; want bob's approval", started.Approvals, started.DecidedBy)
	}
	rejected := mustRequest(t, st, put("rejected", true, "decided_by", bobJSON))
	if len(rejected.Approvals) != 0 || rejected.DecidedBy == nil || rejected.DecidedBy.ID != bob {
		t.Errorf("old rejected request: approvals %v, decided by %v; want rejected by bob, no approval", rejected.Approvals, rejected.DecidedBy)
	}
	run := mustRequest(t, st, put("done", false, "decided_by", `{"ID":"`+carol+`"}`, "job", "job-20250101-00000002"))
	if len(run.Approvals) != 0 || run.DecidedBy == nil || run.DecidedBy.ID != carol {
		t.Errorf("old run request: approvals %v, decided by %v; want run by carol", run.Approvals, run.DecidedBy)
	}

	var j Job
	if err := json.Unmarshal([]byte(`{"id":"job-20250101-00000001","mode":"all","approver":`+bobJSON+`}`), &j); err != nil {
		t.Fatal(err)
	}
	if len(j.Approvals) != 1 || j.Approvals[0].ID != bob || j.Mode != ModeAll {
		t.Errorf("old job = %+v; want bob's approval", j)
	}
}
