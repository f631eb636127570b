package memlimit

import (
	"context"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
	"time"
)

// The testdata directories are file system roots holding the proc and
// cgroup files of one situation each (see the comments in their names).
func TestCgroup(t *testing.T) {
	tests := []struct {
		dir      string
		want     int64
		wantFrom string
	}{
		{"v2-container", 512 << 20, "cgroup v2 /sys/fs/cgroup/memory.max"},
		{"v2-nested", 256 << 20, "cgroup v2 /sys/fs/cgroup/kubepods.slice/kubepods-burstable.slice/pod1.slice/memory.max"},
		{"v2-max", 0, ""},
		{"v1-docker", 1 << 30, "cgroup v1 /sys/fs/cgroup/memory/memory.limit_in_bytes"},
		{"v1-hybrid-unlimited", 0, ""},
		{"v1-hybrid-limited", 96 << 20, "cgroup v1 /sys/fs/cgroup/memory/process_api/bf40/conntop-lab/memory.limit_in_bytes"},
		{"v2-escaped", 4096, "cgroup v2 /mnt/cg two/a/memory.max"},
		{"none", 0, ""},
		{"missing-root", 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.dir, func(t *testing.T) {
			got, err := Cgroup(filepath.Join("testdata", tt.dir))
			if err != nil {
				t.Fatal(err)
			}
			if got.Bytes != tt.want || got.From != tt.wantFrom {
				t.Errorf("Cgroup = %d from %q; want %d from %q", got.Bytes, got.From, tt.want, tt.wantFrom)
			}
		})
	}
}

func TestCgroupMalformed(t *testing.T) {
	_, err := Cgroup(filepath.Join("testdata", "v2-malformed"))
	if err == nil || !strings.Contains(err.Error(), "memory.max") || !strings.Contains(err.Error(), `"lots"`) {
		t.Errorf("Cgroup of a malformed memory.max: %v; want an error naming the file and the value", err)
	}
}

// TestCgroupSelf reads this machine's own files: whatever the limit, it
// must parse.
func TestCgroupSelf(t *testing.T) {
	l, err := Cgroup("/")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("this process: %d bytes from %q", l.Bytes, l.From)
}

