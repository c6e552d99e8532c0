package deploy

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http/httptest"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/platform-team/sessionbot/bot"
)

// exportedMetricNames scrapes a live /metrics of bot.NewMetrics over loopback and returns every
// sample name (histograms as _bucket, _sum, _count).
func exportedMetricNames(t *testing.T) map[string]bool {
	t.Helper()
	m := bot.NewMetrics("test")
	m.InitTargets("default") // as bot.New does for each target: the per-target job series
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for line := range strings.Lines(string(body)) {
		if line = strings.TrimSpace(line); line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if i := strings.IndexAny(line, "{ "); i > 0 {
			names[line[:i]] = true
		}
	}
	if !names["sessionbot_build_info"] {
		t.Fatalf("scrape lacks sessionbot_build_info; got %d names", len(names))
	}
	return names
}

// grafanaVars are replaced by a duration so that dashboard queries parse as PromQL.
var grafanaVars = strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "$__range", "1h")

// metricNames parses expr and returns the metric names it selects.
func metricNames(t *testing.T, where, expr string) []string {
	t.Helper()
	e, err := parser.NewParser(parser.Options{}).ParseExpr(grafanaVars.Replace(expr))
	if err != nil {
		t.Errorf("%s: PromQL does not parse: %v\n%s", where, err, expr)
		return nil
	}
	var names []string
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok {
			name := vs.Name
			for _, m := range vs.LabelMatchers {
				if m.Name == "__name__" {
					name = m.Value
				}
			}
			names = append(names, name)
		}
		return nil
	})
	if len(names) == 0 {
		t.Errorf("%s: selects no metric: %s", where, expr)
	}
	return names
}

func TestDashboardAndRulesUseExportedMetrics(t *testing.T) {
	exported := exportedMetricNames(t)
	check := func(t *testing.T, where, expr string) {
		t.Helper()
		for _, n := range metricNames(t, where, expr) {
			if !exported[n] {
				t.Errorf("%s uses %s, which bot.NewMetrics does not export", where, n)
			}
		}
	}

	t.Run("dashboard", func(t *testing.T) {
		b, err := os.ReadFile("grafana/sessionbot.json")
		if err != nil {
			t.Fatal(err)
		}
		type datasource struct {
			Type string `json:"type"`
			UID  string `json:"uid"`
		}
		var d struct {
			UID        string `json:"uid"`
			Templating struct {
				List []struct{ Name, Type, Query string } `json:"list"`
			} `json:"templating"`
			Panels []struct {
				Title      string      `json:"title"`
				Type       string      `json:"type"`
				Datasource *datasource `json:"datasource"`
				Targets    []struct {
					Expr       string      `json:"expr"`
					Datasource *datasource `json:"datasource"`
				} `json:"targets"`
			} `json:"panels"`
		}
		if err := json.Unmarshal(b, &d); err != nil {
			t.Fatal(err)
		}
		if d.UID != "sessionbot" {
			t.Errorf("uid = %q; want sessionbot", d.UID)
		}
		if len(d.Templating.List) == 0 || d.Templating.List[0].Name != "datasource" ||
			d.Templating.List[0].Type != "datasource" || d.Templating.List[0].Query != "prometheus" {
			t.Errorf("templating = %+v; want a prometheus datasource variable named datasource", d.Templating.List)
		}
		var titles []string
		queries := 0
		for _, p := range d.Panels {
			titles = append(titles, p.Title)
			if p.Type == "row" {
				continue
			}
			if p.Datasource == nil || p.Datasource.UID != "${datasource}" {
				t.Errorf("panel %q datasource = %+v; want ${datasource}", p.Title, p.Datasource)
			}
			for _, tg := range p.Targets {
				if tg.Datasource == nil || tg.Datasource.UID != "${datasource}" {
					t.Errorf("panel %q target datasource = %+v; want ${datasource}", p.Title, tg.Datasource)
				}
				check(t, fmt.Sprintf("dashboard panel %q", p.Title), tg.Expr)
				queries++
			}
		}
		for _, want := range []string{"Active sessions", "Session creation / expiry rate", "Orphan sessions (TTL -1)",
			"TTL distribution", "Sessions by auth method", "Cleanups by mode / result", "Keys deleted",
			"Approvals by outcome", "Job duration p50 / p95", "Cleanup engine Redis round trips (p99 / p50, by operation)",
			"Slack connected", "Last successful cleanup age"} {
			if !slices.Contains(titles, want) {
				t.Errorf("dashboard lacks panel %q", want)
			}
		}
		if queries < 20 {
			t.Errorf("checked %d dashboard queries; want at least 20", queries)
		}
	})

	t.Run("rules", func(t *testing.T) {
		b, err := os.ReadFile("prometheus/rules.yaml")
		if err != nil {
			t.Fatal(err)
		}
		pr, ok := decodeStrict(t, "prometheus/rules.yaml", b).(*monitoringv1.PrometheusRule)
		if !ok {
			t.Fatal("prometheus/rules.yaml is not a PrometheusRule")
		}
		readme, err := os.ReadFile("README.md")
		if err != nil {
			t.Fatal(err)
		}
		anchors := markdownAnchors(string(readme))
		var alerts []string
		for _, g := range pr.Spec.Groups {
			for _, r := range g.Rules {
				alerts = append(alerts, r.Alert)
				check(t, "alert "+r.Alert, r.Expr.String())
				url := r.Annotations["runbook_url"]
				_, anchor, _ := strings.Cut(url, "#")
				if !strings.Contains(url, "deploy/README.md#") || !anchors[anchor] {
					t.Errorf("alert %s runbook_url %q does not point at a section of deploy/README.md", r.Alert, url)
				}
				if r.Annotations["summary"] == "" || r.Labels["severity"] == "" {
					t.Errorf("alert %s needs a summary annotation and a severity label", r.Alert)
				}
			}
		}
		slices.Sort(alerts)
		want := []string{"SessionbotCleanupFailed", "SessionbotLastCleanupTooOld", "SessionbotOrphanSessionsGrowing",
			"SessionbotRedisDown", "SessionbotSlackDisconnected"}
		if !slices.Equal(alerts, want) {
			t.Errorf("alerts = %v; want %v", alerts, want)
		}
	})
}

// markdownAnchors returns GitHub's anchors for the headings of a Markdown document.
func markdownAnchors(md string) map[string]bool {
	out := map[string]bool{}
	drop := regexp.MustCompile(`[^a-z0-9 _-]`)
	for line := range strings.Lines(md) {
		if h, ok := strings.CutPrefix(line, "#"); ok {
			h = strings.TrimSpace(strings.TrimLeft(h, "#"))
			out[strings.ReplaceAll(drop.ReplaceAllString(strings.ToLower(h), ""), " ", "-")] = true
		}
	}
	return out
}
