package bot

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/platform-team/sessionbot/bot/chat"
	"github.com/platform-team/sessionbot/cleanup"
)

// previewTimeout bounds one dry run; a preview that takes longer is reported as failed.
const previewTimeout = 15 * time.Minute

// HandleCommand answers a slash command. The transport has already acknowledged it. Fast
// answers (help, refusals, usage errors) are given before it returns; previews and stats
// continue in goroutines the Bot owns and update the message they posted.
func (b *Bot) HandleCommand(ctx context.Context, c Command) {
	first, err := b.st.firstDelivery(ctx, c.EnvelopeID)
	if err != nil {
		b.ephemeral(ctx, c.ChannelID, c.UserID, c.ResponseURL, Message{Text: b.safeText("envelope dedupe", err)})
		return
	}
	if !first {
		b.log.Info("redelivered command ignored", "envelope", c.EnvelopeID)
		return
	}
	who := Person{ID: c.UserID, Name: c.UserName}
	say := func(text string) {
		b.ephemeral(ctx, c.ChannelID, c.UserID, c.ResponseURL, Message{Text: text})
	}
	if b.cfg.TeamID != "" && c.TeamID != b.cfg.TeamID {
		b.refused(who, "command", "", "foreign workspace "+c.TeamID)
		say("This bot serves another Slack workspace; nothing was done.")
		return
	}
	if !utf8.ValidString(c.Text) {
		// JSON (the stored request, Slack) would replace the bad bytes: what is approved would
		// not be what was typed.
		b.metrics.CommandReceived("unknown")
		say("Command text is not valid UTF-8. Nothing was done.")
		return
	}
	if n := utf8.RuneCountInString(c.Text); n > cleanup.MaxCommandText {
		b.metrics.CommandReceived("unknown")
		say(fmt.Sprintf("Command text is %s characters long; the limit is %s. Nothing was done.", num(int64(n)), num(cleanup.MaxCommandText)))
		return
	}
	args, err := cleanup.SplitArgs(c.Text)
	if err != nil {
		b.metrics.CommandReceived("unknown")
		say(b.safeText("split command", err) + ". Nothing was done. Try `" + b.cfg.Command + " help`.")
		return
	}
	sub := "help"
	if len(args) > 0 {
		sub = strings.ToLower(args[0])
		args = args[1:]
	}
	b.metrics.CommandReceived(sub)

	if !b.access.IsOperator(ctx, c.UserID) {
		// Approvers who are not operators may read (help, status, backups: they approve
		// restores) and stop a job or request (cancel, as its button allows them: SPEC §11),
		// but not start anything.
		if !((sub == "help" || sub == "status" || sub == "backups" || sub == "cancel") && b.access.IsApprover(ctx, c.UserID)) {
			b.refused(who, sub, "", "not in OPERATORS")
			say("You are not allowed to use " + b.cfg.Command + " (not in OPERATORS). Nothing was done.")
			return
		}
	}

	// --target NAME is the same on every subcommand; the commands that scan or change a target
	// need one, from the flag, the channel's default or the only target.
	name, args, err := cleanup.TakeTarget(args)
	if err != nil {
		say(b.safeText("parse target", err) + ". Nothing was done. Try `" + b.cfg.Command + " help`.")
		return
	}
	var t *target
	if name != "" || sub == "stats" || sub == "cleanup" || sub == "restore" {
		if t, err = b.targets.resolve(name, c.ChannelID); err != nil {
			b.refused(who, sub, "", "target: "+err.Error())
			say(b.safeText("resolve target", err) + ". Nothing was done.")
			return
		}
	}

	switch sub {
	case "help":
		m := helpMessage(b.cfg, b.helpTarget(t, c.ChannelID), b.targets)
		m.Lines = append(m.Lines, watchHelp(b.cfg, b.watch, b.schedules))
		b.ephemeral(ctx, c.ChannelID, c.UserID, c.ResponseURL, m)
	case "stats":
		if len(args) > 0 {
			say("`stats` takes no arguments but `--target NAME`. Nothing was done.")
			return
		}
		b.stats(ctx, c, t)
	case "cleanup":
		opts, err := cleanup.ParseArgs(args, false)
		if err != nil {
			say(b.safeText("parse cleanup", err) + ". Nothing was done. Try `" + b.cfg.Command + " help`.")
			return
		}
		b.startPreview(ctx, c, who, t, opts)
	case "status":
		b.status(ctx, c, t, args)
	case "cancel":
		if len(args) != 1 {
			say("Usage: `" + b.cfg.Command + " cancel JOB_ID` (see `" + b.cfg.Command + " status`). Nothing was done.")
			return
		}
		b.cancelCommand(ctx, c, who, args[0])
	case "restore":
		b.startRestore(ctx, c, who, t, args)
	case "backups":
		b.listBackups(ctx, c, args)
	default:
		say(fmt.Sprintf("Unknown command %q. Try `%s help`. Nothing was done.", userText(short(sub, 40)), b.cfg.Command))
	}
}

