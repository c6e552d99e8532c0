package cleanup

import "time"

// Options is a parsed cleanup command line: the filter plus what to do with it. The slash command
// and the CLI share one parser (ParseArgs); flags that only make sense in a terminal (pacing,
// --dry-run, --yes) are refused in chat.
type Options struct {
	Filter   Filter
	Reason   string
	NoBackup bool // skip the backup that --all and large runs write (audited, shown on approval)
	Backup   bool // write a backup even when not required

	// CLI only.
	DryRun    bool
	Yes       bool
	BatchSize int           // 0: configured default
	Pause     time.Duration // -1: configured default
	MaxRate   int           // -1: configured default
}
