//go:build linux

package compare

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/conntop/conntop/internal/engine"
	"github.com/conntop/conntop/internal/export"
	"github.com/conntop/conntop/internal/flow"
	"github.com/conntop/conntop/internal/labtest"
	"github.com/conntop/conntop/internal/store"
	"github.com/conntop/conntop/source"
	"github.com/conntop/conntop/source/capture"
	"github.com/conntop/conntop/source/conntrack"
)

// parseExpectLine parses one line of `conntrack -L expect` (conntrack-tools'
// default output): timeout, proto, the expected tuple, the mask, the
// master's tuple, flags, class, zone and helper. The master's protocol is
// not printed; it is taken to be the expectation's.
func parseExpectLine(line string) (flow.Expectation, error) {
	fs := strings.Fields(line)
	if len(fs) < 2 {
		return flow.Expectation{}, fmt.Errorf("short expectation line %q", line)
	}
	var e flow.Expectation
	n, err := strconv.ParseUint(fs[0], 10, 32)
	if err != nil {
		return e, fmt.Errorf("timeout in %q: %w", line, err)
	}
	e.Timeout = uint32(n)
	t := &e.Tuple
	for _, f := range fs[1:] {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			switch f {
			case "PERMANENT":
				e.Flags |= flow.ExpectPermanent
			case "INACTIVE":
				e.Flags |= flow.ExpectInactive
			case "USERSPACE":
				e.Flags |= flow.ExpectUserspace
			default:
				return e, fmt.Errorf("unknown word %q in %q", f, line)
			}
			continue
		}
		var err error
		switch k {
		case "proto":
			var p uint64
			p, err = strconv.ParseUint(v, 10, 8)
			e.Proto, e.MasterProto = uint8(p), uint8(p)
		case "src", "mask-src", "master-src":
			t = map[string]*flow.Tuple{"src": &e.Tuple, "mask-src": &e.Mask, "master-src": &e.Master}[k]
			t.Src, err = netip.ParseAddr(v)
		case "dst", "mask-dst", "master-dst":
			t.Dst, err = netip.ParseAddr(v)
		case "sport", "dport":
			var p uint64
			p, err = strconv.ParseUint(v, 10, 16)
			if k == "sport" {
				t.SrcPort = uint16(p)
			} else {
				t.DstPort = uint16(p)
			}
		case "class":
			var c uint64
			c, err = strconv.ParseUint(v, 10, 32)
			e.Class = uint32(c)
		case "zone":
			var z uint64
			z, err = strconv.ParseUint(v, 10, 16)
			e.Zone = uint16(z)
		case "helper":
			e.Helper = v
		default:
			return e, fmt.Errorf("unknown field %q in %q", k, line)
		}
		if err != nil {
			return e, fmt.Errorf("%s in %q: %w", k, line, err)
		}
	}
	if e.Tuple.Src.Is4() {
		e.Family = flow.FamilyIPv4
	} else {
		e.Family = flow.FamilyIPv6
	}
	return e, nil
}

// kernelExpectations lists `conntrack -L expect` in ns: the parsed
// expectations and the raw lines.
func kernelExpectations(t *testing.T, ns *labtest.NS) ([]flow.Expectation, []string) {
	t.Helper()
	out, err := ns.Output(10*time.Second, "conntrack", "-L", "expect")
	if err != nil {
		t.Fatal(err)
	}
	var es []flow.Expectation
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if l == "" {
			continue
		}
		e, err := parseExpectLine(l)
		if err != nil {
			t.Fatal(err)
		}
		es, lines = append(es, e), append(lines, l)
	}
	return es, lines
}

// labEngine is one source running in an engine, as the TUI and the
// snapshot command run it.
type labEngine struct {
	name string
	eng  *engine.Engine
}

func startLabEngine(t *testing.T, name string, src source.Source) *labEngine {
	t.Helper()
	eng := engine.New(src, engine.Options{Tick: 50 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- eng.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("%s engine: %v", name, err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("%s engine did not stop within 10s", name)
		}
	})
	waitFor(t, eng, 15*time.Second, name+" listed", func(s *store.Store) bool { return s.Synced() })
	return &labEngine{name: name, eng: eng}
}

