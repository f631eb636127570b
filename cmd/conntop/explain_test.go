//go:build linux

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/conntop/conntop/internal/explain"
	"github.com/conntop/conntop/internal/labtest"
)

// ctEntry is one line of `conntrack -L`.
type ctEntry struct {
	proto, state      string
	timeout           int
	unreplied, assure bool
	dst, dport        string
}

// conntrackL lists the kernel's table in ns.
func conntrackL(t *testing.T, ns *labtest.NS) []ctEntry {
	t.Helper()
	out, err := ns.Output(20*time.Second, "conntrack", "-L")
	if err != nil {
		t.Fatalf("conntrack -L: %v", err)
	}
	var es []ctEntry
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 4 || strings.HasPrefix(line, "conntrack v") {
			continue
		}
		e := ctEntry{proto: f[0]}
		e.timeout, err = strconv.Atoi(f[2])
		if err != nil {
			t.Fatalf("conntrack -L line %q: %v", line, err)
		}
		srcs := 0
		for _, tok := range f[3:] {
			k, v, kv := strings.Cut(tok, "=")
			switch {
			case tok == "[UNREPLIED]":
				e.unreplied = true
			case tok == "[ASSURED]":
				e.assure = true
			case !kv && !strings.HasPrefix(tok, "["):
				e.state = tok
			case k == "src":
				srcs++
			case k == "dst" && srcs == 1:
				e.dst = v
			case k == "dport" && srcs == 1:
				e.dport = v
			}
		}
		es = append(es, e)
	}
	return es
}

