// Package console is the terminal adapter: a chat.Chat that prints every message as plain text
// (chat.FormatText) with each button next to the line that presses it, the loop that reads
// typed slash commands and presses and hands them to the core (Run), and the marking of the
// audit lines it echoes (AuditWriter). It imports the core (bot) to build and drive it, and
// bot/chat; the core never imports it.
package console

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"unicode"

	"github.com/platform-team/sessionbot/bot"
	"github.com/platform-team/sessionbot/bot/chat"
	"github.com/platform-team/sessionbot/bot/remote"
)

// Chat is a chat.Chat for a terminal: it prints every message as plain text, with each button
// shown next to the line that presses it. Safe for concurrent use.
type Chat struct {
	mu      sync.Mutex
	out     io.Writer
	seq     int
	names   map[string]string // user id → name, for display
	buttons map[string]string // short token → button value
	last    map[string]string // action id → value of the latest such button
}

var _ chat.Chat = (*Chat)(nil)

// New returns a Chat printing to out.
func New(out io.Writer) *Chat {
	return &Chat{out: out, names: map[string]string{}, buttons: map[string]string{}, last: map[string]string{}}
}

// tokenLen is how much of a button value the console shows and accepts.
const tokenLen = 8

func (c *Chat) print(header string, m chat.Message) {
	c.mu.Lock()
	defer c.mu.Unlock()
	text := consoleEmoji.Replace(chat.FormatText(chat.Message{Text: m.Text, Title: m.Title, Lines: m.Lines, Fields: m.Fields, Context: m.Context}))
	for id, n := range c.names {
		text = strings.ReplaceAll(text, "@"+id, "@"+n)
	}
	var b strings.Builder
	b.WriteString("\n── " + header + " ──\n")
	b.WriteString(text)
	for _, btn := range m.Buttons {
		tok := btn.Value
		if len(tok) > tokenLen {
			tok = tok[:tokenLen]
		}
		c.buttons[tok] = btn.Value
		c.last[btn.ActionID] = btn.Value
		fmt.Fprintf(&b, "  [%s] type: press %s %s\n", btn.Label, btn.ActionID, tok)
	}
	_, _ = io.WriteString(c.out, b.String())
}

// consoleEmoji shows the emoji shortcodes the bot writes as the symbols Slack would show.
var consoleEmoji = strings.NewReplacer(
	":white_check_mark:", "✅",
	":rotating_light:", "🚨",
	":warning:", "⚠️",
	":x:", "❌",
	":lock:", "🔒",
	":octagonal_sign:", "🛑",
)

// AuditWriter returns the writer for the audit lines a console shows (NewAuditor's
// stdout): every line is marked "audit │ ", and dimmed when tty, so that the audit trail stands
// apart from what the bot says.
func AuditWriter(w io.Writer, tty bool) io.Writer {
	return &auditEcho{w: w, tty: tty}
}

type auditEcho struct {
	mu  sync.Mutex
	w   io.Writer
	tty bool
}

func (a *auditEcho) Write(p []byte) (int, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	var b strings.Builder
	for _, line := range strings.SplitAfter(string(p), "\n") {
		if line == "" {
			continue
		}
		body, nl := strings.CutSuffix(line, "\n")
		if a.tty {
			b.WriteString("\x1b[2maudit │ " + body + "\x1b[0m")
		} else {
			b.WriteString("audit │ " + body)
		}
		if nl {
			b.WriteString("\n")
		}
	}
	if _, err := io.WriteString(a.w, b.String()); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Say prints a line from the console itself.
func (c *Chat) Say(format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, _ = fmt.Fprintf(c.out, format+"\n", args...)
}

// Post implements Chat.
func (c *Chat) Post(_ context.Context, channel string, m chat.Message) (chat.MessageRef, error) {
	c.mu.Lock()
	c.seq++
	ref := chat.MessageRef{Channel: channel, TS: strconv.Itoa(c.seq)}
	c.mu.Unlock()
	c.print(fmt.Sprintf("%s · message %s", channel, ref.TS), m)
	return ref, nil
}

// Reply implements Chat.
func (c *Chat) Reply(_ context.Context, ref chat.MessageRef, m chat.Message) (chat.MessageRef, error) {
	c.mu.Lock()
	c.seq++
	r := chat.MessageRef{Channel: ref.Channel, TS: strconv.Itoa(c.seq)}
	c.mu.Unlock()
	c.print(fmt.Sprintf("%s · reply to message %s", ref.Channel, ref.TS), m)
	return r, nil
}

// Update implements Chat.
func (c *Chat) Update(_ context.Context, ref chat.MessageRef, m chat.Message) error {
	c.print(fmt.Sprintf("%s · message %s updated", ref.Channel, ref.TS), m)
	return nil
}

// Ephemeral implements Chat.
func (c *Chat) Ephemeral(_ context.Context, _, user, _ string, m chat.Message) error {
	c.print("only "+c.displayName(user)+" sees this", m)
	return nil
}

// DM implements Chat.
func (c *Chat) DM(_ context.Context, user string, m chat.Message) error {
	c.print("direct message to "+c.displayName(user), m)
	return nil
}

// LookupUserByEmail implements Chat; the console knows no e-mail addresses.
func (c *Chat) LookupUserByEmail(context.Context, string) (string, error) {
	return "", errors.New("console: no user directory")
}

// UserGroupMembers implements Chat; the console has no user groups.
func (c *Chat) UserGroupMembers(_ context.Context, group string) ([]string, error) {
	return nil, fmt.Errorf("console: no user group %s", group)
}

func (c *Chat) displayName(id string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if n := c.names[id]; n != "" {
		return n
	}
	return id
}

// resolve maps a typed button token (or nothing: the latest such button) to its value.
func (c *Chat) resolve(actionID, tok string) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if tok == "" {
		v, ok := c.last[actionID]
		return v, ok
	}
	if v, ok := c.buttons[tok]; ok {
		return v, true
	}
	if len(tok) > tokenLen {
		if v, ok := c.buttons[tok[:tokenLen]]; ok && v == tok {
			return v, true
		}
	}
	return "", false
}

