package cleanup

import (
	"context"
	"fmt"
	"log/slog"
	"regexp"
	"strings"

	"github.com/redis/go-redis/v9"
)

// LogRedisTo routes go-redis's own log lines (pool and reconnection notices, written with the
// standard logger otherwise) through log, as warnings from source "go-redis", so that the log
// stream stays one format and LOG_LEVEL applies to them. It sets go-redis's process-wide logger.
func LogRedisTo(log *slog.Logger) { redis.SetLogger(redisLogger{log}) }

type redisLogger struct{ log *slog.Logger }

// Printf implements go-redis's internal.Logging. A URL with a password never reaches the line.
func (l redisLogger) Printf(ctx context.Context, format string, v ...any) {
	msg := strings.TrimSpace(fmt.Sprintf(format, v...))
	l.log.WarnContext(ctx, logUserinfo.ReplaceAllString(msg, "${1}"+redactedText+"@"), "source", "go-redis")
}

// logUserinfo is the user:password part of a URL inside a log line.
var logUserinfo = regexp.MustCompile(`([a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]*@`)