// table returns the engine's current table statistics.
func (le *labEngine) table() flow.TableStats {
	var st flow.TableStats
	le.eng.View(func(s *store.Store) { st = s.Summary().Table })
	return st
}

// TestLabFTPExpectations: an FTP session in a namespace with the kernel's
// ftp helper, watched by the kernel source, by the capture source (the
// tracker fed by packets captured in that namespace) and by both together
// (`--source conntrack,capture`), each in an engine as conntop runs them.
// After PASV, and again after PORT, every one of them lists the pending
// expectation before the data connection opens, equal to `conntrack -L
// expect` in the namespace: tuples, mask, helper, class and flags, the
// timeout within a second, its `conntrack -L expect` line from
// export.AppendExpectText equal to the kernel's but for the timeout, and
// in the JSON snapshot's "expectations". Once the data connection opened,
// the expectation is gone everywhere and the data flow is RELATED with the
// control connection's tuple as master.
func TestLabFTPExpectations(t *testing.T) {
	labtest.RequireRoot(t)
	srv, cli := labtest.NewNS(t, "expsrv"), labtest.NewNS(t, "expcli")
	link := labtest.Connect(t, srv, cli, 61)
	srv.EnableConntrack(t, labtest.Conntrack{FTPHelper: true})
	srvIP, cliIP := netip.MustParseAddr(link.A4), netip.MustParseAddr(link.B4)

	kopts := conntrack.Options{NetNS: srv.Path, StatsInterval: 100 * time.Millisecond}
	copts := capture.Config{NetNS: srv.Path, Interfaces: []string{link.IfA}, StatsEvery: 100 * time.Millisecond}
	engines := []*labEngine{
		startLabEngine(t, "conntrack", conntrack.New(kopts)),
		startLabEngine(t, "capture", capture.New(copts)),
		startLabEngine(t, "conntrack,capture", New(conntrack.New(kopts), capture.New(copts),
			Options{Grace: 1500 * time.Millisecond, Tick: 50 * time.Millisecond})),
	}

	fc := cli.DialFTP(t, srv.ServeFTP(t, link.A4))
	ctl := flow.Tuple{Src: cliIP, Dst: srvIP, SrcPort: fc.LocalAddr().Port(), DstPort: 21}
	for _, mode := range []string{"PASV", "PORT"} {
		var announced netip.AddrPort
		var err error
		var wantTuple flow.Tuple
		if mode == "PASV" {
			announced, err = fc.Pasv()
			wantTuple = flow.Tuple{Src: cliIP, Dst: srvIP, DstPort: announced.Port()}
		} else {
			announced, err = fc.Port(link.B4)
			wantTuple = flow.Tuple{Src: srvIP, Dst: cliIP, DstPort: announced.Port()}
		}
		if err != nil {
			t.Fatal(err)
		}
		kern, lines := kernelExpectations(t, srv)
		if len(kern) != 1 || kern[0].Tuple != wantTuple || kern[0].Master != ctl || kern[0].Helper != "ftp" {
			t.Fatalf("%s: the kernel lists %v; want one ftp expectation of %v from master %v", mode, lines, wantTuple, ctl)
		}
		for _, le := range engines {
			waitFor(t, le.eng, 5*time.Second, le.name+" lists the "+mode+" expectation", func(s *store.Store) bool {
				es := s.Summary().Table.Expectations
				return len(es) == 1 && es[0].Tuple == wantTuple
			})
		}
		// Timeouts move: read the kernel's before and after the sources'.
		before, _ := kernelExpectations(t, srv)
		tables := make([]flow.TableStats, len(engines))
		for i, le := range engines {
			tables[i] = le.table()
		}
		after, _ := kernelExpectations(t, srv)
		if len(before) != 1 || len(after) != 1 {
			t.Fatalf("%s: the expectation left the kernel early: %v, %v", mode, before, after)
		}
		lo, hi := int(after[0].Timeout)-1, int(before[0].Timeout)+1
		want := kern[0]
		for i, le := range engines {
			st := tables[i]
			if !st.HasExpectations || len(st.Expectations) != 1 {
				t.Errorf("%s %s: expectations %v", le.name, mode, st.Expectations)
				continue
			}
			got := st.Expectations[0]
			if int(got.Timeout) < lo || int(got.Timeout) > hi {
				t.Errorf("%s %s: timeout %d s, kernel %d..%d s", le.name, mode, got.Timeout, before[0].Timeout, after[0].Timeout)
			}
			cmpGot, cmpWant := got, want
			cmpGot.ID, cmpGot.Timeout, cmpWant.Timeout = 0, 0, 0
			if cmpGot != cmpWant {
				t.Errorf("%s %s: expectation\n got  %+v\n want %+v", le.name, mode, cmpGot, cmpWant)
			}
			text := string(export.AppendExpectText(nil, &got))
			_, textRest, _ := strings.Cut(text, " ")
			_, kernRest, _ := strings.Cut(lines[0], " ")
			if textRest != kernRest {
				t.Errorf("%s %s: conntrack -L expect line\n got  %s\n want %s", le.name, mode, text, lines[0])
			}
			checkSnapshotJSON(t, le.name+" "+mode, &st, got)
		}

		// The data connection consumes the expectation.
		local, remote, err := fc.Retr()
		if err != nil {
			t.Fatal(err)
		}
		dataKey := flow.Key{Proto: flow.ProtoTCP, Orig: flow.Tuple{Src: cliIP, Dst: srvIP, SrcPort: local.Port(), DstPort: announced.Port()}}
		if mode == "PORT" {
			dataKey.Orig = flow.Tuple{Src: srvIP, Dst: cliIP, SrcPort: remote.Port(), DstPort: announced.Port()}
		}
		for _, le := range engines {
			waitFor(t, le.eng, 5*time.Second, le.name+": "+mode+" expectation gone, data flow RELATED", func(s *store.Store) bool {
				if len(s.Summary().Table.Expectations) != 0 {
					return false
				}
				for _, f := range s.Snapshot(nil) {
					if f.Key() == dataKey {
						return f.State() == flow.StateRelated && f.Master != nil && *f.Master == ctl
					}
				}
				return false
			})
		}
		if kern, lines := kernelExpectations(t, srv); len(kern) != 0 {
			t.Errorf("%s: the kernel still lists %v", mode, lines)
		}
	}
}

