package cleanup

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestSplitArgs(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"   \t\n ", nil},
		{"--expired", []string{"--expired"}},
		{"  --user-id   auth0|123  ", []string{"--user-id", "auth0|123"}},
		{`--reason 'INC-42 token leak'`, []string{"--reason", "INC-42 token leak"}},
		{`--reason "INC-42 token leak"`, []string{"--reason", "INC-42 token leak"}},
		{`--reason=“INC-42 token leak”`, []string{"--reason=INC-42 token leak"}},
		{`--reason ‘INC-42 leak’`, []string{"--reason", "INC-42 leak"}},
		{`--reason “it's fine”`, []string{"--reason", "it's fine"}},
		{`--reason 'say "hi"'`, []string{"--reason", `say "hi"`}},
		{`a''b`, []string{"ab"}},
		{`'' ""`, []string{"", ""}},
		{`pre"mid dle"post`, []string{"premid dlepost"}},
		{`--session-id '*'`, []string{"--session-id", "*"}},
		{`a\ b`, []string{"a b"}},
		{`\'quoted\'`, []string{"'quoted'"}},
		{`'back\slash'`, []string{`back\slash`}},
		{`"a\"b\\c\d"`, []string{`a"b\c\d`}},
		{`"a\”b”`, []string{`a”b`}},
		{"tab\tsep\u00a0nbsp", []string{"tab", "sep", "nbsp"}},
		{"caf\u00e9 \xff", []string{"café", "\xff"}},
	}
	for _, tt := range tests {
		got, err := SplitArgs(tt.in)
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("SplitArgs(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestSplitArgsErrors(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{`--reason 'oops`, "unterminated single quote"},
		{`--reason "oops`, "unterminated double quote"},
		{`--reason “oops`, "unterminated double quote"},
		{`--reason ‘oops`, "unterminated single quote"},
		{`"a\"`, "unterminated double quote"},
		{`trailing\`, "ends with a backslash"},
		{strings.Repeat("a", MaxCommandText+1), "limit is 2000"},
		{strings.Repeat("é", MaxCommandText+1), "2001 characters"},
	}
	for _, tt := range tests {
		got, err := SplitArgs(tt.in)
		var uerr *UsageError
		if !errors.As(err, &uerr) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("SplitArgs(%.40q) = %q, %v; want a *UsageError containing %q", tt.in, got, err, tt.want)
		}
	}
	if _, err := SplitArgs(strings.Repeat("é", MaxCommandText)); err != nil {
		t.Errorf("SplitArgs(%d × é) = %v; want no error (the limit counts characters)", MaxCommandText, err)
	}
}

func TestParseArgs(t *testing.T) {
	defaults := Options{Pause: -1, MaxRate: -1}
	with := func(f func(*Options)) Options {
		o := defaults
		f(&o)
		return o
	}
	tests := []struct {
		name string
		args []string
		cli  bool
		want Options
	}{
		{"empty", nil, false, defaults},
		{"expired", []string{"--expired"}, false, with(func(o *Options) { o.Filter.Expired = true })},
		{"orphans and auth method", []string{"--orphans", "--auth-method", "basic_auth"}, false,
			with(func(o *Options) { o.Filter.Orphans, o.Filter.AuthMethod = true, "basic_auth" })},
		{"equals form", []string{"--user-id=auth0|123"}, false,
			with(func(o *Options) { o.Filter.UserID = "auth0|123" })},
		{"equals in value", []string{"--reason=a=b", "--user-id", "x=y"}, false,
			with(func(o *Options) { o.Reason, o.Filter.UserID = "a=b", "x=y" })},
		{"glob characters are literal", []string{"--session-id", "*", "--user-id", "a?[b]"}, false,
			with(func(o *Options) { o.Filter.SessionIDs, o.Filter.UserID = []string{"*"}, "a?[b]" })},
		{"session ids repeated and comma-separated, deduplicated", []string{"--session-id", "a,b", "--session-id=c", "--session-id", "a"}, false,
			with(func(o *Options) { o.Filter.SessionIDs = []string{"a", "b", "c"} })},
		{"older than days", []string{"--older-than", "7d"}, false,
			with(func(o *Options) { o.Filter.OlderThan, o.Filter.OlderThanText = 7*24*time.Hour, "7d" })},
		{"older than weeks", []string{"--older-than=2w"}, false,
			with(func(o *Options) { o.Filter.OlderThan, o.Filter.OlderThanText = 14*24*time.Hour, "2w" })},
		{"older than Go form", []string{"--older-than", "1h30m"}, false,
			with(func(o *Options) { o.Filter.OlderThan, o.Filter.OlderThanText = 90*time.Minute, "1h30m" })},
		{"older than mixed", []string{"--older-than", "1w1.5d12h"}, false,
			with(func(o *Options) { o.Filter.OlderThan, o.Filter.OlderThanText = 9*24*time.Hour, "1w1.5d12h" })},
		{"all with reason", []string{"--all", "--reason", "INC-42 token leak"}, false,
			with(func(o *Options) { o.Filter.All, o.Reason = true, "INC-42 token leak" })},
		{"all with backup options", []string{"--all", "--no-backup", "--reason=r"}, false,
			with(func(o *Options) { o.Filter.All, o.NoBackup, o.Reason = true, true, "r" })},
		{"backup", []string{"--backup", "--backup"}, false, with(func(o *Options) { o.Backup = true })},
		{"same value twice", []string{"--user-id", "u", "--user-id=u"}, false,
			with(func(o *Options) { o.Filter.UserID = "u" })},
		{"smart dash", []string{"—expired", "–user-id", "u"}, false,
			with(func(o *Options) { o.Filter.Expired, o.Filter.UserID = true, "u" })},
		{"value with a single dash", []string{"--user-id", "-u"}, false,
			with(func(o *Options) { o.Filter.UserID = "-u" })},
		{"value that is not a flag", []string{"--reason", "-- outage"}, false,
			with(func(o *Options) { o.Reason = "-- outage" })},
		{"cli pacing", []string{"--dry-run", "--yes", "--batch-size", "500", "--pause=0", "--max-rate", "0"}, true,
			with(func(o *Options) { o.DryRun, o.Yes, o.BatchSize, o.Pause, o.MaxRate = true, true, 500, 0, 0 })},
		{"repair", []string{"--orphans", "--repair-ttl"}, false,
			with(func(o *Options) { o.Filter.Orphans, o.Filter.RepairTTL = true, true })},
		{"repair with a condition, cli", []string{"--repair-ttl", "--auth-method", "oauth2", "--orphans", "--no-backup"}, true,
			with(func(o *Options) {
				o.Filter.Orphans, o.Filter.RepairTTL, o.Filter.AuthMethod, o.NoBackup = true, true, "oauth2", true
			})},
		{"cli pause", []string{"--pause", "10ms", "--max-rate=40000"}, true,
			with(func(o *Options) { o.Pause, o.MaxRate = 10*time.Millisecond, 40000 })},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseArgs(tt.args, tt.cli)
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParseArgs(%q, %v) = %+v, %v; want %+v", tt.args, tt.cli, got, err, tt.want)
			}
		})
	}
}

func TestParseArgsErrors(t *testing.T) {
	tests := []struct {
		args []string
		cli  bool
		want string
	}{
		{[]string{"--bogus"}, true, `unknown flag "--bogus"`},
		{[]string{"--bogus=1"}, true, `unknown flag "--bogus"`},
		{[]string{"--user_id", "u"}, true, `did you mean --user-id?`},
		{[]string{"-all"}, true, `did you mean --all?`},
		{[]string{"--"}, true, `unknown flag "--"`},
		{[]string{"stray"}, true, `unexpected argument "stray"`},
		{[]string{"--expired", "yes"}, true, `unexpected argument "yes"`},
		{[]string{"--user-id"}, true, "--user-id needs a value"},
		{[]string{"--user-id", "--expired"}, true, "--user-id needs a value"},
		{[]string{"--user-id", ""}, true, "--user-id needs a non-empty value"},
		{[]string{"--auth-method="}, true, "--auth-method needs a non-empty value"},
		{[]string{"--reason", "   "}, true, "--reason needs a non-empty value"},
		{[]string{"--expired=true"}, true, "--expired takes no value"},
		{[]string{"--session-id", "a,,b"}, true, `--session-id has an empty id in "a,,b"`},
		{[]string{"--session-id", ","}, true, "--session-id has an empty id"},
		{[]string{"--older-than", "7x"}, true, `--older-than needs a duration like 30m, 12h, 7d or 2w, not "7x"`},
		{[]string{"--older-than", "d"}, true, "--older-than needs a duration"},
		{[]string{"--older-than", "7"}, true, "--older-than needs a duration"},
		{[]string{"--older-than", "1.2.3h"}, true, "--older-than needs a duration"},
		{[]string{"--older-than", "+5m"}, true, "--older-than needs a duration"},
		{[]string{"--older-than", "0"}, true, "--older-than must be greater than zero"},
		{[]string{"--older-than", "0d"}, true, "--older-than must be greater than zero"},
		{[]string{"--older-than", "-1h"}, true, "--older-than must be positive"},
		{[]string{"--older-than", "400000w"}, true, "--older-than is too long"},
		{[]string{"--pause", "-1s"}, true, "--pause must be positive"},
		{[]string{"--batch-size", "0"}, true, "--batch-size must be at least 1"},
		{[]string{"--batch-size", "abc"}, true, `--batch-size needs a whole number, not "abc"`},
		{[]string{"--batch-size", "-5"}, true, "--batch-size needs a whole number"},
		{[]string{"--batch-size", "+5"}, true, "--batch-size needs a whole number"},
		{[]string{"--batch-size", "99999999999999999999999"}, true, "--batch-size must be at most 100000"},
		{[]string{"--max-rate", "1.5"}, true, "--max-rate needs a whole number"},
		{[]string{"--dry-run"}, false, "--dry-run is only available on the command line"},
		{[]string{"--yes"}, false, "--yes is only available on the command line"},
		{[]string{"--batch-size", "10"}, false, "--batch-size is only available on the command line"},
		{[]string{"--pause=1s"}, false, "--pause is only available on the command line"},
		{[]string{"--max-rate", "1"}, false, "--max-rate is only available on the command line"},
		{[]string{"--all"}, true, `--all (mass logout) needs --reason`},
		{[]string{"--all", "--expired", "--reason", "r"}, true, "cannot be combined with --expired"},
		{[]string{"--reason", "r", "--session-id", "a", "--all"}, true, "cannot be combined with --session-id"},
		{[]string{"--all", "--reason", "r", "--older-than", "1d"}, true, "cannot be combined with --older-than"},
		{[]string{"--backup", "--no-backup"}, true, "--backup and --no-backup contradict each other"},
		{[]string{"--repair-ttl"}, false, "--repair-ttl works only with --orphans"},
		{[]string{"--repair-ttl", "--expired"}, true, "--repair-ttl works only with --orphans"},
		{[]string{"--all", "--repair-ttl", "--reason", "r"}, true, "--repair-ttl works only with --orphans"},
		{[]string{"--orphans", "--repair-ttl", "--backup"}, false, "--backup is not available with it"},
		{[]string{"--orphans", "--repair-ttl=yes"}, false, "--repair-ttl takes no value"},
		{[]string{"--user-id", "a", "--user-id", "b"}, true, `--user-id is given twice with different values ("a" and "b")`},
		{[]string{"--reason=a", "--reason", "b"}, true, "--reason is given twice"},
		{[]string{"--user-id", "line\nbreak", "--user-id", "x"}, true, `("line\nbreak" and "x")`},
		{[]string{strings.Repeat("x", 100)}, true, `"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx…"`},
	}
	for _, tt := range tests {
		got, err := ParseArgs(tt.args, tt.cli)
		var uerr *UsageError
		if !errors.As(err, &uerr) || !strings.Contains(err.Error(), tt.want) || !reflect.DeepEqual(got, Options{}) {
			t.Errorf("ParseArgs(%q, %v) = %+v, %v; want a *UsageError containing %q", tt.args, tt.cli, got, err, tt.want)
		}
	}
}

// FuzzParseArgs feeds arbitrary slash text through SplitArgs and ParseArgs, as the bot does.
func FuzzParseArgs(f *testing.F) {
	for _, s := range []string{"", "--all --reason x", "--user-id=“a b”", "--older-than 1w2d"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		args, err := SplitArgs(text)
		if err != nil {
			checkUsageError(t, "SplitArgs", text, err)
			return
		}
		for _, cli := range []bool{false, true} {
			o, err := ParseArgs(args, cli)
			if err != nil {
				checkUsageError(t, "ParseArgs", text, err)
				continue
			}
			flt := o.Filter
			if flt.All && (flt.Expired || flt.Orphans || flt.AuthMethod != "" || flt.UserID != "" ||
				len(flt.SessionIDs) > 0 || flt.OlderThan != 0 || o.Reason == "") {
				t.Errorf("ParseArgs(%q, %v) = %+v; --all combined with a filter or without a reason", args, cli, o)
			}
			if flt.RepairTTL && (!flt.Orphans || o.Backup) {
				t.Errorf("ParseArgs(%q, %v) = %+v; --repair-ttl without --orphans or with --backup", args, cli, o)
			}
			if o.Backup && o.NoBackup {
				t.Errorf("ParseArgs(%q, %v) = %+v; both --backup and --no-backup", args, cli, o)
			}
			if flt.OlderThan < 0 || (flt.OlderThan > 0) != (flt.OlderThanText != "") || o.Pause < -1 ||
				o.MaxRate < -1 || o.BatchSize < 0 {
				t.Errorf("ParseArgs(%q, %v) = %+v; out-of-range value", args, cli, o)
			}
			if !cli && (o.DryRun || o.Yes || o.BatchSize != 0 || o.Pause != -1 || o.MaxRate != -1) {
				t.Errorf("ParseArgs(%q, false) = %+v; CLI-only option set in chat", args, o)
			}
			for _, id := range flt.SessionIDs {
				if id == "" {
					t.Errorf("ParseArgs(%q, %v) = %+v; empty session id", args, cli, o)
				}
			}
		}
	})
}

func TestParseArgsLongValues(t *testing.T) {
	long := strings.Repeat("\u2028\x00\xff😀", 500)
	args := []string{"--user-id", long, "--user-id", long + "x"}
	_, err := ParseArgs(args, false)
	if err == nil || len(err.Error()) >= 300 || strings.ContainsAny(err.Error(), "\r\n\u2028") {
		t.Errorf("ParseArgs(two long ids) error = %q; want a short one-line error", err)
	}
}

func checkUsageError(t *testing.T, fn, text string, err error) {
	t.Helper()
	var uerr *UsageError
	msg := err.Error()
	if !errors.As(err, &uerr) || msg == "" || len(msg) >= 300 || strings.ContainsAny(msg, "\r\n") {
		t.Errorf("%s(%q) error = %q (%T); want a one-line *UsageError under 300 bytes", fn, text, msg, err)
	}
}
