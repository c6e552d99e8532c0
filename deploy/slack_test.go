package deploy

import (
	"os"
	"slices"
	"testing"

	"github.com/slack-go/slack"
	"sigs.k8s.io/yaml"
)

func TestSlackManifest(t *testing.T) {
	b, err := os.ReadFile("slack/manifest.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var m slack.Manifest
	if err := yaml.UnmarshalStrict(b, &m); err != nil {
		t.Fatalf("slack/manifest.yaml does not decode strictly into slack.Manifest: %v", err)
	}
	if !m.Settings.SocketModeEnabled {
		t.Error("socket_mode_enabled must be true")
	}
	if m.Settings.Interactivity == nil || !m.Settings.Interactivity.IsEnabled {
		t.Error("interactivity must be enabled (buttons)")
	}
	if m.Settings.Interactivity != nil && m.Settings.Interactivity.RequestUrl != "" {
		t.Error("interactivity request_url set: Socket Mode needs none, and Slack must not call in")
	}
	if m.Settings.EventSubscriptions != nil {
		t.Error("event subscriptions set: the bot uses none")
	}
	want := []string{"chat:write", "commands", "im:write", "usergroups:read", "users:read", "users:read.email"}
	got := slices.Sorted(slices.Values(m.OAuthConfig.Scopes.Bot))
	if !slices.Equal(got, want) {
		t.Errorf("bot scopes = %v; want exactly %v", got, want)
	}
	if len(m.OAuthConfig.Scopes.User) > 0 || len(m.OAuthConfig.Scopes.BotOptional) > 0 {
		t.Errorf("user/optional scopes = %v %v; want none", m.OAuthConfig.Scopes.User, m.OAuthConfig.Scopes.BotOptional)
	}
	if len(m.Features.SlashCommands) != 1 {
		t.Fatalf("slash commands = %+v; want one", m.Features.SlashCommands)
	}
	sc := m.Features.SlashCommands[0]
	if sc.Command != "/sessions" || sc.UsageHint == "" || sc.Description == "" || sc.Url != "" {
		t.Errorf("slash command = %+v; want /sessions with description and usage hint, no URL", sc)
	}
	if m.Features.BotUser.DisplayName == "" || m.Display.Name == "" {
		t.Error("bot user display name and app name are required")
	}
	if n := len(m.Display.LongDescription); n != 0 && (n < 174 || n > 4000) {
		t.Errorf("long_description has %d characters; Slack wants 174..4000", n)
	}
}
