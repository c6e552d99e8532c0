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
