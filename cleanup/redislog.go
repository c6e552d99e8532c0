package cleanup

import (
	"context"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// LogRedisTo routes go-redis's own log lines (pool and reconnection notices, written with the
// standard logger otherwise) through log, as warnings from source "go-redis", so that the log
// stream stays one format and LOG_LEVEL applies to them. It sets go-redis's process-wide logger.
func LogRedisTo(log *slog.Logger) { redis.SetLogger(&redisLogger{log: log}) }

// redisRepeatEvery: a line identical to the previous one is logged again only after this long
// (with how many were left out), so that a Redis outage does not flood the log with one line
// per dial.
const redisRepeatEvery = 30 * time.Second

type redisLogger struct {
	log *slog.Logger

	mu      sync.Mutex
	last    string
	lastAt  time.Time
	skipped int
}

// Printf implements go-redis's internal.Logging. A URL with a password never reaches the line.
func (l *redisLogger) Printf(ctx context.Context, format string, v ...any) {
	msg := strings.TrimSpace(fmt.Sprintf(format, v...))
	msg = logUserinfo.ReplaceAllString(msg, "${1}"+redactedText+"@")
	l.mu.Lock()
	now := time.Now()
	if msg == l.last && now.Sub(l.lastAt) < redisRepeatEvery {
		l.skipped++
		l.mu.Unlock()
		return
	}
	skipped := l.skipped
	l.last, l.lastAt, l.skipped = msg, now, 0
	l.mu.Unlock()
	if skipped > 0 {
		l.log.WarnContext(ctx, msg, "source", "go-redis", "repeated", skipped)
		return
	}
	l.log.WarnContext(ctx, msg, "source", "go-redis")
}

// logUserinfo is the user:password part of a URL inside a log line.
var logUserinfo = regexp.MustCompile(`([a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]*@`)
