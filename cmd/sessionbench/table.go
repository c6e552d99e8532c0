package main

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"
)

func printTable(w io.Writer, rep report, o options) {
	host, _ := os.Hostname()
	fmt.Fprintf(w, "sessionbench: %d sessions (~530-byte JSON, 90%% with TTL, 30%% expired) + %d unrelated keys; %d CPUs, %s/%s, host %s\n",
		o.n, o.unrelated, runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, host)
	fmt.Fprintf(w, "probe: one client doing GET of an unrelated key every 1 ms during each scenario\n")
	fmt.Fprintf(w, "× xargs: keys/s over the runbook's `redis-cli --scan --pattern 'session:*' | xargs -L 1000 redis-cli DEL` (baseline below)\n")
	fmt.Fprintf(w, "CLI rows: the sessionbot binary from exec to exit; bot rows: `sessionbot serve` from the button press to the final report\n\n")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "scenario\tkeys\twall\tkeys/s\t× xargs\tpeak RSS\tRSS at n/10\tprobe p50\tp99\tmax\ttarget\t")
	fmt.Fprintln(tw, "--------\t----\t----\t------\t-------\t--------\t-----------\t---------\t---\t---\t------\t")
	for _, r := range rep.Rows {
		keys, wall, rate := "", "", ""
		if r.Wall > 0 {
			keys = fmt.Sprint(r.Keys)
			wall = r.Wall.Round(10 * time.Millisecond).String()
			rate = fmt.Sprintf("%.0f", r.KeysPerSec)
		}
		target := strings.TrimSpace(r.Target + " " + r.Verdict)
		if r.Note != "" {
			target = strings.TrimSpace(target + " (" + r.Note + ")")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", r.Scenario, keys, wall, rate, ratio(r.XArgs),
			mb(r.RSSMB), mb(r.TenthRSSMB), ms(r.P50), ms(r.P99), ms(r.Max), target)
	}
	tw.Flush()

	fmt.Fprintln(w)
	if b := rep.Baseline; b != nil {
		var runs []string
		for _, wall := range b.Walls {
			runs = append(runs, fmt.Sprintf("%s = %.0f keys/s", wall.Round(10*time.Millisecond), perSec(int64(o.n), wall)))
		}
		fmt.Fprintf(w, "baseline (1.00× xargs): %.0f keys/s, %d sessions over the mean wall time of %d xargs runs in this run (%s)\n",
			b.KeysPerSec, o.n, len(b.Walls), strings.Join(runs, ", "))
	} else {
		fmt.Fprintln(w, "baseline: none (-skip-baselines): no ratios")
	}
	fmt.Fprintf(w, "ceilings: plain loops over SCAN COUNT %d pages of session keys, one command or pipeline in flight: what Redis allows here\n", ceilingPage)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, r := range rep.Ceilings {
		fmt.Fprintf(tw, "  %s\t%s\t%.0f keys/s\t%s\tprobe p99 %s\t\n", r.Scenario, ratio(r.XArgs), r.KeysPerSec,
			r.Wall.Round(10*time.Millisecond), ms(r.P99))
	}
	tw.Flush()
}

func ratio(x float64) string {
	switch {
	case x == 0:
		return ""
	case x < 0.1:
		return fmt.Sprintf("%.2g×", x)
	}
	return fmt.Sprintf("%.2f×", x)
}

func mb(v float64) string {
	if v == 0 {
		return ""
	}
	return fmt.Sprintf("%.1f MB", v)
}

func ms(d time.Duration) string {
	if d == 0 {
		return ""
	}
	return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
}
