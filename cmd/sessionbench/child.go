package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/platform-team/sessionbot/cleanup"
)

// child runs one engine scenario in its own process and prints a childResult as JSON.
func child(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("child", flag.ContinueOnError)
	url := fs.String("url", "", "standalone target")
	clusterSeeds := fs.String("cluster", "", "cluster seeds")
	mode := fs.String("mode", "preview", "preview | expired | all")
	paced := fs.Bool("paced", false, "default pacing (otherwise pacing off)")
	backup := fs.Bool("backup", false, "write a backup first")
	backupDir := fs.String("backup-dir", "", "backup directory")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile here (to see where the time goes)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	cfg := cleanup.RedisConfig{URL: cleanup.RedisURL(*url), Prefix: "session:"}
	if *clusterSeeds != "" {
		cfg = cleanup.RedisConfig{ClusterAddrs: strings.Split(*clusterSeeds, ","), Prefix: "session:"}
	}
	tgt, err := cleanup.Connect(ctx, cfg)
	if err != nil {
		return err
	}
	defer tgt.Close()
	// The defaults of EngineConfig, as a deployment without overrides gets them; "pacing off"
	// is `--pause 0 --max-rate 0` with the same batch size (100 keys per command).
	ecfg := cleanup.EngineConfig{BatchSize: 100, MaxRate: 50_000}
	spec := cleanup.RunSpec{MaxValid: -1}
	if !*paced {
		spec.Pause, spec.MaxRate = -1, -1
	}
	eng := cleanup.NewEngine(tgt, ecfg)
	if !*paced {
		eng = eng.WithPacing(0, -1, -1) // previews are paced like runs unless pacing is off
	}
	start := time.Now()
	var res childResult
	switch *mode {
	case "preview":
		plan, err := eng.Preview(ctx, cleanup.Filter{}, nil)
		if err != nil {
			return err
		}
		res.Keys = plan.Found
	case "expired", "all":
		spec.Filter = cleanup.Filter{All: *mode == "all"}
		if *backup {
			spec.Backup = &cleanup.BackupSpec{Dir: *backupDir, JobID: fmt.Sprintf("bench-%d", time.Now().UnixNano())}
		}
		rep, err := eng.Run(ctx, spec)
		if err != nil {
			return err
		}
		res.Keys, res.Deleted = rep.Scanned, rep.Deleted
	default:
		return fmt.Errorf("unknown mode %q", *mode)
	}
	res.Wall = time.Since(start)
	return json.NewEncoder(stdout).Encode(res)
}