// cannotPostText says why a command's preview could not be posted. Where the bot is not a
// member it says what to do: invite it, or use a channel it posts in.
func (b *Bot) cannotPostText(err error) string {
	if !errors.Is(err, chat.ErrNotInChannel) {
		return "Could not post the preview: " + b.safeText("post preview", err)
	}
	where := b.cfg.ApprovalChannel
	if where == "" {
		where = b.cfg.NotifyChannel
	}
	return "I cannot post in this channel: I am not a member of it. Invite me here (`/invite @` and my name, or the channel's " +
		"settings → Integrations → Add apps), or run the command in " + channelText(where) + ". Nothing was done."
}

// refused audits a refusal: the person refused, what they tried, and why.
func (b *Bot) refused(who Person, what, requestID, why string) {
	_ = b.record(refusedEvent(b.now(), who, what, requestID, why))
}

// helpTarget is the target help speaks of: the one named, else the channel's default, else the
// first (whose threshold help quotes).
func (b *Bot) helpTarget(t *target, channel string) *target {
	if t != nil {
		return t
	}
	if t, err := b.targets.resolve("", channel); err == nil {
		return t
	}
	return b.targets.list[0]
}

func (b *Bot) stats(ctx context.Context, c Command, t *target) {
	b.spawnPreview(ctx, c, t, func(ctx context.Context) {
		ctx, cancel := context.WithTimeout(ctx, previewTimeout)
		defer cancel()
		st, err := t.Engine.Stats(ctx, 0)
		if err != nil {
			b.ephemeral(ctx, c.ChannelID, c.UserID, c.ResponseURL, Message{Text: "Stats failed on target `" + t.Name + "`: " + b.safeText("stats", err)})
			return
		}
		if len(b.targets.list) == 1 {
			// The session gauges describe the one target (the sampler keeps them current).
			b.metrics.SetSessionStats(st)
		}
		b.ephemeral(ctx, c.ChannelID, c.UserID, c.ResponseURL, onTarget(statsMessage(st), t.Name))
	})
}

// startPreview posts "Previewing…" at once, then computes the plan in the background and
// replaces the message with the preview and its buttons. The buttons appear only after the
// request they act on is stored.
func (b *Bot) startPreview(ctx context.Context, c Command, who Person, t *target, opts cleanup.Options) {
	f := opts.Filter.Normalize()
	scope := f.Scope()
	ref, err := b.chat.Post(ctx, c.ChannelID, onTarget(previewingMessage(scope, who), t.Name))
	if err != nil {
		b.ephemeral(ctx, c.ChannelID, c.UserID, c.ResponseURL, Message{Text: b.cannotPostText(err)})
		return
	}
	ok := b.spawnPreview(ctx, c, t, func(ctx context.Context) {
		ctx, cancel := context.WithTimeout(ctx, previewTimeout)
		defer cancel()
		if err := b.preview(ctx, c, who, t, opts, ref); err != nil {
			b.update(ctx, ref, onTarget(Message{Text: "Preview failed", Title: "Preview failed: " + userText(scope),
				Lines: []string{b.safeText("preview", err)}, Context: []string{"Nothing was deleted."}}, t.Name))
		}
	})
	if !ok {
		b.update(ctx, ref, Message{Text: "The bot is shutting down; nothing was done."})
	}
}

