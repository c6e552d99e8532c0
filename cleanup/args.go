package cleanup

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// MaxCommandText is the longest slash-command text accepted, in characters. Callers refuse longer
// text before doing anything; SplitArgs refuses it too.
const MaxCommandText = 2000

// UsageError is a mistake in a command line, worded for the person who typed it. Its message is
// one line, quotes whatever the user typed (shortened), and is safe to show in Slack or on a
// terminal as is; any other error is internal.
type UsageError struct {
	Msg string
}

func (e *UsageError) Error() string { return e.Msg }

func usagef(format string, args ...any) error {
	return &UsageError{Msg: fmt.Sprintf(format, args...)}
}

// SplitArgs splits a slash-command line into words the way a shell would: '…' and "…" group
// words, Slack's smart quotes (“ ” ‘ ’) count as their plain equivalents, and a backslash escapes
// the next character outside single quotes (inside double quotes only a quote or a backslash).
// There is no globbing, no variable expansion and no comment syntax. An unterminated quote, a
// trailing backslash and text over MaxCommandText characters are errors.
func SplitArgs(text string) ([]string, error) {
	if n := utf8.RuneCountInString(text); n > MaxCommandText {
		return nil, usagef("command text is %d characters long; the limit is %d", n, MaxCommandText)
	}
	var (
		args   []string
		word   strings.Builder
		inWord bool // a word has started, possibly empty (as in '')
		quote  rune // 0, '\'' or '"': the kind of quote we are inside
	)
	for i := 0; i < len(text); {
		r, size := utf8.DecodeRuneInString(text[i:])
		raw := text[i : i+size] // as typed, so invalid UTF-8 passes through unchanged
		i += size
		kind := quoteKind(r)
		switch {
		case quote == '\'':
			if kind == '\'' {
				quote = 0
			} else {
				word.WriteString(raw)
			}
		case quote == '"':
			switch {
			case kind == '"':
				quote = 0
			case r == '\\' && i < len(text):
				next, nsize := utf8.DecodeRuneInString(text[i:])
				if next == '\\' || quoteKind(next) == '"' {
					word.WriteString(text[i : i+nsize])
					i += nsize
				} else {
					word.WriteByte('\\')
				}
			default:
				word.WriteString(raw)
			}
		case kind != 0:
			quote, inWord = kind, true
		case r == '\\':
			if i >= len(text) {
				return nil, usagef("command text ends with a backslash: there is nothing left to escape")
			}
			_, nsize := utf8.DecodeRuneInString(text[i:])
			word.WriteString(text[i : i+nsize])
			i += nsize
			inWord = true
		case unicode.IsSpace(r):
			if inWord {
				args = append(args, word.String())
				word.Reset()
				inWord = false
			}
		default:
			word.WriteString(raw)
			inWord = true
		}
	}
	switch quote {
	case '\'':
		return nil, usagef("unterminated single quote: close it with ' (or ’)")
	case '"':
		return nil, usagef(`unterminated double quote: close it with " (or ”)`)
	}
	if inWord {
		args = append(args, word.String())
	}
	return args, nil
}

// quoteKind maps a plain or smart quote to the plain quote it stands for, anything else to 0.
func quoteKind(r rune) rune {
	switch r {
	case '\'', '‘', '’':
		return '\''
	case '"', '“', '”':
		return '"'
	}
	return 0
}

// Flag kinds: what a flag's value is.
const (
	flagBool   = iota // takes no value
	flagString        // one non-empty value
	flagMulti         // repeatable, comma-separated (--session-id)
	flagAge           // a positive duration (30m, 12h, 7d, 2w, 1h30m)
	flagPause         // a duration ≥ 0
	flagCount         // an integer ≥ 1
	flagRate          // an integer ≥ 0
)

// flagSpec describes one flag: a filter condition or an option.
type flagSpec struct {
	kind    int
	cliOnly bool       // refused in chat
	cond    *condition // the filter condition the flag sets; nil for an option
}

// flags is every flag by name: the options, and the filter conditions from their table.
var flags = func() map[string]flagSpec {
	m := map[string]flagSpec{
		"all":        {kind: flagBool},
		"reason":     {kind: flagString},
		"no-backup":  {kind: flagBool},
		"backup":     {kind: flagBool},
		"repair-ttl": {kind: flagBool},
		"dry-run":    {kind: flagBool, cliOnly: true},
		"yes":        {kind: flagBool, cliOnly: true},
		"batch-size": {kind: flagCount, cliOnly: true},
		"pause":      {kind: flagPause, cliOnly: true},
		"max-rate":   {kind: flagRate, cliOnly: true},
	}
	for i := range conditions {
		c := &conditions[i]
		m[c.flag] = flagSpec{kind: c.kind, cond: c}
	}
	return m
}()

