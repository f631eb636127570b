package deploy

import (
	"strconv"
	"strings"
	"testing"
)

// quantity parses a Kubernetes memory quantity with a binary suffix (Mi,
// Gi) or none.
func quantity(t *testing.T, v any) int64 {
	t.Helper()
	s, _ := v.(string)
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"Ki", 1 << 10}, {"Mi", 1 << 20}, {"Gi", 1 << 30}} {
		if r, ok := strings.CutSuffix(s, u.suffix); ok {
			s, mult = r, u.mult
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.Fatalf("memory quantity %q", v)
	}
	return n * mult
}

// measuredServe262k is the peak RSS (VmHWM) of `conntop serve --ssh
// --metrics` with 16 SSH viewers on a 262,144-entry kernel table with
// every entry's counters kept (CONNTOP_MEASURE_ACCT=1
// scripts/measure-bigtable.sh 262144: 150.4 and 151.2 MiB; 123.1 MiB with
// accounting off, the kernel's default), which the request holds.
const measuredServe262k = 152 << 20

// measuredServe4M is the same at 4,194,304 entries (CONNTOP_MEASURE_ACCT=1
// scripts/measure-bigtable.sh 4194304: 444.1, 444.8 and 446.5 MiB;
// 361.7–363.0 MiB with accounting off), which the limit and GOMEMLIMIT hold:
// conntop takes the smaller of its cgroup's limit and GOMEMLIMIT as its
// limit.
const measuredServe4M = 447 << 20

// TestDaemonSetMemory checks the conntop container's memory: a request no
// larger than the limit, a request that holds the measured need of a
// 262,144-entry table with SSH viewers, a limit and a GOMEMLIMIT (about 90%
// of the limit) that hold 4,194,304 entries, and a comment giving the
// memory for 262,144, 1,048,576 and 4,194,304 entries.
func TestDaemonSetMemory(t *testing.T) {
	ds := docs(t)["daemonset.yaml"]
	if len(ds) != 1 {
		t.Fatal("no DaemonSet")
	}
	found := false
	walk(ds[0], "", func(path string, m map[string]any) {
		if m["name"] != "conntop" || m["resources"] == nil {
			return
		}
		found = true
		res, _ := m["resources"].(map[string]any)
		req, _ := res["requests"].(map[string]any)
		lim, _ := res["limits"].(map[string]any)
		if req == nil || lim == nil || req["memory"] == nil || lim["memory"] == nil {
			t.Fatalf("%s: memory requests and limits are both needed: %v", path, res)
		}
		r, l := quantity(t, req["memory"]), quantity(t, lim["memory"])
		if r > l {
			t.Errorf("memory request %d above the limit %d", r, l)
		}
		// Measured (scripts/measure-bigtable.sh): serve with 16 viewers at
		// 262,144 entries.
		if r < measuredServe262k {
			t.Errorf("memory request %d MiB below the measured %d MiB of serve with viewers at 262,144 entries", r>>20, measuredServe262k>>20)
		}
		if l < measuredServe4M {
			t.Errorf("memory limit %d MiB below the measured %d MiB of serve with viewers at 4,194,304 entries", l>>20, measuredServe4M>>20)
		}
		var goLimit int64 = -1
		env, _ := m["env"].([]any)
		for _, e := range env {
			if kv, _ := e.(map[string]any); kv["name"] == "GOMEMLIMIT" {
				// Go's units (MiB, GiB) are Kubernetes' (Mi, Gi) with a B.
				v, _ := kv["value"].(string)
				goLimit = quantity(t, strings.TrimSuffix(v, "B"))
			}
		}
		switch {
		case goLimit < 0:
			t.Error("no GOMEMLIMIT in the conntop container's env")
		case goLimit*100 < l*85 || goLimit*100 > l*95:
			t.Errorf("GOMEMLIMIT %d MiB is not about 90%% of the memory limit %d MiB", goLimit>>20, l>>20)
		case goLimit < measuredServe4M:
			t.Errorf("GOMEMLIMIT %d MiB below the measured %d MiB of serve with viewers at 4,194,304 entries", goLimit>>20, measuredServe4M>>20)
		}
	})
	if !found {
		t.Fatal("no conntop container with resources")
	}
	raw, err := Manifests.ReadFile("daemonset.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, size := range []string{"262,144", "1,048,576", "4,194,304"} {
		if !strings.Contains(string(raw), size) {
			t.Errorf("daemonset.yaml does not give the memory for %s entries", size)
		}
	}
}
