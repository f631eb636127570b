//go:build linux

// Package ctsysctl reads the settings that govern a conntrack table — the
// net.netfilter.nf_conntrack_* sysctls of a network namespace and the
// kernel's per-entry memory size from /proc/slabinfo — for explain. It only
// reads: conntop never changes a setting.
package ctsysctl

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/conntop/conntop/internal/explain"
	"github.com/conntop/conntop/internal/netns"
)

// sysDir is where the netfilter sysctls live; /proc/sys/net shows the
// namespace of the thread that opens it.
const sysDir = "/proc/sys/net/netfilter/"

// slabinfo lists the kernel's slab caches (readable by root only).
const slabinfo = "/proc/slabinfo"

// Read returns the settings of the namespace spec names (--netns NAME,
// PATH or pid:PID; "" for conntop's own). Sysctls that cannot be read are
// left out and named in Settings.Problems; an error means the namespace
// itself could not be entered.
func Read(spec string) (explain.Settings, error) {
	s := explain.Settings{Timeouts: map[string]uint32{}}
	path, err := netns.Resolve(spec)
	if err != nil {
		return s, fmt.Errorf("read conntrack settings: %w", err)
	}
	values := map[string]uint64{}
	var problems []string
	names := []string{explain.SysMax, explain.SysBuckets}
	for _, t := range explain.TimeoutSysctls {
		names = append(names, t.Name)
	}
	err = netns.DoPath(path, func() error {
		for _, n := range names {
			v, err := readUint(sysDir + n)
			if err != nil {
				problems = append(problems, fmt.Sprintf("%s: %v", n, err))
				continue
			}
			values[n] = v
		}
		return nil
	})
	if err != nil {
		return s, fmt.Errorf("read conntrack settings: %w", err)
	}
	for _, t := range explain.TimeoutSysctls {
		if v, ok := values[t.Name]; ok {
			s.Timeouts[t.Name] = uint32(min(v, 1<<32-1))
		}
	}
	s.Max, s.Buckets = values[explain.SysMax], values[explain.SysBuckets]
	s.Problems = problems
	s.EntryBytes, s.EntryBytesFrom = explain.DefaultEntryBytes, "estimate"
	if b, err := os.ReadFile(slabinfo); err == nil {
		if n, ok := SlabObjectSize(b, "nf_conntrack"); ok {
			s.EntryBytes, s.EntryBytesFrom = n, slabinfo
		}
	} else {
		s.Problems = append(s.Problems, fmt.Sprintf("entry size: %s not readable (%v): %d bytes assumed",
			slabinfo, err, explain.DefaultEntryBytes))
	}
	s.CommandPrefix = CommandPrefix(spec)
	return s, nil
}

// readUint reads a sysctl holding one unsigned number.
func readUint(path string) (uint64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("not a number: %q", bytes.TrimSpace(b))
	}
	return v, nil
}

// SlabObjectSize finds a cache's object size in /proc/slabinfo's text
// ("name active_objs num_objs objsize objperslab pagesperslab : ...").
func SlabObjectSize(slab []byte, cache string) (int, bool) {
	sc := bufio.NewScanner(bytes.NewReader(slab))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || f[0] != cache {
			continue
		}
		n, err := strconv.Atoi(f[3])
		if err != nil || n <= 0 {
			return 0, false
		}
		return n, true
	}
	return 0, false
}

// CommandPrefix is what runs a per-namespace command (a timeout sysctl, an
// nft rule) in the namespace spec names: "ip netns exec NAME " for a named
// one, nsenter for a path or a process; "" for conntop's own namespace.
func CommandPrefix(spec string) string {
	switch {
	case spec == "":
		return ""
	case strings.HasPrefix(spec, "pid:"):
		return "nsenter --net=/proc/" + quote(strings.TrimPrefix(spec, "pid:")) + "/ns/net "
	case strings.HasPrefix(spec, "/run/netns/") && !strings.Contains(strings.TrimPrefix(spec, "/run/netns/"), "/"):
		return "ip netns exec " + quote(strings.TrimPrefix(spec, "/run/netns/")) + " "
	case strings.Contains(spec, "/"):
		return "nsenter --net=" + quote(spec) + " "
	}
	return "ip netns exec " + quote(spec) + " "
}

// quote makes s one shell word.
func quote(s string) string {
	safe := s != ""
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:=+@%", r)) {
			safe = false
			break
		}
	}
	if safe {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
