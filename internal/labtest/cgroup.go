//go:build linux

package labtest

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// MemCgroup is a memory cgroup made for one test: processes put in it are
// bounded by its limit (the kernel's OOM killer acts inside it, never on
// the rest of the machine).
type MemCgroup struct {
	// Dir is the cgroup's directory.
	Dir string
	// V2 is true for a cgroup v2 group (memory.max), false for the v1
	// memory hierarchy (memory.limit_in_bytes).
	V2 bool
}

// NewMemCgroup creates a memory cgroup with limit bytes: under the cgroup
// v2 root when its memory controller is enabled for children, else in the
// cgroup v1 memory hierarchy. At cleanup the processes still in it are
// killed and the group is removed.
func NewMemCgroup(t testing.TB, limit int64) *MemCgroup {
	t.Helper()
	RequireRoot(t)
	name := UniqueName("mem")
	var cg *MemCgroup
	if b, err := os.ReadFile("/sys/fs/cgroup/cgroup.subtree_control"); err == nil && hasWord(string(b), "memory") {
		cg = &MemCgroup{Dir: filepath.Join("/sys/fs/cgroup", name), V2: true}
	} else if _, err := os.Stat("/sys/fs/cgroup/memory/memory.limit_in_bytes"); err == nil {
		cg = &MemCgroup{Dir: filepath.Join("/sys/fs/cgroup/memory", name)}
	} else {
		t.Fatal("no memory cgroup controller: neither cgroup v2 with memory in /sys/fs/cgroup/cgroup.subtree_control nor /sys/fs/cgroup/memory")
	}
	if err := os.Mkdir(cg.Dir, 0o755); err != nil {
		t.Fatalf("create cgroup: %v", err)
	}
	t.Cleanup(func() {
		if err := cg.remove(); err != nil {
			t.Errorf("remove cgroup %s: %v", cg.Dir, err)
		}
	})
	file, value := "memory.limit_in_bytes", strconv.FormatInt(limit, 10)
	if cg.V2 {
		file = "memory.max"
		// No swap either: the limit is the memory the test means.
		_ = os.WriteFile(filepath.Join(cg.Dir, "memory.swap.max"), []byte("0"), 0o644)
	}
	if err := os.WriteFile(filepath.Join(cg.Dir, file), []byte(value), 0o644); err != nil {
		t.Fatalf("set %s: %v", file, err)
	}
	return cg
}

func hasWord(s, w string) bool {
	for _, f := range strings.Fields(s) {
		if f == w {
			return true
		}
	}
	return false
}

// ProcsFile is the file a process id is written to to move it into the
// group (a shell does `echo $$ > FILE; exec program`).
func (cg *MemCgroup) ProcsFile() string { return filepath.Join(cg.Dir, "cgroup.procs") }

// PeakBytes returns the group's peak memory use (memory.peak or
// memory.max_usage_in_bytes), 0 when the kernel does not say.
func (cg *MemCgroup) PeakBytes() int64 {
	file := "memory.max_usage_in_bytes"
	if cg.V2 {
		file = "memory.peak"
	}
	b, err := os.ReadFile(filepath.Join(cg.Dir, file))
	if err != nil {
		return 0
	}
	n, _ := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	return n
}

// OOMKills returns how many processes the kernel killed in the group for
// want of memory (cgroup v2 memory.events oom_kill; v1 memory.oom_control
// oom_kill on newer kernels).
func (cg *MemCgroup) OOMKills() int {
	file := "memory.oom_control"
	if cg.V2 {
		file = "memory.events"
	}
	b, err := os.ReadFile(filepath.Join(cg.Dir, file))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "oom_kill "); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(v))
			return n
		}
	}
	return 0
}

// remove kills what is left in the group and removes it (bounded).
func (cg *MemCgroup) remove() error {
	var err error
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		b, rerr := os.ReadFile(cg.ProcsFile())
		if errors.Is(rerr, os.ErrNotExist) {
			return nil
		}
		for _, f := range strings.Fields(string(b)) {
			if pid, perr := strconv.Atoi(f); perr == nil && pid > 0 {
				if p, ferr := os.FindProcess(pid); ferr == nil {
					_ = p.Kill()
				}
			}
		}
		if err = os.Remove(cg.Dir); err == nil {
			return nil
		}
	}
	return fmt.Errorf("still busy after 10s: %w", err)
}

// Enter moves the calling process (all its threads) into the group until
// the test ends, then back into the group it was in: a test that builds a
// big table in process is bounded by the group's limit.
func (cg *MemCgroup) Enter(t testing.TB) {
	t.Helper()
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Fatalf("read /proc/self/cgroup: %v", err)
	}
	var back string
	for _, l := range strings.Split(string(b), "\n") {
		parts := strings.SplitN(l, ":", 3)
		if len(parts) != 3 {
			continue
		}
		switch {
		case cg.V2 && parts[0] == "0" && parts[1] == "":
			back = filepath.Join("/sys/fs/cgroup", parts[2])
		case !cg.V2 && hasWord(strings.ReplaceAll(parts[1], ",", " "), "memory"):
			back = filepath.Join("/sys/fs/cgroup/memory", parts[2])
		}
	}
	if back == "" {
		t.Fatal("the process's own memory cgroup is not known")
	}
	pid := []byte(strconv.Itoa(os.Getpid()))
	if err := os.WriteFile(cg.ProcsFile(), pid, 0o644); err != nil {
		t.Fatalf("enter cgroup %s: %v", cg.Dir, err)
	}
	t.Cleanup(func() {
		if err := os.WriteFile(filepath.Join(back, "cgroup.procs"), pid, 0o644); err != nil {
			t.Errorf("leave cgroup %s for %s: %v", cg.Dir, back, err)
		}
	})
}