func (b *Bot) preview(ctx context.Context, c Command, who Person, t *target, opts cleanup.Options, ref MessageRef) error {
	req, err := b.plan(ctx, c, who, t, opts, ref)
	if err != nil {
		return err
	}
	if req.Plan.Matched == 0 && req.Plan.Repaired == 0 {
		b.update(ctx, ref, nothingToDoMessage(req))
		return nil
	}
	return b.publish(ctx, req)
}

// plan runs the dry run of opts on t for who, showing its progress on ref, and returns the
// request it makes, with what t's cleanup.Policy requires of it decided. Nothing is stored yet.
func (b *Bot) plan(ctx context.Context, c Command, who Person, t *target, opts cleanup.Options, ref MessageRef) (*Request, error) {
	f := opts.Filter.Normalize()
	scope := f.Scope()
	mode := ModeExecute
	switch {
	case f.All:
		mode = ModeAll
	case f.RepairTTL:
		mode = ModeRepair
	}
	_ = b.recordOn(t.Name, cleanup.CleanupStarted{User: personText(who), Mode: string(ModeDryRun), Filters: scope}.Event(b.now()))

	var (
		mu   sync.Mutex
		last cleanup.Progress
		seen bool
	)
	progress := b.progressMessage(ref)
	stop := b.every(ctx, b.progressEvery, func() {
		mu.Lock()
		p, ok := last, seen
		mu.Unlock()
		if ok {
			progress.update(ctx, onTarget(previewProgressMessage(scope, who, p), t.Name))
		}
	})
	plan, err := t.Engine.Preview(ctx, f, func(p cleanup.Progress) {
		mu.Lock()
		last, seen = p, true
		mu.Unlock()
	})
	stop()
	if err != nil {
		return nil, fmt.Errorf("preview %s: %w", scope, err)
	}
	_ = b.recordOn(t.Name, cleanup.SessionsScanned{Total: plan.Found, Matched: plan.Matched, Kept: plan.Kept,
		Breakdown: &cleanup.ScanBreakdown{Valid: plan.Valid, Malformed: plan.Malformed}}.Event(b.now(), num))

	now := b.now()
	req := &Request{
		ID:          newRequestID(),
		Kind:        KindCleanup,
		Mode:        mode,
		Target:      t.Name,
		Filter:      f,
		Scope:       scope,
		Reason:      opts.Reason,
		NoBackup:    opts.NoBackup,
		ForceBackup: opts.Backup,
		Requester:   who,
		TeamID:      c.TeamID,
		Channel:     c.ChannelID,
		Ref:         ref,
		Plan:        plan,
		Approvers:   IDs(t.Approvers),
		Required:    b.cfg.ApprovalsRequired,
		CreatedAt:   now,
		ExpiresAt:   now.Add(b.cfg.ApprovalTTL),
	}
	d := t.Policy.Decide(plan, opts)
	req.NeedsApproval, req.Backup, req.MaxValid = d.NeedsApproval, d.Backup, d.MaxValid
	return req, nil
}