func TestParseLimit(t *testing.T) {
	tests := []struct {
		in      string
		want    int64
		wantErr bool
	}{
		{"max\n", 0, false},
		{"1048576\n", 1 << 20, false},
		{"9223372036854771712\n", 0, false}, // v1 unlimited
		{"18446744073709551615", 0, false},  // larger than int64
		{"-1", 0, false},
		{"", 0, true},
		{"12k", 0, true},
	}
	for _, tt := range tests {
		got, err := parseLimit(tt.in)
		if got != tt.want || (err != nil) != tt.wantErr {
			t.Errorf("parseLimit(%q) = %d, %v; want %d, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestParseGOMEMLIMIT(t *testing.T) {
	tests := []struct {
		in      string
		want    int64
		wantErr bool
	}{
		{"", 0, false},
		{"off", 0, false},
		{"1000", 1000, false},
		{"1000B", 1000, false},
		{"64KiB", 64 << 10, false},
		{"300MiB", 300 << 20, false},
		{"2GiB", 2 << 30, false},
		{"1TiB", 1 << 40, false},
		{"9223372036854775807", 0, false}, // the runtime's "no limit"
		{"1GB", 0, true},
		{"-5MiB", 0, true},
		{"lots", 0, true},
		{"9000000TiB", 0, true},
	}
	for _, tt := range tests {
		got, err := ParseGOMEMLIMIT(tt.in)
		if got != tt.want || (err != nil) != tt.wantErr {
			t.Errorf("ParseGOMEMLIMIT(%q) = %d, %v; want %d, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestNewPlan(t *testing.T) {
	const reserve = 64 << 20
	cg := Limit{Bytes: 512 << 20, From: "cgroup v2 /sys/fs/cgroup/memory.max"}
	tests := []struct {
		name       string
		cg         Limit
		gomemlimit string
		want       Plan
	}{
		{"no limit", Limit{}, "", Plan{Reserve: reserve}},
		{"cgroup only: the runtime is told", cg, "",
			Plan{Limit: cg, GoLimit: (512 << 20) / 10 * goShareTenths, Reserve: reserve, Store: 448 << 20}},
		{"GOMEMLIMIT only: the whole process's limit, tuned down by the store outside the runtime", Limit{}, "256MiB",
			Plan{Limit: Limit{Bytes: 256 << 20, From: "GOMEMLIMIT"}, GoLimit: 256 << 20, Reserve: reserve, Store: 192 << 20}},
		{"GOMEMLIMIT below the cgroup's", cg, "300MiB",
			Plan{Limit: Limit{Bytes: 300 << 20, From: "GOMEMLIMIT"}, GoLimit: 300 << 20, Reserve: reserve, Store: 236 << 20}},
		{"GOMEMLIMIT above the cgroup's: the cgroup's counts, the runtime is told", cg, "1GiB",
			Plan{Limit: cg, GoLimit: (512 << 20) / 10 * goShareTenths, Reserve: reserve, Store: 448 << 20}},
		{"a limit below the reserve still gives the store a quarter", Limit{Bytes: 80 << 20, From: "x"}, "",
			Plan{Limit: Limit{Bytes: 80 << 20, From: "x"}, GoLimit: (80 << 20) / 10 * goShareTenths, Reserve: reserve, Store: 20 << 20}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := NewPlan(tt.cg, tt.gomemlimit, reserve)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("NewPlan = %+v\nwant       %+v", got, tt.want)
			}
			if s := got.String(); s == "" {
				t.Error("empty String")
			}
		})
	}
	if _, err := NewPlan(cg, "lots", reserve); err == nil {
		t.Error("NewPlan with a malformed GOMEMLIMIT: no error")
	}
}

func TestParseMountinfoLine(t *testing.T) {
	m, ok := parseMountinfoLine(`36 35 98:0 /docker/a\040b /sys/fs/cgroup/memory rw,noatime master:1 shared:2 - cgroup cgroup rw,memory`)
	if !ok || m.root != "/docker/a b" || m.mountPoint != "/sys/fs/cgroup/memory" || m.fstype != "cgroup" || m.superOpts != "rw,memory" {
		t.Errorf("parseMountinfoLine = %+v, %v", m, ok)
	}
	for _, bad := range []string{"", "36 35 98:0 / /x", "1 2 - cgroup2", `1 2 3 / /x\04 - cgroup2 c rw`} {
		if m, ok := parseMountinfoLine(bad); ok && m.mountPoint == "" {
			t.Errorf("parseMountinfoLine(%q) = %+v, ok", bad, m)
		}
	}
}

func FuzzParseMountinfoLine(f *testing.F) {
	f.Add(`36 35 98:0 /docker/a\040b /sys/fs/cgroup/memory rw,noatime master:1 - cgroup cgroup rw,memory`)
	f.Add(`1 2 3 / /x\04 - cgroup2 c rw`)
	f.Fuzz(func(t *testing.T, line string) {
		m, ok := parseMountinfoLine(line)
		if ok && m.fstype == "" {
			t.Errorf("ok without a file system type: %+v", m)
		}
	})
}

func TestGoLimitFor(t *testing.T) {
	const mib = 1 << 20
	tests := []struct {
		share, rss, goRes, floor, want int64
	}{
		{450 * mib, 100 * mib, 100 * mib, 24 * mib, 450 * mib}, // everything is the runtime's
		{450 * mib, 400 * mib, 80 * mib, 24 * mib, 130 * mib},  // 320 MiB of store mappings
		{450 * mib, 600 * mib, 60 * mib, 24 * mib, 24 * mib},   // the store took it all: the floor
		{450 * mib, 50 * mib, 80 * mib, 24 * mib, 450 * mib},   // mapped but not resident
	}
	for _, tt := range tests {
		if got := GoLimitFor(tt.share, tt.rss, tt.goRes, tt.floor); got != tt.want {
			t.Errorf("GoLimitFor(%d, %d, %d, %d) = %d MiB, want %d MiB", tt.share, tt.rss, tt.goRes, tt.floor, got/mib, tt.want/mib)
		}
	}
}

func TestTuneSetsTheLimit(t *testing.T) {
	old := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(old) })
	p := Plan{Limit: Limit{Bytes: 1 << 40, From: "test"}, GoLimit: 1 << 39, Reserve: 64 << 20, Store: 1 << 39}
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // one adjustment, then return
	p.Tune(ctx, time.Hour)
	got := debug.SetMemoryLimit(-1)
	if got > 1<<39 || got < 1<<38 {
		t.Errorf("Go soft limit %d after Tune; want at most the Go share %d less what lies outside the runtime", got, int64(1<<39))
	}
}
