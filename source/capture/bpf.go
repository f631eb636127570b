package capture

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/conntop/conntop/internal/termsafe"
)

// Instruction is one classic BPF instruction (struct sock_filter).
type Instruction struct {
	Op     uint16
	Jt, Jf uint8
	K      uint32
}

// ErrNoTcpdump is returned (wrapped) by CompileFilter when tcpdump, which
// compiles pcap filter expressions for conntop, is not installed.
var ErrNoTcpdump = errors.New("a capture filter needs tcpdump to compile it (install the tcpdump package)")

// maxInstructions is the kernel's BPF_MAXINSNS.
const maxInstructions = 4096

// CompileFilter compiles a pcap filter expression for packets that start at
// their network header (what a SOCK_DGRAM packet socket's filter sees) by
// running `tcpdump -ddd` on a LINKTYPE_RAW capture header. An empty
// expression gives no program.
func CompileFilter(ctx context.Context, expr string) ([]Instruction, error) {
	if strings.TrimSpace(expr) == "" {
		return nil, nil
	}
	path, err := exec.LookPath("tcpdump")
	if err != nil {
		return nil, fmt.Errorf("compile capture filter %q: %w", termsafe.Escape(expr), ErrNoTcpdump)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	// A classic pcap file header: magic, version 2.4, snaplen, LINKTYPE_RAW.
	hdr := binary.LittleEndian.AppendUint32(nil, 0xa1b2c3d4)
	hdr = binary.LittleEndian.AppendUint16(hdr, 2)
	hdr = binary.LittleEndian.AppendUint16(hdr, 4)
	hdr = binary.LittleEndian.AppendUint64(hdr, 0)
	hdr = binary.LittleEndian.AppendUint32(hdr, 262144)
	hdr = binary.LittleEndian.AppendUint32(hdr, 101)
	cmd := exec.CommandContext(ctx, path, "-r", "-", "-ddd", "--", expr)
	cmd.Stdin = bytes.NewReader(hdr)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		msg := lastLine(stderr.String())
		if msg == "" {
			msg = err.Error()
		}
		return nil, fmt.Errorf("compile capture filter %q: %s", termsafe.Escape(expr), termsafe.Escape(msg))
	}
	prog, err := ParseDDD(stdout.String())
	if err != nil {
		return nil, fmt.Errorf("compile capture filter %q: %w", termsafe.Escape(expr), err)
	}
	return prog, nil
}

// lastLine returns the last non-empty line of s, at most 200 bytes.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	l := strings.TrimSpace(lines[len(lines)-1])
	if len(l) > 200 {
		l = l[:200]
	}
	return l
}

// ParseDDD parses the decimal program `tcpdump -ddd` prints: the number of
// instructions on the first line, then "code jt jf k" per line.
func ParseDDD(s string) ([]Instruction, error) {
	fields := strings.Fields(s)
	if len(fields) == 0 {
		return nil, errors.New("bpf program: empty")
	}
	n, err := strconv.Atoi(fields[0])
	if err != nil || n <= 0 || n > maxInstructions {
		return nil, fmt.Errorf("bpf program: bad instruction count %q", termsafe.Escape(fields[0]))
	}
	if len(fields) != 1+4*n {
		return nil, fmt.Errorf("bpf program: %d numbers for %d instructions", len(fields)-1, n)
	}
	prog := make([]Instruction, n)
	for i := range prog {
		f := fields[1+4*i : 5+4*i]
		op, e1 := strconv.ParseUint(f[0], 10, 16)
		jt, e2 := strconv.ParseUint(f[1], 10, 8)
		jf, e3 := strconv.ParseUint(f[2], 10, 8)
		k, e4 := strconv.ParseUint(f[3], 10, 32)
		if err := errors.Join(e1, e2, e3, e4); err != nil {
			return nil, fmt.Errorf("bpf program: instruction %d: %w", i, err)
		}
		prog[i] = Instruction{Op: uint16(op), Jt: uint8(jt), Jf: uint8(jf), K: uint32(k)}
	}
	return prog, nil
}
