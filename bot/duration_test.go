package bot

import (
	"testing"
	"time"
)

func TestShortDuration(t *testing.T) {
	for _, tt := range []struct {
		in   time.Duration
		want string
	}{
		{0, "0s"},
		{1500 * time.Millisecond, "1.5s"},
		{90 * time.Second, "1m30s"},
		{150 * time.Second, "2m30s"},
		{20 * time.Minute, "20m"},
		{time.Hour + 20*time.Minute + 40*time.Second, "1h20m40s"},
		{time.Hour + 20*time.Minute, "1h20m"},
		{2 * time.Hour, "2h"},
		{10*time.Hour + 30*time.Second, "10h0m30s"},
	} {
		if got := shortDuration(tt.in); got != tt.want {
			t.Errorf("shortDuration(%v) = %q; want %q", tt.in, got, tt.want)
		}
	}
}
