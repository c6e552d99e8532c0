// Package cleanup is the session-cleanup domain and engine: sessions, filters and their
// flag parser (shared by the CLI and the slash command), dry-run plans, the SCAN/UNLINK engine
// with race-safe compare-and-delete, backups and restore, stats and audit events.
//
// It talks to Redis through go-redis only, knows nothing of Slack, and never touches a key that
// does not start with the configured session prefix.
package cleanup
