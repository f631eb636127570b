package deploy

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/conntop/conntop/internal/engine"
	"github.com/conntop/conntop/internal/serve/metrics"
	"github.com/conntop/conntop/internal/tracker"
	"github.com/conntop/conntop/internal/wiretrack"
	"github.com/conntop/conntop/source/pcap"
)

// dashboard is the part of a Grafana dashboard the tests read.
type dashboard struct {
	UID        string  `json:"uid"`
	Title      string  `json:"title"`
	Schema     int     `json:"schemaVersion"`
	Panels     []panel `json:"panels"`
	Templating struct {
		List []struct {
			Name       string          `json:"name"`
			Type       string          `json:"type"`
			Query      json.RawMessage `json:"query"`
			Datasource *datasource     `json:"datasource"`
		} `json:"list"`
	} `json:"templating"`
}

type datasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type panel struct {
	Type       string      `json:"type"`
	Title      string      `json:"title"`
	Datasource *datasource `json:"datasource"`
	GridPos    struct{ H, W, X, Y int }
	Targets    []struct {
		Expr       string      `json:"expr"`
		Datasource *datasource `json:"datasource"`
	} `json:"targets"`
	Panels []panel `json:"panels"`
}

func loadDashboard(t *testing.T) *dashboard {
	t.Helper()
	raw, err := os.ReadFile("grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("grafana-dashboard.json: %v", err)
	}
	return &d
}

