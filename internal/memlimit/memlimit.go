// Package memlimit finds the memory limit conntop runs under and divides
// it. The limit is the smallest of the process's own cgroup limits (cgroup
// v2 memory.max, cgroup v1 memory.limit_in_bytes, on the process's cgroup
// and its ancestors as far as they are visible) and GOMEMLIMIT. A Plan
// splits it into a soft limit for the Go runtime (runtime/debug
// SetMemoryLimit, so that the collector works harder before the kernel's
// OOM killer steps in) and a budget for the flow store
// (store.Options.MemoryLimit): the limit minus a reserve for the runtime,
// the UI, viewers and buffers.
package memlimit

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path"
	"runtime/debug"
	"strconv"
	"strings"
)

// Limit is a memory limit and where it was found.
type Limit struct {
	// Bytes is the limit; 0 means none.
	Bytes int64
	// From names where it came from: "cgroup v2 /sys/fs/cgroup/x/memory.max",
	// "cgroup v1 …/memory.limit_in_bytes" or "GOMEMLIMIT".
	From string
}

// unlimited is where a cgroup v1 limit means "none": the kernel reports
// PAGE_COUNTER_MAX pages rounded down to a page (9223372036854771712 on
// 64-bit), and anything this large is no limit in practice.
const unlimited = int64(1) << 60

// Cgroup returns the smallest memory limit on the calling process's cgroup
// and its visible ancestors, cgroup v2 and v1 alike. root is the file
// system root the proc and cgroup files are read under ("/" normally; a
// directory of test files in tests). No limit, or no cgroup file system, is
// a zero Limit and no error; an unreadable or malformed file is an error.
func Cgroup(root string) (Limit, error) {
	cgroups, err := readProcCgroup(path.Join(root, "proc/self/cgroup"))
	if err != nil {
		return Limit{}, err
	}
	mounts, err := readMountinfo(path.Join(root, "proc/self/mountinfo"))
	if err != nil {
		return Limit{}, err
	}
	var best Limit
	for _, m := range mounts {
		var cg, file, version string
		switch {
		case m.fstype == "cgroup2":
			cg, file, version = cgroups.v2, "memory.max", "cgroup v2"
		case m.fstype == "cgroup" && hasOption(m.superOpts, "memory"):
			cg, file, version = cgroups.v1Memory, "memory.limit_in_bytes", "cgroup v1"
		default:
			continue
		}
		if cg == "" {
			continue
		}
		dir, ok := cgroupDir(m, cg)
		if !ok {
			continue
		}
		l, err := smallestUp(root, m.mountPoint, dir, file, version)
		if err != nil {
			return Limit{}, err
		}
		if l.Bytes > 0 && (best.Bytes == 0 || l.Bytes < best.Bytes) {
			best = l
		}
	}
	return best, nil
}

// smallestUp reads file in dir and every parent up to the mount point and
// returns the smallest limit found.
func smallestUp(root, mountPoint, dir, file, version string) (Limit, error) {
	var best Limit
	for {
		p := path.Join(dir, file)
		b, err := os.ReadFile(path.Join(root, p))
		switch {
		case errors.Is(err, fs.ErrNotExist):
			// The root cgroup has no limit file, nor has a v2 cgroup whose
			// parent does not enable the memory controller.
		case err != nil:
			return Limit{}, fmt.Errorf("read %s: %w", p, err)
		default:
			n, err := parseLimit(string(b))
			if err != nil {
				return Limit{}, fmt.Errorf("read %s: %w", p, err)
			}
			if n > 0 && (best.Bytes == 0 || n < best.Bytes) {
				best = Limit{Bytes: n, From: version + " " + p}
			}
		}
		if dir == mountPoint || dir == "/" || dir == "." {
			return best, nil
		}
		dir = path.Dir(dir)
	}
}

// parseLimit parses a cgroup limit file: a byte count, or "max" (v2) for
// none; a v1 "unlimited" (a huge count) is none too.
func parseLimit(s string) (int64, error) {
	s = strings.TrimSpace(s)
	if s == "max" {
		return 0, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		if u, uerr := strconv.ParseUint(s, 10, 64); uerr == nil && u > math.MaxInt64 {
			return 0, nil
		}
		return 0, fmt.Errorf("limit %q is not a number of bytes", s)
	}
	if n < 0 || n >= unlimited {
		return 0, nil
	}
	return n, nil
}

// procCgroups is the process's cgroup paths from /proc/self/cgroup.
type procCgroups struct {
	v2       string // the "0::" line's path
	v1Memory string // the path of the hierarchy with the memory controller
}

func readProcCgroup(p string) (procCgroups, error) {
	var pc procCgroups
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return pc, nil // not Linux, or no cgroups
	}
	if err != nil {
		return pc, fmt.Errorf("read process cgroup: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// hierarchy-ID:controller-list:cgroup-path
		id, rest, ok1 := strings.Cut(sc.Text(), ":")
		ctrls, cgPath, ok2 := strings.Cut(rest, ":")
		if !ok1 || !ok2 {
			continue
		}
		switch {
		case id == "0" && ctrls == "":
			pc.v2 = cgPath
		case hasOption(ctrls, "memory"):
			pc.v1Memory = cgPath
		}
	}
	if err := sc.Err(); err != nil {
		return pc, fmt.Errorf("read process cgroup: %w", err)
	}
	return pc, nil
}

// mount is one line of /proc/self/mountinfo.
type mount struct {
	root, mountPoint  string
	fstype, superOpts string
}

func readMountinfo(p string) ([]mount, error) {
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read mounts: %w", err)
	}
	defer f.Close()
	var out []mount
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		if m, ok := parseMountinfoLine(sc.Text()); ok && (m.fstype == "cgroup" || m.fstype == "cgroup2") {
			out = append(out, m)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read mounts: %w", err)
	}
	return out, nil
}

