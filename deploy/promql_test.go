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

// scoped fails unless every metric selector in expr is limited to the dashboard's $job and
// $namespace, so that two installations scraped by one Prometheus are never summed together.
func scoped(t *testing.T, where, expr string) {
	t.Helper()
	e, err := parser.NewParser(parser.Options{}).ParseExpr(grafanaVars.Replace(expr))
	if err != nil {
		return // metricNames reports it
	}
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok {
			have := map[string]string{}
			for _, m := range vs.LabelMatchers {
				have[m.Name] = m.Value
			}
			if have["job"] != "$job" || have["namespace"] != "$namespace" {
				t.Errorf("%s: %s is not scoped by job=~\"$job\", namespace=~\"$namespace\"", where, vs)
			}
		}
		return nil
	})
}

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
				List []struct {
					Name, Type string
					Query      json.RawMessage `json:"query"`
					Definition string          `json:"definition"`
				} `json:"list"`
			} `json:"templating"`
			Annotations struct {
				List []struct {
					Name, Expr, TitleFormat string
					Datasource              *datasource `json:"datasource"`
				} `json:"list"`
			} `json:"annotations"`
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
			d.Templating.List[0].Type != "datasource" || string(d.Templating.List[0].Query) != `"prometheus"` {
			t.Errorf("templating = %+v; want a prometheus datasource variable named datasource", d.Templating.List)
		}
		// $job and $namespace pick one installation; their values come from a metric that exists.
		vars := map[string]string{}
		for _, v := range d.Templating.List[1:] {
			if v.Type == "query" {
				vars[v.Name] = v.Definition
				check(t, "variable "+v.Name, strings.TrimSuffix(strings.TrimPrefix(v.Definition, "label_values("), ", "+v.Name+")"))
			}
		}
		if vars["job"] == "" || vars["namespace"] == "" {
			t.Errorf("templating = %+v; want query variables job and namespace", d.Templating.List)
		}
		// Cleanups are annotations on every panel: one query on a metric that exists.
		if len(d.Annotations.List) == 0 {
			t.Error("dashboard has no annotations; want one for cleanups")
		}
		for _, a := range d.Annotations.List {
			if a.Datasource == nil || a.Datasource.UID != "${datasource}" || a.TitleFormat == "" {
				t.Errorf("annotation %q: datasource %+v, title %q; want ${datasource} and a title", a.Name, a.Datasource, a.TitleFormat)
			}
			check(t, "annotation "+a.Name, a.Expr)
			scoped(t, "annotation "+a.Name, a.Expr)
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
				scoped(t, fmt.Sprintf("dashboard panel %q", p.Title), tg.Expr)
				queries++
			}
		}
		for _, want := range []string{"Active sessions", "Session creation / expiry rate", "Orphan sessions (TTL -1)",
			"TTL distribution", "Sessions by auth method", "Cleanups by mode / result", "Keys deleted",
			"Approvals by outcome", "Job duration p50 / p95", "Cleanup engine Redis round trips (p99 / p50, by operation)",
			"Slack connected", "Last successful cleanup age", "Redis memory used of maxmemory"} {
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
		want := []string{"SessionbotAuditWriteErrors", "SessionbotCleanupFailed", "SessionbotLastCleanupTooOld",
			"SessionbotNotificationFailures", "SessionbotOrphanSessionsGrowing", "SessionbotRedisDown",
			"SessionbotRedisMemoryHigh", "SessionbotSlackDisconnected"}
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
