package cleanup

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

func TestRedisConfigNeverPrintsThePassword(t *testing.T) {
	c := RedisConfig{URL: "rediss://app:hunter2secret@redis.internal:6380/0", Prefix: "session:"}
	js, _ := json.Marshal(c)
	for _, out := range []string{fmt.Sprintf("%v", c), fmt.Sprintf("%+v", c), fmt.Sprintf("%#v", c), fmt.Sprint(c.URL), string(js)} {
		if strings.Contains(out, "hunter2secret") {
			t.Errorf("printed the password: %s", out)
		}
		if !strings.Contains(out, "redis.internal:6380") {
			t.Errorf("redaction hid the host too: %s", out)
		}
	}
	if c.URL.Reveal() != "rediss://app:hunter2secret@redis.internal:6380/0" {
		t.Errorf("Reveal() = %q", c.URL.Reveal())
	}
}

func TestRedactURL(t *testing.T) {
	for in, want := range map[string]string{
		"redis://app:pw@redis.internal:notaport/0": "redis://[redacted]@redis.internal:notaport/0",
		"redis://:p%zzw@h:6379/0":                  "redis://[redacted]@h:6379/0",
		"redis://u:p/w@h:1/0":                      "redis://[redacted]@h:1/0",
		"redis://u:p@w@h:1/0":                      "redis://[redacted]@h:1/0",
		"app:pw@redis.internal:6379":               "[redacted]@redis.internal:6379",
		"tcp://log:pw@collector:514":               "tcp://[redacted]@collector:514",
		"redis://redis.internal:6379/0":            "redis://redis.internal:6379/0",
		"":                                         "",
	} {
		if got := RedactURL(in); got != want {
			t.Errorf("RedactURL(%q) = %q; want %q", in, got, want)
		}
	}
}
