package main

// A mutation breaks one safety rule with a one-line change; at least one of its tests must then
// fail. To add one:
//
//   - Name: short and unique (`-only NAME` runs it alone).
//   - Rule: the rule it breaks, in a few words, with its SPEC section.
//   - File: the file it changes, relative to the repository root.
//   - From: an exact snippet of that file, usually one whole statement or condition. It must
//     occur exactly once in the file; when the code changes so that it does not, every run fails
//     until the entry is updated — the table cannot silently stop testing anything.
//   - To: the one-line replacement (same indentation is not needed; gofmt is not run). It must
//     compile: a mutation that does not is reported as BROKEN, not as killed.
//   - Pkgs and Run: the `go test` packages and -run regexp that should catch it. Keep them tight
//     (the whole table runs in CI in about four minutes, two mutations at a time): name the
//     tests that assert the rule, not the package.
//
// Check an edited table with `go run ./cmd/mutants -list`, run one entry with
// `go run ./cmd/mutants -only NAME -v`.
var mutations = []mutation{
	// Leases: one destructive job per target (SPEC §12.4, §13 "Leases … are per target").
	{
		Name: "lease-renew-unowned",
		Rule: "a lease is renewed only by the job that holds it",
		File: "bot/state.go",
		From: "n, err := renewLeaseScript.Run(ctx, s.rdb, []string{s.leaseKey(target)}, jobID, ttl.Milliseconds()).Int()",
		To:   "n, err := 1, s.rdb.Set(ctx, s.leaseKey(target), jobID, ttl).Err()",
		Pkgs: []string{"./bot/"},
		// TestJobStopsWhenItsLeaseIsTaken kills it too, in seconds rather than milliseconds.
		Run: "^TestRenewLeaseOnlyByItsHolder$",
	},
	{
		Name: "lease-stop-late",
		Rule: "a job that cannot renew its lease stops at half the lease TTL, before it runs out",
		File: "bot/jobs.go",
		From: "case time.Since(renewed) >= b.leaseTTL/2:",
		To:   "case time.Since(renewed) >= 3*b.leaseTTL:",
		Pkgs: []string{"./bot/"},
		Run:  "^TestJobStopsWhenItCannotRenewItsLease$",
	},

	// Who may press what (SPEC §11, §12.5).
	{
		Name: "self-approval",
		Rule: "the requester never approves their own request (two-person rule)",
		File: "bot/approval.go",
		From: "case p.ID == req.Requester.ID:",
		To:   "case false:",
		Pkgs: []string{"./bot/"},
		Run:  "^TestActionRefusals$",
	},
	{
		Name: "non-approver-approves",
		Rule: "only APPROVERS approve or reject",
		File: "bot/approval.go",
		From: "case !p.Approver:",
		To:   "case false:",
		Pkgs: []string{"./bot/"},
		Run:  "^TestActionRefusals$",
	},
	{
		Name: "team-check-command",
		Rule: "commands from a foreign workspace (SLACK_TEAM_ID) are refused",
		File: "bot/commands.go",
		From: `if b.cfg.TeamID != "" && c.TeamID != b.cfg.TeamID {`,
		To:   "if false {",
		Pkgs: []string{"./bot/"},
		Run:  "^TestCommandRefusals$",
	},
	{
		Name: "team-check-click",
		Rule: "clicks from a foreign workspace (SLACK_TEAM_ID) are refused",
		File: "bot/approval.go",
		From: "case p.Foreign:",
		To:   "case false:",
		Pkgs: []string{"./bot/"},
		Run:  "^TestActionRefusals$",
	},

	// Exactly once (SPEC §11 "Redelivery", §13 "Approvals").
	{
		Name: "transition-not-cas",
		Rule: "a request changes status only from the status it was read in (compare-and-set)",
		File: "bot/state.go",
		From: "if cur ~= ARGV[1] then return {0, cur} end",
		To:   "if false then return {0, cur} end",
		Pkgs: []string{"./bot/"},
		Run:  "^(TestTransitionCompareAndSet|TestConcurrentApprovalsRunOnce)$",
	},
	{
		Name: "approval-counted-twice",
		Rule: "the same approver approving twice counts once (§13 Approvals)",
		File: "bot/state.go",
		From: "if redis.call('HEXISTS', KEYS[1], 'approver:' .. ARGV[1]) == 1 then return {'duplicate', n} end",
		To:   "if false then return {'duplicate', n} end",
		Pkgs: []string{"./bot/"},
		Run:  "^(TestApproveScriptRules|TestApproveScriptConcurrent)$",
	},
	{
		Name: "approval-on-stale-count",
		Rule: "an approval is counted only on the count it was decided (and audited) on",
		File: "bot/state.go",
		From: "if n ~= tonumber(ARGV[6]) then return {'stale', n} end",
		To:   "if false then return {'stale', n} end",
		Pkgs: []string{"./bot/"},
		Run:  "^TestApproveScriptRules$",
	},
	{
		Name: "approval-after-expiry",
		Rule: "an approval after the request's expiry is not counted (§6)",
		File: "bot/state.go",
		From: "if tonumber(ARGV[3]) >= tonumber(ARGV[4]) then return {'expired', n} end",
		To:   "if false then return {'expired', n} end",
		Pkgs: []string{"./bot/"},
		Run:  "^TestApproveScriptRules$",
	},
	{
		Name: "approval-starts-early",
		Rule: "the job starts on the last of APPROVALS_REQUIRED approvals, not before (§13)",
		File: "bot/state.go",
		From: "if n < tonumber(ARGV[5]) then return {'counted', n} end",
		To:   "if false then return {'counted', n} end",
		Pkgs: []string{"./bot/"},
		Run:  "^(TestApproveScriptRules|TestTwoOfTwoApprovals)$",
	},
	{
		Name: "approval-decided-early",
		Rule: "decide starts the job only on the approval that reaches Required (§13)",
		File: "bot/approval.go",
		From: "Start: n >= req.Required,",
		To:   "Start: true,",
		Pkgs: []string{"./bot/"},
		Run:  "^(TestDecide|TestTwoOfTwoApprovals)$",
	},
	{
		Name: "envelope-dedupe",
		Rule: "a redelivered envelope is handled once (SET NX)",
		File: "bot/state.go",
		From: "return s.rdb.SetNX(ctx, s.envKey(id), 1, time.Hour).Result()",
		To:   "return true, nil",
		Pkgs: []string{"./bot/"},
		Run:  "^TestRedeliveryHandledOnce$",
	},

	// Never a key outside the prefix (SPEC §12.4).
	{
		Name: "scan-match-unescaped",
		Rule: "SCAN MATCH escapes glob characters in the prefix",
		File: "cleanup/target.go",
		From: `case '*', '?', '[', ']', '\\':`,
		To:   "case 0:",
		Pkgs: []string{"./cleanup/"},
		Run:  "^TestMatchPatternIsLiteral$",
	},
	{
		Name: "prefix-check-dropped",
		Rule: "the engine reads and deletes only keys that start with the prefix (last line of defence)",
		File: "cleanup/target.go",
		From: `return strings.HasPrefix(key, t.prefix) && (t.exclude == "" || !strings.HasPrefix(key, t.exclude))`,
		To:   `return t.exclude == "" || !strings.HasPrefix(key, t.exclude)`,
		Pkgs: []string{"./cleanup/"},
		Run:  "^TestIsSessionKey$",
	},
	{
		Name: "state-namespace-included",
		Rule: "no scan, preview or delete includes a key of the bot's state namespace (§12.4)",
		File: "cleanup/target.go",
		From: `(t.exclude == "" || !strings.HasPrefix(key, t.exclude))`,
		To:   "true",
		Pkgs: []string{"./cleanup/"},
		Run:  "^TestIsSessionKey$",
	},

	// Redaction (SPEC §12.8).
	{
		Name: "short-id-whole",
		Rule: "a session id is shown as its first 8 characters only",
		File: "cleanup/filter.go",
		From: `return string(r[:8]) + "…"`,
		To:   "return id",
		Pkgs: []string{"./bot/"},
		Run:  "^TestProcedure4UserAndSession$",
	},
	{
		Name: "error-keys-unredacted",
		Rule: "session keys in error messages and logs are shortened (CLI and bot: cleanup.RedactKeys)",
		File: "cleanup/redact.go",
		From: "b.WriteString(ShortID(id))",
		To:   "b.WriteString(id)",
		Pkgs: []string{"./cleanup/"},
		Run:  "^TestRedactKeys$",
	},

	// Bounds and thresholds (SPEC §11 "Binding", §12.3).
	{
		Name: "approved-bound-off",
		Rule: "an approved run stops at the previewed still-valid count + 10% + 10 (cleanup.Policy)",
		File: "cleanup/policy.go",
		From: "d.MaxValid = ValidBound(plan.Valid)",
		To:   "d.MaxValid = -1",
		Pkgs: []string{"./cmd/sessionbot/"},
		Run:  "^TestCleanupStopsAtValidBound$",
	},
	{
		Name: "unapproved-bound-off",
		Rule: "a run that needed no approval never logs out more than APPROVAL_THRESHOLD (SPEC §12.3)",
		File: "cleanup/policy.go",
		From: "d.MaxValid = min(ValidBound(plan.Valid), p.Threshold)",
		To:   "d.MaxValid = ValidBound(plan.Valid)",
		Pkgs: []string{"./cmd/sessionbot/"},
		Run:  "^TestCleanupUnconfirmedRunStopsAtThreshold$",
	},
	{
		Name: "threshold-off-by-one",
		Rule: "approval is needed above APPROVAL_THRESHOLD still-valid sessions, not at it (cleanup.Policy)",
		File: "cleanup/policy.go",
		From: "case plan.Valid > p.Threshold:",
		To:   "case plan.Valid >= p.Threshold:",
		Pkgs: []string{"./bot/", "./cmd/sessionbot/"},
		Run:  "^(TestApprovalThresholdBoundary|TestCleanupThresholdBoundary)$",
	},
	// The engine: no matching session survives because it was in use, none is deleted after it
	// stopped matching, the backup holds what was deleted (SPEC §4, §12.1–3).
	{
		Name: "cad-value-ignored",
		Rule: "a key is deleted only if its value is what was decided on (compare-and-delete)",
		File: "cleanup/redisops.go",
		From: "elseif cv and v ~= ARGV[i+1] then",
		To:   "elseif false then",
		Pkgs: []string{"./cleanup/"},
		Run:  "^TestRefreshedBetweenReadAndDeleteIsKept$",
	},
	{
		Name: "cad-digest-ignored",
		Rule: "after a backup, a key is deleted only if its value is the one backed up",
		File: "cleanup/redisops.go",
		From: "elseif cd and redis.sha1hex(v) ~= ARGV[i+1] then",
		To:   "elseif false then",
		Pkgs: []string{"./cleanup/"},
		Run:  "^TestInvariantsUnderConcurrentWriters$/^standalone$/(auth-method|expired|user-id)$",
	},
	{
		Name: "orphan-ttl-recheck",
		Rule: "--orphans deletes a key only if it still has no TTL",
		File: "cleanup/redisops.go",
		From: "elseif pttl ~= -1 then",
		To:   "elseif false then",
		Pkgs: []string{"./cleanup/"},
		Run:  "^TestInvariantsUnderConcurrentWriters$/^standalone$/orphans$",
	},
	{
		Name: "settle-drops-changed",
		Rule: "a session changed between read and delete that still matches is deleted, not left behind",
		File: "cleanup/run.go",
		From: "case it.verdict == Delete:\n\t\t\t\tdel = append(del, it)",
		To:   "case it.verdict == Delete:",
		Pkgs: []string{"./cleanup/"},
		Run:  "^TestInvariantsUnderConcurrentWriters$/^standalone$/(user-id|auth-method)$",
	},
	{
		Name: "delete-changed-without-backup",
		Rule: "a backed-up run deletes a session only while it holds the value its synced file holds",
		File: "cleanup/backuprun.go",
		From: `deletedValid, err = r.cadEntries(ctx, o, "d"+check, strs, changed)`,
		To:   `deletedValid, err = r.cadEntries(ctx, o, "x"+check, strs, changed)`,
		Pkgs: []string{"./cleanup/"},
		Run:  "^TestBackupHoldsEveryDeletedValueAtEveryInstant$",
	},
	{
		Name: "delete-after-failed-backup",
		Rule: "nothing of a round is deleted unless its backup file was completed and synced",
		File: "cleanup/backuprun.go",
		From: "if err := cur.close(rep); err != nil {",
		To:   "if err := cur.close(rep); false && err != nil {",
		Pkgs: []string{"./cleanup/"},
		Run:  "^(TestFaultBackupFailsMidBackup|TestBackupFailureDeletesNothing)$",
	},
	{
		Name: "bound-ignored",
		Rule: "a run stops before it logs out more still-valid sessions than its bound",
		File: "cleanup/run.go",
		From: "grant := min(n, max(r.spec.MaxValid-cur, 0))",
		To:   "grant := n",
		Pkgs: []string{"./cleanup/"},
		Run:  "^(TestBoundStopsRun|TestBoundCountsOnlyValidSessions)$",
	},
	{
		Name: "logout-counted-once-ever",
		Rule: "a session deleted again counts once against the bound, but every new session counts (SPEC §12.3)",
		File: "cleanup/run.go",
		From: "func (r *runner) newLogout(key string) bool { return !r.bounded() || !r.loggedOut.has(key) }",
		To:   "func (r *runner) newLogout(key string) bool { return !r.bounded() }",
		Pkgs: []string{"./cleanup/"},
		Run:  "^(TestBoundStopsRun|TestBoundCountsOnlyValidSessions)$",
	},
	{
		Name: "malformed-counted-as-logout",
		Rule: "expired, malformed and absent keys never count as logouts (SPEC §12.3)",
		File: "cleanup/redisops.go",
		From: "return it.state == stateString && it.ok && it.sess.Has.Contains(FieldExpiresAt) && !it.sess.ExpiresAt.Before(now)",
		To:   "return !it.ok || !it.sess.ExpiresAt.Before(now)",
		Pkgs: []string{"./cleanup/"},
		Run:  "^TestProcedure2All$",
	},
	{
		Name: "restart-after-last-scan-ignored",
		Rule: "a node whose run_id changed is rescanned from cursor 0, also after the last SCAN",
		File: "cleanup/scan.go",
		From: "if id == run {",
		To:   "if id == run || true {",
		Pkgs: []string{"./cleanup/"},
		Run:  "^TestFaultRestartRescansFromCursorZero$",
	},
	{
		Name: "preview-unpaced",
		Rule: "previews are paced like runs when the engine is paced (SPEC §12.7)",
		File: "cleanup/scan.go",
		From: "p.sequential = true\n\t\treturn p",
		To:   "return pacing{batch: p.batch, workers: 2}",
		Pkgs: []string{"./cleanup/"},
		Run:  "^TestRateCapChargesReadsAQuarterOfADeletion$",
	},
	// Second release (SPEC §13): repair, resume and targets keep the same safety rules.
	{
		Name: "repair-overwrites-ttl",
		Rule: "--orphans (and --repair-ttl) act only on keys still without a TTL (§13 Repair)",
		File: "cleanup/redisops.go",
		From: "elseif pttl ~= -1 then",
		To:   "elseif false then",
		Pkgs: []string{"./cleanup/"},
		Run:  "^TestRepairChangedMeanwhile$",
	},
	{
		Name: "resume-after-approval-aged-out",
		Rule: "Resume needs an approval younger than APPROVAL_TTL (§13 Resume)",
		File: "bot/approval.go",
		From: "case !now.Before(req.resumeDeadline()):",
		To:   "case false:",
		Pkgs: []string{"./bot/"},
		Run:  "^TestResumeRefusedAfterApprovalAgedOut$",
	},
	{
		Name: "restore-on-another-target",
		Rule: "a backup is restored only on the target it was written on (§13 Targets)",
		File: "cleanup/targets.go",
		From: "if owner := BackupOwner(id, names); owner != target {",
		To:   "if owner := BackupOwner(id, names); owner == \"\" {",
		Pkgs: []string{"./cleanup/", "./bot/"},
		Run:  "^(TestCheckRestoreTarget|TestRestoreRefusedOnAnotherTarget)$",
	},
}

type mutation struct {
	Name string   // unique; what the mutation breaks
	Rule string   // the safety rule, as a reader of the output needs it
	File string   // relative to the repository root
	From string   // exact snippet; occurs exactly once in File
	To   string   // one-line replacement
	Pkgs []string // go test packages
	Run  string   // go test -run regexp
}