// publish stores req, audits it and shows its buttons: Run/Cancel in place of the preview, or
// an approval request (in APPROVAL_CHANNEL when set).
func (b *Bot) publish(ctx context.Context, req *Request) error {
	approvalChannel := b.cfg.ApprovalChannel
	elsewhere := req.NeedsApproval && approvalChannel != "" && approvalChannel != req.Channel
	if elsewhere {
		// The approval message is posted first so that the stored request points at it.
		ref, err := b.chat.Post(ctx, approvalChannel, Message{Text: "Approval request (loading)…"})
		if errors.Is(err, chat.ErrNotInChannel) {
			return userErrorf("the approval request cannot be posted in APPROVAL_CHANNEL %s: the bot is not a member there (invite it)", approvalChannel)
		}
		if err != nil {
			return fmt.Errorf("post approval request to %s: %w", approvalChannel, err)
		}
		origin := req.Ref
		req.Origin = &origin
		req.Ref = ref
	}
	if err := b.storeRequest(ctx, req); err != nil {
		return err
	}
	if !req.NeedsApproval {
		b.update(ctx, req.Ref, previewMessage(req))
		return nil
	}
	b.update(ctx, req.Ref, approvalMessage(req))
	if elsewhere {
		b.update(ctx, *req.Origin, approvalElsewhereMessage(req, approvalChannel))
	}
	b.notifyApprovers(ctx, req)
	return nil
}

// storeRequest stores req as pending and audits it (Request Created).
func (b *Bot) storeRequest(ctx context.Context, req *Request) error {
	if err := b.st.createRequest(ctx, req); err != nil {
		return err
	}
	approval := "not required"
	switch {
	case req.NeedsApproval && req.Required > 1:
		approval = fmt.Sprintf("required (%d of %s)", req.Required, strings.Join(req.Approvers, ","))
	case req.NeedsApproval:
		approval = "required (" + strings.Join(req.Approvers, ",") + ")"
	}
	created := cleanup.RequestCreated{User: personText(req.Requester), Request: req.ID, Mode: string(req.Mode),
		Filters: req.Scope, Reason: req.Reason, Approval: approval, Backup: req.backupText(),
		Matched: req.Plan.Matched, Valid: req.Plan.Valid}
	if req.Kind == KindRestore {
		created.BackupID, created.Sessions = req.BackupID, req.Restore.Restorable
	}
	_ = b.recordOn(req.Target, created.Event(b.now(), num))
	return nil
}

// status lists recent jobs (of target t only, when --target named one) or shows one job.
func (b *Bot) status(ctx context.Context, c Command, t *target, args []string) {
	reply := func(m Message) { b.ephemeral(ctx, c.ChannelID, c.UserID, c.ResponseURL, m) }
	switch len(args) {
	case 0:
		jobs, err := b.st.recentJobs(ctx, 10)
		if err != nil {
			reply(Message{Text: b.safeText("status", err)})
			return
		}
		if t != nil {
			jobs = slices.DeleteFunc(jobs, func(j *Job) bool { return j.Target != t.Name })
		}
		reply(statusMessage(jobs, b.now()))
	case 1:
		j, err := b.st.job(ctx, args[0])
		if errors.Is(err, errNotFound) {
			reply(Message{Text: fmt.Sprintf("No job %q. `%s status` lists recent jobs.", userText(short(args[0], 60)), b.cfg.Command)})
			return
		}
		if err != nil {
			reply(Message{Text: b.safeText("status", err)})
			return
		}
		reply(jobDetailMessage(j, b.now()))
	default:
		reply(Message{Text: "Usage: `" + b.cfg.Command + " status [JOB_ID]`. Nothing was done."})
	}
}

func (b *Bot) cancelCommand(ctx context.Context, c Command, who Person, id string) {
	say := func(text string) { b.ephemeral(ctx, c.ChannelID, c.UserID, c.ResponseURL, Message{Text: text}) }
	if requestIDRe.MatchString(id) {
		say(b.act(ctx, id, b.whoPressed(ctx, who, c.TeamID), "cancel"))
		return
	}
	j, err := b.st.job(ctx, id)
	if errors.Is(err, errNotFound) {
		say(fmt.Sprintf("No job %q. `%s status` lists recent jobs.", userText(short(id, 60)), b.cfg.Command))
		return
	}
	if err != nil {
		say(b.safeText("cancel", err))
		return
	}
	// As the job's Cancel button: its requester, an operator, or an approver of its target.
	req, err := b.st.request(ctx, j.RequestID)
	if err != nil && !errors.Is(err, errNotFound) {
		say(b.safeText("cancel", err))
		return
	}
	if req != nil {
		if p := b.onRequest(ctx, req, b.whoPressed(ctx, who, c.TeamID)); p.ID != j.Requester.ID && !p.Operator && !p.Approver {
			_ = b.recordOn(j.Target, refusedEvent(b.now(), who, "cancel", req.ID, "not an approver of target "+j.Target))
			say("Only the requester, an operator or an approver of target " + j.Target + " may cancel job " + j.ID + "; nothing was done.")
			return
		}
	}
	say(b.cancelJob(ctx, j, who))
}