// maxBatchSize bounds --batch-size: the engine's memory is proportional to it.
const maxBatchSize = 100_000

// ParseArgs parses the filter and options of a cleanup command line. It is the one parser behind
// both the CLI (cli=true) and the slash command (cli=false), which refuses the terminal-only flags
// --dry-run, --yes, --batch-size, --pause and --max-rate. Values are literals, kept verbatim.
// Every error is a *UsageError; on error the Options are zero and nothing should happen.
func ParseArgs(args []string, cli bool) (Options, error) {
	o := Options{Pause: -1, MaxRate: -1}
	seen := map[string]string{} // single-valued flag → its value, to catch conflicting repeats
	var filterFlags []string    // filter flags in the order given, for the --all conflict message
	for i := 0; i < len(args); i++ {
		arg := dashes(args[i])
		if !strings.HasPrefix(arg, "-") {
			return Options{}, usagef("unexpected argument %s: every value follows its flag, as in --user-id auth0|123", quote(arg))
		}
		name, value, hasValue := strings.Cut(strings.TrimPrefix(arg, "--"), "=")
		spec, known := flags[name]
		if !known {
			if !hasValue {
				name = arg
			} else {
				name, _, _ = strings.Cut(arg, "=")
			}
			return Options{}, usagef("unknown flag %s%s", quote(name), suggest(name))
		}
		flag := "--" + name
		if spec.cliOnly && !cli {
			return Options{}, usagef("%s is only available on the command line (sessionbot cleanup), not in chat", flag)
		}
		if spec.cond != nil {
			filterFlags = append(filterFlags, flag)
		}
		if spec.kind == flagBool {
			if hasValue {
				return Options{}, usagef("%s takes no value (got %s)", flag, quote(value))
			}
		} else {
			if !hasValue {
				if i+1 >= len(args) || looksLikeFlag(dashes(args[i+1])) {
					return Options{}, usagef("%s needs a value", flag)
				}
				i++
				value = args[i]
			}
			if value == "" {
				return Options{}, usagef("%s needs a non-empty value", flag)
			}
			if spec.kind != flagMulti {
				if prev, dup := seen[name]; dup {
					if prev == value {
						continue
					}
					return Options{}, usagef("%s is given twice with different values (%s and %s)", flag, quote(prev), quote(value))
				}
				seen[name] = value
			}
		}
		var err error
		if spec.cond != nil {
			err = spec.cond.record(&o.Filter, flag, value)
		} else {
			err = o.setOption(name, flag, value)
		}
		if err != nil {
			return Options{}, err
		}
	}
	if o.Filter.RepairTTL && !o.Filter.Orphans {
		return Options{}, usagef("--repair-ttl works only with --orphans: it gives sessions without a TTL their expiry from expires_at")
	}
	if o.Filter.RepairTTL && o.Backup {
		return Options{}, usagef("--repair-ttl deletes only expired sessions, which a restore would skip: --backup is not available with it")
	}
	if o.Filter.All {
		if len(filterFlags) > 0 {
			return Options{}, usagef("--all selects every session and cannot be combined with %s", filterFlags[0])
		}
		if o.Reason == "" {
			return Options{}, usagef(`--all (mass logout) needs --reason "TEXT"`)
		}
	}
	if o.NoBackup && o.Backup {
		return Options{}, usagef("--backup and --no-backup contradict each other: give one")
	}
	return o, nil
}

// setOption records an option: a flag that is not a filter condition. value is "" for a
// flagBool.
func (o *Options) setOption(name, flag, value string) error {
	var err error
	switch name {
	case "all":
		o.Filter.All = true
	case "no-backup":
		o.NoBackup = true
	case "backup":
		o.Backup = true
	case "repair-ttl":
		o.Filter.RepairTTL = true
	case "dry-run":
		o.DryRun = true
	case "yes":
		o.Yes = true
	case "reason":
		if strings.TrimSpace(value) == "" {
			return usagef("%s needs a non-empty value", flag)
		}
		o.Reason = value
	case "pause":
		o.Pause, err = parseDuration(flag, value, true)
	case "batch-size":
		o.BatchSize, err = parseCount(flag, value, 1, maxBatchSize)
	case "max-rate":
		o.MaxRate, err = parseCount(flag, value, 0, math.MaxInt32)
	}
	return err
}

