//go:build linux

package conntrack

import (
	"bytes"
	"os"
	"strconv"
)

// procFiles are the namespace's procfs files, opened inside the namespace
// (they stay bound to it) and re-read from offset 0 on every poll. A file
// that could not be opened is nil.
type procFiles struct {
	acct *os.File // /proc/sys/net/netfilter/nf_conntrack_acct
	stat *os.File // /proc/thread-self/net/stat/nf_conntrack
	buf  []byte
}

// openProcFiles opens the files in the calling thread's namespace.
func openProcFiles() *procFiles {
	p := &procFiles{buf: make([]byte, 64<<10)}
	p.acct, _ = os.Open("/proc/sys/net/netfilter/nf_conntrack_acct")
	p.stat, _ = os.Open("/proc/thread-self/net/stat/nf_conntrack")
	return p
}

// Close closes the files.
func (p *procFiles) Close() {
	if p == nil {
		return
	}
	if p.acct != nil {
		p.acct.Close()
	}
	if p.stat != nil {
		p.stat.Close()
	}
}

// read re-reads f from the start into p.buf.
func (p *procFiles) read(f *os.File) ([]byte, bool) {
	if f == nil {
		return nil, false
	}
	n, err := f.ReadAt(p.buf, 0)
	if n == 0 && err != nil {
		return nil, false
	}
	return p.buf[:n], true
}

// accounting reports nf_conntrack_acct of the namespace.
func (p *procFiles) accounting() bool {
	b, ok := p.read(p.acct)
	return ok && len(bytes.TrimSpace(b)) > 0 && bytes.TrimSpace(b)[0] != '0'
}

// procStat are the columns of /proc/net/stat/nf_conntrack conntop uses,
// summed over CPUs.
type procStat struct {
	clashResolve, chainTooLong uint64
	hasClash, hasChain         bool
}

// parseProcStat sums the clashres and chainlength columns of the kernel's
// per-CPU statistics file (a header line of names, then one hex row per CPU).
func parseProcStat(b []byte) procStat {
	var ps procStat
	lines := bytes.Split(b, []byte("\n"))
	if len(lines) < 2 {
		return ps
	}
	clash, chain := -1, -1
	for i, name := range bytes.Fields(lines[0]) {
		switch string(name) {
		case "clashres":
			clash = i
		case "chainlength":
			chain = i
		}
	}
	ps.hasClash, ps.hasChain = clash >= 0, chain >= 0
	for _, l := range lines[1:] {
		fs := bytes.Fields(l)
		if clash >= 0 && clash < len(fs) {
			v, _ := strconv.ParseUint(string(fs[clash]), 16, 64)
			ps.clashResolve += v
		}
		if chain >= 0 && chain < len(fs) {
			v, _ := strconv.ParseUint(string(fs[chain]), 16, 64)
			ps.chainTooLong += v
		}
	}
	return ps
}