// sendUDPFlows sends one datagram from each of n sockets in ns, bound to
// source ports firstPort.., to addr: n unreplied UDP flows (nothing listens
// there). Fixed ports: random ephemeral ones could repeat a tuple.
func sendUDPFlows(t *testing.T, ns *labtest.NS, addr string, firstPort, n int) {
	t.Helper()
	err := ns.Do(func() error {
		ra, err := net.ResolveUDPAddr("udp4", addr)
		if err != nil {
			return err
		}
		for i := 0; i < n; i++ {
			c, err := net.DialUDP("udp4", &net.UDPAddr{Port: firstPort + i}, ra)
			if err != nil {
				return err
			}
			_, werr := c.Write([]byte("q"))
			c.Close()
			if werr != nil {
				return werr
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("send %d UDP flows to %s: %v", n, addr, err)
	}
}

// runExplain runs `conntop explain` in-process and decodes its JSON.
func runExplain(args ...string) (explain.Report, error) {
	var stdout, stderr bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var r explain.Report
	if code := run(ctx, append([]string{"explain", "--format", "json"}, args...), nil, &stdout, &stderr); code != 0 {
		return r, fmt.Errorf("conntop explain %v: exit %d: %s", args, code, stderr.String())
	}
	if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
		return r, fmt.Errorf("explain JSON: %w\n%s", err, stdout.String())
	}
	return r, nil
}

func mustExplain(t *testing.T, args ...string) explain.Report {
	t.Helper()
	r, err := runExplain(args...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func explainClass(r *explain.Report, proto, state string) *explain.Class {
	for i := range r.Classes {
		if r.Classes[i].Proto == proto && r.Classes[i].State == state {
			return &r.Classes[i]
		}
	}
	return nil
}

// TestExplainKernelLab creates a known mix in a namespace — 300 unreplied
// UDP flows to one port in two batches 5 s apart, 20 TCP connections left
// in TIME_WAIT and 3 ESTABLISHED — with per-namespace timeouts set, and
// checks explain's counts, top consumer and what-if against the kernel's
// own table (conntrack -L), then its new-entry rate.
func TestExplainKernelLab(t *testing.T) {
	labtest.RequireRoot(t)
	labtest.HoldConntrackMax(t, false)
	srv, cli := labtest.NewNS(t, "explain"), labtest.NewNS(t, "explain")
	link := labtest.Connect(t, srv, cli, 12)
	srv.EnableConntrack(t, labtest.Conntrack{})
	srv.Sysctl(t, "net.netfilter.nf_conntrack_udp_timeout", "300")
	srv.Sysctl(t, "net.netfilter.nf_conntrack_tcp_timeout_time_wait", "200")
	ln := srv.ServeEcho(t, "tcp", link.A4+":8080")
	udpTarget := link.A4 + ":5353"

	// Batch A, then the TCP part, then batch B 5 s after A.
	batchA := time.Now()
	sendUDPFlows(t, cli, udpTarget, 40000, 200)
	for i := 0; i < 3; i++ {
		if err := labtest.Echo(cli.DialTCP(t, ln.Addr().String()), "established"); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 20; i++ {
		c, err := cli.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		if err := labtest.Echo(c, "bye"); err != nil {
			t.Fatal(err)
		}
		c.Close()
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		tw := 0
		for _, e := range conntrackL(t, srv) {
			if e.state == "TIME_WAIT" {
				tw++
			}
		}
		if tw == 20 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of 20 connections reached TIME_WAIT within 10s", tw)
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(time.Until(batchA.Add(5 * time.Second)))
	sendUDPFlows(t, cli, udpTarget, 40200, 100)

	// Batch A has been idle at least 5 s, batch B under 2 s: a 3 s UDP
	// timeout would have freed exactly batch A.
	r := mustExplain(t, "--netns", srv.Path, "--duration", "0", "--what-if", "nf_conntrack_udp_timeout=3")
	kernel := conntrackL(t, srv)

	// Every count against the kernel's table.
	var udpUnreplied, udpIdle3, udpWithin60, tw, twAssured, est, toPort int
	for _, e := range kernel {
		switch {
		case e.proto == "udp" && e.unreplied:
			udpUnreplied++
			idle := 300 - e.timeout
			if idle >= 3 {
				udpIdle3++
			}
			if e.timeout > 60 { // and idle >= 3-60: always
				udpWithin60++
			}
		case e.proto == "tcp" && e.state == "TIME_WAIT":
			tw++
			if e.assure {
				twAssured++
			}
		case e.proto == "tcp" && e.state == "ESTABLISHED":
			est++
		}
		if e.proto == "udp" && e.dport == "5353" {
			toPort++
		}
	}
	if udpUnreplied != 300 || tw != 20 || est != 3 || len(kernel) != 323 {
		t.Fatalf("the kernel's table is not the mix the test made: udp unreplied %d, TIME_WAIT %d, ESTABLISHED %d, total %d",
			udpUnreplied, tw, est, len(kernel))
	}
	if r.Table.Count != uint64(len(kernel)) || r.Table.Flows != len(kernel) {
		t.Errorf("table count %d, flows %d; conntrack -L lists %d", r.Table.Count, r.Table.Flows, len(kernel))
	}
	if want := uint64(labtest.ConntrackMax(t)); r.Table.Max != want {
		t.Errorf("max %d, want %d", r.Table.Max, want)
	}
	if r.Table.Buckets == 0 {
		t.Error("buckets not read")
	}
	checks := []struct {
		proto, state       string
		flows, assured     int
		sysctl             string
		value              uint32
		wantExactWhatIfFor uint32
	}{
		{"udp", "UNREPLIED", udpUnreplied, 0, explain.SysUDP, 300, 3},
		{"tcp", "TIME_WAIT", tw, twAssured, explain.SysTCPTimeWait, 200, 0},
		{"tcp", "ESTABLISHED", est, est, explain.SysTCPEstablished, 432000, 0},
	}
	for _, c := range checks {
		cl := explainClass(&r, c.proto, c.state)
		if cl == nil {
			t.Errorf("no class %s %s in %+v", c.proto, c.state, r.Classes)
			continue
		}
		if cl.Flows != c.flows || cl.Assured != c.assured || cl.Evictable != c.flows-c.assured {
			t.Errorf("%s %s: flows %d assured %d evictable %d, kernel: %d, %d", c.proto, c.state, cl.Flows, cl.Assured,
				cl.Evictable, c.flows, c.assured)
		}
		if cl.Sysctl != c.sysctl || cl.Value == nil || *cl.Value != c.value {
			t.Errorf("%s %s: sysctl %s = %v, want %s = %d (set in the namespace)", c.proto, c.state, cl.Sysctl, cl.Value, c.sysctl, c.value)
		}
	}
	if len(r.Classes) != 3 {
		t.Errorf("classes %+v, want 3", r.Classes)
	}

	// The top consumer.
	if len(r.Top.Dport) == 0 || r.Top.Dport[0].Key != "udp/5353" || r.Top.Dport[0].Flows != toPort {
		t.Errorf("top dport %+v, want udp/5353 with %d flows", r.Top.Dport, toPort)
	}
	if len(r.Top.DstHost) == 0 || r.Top.DstHost[0].Key != link.A4 || r.Top.DstHost[0].Flows != len(kernel) {
		t.Errorf("top dst host %+v, want %s with %d", r.Top.DstHost, link.A4, len(kernel))
	}
	if len(r.Top.SrcNet) == 0 || r.Top.SrcNet[0].Key != "10.99.12.0/24" {
		t.Errorf("top src net %+v", r.Top.SrcNet)
	}

	// The what-if, exact from a fresh listing.
	udp := explainClass(&r, "udp", "UNREPLIED")
	if udp == nil {
		t.Fatal("no UDP class")
	}
	if !udp.Exact {
		t.Errorf("UDP what-if should be exact from a listing: %s", udp.Basis)
	}
	var w3 *explain.WhatIf
	for i := range udp.WhatIf {
		if udp.WhatIf[i].Value == 3 {
			w3 = &udp.WhatIf[i]
		}
	}
	if w3 == nil {
		t.Fatalf("no what-if at 3 s: %+v", udp.WhatIf)
	}
	if w3.FreedNow != 200 || w3.FreedNow != udpIdle3 {
		t.Errorf("udp_timeout 3 s frees %d now; batch A is 200 and conntrack -L says %d", w3.FreedNow, udpIdle3)
	}
	if w3.FreedWithin60s != udpWithin60 {
		t.Errorf("udp_timeout 3 s frees %d within 60 s; conntrack -L says %d", w3.FreedWithin60s, udpWithin60)
	}

	// The advice: the dominating port's notrack rule and the UDP timeout,
	// both run in the namespace.
	kinds := map[string]explain.Advice{}
	for _, a := range r.Advice {
		kinds[a.Kind] = a
	}
	prefix := "ip netns exec " + srv.Name + " "
	if a, ok := kinds["notrack"]; !ok || a.Frees != toPort || !strings.HasPrefix(a.Command, prefix+"nft '") ||
		!strings.Contains(a.Command, "udp dport 5353 notrack") {
		t.Errorf("notrack advice %+v", a)
	}
	if a, ok := kinds["timeout"]; !ok || a.Command != prefix+"sysctl -w net.netfilter.nf_conntrack_udp_timeout=30" {
		t.Errorf("timeout advice %+v", a)
	}

	// The rate: watch 5 s while 50 new flows arrive at another port.
	type result struct {
		r   explain.Report
		err error
	}
	done := make(chan result, 1)
	go func() {
		r, err := runExplain("--netns", srv.Path, "--duration", "5s")
		done <- result{r, err}
	}()
	time.Sleep(2 * time.Second)
	sendUDPFlows(t, cli, link.A4+":5454", 40300, 50)
	res := <-done
	if res.err != nil {
		t.Fatal(res.err)
	}
	r2 := res.r
	var fresh *explain.Consumer
	for i := range r2.Top.Dport {
		if r2.Top.Dport[i].Key == "udp/5454" {
			fresh = &r2.Top.Dport[i]
		}
	}
	if fresh == nil || fresh.Flows != 50 || fresh.NewPerS == nil {
		t.Fatalf("udp/5454 consumer %+v in %+v", fresh, r2.Top.Dport)
	}
	if got := *fresh.NewPerS * r2.RateWindow; got < 49.5 || got > 50.5 {
		t.Errorf("udp/5454: %v new/s over %v s = %.2f entries, want 50", *fresh.NewPerS, r2.RateWindow, got)
	}
	if r2.RateWindow < 4.9 || r2.RateWindow > 6 {
		t.Errorf("rate window %v s, want about 5", r2.RateWindow)
	}
	if old := r2.Top.Dport[0]; old.Key != "udp/5353" || old.NewPerS == nil || *old.NewPerS != 0 {
		t.Errorf("listed flows must not count as new: %+v", old)
	}
	t.Logf("explain lab: %d entries checked against conntrack -L", len(kernel))
}