// dashes turns a leading em or en dash into "--": macOS and Slack clients "smarten" a typed
// "--all" into "—all".
func dashes(arg string) string {
	for _, d := range []string{"—", "–"} {
		if rest, ok := strings.CutPrefix(arg, d); ok && rest != "" && !strings.HasPrefix(rest, "-") {
			return "--" + rest
		}
	}
	return arg
}

// looksLikeFlag reports whether arg reads as a flag ("--name…") rather than a value, so that
// "--user-id --expired" reports the missing value instead of looking up the user "--expired".
func looksLikeFlag(arg string) bool {
	rest, ok := strings.CutPrefix(arg, "--")
	return ok && rest != "" && ('a' <= rest[0] && rest[0] <= 'z' || 'A' <= rest[0] && rest[0] <= 'Z')
}

// suggest proposes the known flag a mistyped one probably meant (--user_id, --USER-ID, -all).
func suggest(name string) string {
	n := strings.ToLower(strings.ReplaceAll(strings.TrimLeft(name, "-"), "_", "-"))
	if _, ok := flags[n]; ok {
		return " (did you mean --" + n + "?)"
	}
	return ""
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// parseCount parses a decimal integer in [lo, hi].
func parseCount(flag, s string, lo, hi int) (int, error) {
	if strings.Trim(s, "0123456789") != "" {
		return 0, usagef("%s needs a whole number, not %s", flag, quote(s))
	}
	n, err := strconv.Atoi(s)
	if err != nil || n > hi {
		return 0, usagef("%s must be at most %d, not %s", flag, hi, quote(s))
	}
	if n < lo {
		return 0, usagef("%s must be at least %d, not %d", flag, lo, n)
	}
	return n, nil
}

// parseDuration parses a duration in Go's syntax extended with days (d = 24h) and weeks
// (w = 7d): 30m, 12h, 7d, 2w, 1w2d, 1h30m, 1.5d. Zero is accepted only when zeroOK.
func parseDuration(flag, s string, zeroOK bool) (time.Duration, error) {
	bad := func() error {
		return usagef("%s needs a duration like 30m, 12h, 7d or 2w, not %s", flag, quote(s))
	}
	switch {
	case strings.HasPrefix(s, "-"):
		return 0, usagef("%s must be positive, not %s", flag, quote(s))
	case s == "0" && zeroOK:
		return 0, nil
	}
	var total time.Duration
	for rest := s; rest != ""; {
		n := 0
		for n < len(rest) && ('0' <= rest[n] && rest[n] <= '9' || rest[n] == '.') {
			n++
		}
		u := n
		for u < len(rest) && !('0' <= rest[u] && rest[u] <= '9' || rest[u] == '.') {
			u++
		}
		if n == 0 || (u == n && s != "0") {
			return 0, bad()
		}
		num, unit := rest[:n], rest[n:u]
		rest = rest[u:]
		mult := time.Duration(1)
		switch unit {
		case "d":
			unit, mult = "h", 24
		case "w":
			unit, mult = "h", 7*24
		}
		d, err := time.ParseDuration(num + unit)
		if err != nil {
			return 0, bad()
		}
		if d > math.MaxInt64/mult || total > math.MaxInt64-d*mult {
			return 0, usagef("%s is too long: %s", flag, quote(s))
		}
		total += d * mult
	}
	if total == 0 && !zeroOK {
		return 0, usagef("%s must be greater than zero, not %s", flag, quote(s))
	}
	return total, nil
}

// quote quotes a user-typed value for an error message: Go-quoted so it stays on one line and
// shows invisible characters, and shortened so a pasted essay cannot flood the message.
func quote(s string) string {
	const budget = 40
	q := strconv.Quote(s)
	if len(q) <= budget+2 {
		return q
	}
	end, cost := 0, 0
	for end < len(s) {
		_, size := utf8.DecodeRuneInString(s[end:])
		cost += len(strconv.Quote(s[end:end+size])) - 2
		if cost > budget {
			break
		}
		end += size
	}
	q = strconv.Quote(s[:end])
	return q[:len(q)-1] + `…"`
}
