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

func printTable(w io.Writer, rows []row, o options) {
	host, _ := os.Hostname()
	fmt.Fprintf(w, "sessionbench: %d sessions (~530-byte JSON, 90%% with TTL, 30%% expired) + %d unrelated keys; %d CPUs, %s/%s, host %s\n",
		o.n, o.unrelated, runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, host)
	fmt.Fprintf(w, "probe: one client doing GET of an unrelated key every 1 ms during each scenario\n\n")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "scenario\tkeys\twall\tkeys/s\tpeak RSS\tprobe p50\tp99\tmax\ttarget\t")
	fmt.Fprintln(tw, "--------\t----\t----\t------\t--------\t---------\t---\t---\t------\t")
	for _, r := range rows {
		keys, wall, rate, rss := "", "", "", ""
		if r.Wall > 0 {
			keys = fmt.Sprint(r.Keys)
			wall = r.Wall.Round(10 * time.Millisecond).String()
			rate = fmt.Sprintf("%.0f", r.KeysPerSec)
		}
		if r.RSSMB > 0 {
			rss = fmt.Sprintf("%.1f MB", r.RSSMB)
		}
		target := strings.TrimSpace(r.Target + " " + r.Verdict)
		if r.Note != "" {
			target = strings.TrimSpace(target + " (" + r.Note + ")")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", r.Scenario, keys, wall, rate, rss, ms(r.P50), ms(r.P99), ms(r.Max), target)
	}
	tw.Flush()
}

func ms(d time.Duration) string {
	if d == 0 {
		return ""
	}
	return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
}
