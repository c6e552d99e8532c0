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
//     (the whole table runs in CI in about five minutes, one mutation after another): name the
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
		From: "case who.ID == req.Requester.ID:",
		To:   "case false:",
		Pkgs: []string{"./bot/"},
		Run:  "^TestActionRefusals$",
	},
	{
		Name: "non-approver-approves",
		Rule: "only APPROVERS approve or reject",
		File: "bot/approval.go",
		From: "case !b.access.IsApprover(ctx, who.ID):",
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
		From: `if b.cfg.TeamID != "" && a.TeamID != b.cfg.TeamID {`,
		To:   "if false {",
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
		Name: "cli-error-keys-unredacted",
		Rule: "the CLI shortens session keys in error messages",
		File: "cleanup/redact.go",
		From: "b.WriteString(ShortID(id))",
		To:   "b.WriteString(id)",
		Pkgs: []string{"./cmd/sessionbot/"},
		Run:  "^TestRestoreErrorRedactsKeys$",
	},

	// Bounds and thresholds (SPEC §11 "Binding", §12.3).
	{
		Name: "cli-bound-off",
		Rule: "a CLI run stops at the previewed still-valid count + 10% + 10",
		File: "cmd/sessionbot/cleanup.go",
		From: "MaxValid:  cleanup.ValidBound(plan.Valid),",
		To:   "MaxValid:  -1,",
		Pkgs: []string{"./cmd/sessionbot/"},
		Run:  "^TestCleanupStopsAtValidBound$",
	},
	{
		Name: "threshold-bot-off-by-one",
		Rule: "approval is needed above APPROVAL_THRESHOLD still-valid sessions, not at it",
		File: "bot/commands.go",
		From: "plan.Valid > b.cfg.ApprovalThreshold",
		To:   "plan.Valid >= b.cfg.ApprovalThreshold",
		Pkgs: []string{"./bot/"},
		Run:  "^TestApprovalThresholdBoundary$",
	},
	{
		Name: "threshold-cli-off-by-one",
		Rule: "the CLI asks and backs up above APPROVAL_THRESHOLD still-valid sessions, not at it",
		File: "cmd/sessionbot/cleanup.go",
		From: "plan.Valid > cfg.CLI.ApprovalThreshold",
		To:   "plan.Valid >= cfg.CLI.ApprovalThreshold",
		Pkgs: []string{"./cmd/sessionbot/"},
		Run:  "^TestCleanupThresholdBoundary$",
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
