package cleanup

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"time"

	"github.com/sethvargo/go-envconfig"
)

// DecodeEnv fills target, a pointer to a config struct whose fields carry env tags, from getenv
// (an unset or empty variable takes its default). It is the one place settings are decoded, for
// the bot and the command line alike, and returns one error per variable that does not parse:
// one line naming the variable, the value (never a secret's: a field whose type has a
// Reveal method) and what is accepted. A bad variable keeps its default, so it hides no other
// problem. Every time.Duration setting is read as a Duration: 30m, 12h, 7d, 2w everywhere.
func DecodeEnv(ctx context.Context, target any, getenv func(string) string) []error {
	v := reflect.ValueOf(target).Elem()
	t := v.Type()
	look := envconfig.LookuperFunc(func(key string) (string, bool) {
		val := getenv(key)
		return val, val != ""
	})
	var errs []error
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("env"), ",")
		if name = strings.TrimSpace(name); name == "" || !f.IsExported() {
			continue
		}
		// Each variable is decoded on its own, in a struct of that one field, so that a bad value
		// is reported alone and the others still decode.
		one := f
		one.Index, one.Offset = nil, 0
		isDuration := f.Type == reflect.TypeFor[time.Duration]()
		if isDuration {
			one.Type = reflect.TypeFor[Duration]()
		}
		holder := reflect.New(reflect.StructOf([]reflect.StructField{one}))
		if err := envconfig.ProcessWith(ctx, &envconfig.Config{Target: holder.Interface(), Lookuper: look}); err != nil {
			errs = append(errs, envValueError(name, f.Type, getenv(name)))
			// The default stands in, so that the checks after decoding see a usable value.
			if _, def, ok := strings.Cut(f.Tag.Get("env"), "default="); !ok || envconfig.ProcessWith(ctx,
				&envconfig.Config{Target: holder.Interface(), Lookuper: envconfig.MapLookuper(map[string]string{name: def})}) != nil {
				continue
			}
		}
		got := holder.Elem().Field(0)
		if isDuration {
			got = got.Convert(f.Type)
		}
		v.Field(i).Set(got)
	}
	return errs
}

// envValueError is the line for a value that does not parse: the variable, the value (unless it
// is a secret) and what the variable accepts.
func envValueError(name string, t reflect.Type, value string) error {
	if _, secret := t.MethodByName("Reveal"); secret {
		return fmt.Errorf("%s: the value is not valid (not shown: it is a secret; %s)", name, envAccepts(t))
	}
	if (t == reflect.TypeFor[time.Duration]() || t == reflect.TypeFor[Duration]()) && strings.HasPrefix(strings.TrimSpace(value), "-") {
		return fmt.Errorf("%s: %s is negative (%s)", name, quote(value), envAccepts(t))
	}
	return fmt.Errorf("%s: %s is not valid (%s)", name, quote(value), envAccepts(t))
}

// envAccepts says what a setting of type t accepts.
func envAccepts(t reflect.Type) string {
	switch {
	case t == reflect.TypeFor[slog.Level]():
		return "want debug, info, warn or error"
	case t == reflect.TypeFor[AuditFormat]():
		return "want text or json"
	case t == reflect.TypeFor[time.Duration]() || t == reflect.TypeFor[Duration]():
		return "want a duration like 30s, 15m, 12h, 7d or 2w"
	case t.Kind() == reflect.Bool:
		return "want true or false"
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Uint64:
		return "want a whole number"
	case t.Kind() == reflect.Slice:
		return "want a comma-separated list"
	case t == reflect.TypeFor[RedisURL]():
		return "want redis://[:password@]host:port/db or rediss://…"
	default:
		return "want text"
	}
}

// JoinLines joins errors so that each problem is one line (errors.Join puts each on its own) and
// no line appears twice.
func JoinLines(errs ...error) error {
	var flat []error
	seen := map[string]bool{}
	for _, err := range errs {
		if err == nil {
			continue
		}
		for line := range strings.SplitSeq(err.Error(), "\n") {
			if line = strings.TrimSpace(line); line != "" && !seen[line] {
				seen[line] = true
				flat = append(flat, errors.New(line))
			}
		}
	}
	return errors.Join(flat...)
}