// queries returns every panel's expressions, by panel title.
func (d *dashboard) queries() map[string][]string {
	out := map[string][]string{}
	var walk func(ps []panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			for _, tg := range p.Targets {
				out[p.Title] = append(out[p.Title], tg.Expr)
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	return out
}

// promqlWords are PromQL's keywords, which look like metric names.
var promqlWords = map[string]bool{"by": true, "without": true, "on": true, "ignoring": true, "group_left": true,
	"group_right": true, "offset": true, "bool": true, "and": true, "or": true, "unless": true, "inf": true, "nan": true}

// metricNames returns the metric names a PromQL expression selects: the
// identifiers left after removing strings, label matchers, ranges,
// grouping clauses, numbers, durations, function calls and keywords.
func metricNames(expr string) []string {
	s := regexp.MustCompile(`"(?:[^"\\]|\\.)*"`).ReplaceAllString(expr, `""`)
	s = regexp.MustCompile(`\{[^}]*\}`).ReplaceAllString(s, " ")
	s = regexp.MustCompile(`\[[^\]]*\]`).ReplaceAllString(s, " ")
	s = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`).ReplaceAllString(s, " ")
	s = regexp.MustCompile(`\b[0-9][0-9a-zA-Z.]*`).ReplaceAllString(s, " ") // numbers, durations
	var names []string
	for _, m := range regexp.MustCompile(`([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\()?`).FindAllStringSubmatch(s, -1) {
		if m[2] != "" || promqlWords[strings.ToLower(m[1])] {
			continue // a function, or a keyword
		}
		names = append(names, m[1])
	}
	return names
}

func TestMetricNames(t *testing.T) {
	got := metricNames(`max by (node) (rate(node_nf_conntrack_stat_drop{node=~"$node", x="a}b"}[$__rate_interval])) / on (node) group_left sum(conntop_flows offset 5m) > bool 0`)
	if want := []string{"node_nf_conntrack_stat_drop", "conntop_flows"}; !slices.Equal(got, want) {
		t.Errorf("metricNames = %v, want %v", got, want)
	}
}

// TestDashboardShape: importable (uid, title, schema), the data source and
// the node are variables, every panel and query uses them, and the panels
// the dashboard promises are there.
func TestDashboardShape(t *testing.T) {
	d := loadDashboard(t)
	if d.UID == "" || d.Title == "" || d.Schema < 30 {
		t.Errorf("uid %q title %q schemaVersion %d", d.UID, d.Title, d.Schema)
	}
	vars := map[string]string{}
	for _, v := range d.Templating.List {
		vars[v.Name] = v.Type
	}
	if vars["datasource"] != "datasource" || vars["node"] != "query" {
		t.Errorf("variables %v; want a datasource variable and a node query variable", vars)
	}
	var check func(ps []panel)
	check = func(ps []panel) {
		for _, p := range ps {
			if p.Type != "row" {
				if p.Datasource == nil || p.Datasource.UID != "${datasource}" {
					t.Errorf("panel %q: datasource %+v; want the ${datasource} variable", p.Title, p.Datasource)
				}
				if len(p.Targets) == 0 {
					t.Errorf("panel %q has no query", p.Title)
				}
				if p.GridPos.W == 0 || p.GridPos.H == 0 {
					t.Errorf("panel %q has no size", p.Title)
				}
			}
			for _, tg := range p.Targets {
				if tg.Datasource == nil || tg.Datasource.UID != "${datasource}" {
					t.Errorf("panel %q: a query's datasource is %+v", p.Title, tg.Datasource)
				}
				if !strings.Contains(tg.Expr, `node=~"$node"`) {
					t.Errorf("panel %q: query %q does not select the $node variable", p.Title, tg.Expr)
				}
			}
			check(p.Panels)
		}
	}
	check(d.Panels)
	q := d.queries()
	all := ""
	for _, es := range q {
		all += strings.Join(es, "\n") + "\n"
	}
	for _, want := range []string{
		"node_nf_conntrack_entries_limit", "deriv(node_nf_conntrack_entries", "node_nf_conntrack_stat_drop",
		"node_nf_conntrack_stat_early_drop", "node_nf_conntrack_stat_insert_failed", "conntop_flows_by_state",
		"conntop_flows_by_protocol", "conntop_events_lost_total", "conntop_resyncs_total", "conntop_tracker_invalid_total",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("no query uses %s", want)
		}
	}
	if len(q["Time to full"]) == 0 || len(q["Table fill per node"]) == 0 {
		t.Errorf("panels %v", slices.Sorted(func(yield func(string) bool) {
			for k := range q {
				if !yield(k) {
					return
				}
			}
		}))
	}
}

// liveMetricNames runs an engine on a real source (a pcap replay through
// the tracker, with INVALID packets in it), serves its /metrics as conntop
// serve does and returns the metric names of one scrape.
func liveMetricNames(t *testing.T) map[string]bool {
	t.Helper()
	cfg := tracker.DefaultConfig()
	cfg.Max = 262144
	src := pcap.New("../testdata/kernel-oracle/tcpdump-print-flags.replay.pcap", pcap.Config{Pipeline: wiretrack.Config{Tracker: &cfg}})
	eng := engine.New(src, engine.Options{EventClock: true})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := eng.Run(ctx); err != nil {
		t.Fatalf("replay: %v", err)
	}
	reg, err := metrics.NewRegistry(eng)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(metrics.Handler(eng, reg))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: %s", resp.Status)
	}
	names := map[string]bool{}
	sc := bufio.NewScanner(io.LimitReader(resp.Body, 4<<20))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, _, _ := strings.Cut(line, "{")
		name, _, _ = strings.Cut(name, " ")
		names[name] = true
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return names
}

// TestDashboardMetricsAreExported: every metric a dashboard query names is
// in a live /metrics of conntop.
func TestDashboardMetricsAreExported(t *testing.T) {
	live := liveMetricNames(t)
	if !live["conntop_tracker_invalid_total"] {
		t.Fatal("the replay gave no INVALID reason: pick a capture with invalid packets")
	}
	used := 0
	for title, exprs := range loadDashboard(t).queries() {
		for _, e := range exprs {
			names := metricNames(e)
			if len(names) == 0 {
				t.Errorf("panel %q: no metric in %q", title, e)
			}
			for _, n := range names {
				used++
				if !live[n] {
					t.Errorf("panel %q uses %s, which conntop does not export", title, n)
				}
			}
		}
	}
	if used == 0 {
		t.Error("no metric names found in the dashboard")
	}
}
