package tracker

import (
	"net/netip"
	"testing"

	"github.com/conntop/conntop/internal/flow"
)

func TestFTPSearch(t *testing.T) {
	v4 := func(a string) [16]byte { return netip.MustParseAddr(a).As16() }
	for _, tc := range []struct {
		name  string
		dir   int
		data  string
		found int
		addr  [16]byte
		port  uint16
	}{
		{"port", 0, "PORT 10,0,0,1,7,208\r\n", 1, v4("10.0.0.1"), 2000},
		{"port-lowercase", 0, "port 10,0,0,1,0,21\r\n", 1, v4("10.0.0.1"), 21},
		{"port-no-terminator", 0, "PORT 10,0,0,1,7,208", -1, v4("10.0.0.9"), 0},
		{"port-too-few", 0, "PORT 10,0,0,1,7\r\n", -1, v4("10.0.0.9"), 0},
		{"partial", 0, "PO", -1, v4("10.0.0.9"), 0},
		{"other-command", 0, "PASV\r\n", 0, v4("10.0.0.9"), 0},
		{"eprt-v4", 0, "EPRT |1|10.0.0.1|6275|\r\n", 1, v4("10.0.0.1"), 6275},
		{"eprt-v6-on-v4", 0, "EPRT |2|fd00::1|6275|\r\n", -1, v4("10.0.0.9"), 0},
		{"pasv-parens", 1, "227 Entering Passive Mode (10,0,0,2,4,1).\r\n", 1, v4("10.0.0.2"), 1025},
		{"pasv-bare", 1, "227 Entering Passive Mode 10,0,0,2,4,1\r\n", 1, v4("10.0.0.2"), 1025},
		{"pasv-no-digits", 1, "227 nothing here\r\n", -1, v4("10.0.0.9"), 0},
		{"epsv", 1, "229 Entering Extended Passive Mode (|||6446|)\r\n", 1, v4("10.0.0.9"), 6446},
		{"epsv-zero-port", 1, "229 Entering Extended Passive Mode (|||0|)\r\n", -1, v4("10.0.0.9"), 0},
		{"reply-other", 1, "230 Login successful.\r\n", 0, v4("10.0.0.9"), 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := ftpCmd{addr: v4("10.0.0.9"), v4: true}
			if got := ftpSearch([]byte(tc.data), tc.dir, &cmd); got != tc.found {
				t.Fatalf("found %d, want %d", got, tc.found)
			}
			if tc.found == 1 && (cmd.addr != tc.addr || cmd.port != tc.port) {
				t.Fatalf("cmd %v:%d, want %v:%d", netip.AddrFrom16(cmd.addr), cmd.port, netip.AddrFrom16(tc.addr), tc.port)
			}
		})
	}
	cmd := ftpCmd{addr: netip.MustParseAddr("fd00::9").As16()}
	if ftpSearch([]byte("EPRT |2|fd00::1|6275|\r\n"), 0, &cmd) != 1 ||
		cmd.addr != netip.MustParseAddr("fd00::1").As16() || cmd.port != 6275 {
		t.Fatalf("eprt v6: %v %d", netip.AddrFrom16(cmd.addr), cmd.port)
	}
}

// ftpSession is a passive FTP control session between cli:40000 and srv:21
// up to a 227 reply naming srv port 1025.
func ftpSession(pasvReply string) []step {
	c := func(seq, ack uint32, fl uint8, p string) []byte {
		return ip4(cli, srv, flow.ProtoTCP, tcpHdr(40000, 21, seq, ack, fl, 1000, nil, []byte(p)))
	}
	sv := func(seq, ack uint32, fl uint8, p string) []byte {
		return ip4(srv, cli, flow.ProtoTCP, tcpHdr(21, 40000, seq, ack, fl, 1000, nil, []byte(p)))
	}
	return []step{
		{data: c(1000, 0, fSYN, ""), want: CtNew},
		{data: sv(5000, 1001, fSYNACK, ""), want: CtEstablished, reply: true},
		{data: c(1001, 5001, fACK, ""), want: CtEstablished},
		{data: sv(5001, 1001, fPSHACK, "220 hi\r\n"), want: CtEstablished, reply: true},
		{data: c(1001, 5009, fPSHACK, "PASV\r\n"), want: CtEstablished},
		{data: sv(5009, 1007, fPSHACK, pasvReply), want: CtEstablished, reply: true},
	}
}

func TestFTPPassive(t *testing.T) {
	data := func(sport uint16) []byte {
		return ip4(cli, srv, flow.ProtoTCP, tcpHdr(sport, 1025, 1, 0, fSYN, 1000, nil, nil))
	}
	tr := New(DefaultConfig())
	run(t, tr, seq(ftpSession("227 Entering Passive Mode (10,0,0,2,4,1).\r\n"), []step{
		{data: data(40001), want: CtRelated},
		{data: ip4(srv, cli, flow.ProtoTCP, tcpHdr(1025, 40001, 9, 2, fSYNACK, 1000, nil, nil)),
			want: CtEstablished, reply: true},
		{data: data(40002), want: CtNew}, // the expectation is single use
	}))
	fl := tr.AppendFlows(nil, t0)
	if len(fl) != 3 {
		t.Fatalf("flows %+v", fl)
	}
	ctl, dat, other := fl[0], fl[1], fl[2]
	if ctl.Helper != "ftp" || ctl.Master != nil || ctl.State() != flow.StateEstablished {
		t.Fatalf("control flow %+v", ctl)
	}
	if dat.Status&flow.StatusExpected == 0 || dat.Master == nil || *dat.Master != ctl.Orig ||
		dat.State() != flow.StateRelated || dat.Helper != "" {
		t.Fatalf("data flow %+v", dat)
	}
	if other.Status&flow.StatusExpected != 0 || other.Master != nil {
		t.Fatalf("second data flow %+v", other)
	}
}

func TestFTPNotExpected(t *testing.T) {
	data := ip4(cli, srv, flow.ProtoTCP, tcpHdr(40001, 1025, 1, 0, fSYN, 1000, nil, nil))
	for _, tc := range []struct {
		name  string
		reply string
		cfg   func(*Config)
	}{
		// A different address than the server's: no expectation (loose off).
		{"other-address", "227 Entering Passive Mode (10,0,0,3,4,1).\r\n", nil},
		// Helper off.
		{"helper-off", "227 Entering Passive Mode (10,0,0,2,4,1).\r\n", func(c *Config) { c.FTPPorts = nil }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			if tc.cfg != nil {
				tc.cfg(&cfg)
			}
			run(t, New(cfg), seq(ftpSession(tc.reply), []step{{data: data, want: CtNew}}))
		})
	}
	// Loose: the expectation goes to the named address.
	cfg := DefaultConfig()
	cfg.FTPLoose = true
	run(t, New(cfg), seq(ftpSession("227 Entering Passive Mode (10,0,0,3,4,1).\r\n"), []step{
		{data: ip4(cli, "10.0.0.3", flow.ProtoTCP, tcpHdr(40001, 1025, 1, 0, fSYN, 1000, nil, nil)), want: CtRelated},
	}))
}

func TestFTPExpectationTimeout(t *testing.T) {
	tr := New(DefaultConfig())
	run(t, tr, ftpSession("227 Entering Passive Mode (10,0,0,2,4,1).\r\n"))
	data := ip4(cli, srv, flow.ProtoTCP, tcpHdr(40001, 1025, 1, 0, fSYN, 1000, nil, nil))
	if v := tr.Handle(t0.Add(301*s), &Packet{Data: data}); v.CtInfo != CtNew {
		t.Fatalf("after the expectation timed out: %+v", v)
	}
}
