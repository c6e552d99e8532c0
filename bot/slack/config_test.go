package slack

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/sethvargo/go-envconfig"
)

const (
	testAppToken = "xapp-1-A0TEST-1-supersecretapptoken"
	testBotToken = "xoxb-1111-2222-supersecretbottoken"
)

func TestSlackConfigNeverShowsSecrets(t *testing.T) {
	cfg, err := LoadConfig(context.Background(), envconfig.MapLookuper(map[string]string{
		"SLACK_APP_TOKEN": testAppToken, "SLACK_BOT_TOKEN": testBotToken,
	}))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	out = append(out, fmt.Sprintf("%v %+v %#v %s %q %x", cfg, cfg, cfg, cfg.AppToken, cfg.BotToken, cfg.AppToken))
	out = append(out, fmt.Sprint(cfg), fmt.Sprintln(&cfg))
	j, _ := json.Marshal(cfg)
	out = append(out, string(j))
	var logs bytes.Buffer
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("config", "cfg", cfg, "token", cfg.BotToken)
	slog.New(slog.NewTextHandler(&logs, nil)).Info("config", "cfg", cfg, "token", cfg.AppToken)
	out = append(out, logs.String())
	all := strings.Join(out, "\n")
	for _, secret := range []string{testAppToken, testBotToken, "supersecret"} {
		if strings.Contains(all, secret) {
			t.Errorf("a secret is shown:\n%s", all)
		}
	}
	if !strings.Contains(all, "[redacted]") {
		t.Errorf("no [redacted] marker:\n%s", all)
	}
	if cfg.BotToken.Reveal() != testBotToken {
		t.Error("Reveal does not return the value")
	}
}

func TestSlackConfigDefaultsAndNormalization(t *testing.T) {
	cfg, err := LoadConfig(context.Background(), envconfig.MapLookuper(map[string]string{
		"SLACK_APP_TOKEN": testAppToken, "SLACK_BOT_TOKEN": testBotToken,
	}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.APIURL != "https://slack.com/api/" {
		t.Errorf("defaults = %+v", cfg)
	}
	cfg, err = LoadConfig(context.Background(), envconfig.MapLookuper(map[string]string{
		"SLACK_APP_TOKEN": testAppToken, "SLACK_BOT_TOKEN": testBotToken,
		"SLACK_API_URL": "http://127.0.0.1:8080/api",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.APIURL != "http://127.0.0.1:8080/api/" {
		t.Errorf("normalized URL = %q", cfg.APIURL)
	}
}

func TestSlackConfigValidateReportsEveryProblem(t *testing.T) {
	for _, tt := range []struct {
		name string
		env  map[string]string
		want []string
	}{
		{"nothing set", nil, []string{"SLACK_APP_TOKEN is required", "SLACK_BOT_TOKEN is required"}},
		{"swapped tokens", map[string]string{"SLACK_APP_TOKEN": testBotToken, "SLACK_BOT_TOKEN": testAppToken},
			[]string{`SLACK_APP_TOKEN must start with "xapp-"`, `SLACK_BOT_TOKEN must start with "xoxb-"`}},
		{"bad URLs", map[string]string{"SLACK_APP_TOKEN": testAppToken, "SLACK_BOT_TOKEN": testBotToken,
			"SLACK_API_URL": "https://user:pw@slack.example/api"},
			[]string{"SLACK_API_URL must not carry credentials"}},
		{"not http", map[string]string{"SLACK_APP_TOKEN": testAppToken, "SLACK_BOT_TOKEN": testBotToken,
			"SLACK_API_URL": "slack.com/api"},
			[]string{"SLACK_API_URL"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := LoadConfig(context.Background(), envconfig.MapLookuper(tt.env))
			if err == nil {
				t.Fatal("LoadConfig succeeded; want errors")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			for _, secret := range []string{"supersecret", "pw@"} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error shows a secret: %v", err)
				}
			}
		})
	}
}
