package buildinfo

import (
	"runtime/debug"
	"strings"
	"testing"
)

func TestStampedWins(t *testing.T) {
	bi := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v0.0.0-x"},
		Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "ffff"}, {Key: "vcs.time", Value: "2026-01-01T00:00:00Z"}}}
	in := get(bi, "1.2.3", "0123456789abcdef0123", "2026-12-01T10:00:00Z")
	if in.Version != "1.2.3" || in.Commit != "0123456789abcdef0123" || in.Date != "2026-12-01T10:00:00Z" || in.DateIsCommitTime {
		t.Errorf("stamped build: %+v", in)
	}
	s := in.String()
	if !strings.HasPrefix(s, "1.2.3 (commit 0123456789ab, built 2026-12-01T10:00:00Z, go1.26.8 ") {
		t.Errorf("String() = %q", s)
	}
}

func TestFromGoBuildInfo(t *testing.T) {
	bi := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v0.0.0-20261201100000-0123456789ab+dirty"},
		Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "0123456789abcdef0123456789abcdef01234567"},
			{Key: "vcs.time", Value: "2026-12-01T10:00:00Z"},
			{Key: "vcs.modified", Value: "true"},
		}}
	in := get(bi, "", "", "")
	if in.Version != bi.Main.Version || in.Commit != "0123456789abcdef0123456789abcdef01234567+dirty" ||
		in.Date != "2026-12-01T10:00:00Z" || !in.DateIsCommitTime {
		t.Errorf("go build info: %+v", in)
	}
	if s := in.String(); !strings.Contains(s, "commit 0123456789ab+dirty, committed 2026-12-01T10:00:00Z") {
		t.Errorf("String() = %q", s)
	}
}

func TestNothingKnown(t *testing.T) {
	in := get(nil, "", "", "")
	if in.Version != "(devel)" || in.Commit != "unknown" || in.Date != "unknown" || in.GoVersion == "" {
		t.Errorf("no information: %+v", in)
	}
}

// TestGet runs against this test binary's own build information.
func TestGet(t *testing.T) {
	in := Get()
	if in.Version == "" || in.Commit == "" || in.Date == "" || !strings.HasPrefix(in.GoVersion, "go") {
		t.Errorf("Get() = %+v", in)
	}
}