// checkSnapshotJSON writes a JSON snapshot with table statistics st and
// checks its "expectations" hold e.
func checkSnapshotJSON(t *testing.T, what string, st *flow.TableStats, e flow.Expectation) {
	t.Helper()
	var buf bytes.Buffer
	if err := export.WriteSnapshot(&buf, export.FormatJSON, &export.Snapshot{Time: time.Now(), Source: "lab", Table: *st}); err != nil {
		t.Fatal(err)
	}
	type tuple struct {
		Src, Dst     string
		Sport, Dport uint16
	}
	var doc struct {
		Expectations []struct {
			Proto   string
			Timeout uint32
			Tuple   tuple
			Mask    tuple
			Master  tuple
			Helper  string
		}
	}
	if err := json.Unmarshal(buf.Bytes(), &doc); err != nil {
		t.Fatalf("%s: snapshot JSON: %v", what, err)
	}
	if len(doc.Expectations) != 1 {
		t.Fatalf("%s: snapshot JSON has %d expectations:\n%s", what, len(doc.Expectations), buf.String())
	}
	x := doc.Expectations[0]
	if x.Proto != "tcp" || x.Timeout != e.Timeout || x.Helper != e.Helper ||
		x.Tuple != (tuple{e.Tuple.Src.String(), e.Tuple.Dst.String(), e.Tuple.SrcPort, e.Tuple.DstPort}) ||
		x.Mask != (tuple{e.Mask.Src.String(), e.Mask.Dst.String(), e.Mask.SrcPort, e.Mask.DstPort}) ||
		x.Master != (tuple{e.Master.Src.String(), e.Master.Dst.String(), e.Master.SrcPort, e.Master.DstPort}) {
		t.Errorf("%s: snapshot JSON expectation %+v; want %+v", what, x, e)
	}
}