func notFoundText(err error, b *Bot) string {
	if errors.Is(err, errNotFound) {
		return "This request no longer exists. Run a fresh preview."
	}
	return b.safeText("load request", err)
}

// short cuts user text for quoting it back.
func short(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n]) + "…"
}

var backupIDRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$`)

// parseRestoreArgs parses `restore BACKUP_ID --reason TEXT`.
func parseRestoreArgs(args []string) (id, reason string, err error) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--reason" || a == "-reason":
			if i+1 >= len(args) || strings.TrimSpace(args[i+1]) == "" {
				return "", "", userErrorf("--reason needs a value")
			}
			i++
			reason = args[i]
		case strings.HasPrefix(a, "--reason="):
			reason = strings.TrimPrefix(a, "--reason=")
		case strings.HasPrefix(a, "-"):
			return "", "", userErrorf("restore takes only BACKUP_ID and --reason TEXT, not %q", short(a, 40))
		case id != "":
			return "", "", userErrorf("restore takes one BACKUP_ID; got %q and %q", short(id, 40), short(a, 40))
		default:
			id = a
		}
	}
	if id == "" {
		return "", "", userErrorf("restore needs a BACKUP_ID (the job id of the run that wrote it)")
	}
	for _, ext := range []string{".jsonl.gz.age", ".jsonl.gz"} {
		id = strings.TrimSuffix(id, ext)
	}
	if !backupIDRe.MatchString(id) || strings.Contains(id, "..") {
		return "", "", userErrorf("%q is not a backup id (letters, digits, '.', '_' and '-')", short(id, 40))
	}
	if strings.TrimSpace(reason) == "" {
		return "", "", userErrorf("restore needs --reason TEXT")
	}
	return id, reason, nil
}

// findBackup finds backup id in BACKUP_DIR, with every file of its job (sessions rewritten
// while the job ran are in later rounds' files).
func (b *Bot) findBackup(id string) (cleanup.Backup, error) {
	bk, err := cleanup.FindBackup(b.backup.Dir, id)
	if err != nil {
		b.log.Info("find backup", "backup", id, "err", err)
		return cleanup.Backup{}, userErrorf("no backup %q in BACKUP_DIR", id)
	}
	return bk, nil
}

// maxBackupsListed is how many backups `backups` lists, newest first.
const maxBackupsListed = 10

// listBackups answers `backups`: the newest backups in BACKUP_DIR, with the job that wrote each
// when it is still among the stored jobs, for choosing what to restore.
func (b *Bot) listBackups(ctx context.Context, c Command, args []string) {
	reply := func(m Message) { b.ephemeral(ctx, c.ChannelID, c.UserID, c.ResponseURL, m) }
	if len(args) > 0 {
		reply(Message{Text: "`backups` takes no arguments. Nothing was done."})
		return
	}
	all, err := cleanup.ListBackups(b.backup.Dir)
	if err != nil {
		reply(Message{Text: "Could not list the backups: " + b.safeText("list backups", err)})
		return
	}
	rows := make([]backupRow, 0, min(len(all), maxBackupsListed))
	for _, bk := range all[:min(len(all), maxBackupsListed)] {
		row := backupRow{Backup: bk}
		if j, err := b.st.job(ctx, bk.ID); err == nil {
			row.Job = j
		} else if !errors.Is(err, errNotFound) {
			b.log.Warn("backups: load job", "job", bk.ID, "err", err)
		}
		rows = append(rows, row)
	}
	reply(backupsMessage(rows, len(all), b.now(), b.cfg.Command))
}

// backupReader returns a reader of bk's records for cleanup.Restore: newest round first, so
// that a session in two rounds is restored with its newest value.
func (b *Bot) backupReader(bk cleanup.Backup) func(fn func(cleanup.BackupRecord) error) error {
	return func(fn func(cleanup.BackupRecord) error) error {
		ids, err := b.backup.Identities()
		if err != nil {
			return err
		}
		return bk.Reader(ids)(fn)
	}
}

// startRestore previews a restore (counting from the backup file what would be put back) and
// asks for approval when the policy says so (it always does: a restore logs users back in).
func (b *Bot) startRestore(ctx context.Context, c Command, who Person, t *target, args []string) {
	say := func(text string) { b.ephemeral(ctx, c.ChannelID, c.UserID, c.ResponseURL, Message{Text: text}) }
	id, reason, err := parseRestoreArgs(args)
	if err != nil {
		say(b.safeText("parse restore", err) + ". Nothing was done. Usage: `" + b.cfg.Command + " restore BACKUP_ID --reason TEXT`.")
		return
	}
	bk, err := b.findBackup(id)
	if err != nil {
		say(b.safeText("find backup", err) + ". Nothing was done.")
		return
	}
	if err := cleanup.CheckRestoreTarget(bk.ID, t.Name, b.targets.nameList()); err != nil {
		b.refused(who, "restore", "", err.Error())
		say(b.safeText("restore target", err) + ". Nothing was done.")
		return
	}
	scope := "restore=" + id
	ref, err := b.chat.Post(ctx, c.ChannelID, onTarget(previewingMessage(scope, who), t.Name))
	if err != nil {
		say(b.cannotPostText(err))
		return
	}
	b.spawnPreview(ctx, c, t, func(ctx context.Context) {
		ctx, cancel := context.WithTimeout(ctx, previewTimeout)
		defer cancel()
		_ = b.recordOn(t.Name, cleanup.CleanupStarted{User: personText(who), Mode: string(ModeDryRun), Filters: scope}.Event(b.now()))
		tt := t.Engine.Target()
		rr, err := cleanup.Restore(ctx, tt.Client(), tt.Prefix(), b.backupReader(bk), cleanup.RestoreOptions{DryRun: true, Now: b.now})
		if err != nil {
			b.update(ctx, ref, Message{Text: "Restore preview failed", Title: "Restore preview failed: " + userText(id),
				Lines: []string{b.safeText("restore preview", err)}, Context: []string{"Nothing was changed."}})
			return
		}
		now := b.now()
		req := &Request{
			ID: newRequestID(), Kind: KindRestore, Mode: ModeRestore, Target: t.Name, Scope: scope, Reason: reason,
			BackupID: id, Requester: who, TeamID: c.TeamID, Channel: c.ChannelID, Ref: ref,
			Restore: &RestorePlan{Path: bk.Files[len(bk.Files)-1], Records: rr.Read, Expired: rr.SkippedExpired,
				Restorable: rr.Restored, OutsidePfx: rr.SkippedPrefix},
			NeedsApproval: t.Policy.DecideRestore().NeedsApproval, Approvers: IDs(t.Approvers), Required: b.cfg.ApprovalsRequired,
			CreatedAt: now, ExpiresAt: now.Add(b.cfg.ApprovalTTL),
		}
		if rr.Restored == 0 {
			b.update(ctx, ref, Message{Text: "Nothing to restore from " + userText(id), Title: "Restore preview: nothing to restore",
				Lines: restoreLines(req)})
			return
		}
		if err := b.publish(ctx, req); err != nil {
			b.update(ctx, ref, Message{Text: "Restore preview failed", Title: "Restore preview failed: " + userText(id),
				Lines: []string{b.safeText("publish restore", err)}, Context: []string{"Nothing was changed."}})
		}
	})
}
