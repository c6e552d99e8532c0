package pagerduty_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/sethvargo/go-envconfig"

	"github.com/platform-team/sessionbot/bot/pagerduty"
)

const testKey = "pdroutingkeysupersecret000000000"

func load(t *testing.T, env map[string]string) (pagerduty.Config, error) {
	t.Helper()
	var c pagerduty.Config
	if err := envconfig.ProcessWith(context.Background(), &envconfig.Config{Target: &c, Lookuper: envconfig.MapLookuper(env)}); err != nil {
		t.Fatal(err)
	}
	return c, c.Validate()
}

func TestConfigDefaultsAndNormalization(t *testing.T) {
	c, err := load(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.EventsURL != "https://events.pagerduty.com" || c.Enabled() {
		t.Errorf("defaults = %+v; want the public Events API, disabled", c)
	}
	c, err = load(t, map[string]string{"PAGERDUTY_ROUTING_KEY": testKey, "PAGERDUTY_EVENTS_URL": "http://127.0.0.1:9090/"})
	if err != nil {
		t.Fatal(err)
	}
	if c.EventsURL != "http://127.0.0.1:9090" || !c.Enabled() {
		t.Errorf("config = %+v; want the URL without its trailing / and PagerDuty enabled", c)
	}
}

func TestConfigValidateNamesTheVariable(t *testing.T) {
	for _, tt := range []struct {
		name string
		env  map[string]string
		want string
	}{
		{"credentials in the URL", map[string]string{"PAGERDUTY_EVENTS_URL": "https://user:pw@events.example"}, "PAGERDUTY_EVENTS_URL must not carry credentials"},
		{"not http", map[string]string{"PAGERDUTY_EVENTS_URL": "events.pagerduty.com"}, "PAGERDUTY_EVENTS_URL"},
		{"key with whitespace", map[string]string{"PAGERDUTY_ROUTING_KEY": testKey + "\n"}, "PAGERDUTY_ROUTING_KEY contains whitespace"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := load(t, tt.env)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate = %v; want %q", err, tt.want)
			}
			for _, secret := range []string{"supersecret", "pw@"} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error shows a secret: %v", err)
				}
			}
		})
	}
}

func TestConfigNeverShowsTheRoutingKey(t *testing.T) {
	c, err := load(t, map[string]string{"PAGERDUTY_ROUTING_KEY": testKey})
	if err != nil {
		t.Fatal(err)
	}
	j, _ := json.Marshal(c)
	out := fmt.Sprintf("%v %+v %#v %s %q", c, c, c, c.RoutingKey, c.RoutingKey) + string(j)
	if strings.Contains(out, "supersecret") {
		t.Errorf("the routing key is shown: %s", out)
	}
}

func TestDedupKeyFitsPagerDuty(t *testing.T) {
	if got := pagerduty.DedupKey("10.0.0.1:6379"); got != "sessionbot/10.0.0.1:6379/cleanup-failed" {
		t.Errorf("DedupKey = %q", got)
	}
	if got := pagerduty.DedupKey(""); got != "sessionbot/default/cleanup-failed" {
		t.Errorf("DedupKey(\"\") = %q", got)
	}
	long := strings.Repeat("cluster-seed-host.example.internal:7000,", 20)
	a, b := pagerduty.DedupKey(long), pagerduty.DedupKey(long+"x")
	if len(a) > 255 || a == b || !strings.HasPrefix(a, "sessionbot/") || !strings.HasSuffix(a, "/cleanup-failed") {
		t.Errorf("DedupKey(long) = %q (%d); want ≤255, unique, same shape", a, len(a))
	}
	wide := pagerduty.DedupKey(strings.Repeat("ü", 300))
	if n := len([]rune(wide)); n > 255 {
		t.Errorf("DedupKey(300 × ü) has %d characters; want ≤255", n)
	}
}