// parseMountinfoLine parses "36 35 98:0 /root /mnt rw,noatime master:1 -
// cgroup2 cgroup2 rw,nsdelegate" (proc(5)).
func parseMountinfoLine(line string) (mount, bool) {
	pre, post, ok := strings.Cut(line, " - ")
	if !ok {
		return mount{}, false
	}
	f := strings.Fields(pre)
	g := strings.Fields(post)
	if len(f) < 5 || len(g) < 3 {
		return mount{}, false
	}
	return mount{root: unescapeOctal(f[3]), mountPoint: unescapeOctal(f[4]), fstype: g[0], superOpts: g[2]}, true
}

// unescapeOctal undoes mountinfo's \ooo escapes (space, tab, newline,
// backslash).
func unescapeOctal(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// cgroupDir maps the process's cgroup path onto the mount: the mount shows
// the hierarchy from m.root down, so the path must lie under it.
func cgroupDir(m mount, cg string) (string, bool) {
	rel := cg
	if m.root != "/" {
		r, ok := strings.CutPrefix(cg, m.root)
		if !ok || (r != "" && r[0] != '/') {
			return "", false
		}
		rel = r
	}
	return path.Join(m.mountPoint, rel), true
}

func hasOption(list, want string) bool {
	for _, o := range strings.Split(list, ",") {
		if o == want {
			return true
		}
	}
	return false
}

// ParseGOMEMLIMIT parses a GOMEMLIMIT value as the Go runtime does: a byte
// count with an optional B, KiB, MiB, GiB or TiB suffix, or "off". Empty
// and "off" are no limit (0).
func ParseGOMEMLIMIT(s string) (int64, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "off" {
		return 0, nil
	}
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40}, {"B", 1}} {
		if v, ok := strings.CutSuffix(s, u.suffix); ok {
			s, mult = v, u.mult
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || n > math.MaxInt64/mult {
		return 0, fmt.Errorf("GOMEMLIMIT=%q: want a number of bytes with an optional B, KiB, MiB, GiB or TiB suffix, or off", s)
	}
	if n*mult == math.MaxInt64 {
		return 0, nil // the runtime's own "no limit"
	}
	return n * mult, nil
}

// Plan is how conntop divides its memory limit.
type Plan struct {
	// Limit is the process's limit (the smaller of the cgroup's and
	// GOMEMLIMIT); zero Bytes means none, and then nothing is limited.
	Limit Limit
	// GoLimit is the soft limit for the Go runtime that Apply sets (0:
	// no limit, leave the runtime alone): 90% of a cgroup's limit, or
	// GOMEMLIMIT when that is the limit. Tune then lowers it by what the
	// process holds outside the runtime.
	GoLimit int64
	// Reserve is what is kept back for everything but the store's flows.
	Reserve int64
	// Store is the store's budget (store.Options.MemoryLimit; 0 none).
	Store int64
}

// goShareTenths is the part (in tenths) of a cgroup limit given to the Go runtime as its
// soft limit when GOMEMLIMIT is not set: the rest is room for memory the
// runtime does not count (thread stacks outside its heap, the kernel's
// socket buffers charged to the cgroup) and for the collector to catch up.
const goShareTenths = 9

// minStoreShare bounds the store's budget from below when the reserve
// would take (almost) all of a small limit: the store still gets a
// quarter, and gives up history and lingering early.
const minStoreShare = 4

// NewPlan divides the limit: cgroup is the cgroup's limit (Cgroup),
// gomemlimit the GOMEMLIMIT environment variable's value, reserve the
// memory the rest of the program needs (measured for each command).
func NewPlan(cgroup Limit, gomemlimit string, reserve int64) (Plan, error) {
	gml, err := ParseGOMEMLIMIT(gomemlimit)
	if err != nil {
		return Plan{}, err
	}
	p := Plan{Limit: cgroup, Reserve: reserve}
	if gml > 0 && (p.Limit.Bytes == 0 || gml < p.Limit.Bytes) {
		p.Limit = Limit{Bytes: gml, From: "GOMEMLIMIT"}
	}
	if p.Limit.Bytes == 0 {
		return p, nil
	}
	if p.Limit.From == "GOMEMLIMIT" {
		// conntop takes GOMEMLIMIT as the whole process's limit; the
		// runtime counts only its own memory, so Tune lowers its soft
		// limit by what the store holds outside it.
		p.GoLimit = gml
	} else {
		// The runtime knows nothing of the cgroup's limit (or has a
		// GOMEMLIMIT above it): tell it.
		p.GoLimit = p.Limit.Bytes / 10 * goShareTenths
	}
	p.Store = max(p.Limit.Bytes-reserve, p.Limit.Bytes/minStoreShare)
	return p, nil
}

// Apply sets the Go runtime's soft memory limit to p.GoLimit (when
// non-zero).
func (p Plan) Apply() {
	if p.GoLimit > 0 {
		debug.SetMemoryLimit(p.GoLimit)
	}
}

// String describes the plan in one line, for logs.
func (p Plan) String() string {
	if p.Limit.Bytes == 0 {
		return "no memory limit"
	}
	s := fmt.Sprintf("memory limit %s (%s): store budget %s, reserve %s", MiB(p.Limit.Bytes), p.Limit.From, MiB(p.Store), MiB(p.Reserve))
	if p.GoLimit > 0 {
		s += ", Go soft limit " + MiB(p.GoLimit)
	}
	return s
}

// MiB formats a byte count in MiB, one decimal.
func MiB(n int64) string {
	return strconv.FormatFloat(float64(n)/(1<<20), 'f', 1, 64) + " MiB"
}
