// Package buildinfo says which conntop this is: the version, commit and
// build date a release build stamps in with the linker, or what the Go
// toolchain recorded in the binary (module version, VCS revision and commit
// time) for a plain `go build` or `go install`. `conntop --version` and the
// conntop_build_info metric both read it, so they always agree.
package buildinfo

import (
	"runtime"
	"runtime/debug"
	"strings"
)

// Set by the release build (.goreleaser.yaml, Containerfile) with
//
//	-ldflags "-X github.com/conntop/conntop/internal/buildinfo.version=1.2.3
//	          -X github.com/conntop/conntop/internal/buildinfo.commit=<full hash>
//	          -X github.com/conntop/conntop/internal/buildinfo.date=<RFC 3339>"
//
// The linker can only set package-level string variables; nothing else
// writes them.
var (
	version string
	commit  string
	date    string
)

// Info describes one build of conntop.
type Info struct {
	// Version is the release version ("1.2.3", "1.2.4-SNAPSHOT-abc1234"),
	// else the module version Go recorded ("v0.0.0-20261201...-abcdef",
	// "(devel)").
	Version string
	// Commit is the full VCS revision, with "+dirty" when the tree had
	// uncommitted changes; "unknown" when not recorded.
	Commit string
	// Date is when the release was built (RFC 3339); for a build without
	// release stamping it is the commit's time (see DateIsCommitTime);
	// "unknown" when neither is known.
	Date string
	// DateIsCommitTime reports that Date is the commit time recorded by the
	// Go toolchain, not a build date.
	DateIsCommitTime bool
	// GoVersion is the Go toolchain that built the binary.
	GoVersion string
	// Platform is GOOS/GOARCH.
	Platform string
}

// Get returns the build's information.
func Get() Info {
	bi, _ := debug.ReadBuildInfo()
	return get(bi, version, commit, date)
}

// get combines the linker-stamped values with the Go build information (bi
// may be nil).
func get(bi *debug.BuildInfo, ver, rev, built string) Info {
	in := Info{Version: ver, Commit: rev, Date: built, GoVersion: runtime.Version(),
		Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if bi != nil {
		if bi.GoVersion != "" {
			in.GoVersion = bi.GoVersion
		}
		var vcsRev, vcsTime string
		dirty := false
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				vcsRev = s.Value
			case "vcs.time":
				vcsTime = s.Value
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
		if in.Version == "" {
			in.Version = bi.Main.Version
		}
		if in.Commit == "" && vcsRev != "" {
			in.Commit = vcsRev
			if dirty {
				in.Commit += "+dirty"
			}
		}
		if in.Date == "" && vcsTime != "" {
			in.Date, in.DateIsCommitTime = vcsTime, true
		}
	}
	if in.Version == "" {
		in.Version = "(devel)"
	}
	if in.Commit == "" {
		in.Commit = "unknown"
	}
	if in.Date == "" {
		in.Date = "unknown"
	}
	return in
}

// ShortCommit is the commit's first 12 hex digits (and "+dirty" if so).
func (in Info) ShortCommit() string {
	rev, dirty := strings.CutSuffix(in.Commit, "+dirty")
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if dirty {
		rev += "+dirty"
	}
	return rev
}

// String is the one line `conntop --version` prints after "conntop ":
// "1.2.3 (commit 0123456789ab, built 2026-12-01T10:00:00Z, go1.26.8 linux/amd64)".
func (in Info) String() string {
	when := "built"
	if in.DateIsCommitTime {
		when = "committed"
	}
	return in.Version + " (commit " + in.ShortCommit() + ", " + when + " " + in.Date + ", " +
		in.GoVersion + " " + in.Platform + ")"
}
