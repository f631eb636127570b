package deploy

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// allowedCaps are the only capabilities conntop may be given.
var allowedCaps = []string{"NET_ADMIN", "NET_RAW"}

// docs returns every YAML document of every manifest, by file.
func docs(t *testing.T) map[string][]map[string]any {
	t.Helper()
	names, err := fs.Glob(Manifests, "*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(names) == 0 {
		t.Fatal("no manifests embedded")
	}
	out := make(map[string][]map[string]any)
	for _, name := range names {
		f, err := Manifests.Open(name)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(f)
		for {
			var doc map[string]any
			err := dec.Decode(&doc)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if doc != nil {
				out[name] = append(out[name], doc)
			}
		}
		f.Close()
	}
	return out
}

func TestManifestsParse(t *testing.T) {
	want := map[string]string{ // file -> kind
		"namespace.yaml":      "Namespace",
		"daemonset.yaml":      "DaemonSet",
		"service.yaml":        "Service",
		"servicemonitor.yaml": "ServiceMonitor",
		"prometheusrule.yaml": "PrometheusRule",
	}
	all := docs(t)
	for file, kind := range want {
		ds := all[file]
		if len(ds) != 1 {
			t.Errorf("%s: %d documents; want 1", file, len(ds))
			continue
		}
		if ds[0]["kind"] != kind || ds[0]["apiVersion"] == nil {
			t.Errorf("%s: kind %v apiVersion %v; want kind %s", file, ds[0]["kind"], ds[0]["apiVersion"], kind)
		}
	}
	if sc := all["prometheus-scrape.yaml"]; len(sc) != 1 || sc[0]["scrape_configs"] == nil {
		t.Errorf("prometheus-scrape.yaml: want one document with scrape_configs")
	}
}

// walk calls fn for every map in v, with its path.
func walk(v any, path string, fn func(path string, m map[string]any)) {
	switch v := v.(type) {
	case map[string]any:
		fn(path, v)
		for k, e := range v {
			walk(e, path+"."+k, fn)
		}
	case []any:
		for _, e := range v {
			walk(e, path+"[]", fn)
		}
	}
}

func strs(v any) []string {
	var out []string
	l, _ := v.([]any)
	for _, e := range l {
		s, _ := e.(string)
		out = append(out, s)
	}
	return out
}

func TestOnlyNetworkCapabilities(t *testing.T) {
	containers := 0
	for file, ds := range docs(t) {
		for _, d := range ds {
			walk(d, file, func(path string, m map[string]any) {
				if p, ok := m["privileged"]; ok && p != false {
					t.Errorf("%s: privileged: %v", path, p)
				}
				c, ok := m["capabilities"]
				if !ok {
					return
				}
				cm, _ := c.(map[string]any)
				if drop := strs(cm["drop"]); !slices.Equal(drop, []string{"ALL"}) {
					t.Errorf("%s.capabilities.drop = %v; want [ALL]", path, drop)
				}
				add := strs(cm["add"])
				slices.Sort(add)
				if !slices.Equal(add, allowedCaps) {
					t.Errorf("%s.capabilities.add = %v; want %v", path, add, allowedCaps)
				}
			})
		}
	}
	// Every container of the DaemonSet is confined.
	for _, d := range docs(t)["daemonset.yaml"] {
		spec := d["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)
		if spec["hostNetwork"] != true {
			t.Error("DaemonSet: hostNetwork is not true")
		}
		psc, _ := spec["securityContext"].(map[string]any)
		if psc["runAsNonRoot"] != true {
			t.Error("DaemonSet: pod runAsNonRoot is not true")
		}
		for _, key := range []string{"containers", "initContainers"} {
			list, _ := spec[key].([]any)
			for _, c := range list {
				containers++
				cm := c.(map[string]any)
				sc, _ := cm["securityContext"].(map[string]any)
				if sc == nil || sc["readOnlyRootFilesystem"] != true {
					t.Errorf("container %v: readOnlyRootFilesystem is not true", cm["name"])
				}
				if sc == nil || sc["capabilities"] == nil {
					t.Errorf("container %v: no capabilities section (must drop ALL)", cm["name"])
				}
			}
		}
	}
	if containers == 0 {
		t.Error("the DaemonSet has no containers")
	}

	// The image grants the same two capabilities as file capabilities.
	cf, err := os.ReadFile("../Containerfile")
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`setcap\s+(\S+)`)
	m := re.FindAllStringSubmatch(string(cf), -1)
	if len(m) != 1 || m[0][1] != "cap_net_admin,cap_net_raw=ep" {
		t.Errorf("Containerfile setcap: %v; want one `setcap cap_net_admin,cap_net_raw=ep`", m)
	}
	if !strings.Contains(string(cf), "CGO_ENABLED=0") {
		t.Error("Containerfile does not build with CGO_ENABLED=0")
	}
}

func TestAlertRules(t *testing.T) {
	rules := docs(t)["prometheusrule.yaml"]
	var exprs []string
	for _, d := range rules {
		walk(d, "", func(_ string, m map[string]any) {
			if e, ok := m["expr"].(string); ok {
				exprs = append(exprs, e)
			}
		})
	}
	all := strings.Join(exprs, "\n")
	for _, want := range []string{
		"node_nf_conntrack_entries / node_nf_conntrack_entries_limit > 0.9",
		"node_nf_conntrack_stat_early_drop",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("no alert expression uses %q", want)
		}
	}
}