// Options tunes Run.
type Options struct {
	// DemoRedis says the target is the embedded demo Redis, where nothing real can be lost.
	// Only there may /as switch the acting user, and only there do the demo identities (alice,
	// bob) stand in for unset OPERATORS and APPROVERS. Against any other Redis one console is
	// one person: its identity is fixed at start (SPEC §12.5).
	DemoRedis bool
	// User is the acting user at start (a name or a U… id). Required without DemoRedis; with
	// it, empty means the first operator, or alice with the demo identities.
	User string
	// Operator is who runs the console (the OS user). Without DemoRedis it is the name shown,
	// and audited, for User, so that every audit line says who typed.
	Operator string
	// Channel is where commands are "typed"; empty: #console.
	Channel string
	// Sinks are notified of finished runs besides the console's own channels (PagerDuty,
	// e-mail, a webhook), unless bot.Deps has a Notifier; Secrets are their credentials, redacted
	// from every failure reported.
	Sinks   []bot.NamedSink
	Secrets []remote.Secret
}

// Demo identities, used when neither OPERATORS nor APPROVERS is set.
const (
	demoOperator = "UALICE"
	demoApprover = "UBOB"
)

// Run runs the bot in a terminal: it reads lines from in (slash commands typed as in
// Slack, "press ACTION TOKEN" for buttons, and on the demo Redis "/as USER" to switch the
// acting user), prints everything the bot says to out, and returns at end of input once running
// jobs have finished. d.Chat is replaced by a Chat on out.
func Run(ctx context.Context, in io.Reader, out io.Writer, d bot.Deps, opts Options) error {
	demo := len(bot.IDs(d.Config.Operators)) == 0 && len(bot.IDs(d.Config.Approvers)) == 0
	if !opts.DemoRedis {
		switch {
		case demo:
			return errors.New("console: set OPERATORS and APPROVERS to use a real Redis (the demo identities alice and bob exist only on the embedded demo Redis)")
		case strings.TrimSpace(opts.User) == "":
			return errors.New("console: on a real Redis the console needs the identity it acts as (--as)")
		}
	}
	con := New(out)
	d.Chat = con
	if demo {
		d.Config.Operators = []string{demoOperator}
		d.Config.Approvers = []string{demoApprover}
	}
	con.names[demoOperator], con.names[demoApprover] = "alice", "bob"
	if opts.Channel == "" {
		opts.Channel = "#console"
	}
	if d.Notifier == nil {
		// The same notifications as in Slack (the runbook's Mass Logout Executed template, the
		// summary), printed, and the sinks outside chat the caller configured.
		nopts := []bot.FanoutOption{bot.WithFanoutAudit(d.Auditor), bot.WithFanoutMetrics(d.Metrics), bot.WithFanoutSecrets(opts.Secrets...)}
		if d.Logger != nil {
			nopts = append(nopts, bot.WithFanoutLogger(d.Logger))
		}
		if d.Now != nil {
			nopts = append(nopts, bot.WithFanoutClock(d.Now))
		}
		d.Notifier = bot.NewFanout(con, append(bot.SlackSinks(d.Config, con), opts.Sinks...), nopts...)
	}
	b, err := bot.New(d)
	if err != nil {
		return err
	}
	runCtx, stopRun := context.WithCancel(ctx)
	runDone := make(chan struct{})
	go func() {
		defer close(runDone)
		_ = b.Run(runCtx)
	}()
	defer func() {
		stopRun()
		<-runDone
		b.Close()
	}()

	user := opts.User
	if user == "" {
		user = "alice"
		if !demo {
			user = bot.IDs(d.Config.Operators)[0]
		}
	}
	actor := con.identify(user)
	if !opts.DemoRedis && opts.Operator != "" {
		con.mu.Lock()
		con.names[actor] = opts.Operator
		con.mu.Unlock()
	}
	cmd := d.Config.Command
	if demo {
		con.Say("Demo mode (OPERATORS and APPROVERS are not set): alice is an operator, bob is an approver.")
	}
	con.Say("You are %s. Type %s help to start; %s cleanup previews expired sessions.", con.displayName(actor), cmd, cmd)
	if opts.DemoRedis {
		con.Say("Buttons are pressed with the line shown next to them (press ACTION TOKEN); /as NAME switches user; /quit or end of input exits.")
	} else {
		con.Say("Buttons are pressed with the line shown next to them (press ACTION TOKEN); /quit or end of input exits.")
		con.Say("On a real Redis you stay %s (%s) for the whole session: a second person approves from their own console or from Slack.", con.displayName(actor), actor)
	}

	// Envelope ids are remembered in Redis for an hour to drop redeliveries; the random part
	// keeps a restarted console (or a second one on the same state) from reusing them.
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	envPrefix := "console-" + hex.EncodeToString(rnd[:])

	lines := make(chan string)
	readErr := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(in)
		sc.Buffer(make([]byte, 64*1024), 1024*1024)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			case <-runCtx.Done():
				return
			}
		}
		readErr <- sc.Err()
		close(lines)
	}()

	env := 0
	for {
		var line string
		var ok bool
		select {
		case <-ctx.Done():
			return ctx.Err()
		case line, ok = <-lines:
		}
		if !ok {
			break
		}
		line = strings.TrimSpace(line)
		env++
		envID := fmt.Sprintf("%s-%d", envPrefix, env)
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case line == "/quit" || line == "/exit":
			b.Wait()
			return nil
		case strings.HasPrefix(line, "/as") && !opts.DemoRedis:
			con.Say("/as is refused: this console is connected to a real Redis, so it acts only as %s (%s), the identity it started with (--as). A second person approves from their own console or from Slack.",
				con.displayName(actor), actor)
		case strings.HasPrefix(line, "/as"):
			f := strings.Fields(line)
			if len(f) != 2 {
				con.Say("usage: /as NAME (e.g. /as bob)")
				continue
			}
			actor = con.identify(f[1])
			con.Say("You are now %s (%s).", con.displayName(actor), actor)
		case strings.HasPrefix(line, "press ") || line == "press":
			f := strings.Fields(line)
			if len(f) < 2 || len(f) > 3 {
				con.Say("usage: press ACTION TOKEN (e.g. press approve 7f3a9c2b)")
				continue
			}
			tok := ""
			if len(f) == 3 {
				tok = f[2]
			}
			value, found := con.resolve(f[1], tok)
			if !found {
				con.Say("no %s button with token %q on screen", f[1], tok)
				continue
			}
			b.HandleAction(ctx, chat.Action{EnvelopeID: envID, TeamID: d.Config.TeamID, UserID: actor,
				UserName: con.displayName(actor), ChannelID: opts.Channel, ActionID: f[1], Value: value})
		case line == cmd || strings.HasPrefix(line, cmd+" "):
			b.HandleCommand(ctx, chat.Command{EnvelopeID: envID, TeamID: d.Config.TeamID, UserID: actor,
				UserName: con.displayName(actor), ChannelID: opts.Channel, Text: strings.TrimSpace(strings.TrimPrefix(line, cmd))})
			// Previews are quick: wait for them so that output follows input.
			b.WaitPreviews()
		default:
			as := ""
			if opts.DemoRedis {
				as = ", /as NAME"
			}
			quoted := line // the first 40 characters, as the core quotes text back
			if r := []rune(line); len(r) > 40 {
				quoted = string(r[:40]) + "…"
			}
			con.Say("unknown input %q: type %s help, press ACTION TOKEN%s or /quit", quoted, cmd, as)
		}
	}
	if err := <-readErr; err != nil {
		b.Wait()
		return fmt.Errorf("console input: %w", err)
	}
	b.Wait()
	return nil
}

// identify maps a typed name or id to a user id, remembering the name for display.
func (c *Chat) identify(s string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if bot.IsUserID(s) {
		return s
	}
	for id, n := range c.names {
		if strings.EqualFold(n, s) {
			return id
		}
	}
	var b strings.Builder
	b.WriteString("U")
	for _, r := range strings.ToUpper(s) {
		if r < unicode.MaxASCII && (unicode.IsUpper(r) || unicode.IsDigit(r)) {
			b.WriteRune(r)
		}
	}
	id := b.String()
	if len(id) < 3 {
		id += "USER"
	}
	c.names[id] = strings.ToLower(s)
	return id
}
