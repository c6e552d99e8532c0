package bot

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"
)

// groupCacheTTL bounds how stale a user group's membership may be: removing someone from a
// group takes effect within this long.
const groupCacheTTL = time.Minute

// access answers who may do what (SPEC §6, §11). Lists hold user ids (U…, W…) and user-group
// ids (S…); groups are resolved through Chat.UserGroupMembers and cached for a minute.
type access struct {
	operators, approvers []string
	chat                 Chat
	now                  func() time.Time
	log                  *slog.Logger

	mu     sync.Mutex
	groups map[string]groupEntry
}

type groupEntry struct {
	members []string
	at      time.Time
}

// newAccess answers for cfg's OPERATORS and APPROVERS; targetApprovers (the targets' own
// approvers) may also read and cancel, and approve their targets' requests (decided per request
// from Request.Approvers).
func newAccess(cfg Config, targetApprovers []string, chat Chat, now func() time.Time, log *slog.Logger) *access {
	return &access{
		operators: IDs(cfg.Operators),
		approvers: append(IDs(cfg.Approvers), targetApprovers...),
		chat:      chat,
		now:       now,
		log:       log,
		groups:    map[string]groupEntry{},
	}
}

// IsOperator reports whether user may use the command.
func (a *access) IsOperator(ctx context.Context, user string) bool {
	return a.in(ctx, a.operators, user)
}

// IsApprover reports whether user may approve or reject requests (never their own).
func (a *access) IsApprover(ctx context.Context, user string) bool {
	return a.in(ctx, a.approvers, user)
}

func (a *access) in(ctx context.Context, list []string, user string) bool {
	if user == "" {
		return false
	}
	if slices.Contains(list, user) {
		return true
	}
	for _, id := range list {
		if strings.HasPrefix(id, "S") && slices.Contains(a.members(ctx, id), user) {
			return true
		}
	}
	return false
}

// members returns group's members, from the cache when fresh. When Slack cannot be asked, a
// stale list is used rather than locking everyone out mid-incident; with no list at all the
// group grants nothing.
func (a *access) members(ctx context.Context, group string) []string {
	a.mu.Lock()
	e, ok := a.groups[group]
	a.mu.Unlock()
	if ok && a.now().Sub(e.at) < groupCacheTTL {
		return e.members
	}
	m, err := a.chat.UserGroupMembers(ctx, group)
	if err != nil {
		a.log.Warn("user group lookup failed", "group", group, "err", err, "cached", ok)
		return e.members
	}
	a.mu.Lock()
	a.groups[group] = groupEntry{members: m, at: a.now()}
	a.mu.Unlock()
	return m
}

// approverUsers returns the users in APPROVERS, user groups resolved into their members, each
// once, in the order configured.
func (a *access) approverUsers(ctx context.Context) []string {
	var out []string
	for _, id := range a.approvers {
		members := []string{id}
		if strings.HasPrefix(id, "S") {
			members = a.members(ctx, id)
		}
		for _, u := range members {
			if !slices.Contains(out, u) {
				out = append(out, u)
			}
		}
	}
	return out
}
