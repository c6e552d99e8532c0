package cleanup

import (
	"strings"
	"testing"
)

// A prefix whose keys could be the bot's own state is refused unless the state lives elsewhere;
// a prefix inside the state namespace is refused always (its keys are never sessions).
func TestRedisConfigRefusesPrefixOverlappingState(t *testing.T) {
	const elsewhere = RedisURL("redis://:statepw0secret@state.internal:6379/1")
	for _, tt := range []struct {
		prefix string
		state  RedisURL
		refuse bool
	}{
		{"session:", "", false},
		{"sess:", "", false},
		{"session", "", true},
		{"sess", "", true},
		{"s", "", true},
		{"session", elsewhere, false},
		{"sess", elsewhere, false},
		{"sessionbot:", "", true},
		{"sessionbot:users:", elsewhere, true},
	} {
		err := RedisConfig{Prefix: tt.prefix, StateURL: tt.state}.Validate()
		if refused := err != nil; refused != tt.refuse {
			t.Errorf("Validate(SESSION_KEY_PREFIX=%q, STATE_REDIS_URL set: %v) = %v; want refused: %v", tt.prefix, tt.state != "", err, tt.refuse)
			continue
		}
		if err == nil {
			continue
		}
		if msg := err.Error(); !strings.HasPrefix(msg, "SESSION_KEY_PREFIX: ") || strings.Contains(msg, "\n") {
			t.Errorf("Validate(SESSION_KEY_PREFIX=%q) = %q; want one line naming SESSION_KEY_PREFIX", tt.prefix, msg)
		}
	}
}

func TestRedisConfigStateURLNeverEchoesItsPassword(t *testing.T) {
	err := RedisConfig{Prefix: "session:", StateURL: "redis://app:hunter2secret@state.internal:notaport/0"}.Validate()
	if err == nil || !strings.HasPrefix(err.Error(), "STATE_REDIS_URL: ") || strings.Contains(err.Error(), "hunter2secret") {
		t.Errorf("Validate(bad STATE_REDIS_URL) = %v; want an error naming STATE_REDIS_URL without its password", err)
	}
}
