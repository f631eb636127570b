//go:build linux

package labtest

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"
)

// FTPPayload is what the lab FTP server sends over every data connection.
const FTPPayload = "conntop lab ftp data\r\n"

// ftpSessionLimit bounds each lab FTP connection's life and command count.
const (
	ftpSessionLimit = 30 * time.Second
	ftpMaxCommands  = 64
)

// ServeFTP runs a minimal IPv4 FTP server in the namespace on ip:21, for
// tests of the kernel's FTP conntrack helper: USER, PASS, PASV, PORT, RETR
// (sends FTPPayload over the data connection, passive or active), QUIT.
// Each connection lives at most 30 s and 64 commands; the server stops at
// cleanup. It returns the control address.
func (ns *NS) ServeFTP(t testing.TB, ip string) string {
	t.Helper()
	ln := ns.Listen(t, "tcp4", net.JoinHostPort(ip, "21"))
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go ns.ftpConn(ip, c)
		}
	}()
	return ln.Addr().String()
}

// ftpConn serves one control connection.
func (ns *NS) ftpConn(ip string, c net.Conn) {
	defer func() { _ = c.Close() }()
	_ = c.SetDeadline(time.Now().Add(ftpSessionLimit))
	r := bufio.NewReader(io.LimitReader(c, 64<<10))
	say := func(s string) { _, _ = io.WriteString(c, s+"\r\n") }
	var pasv net.Listener
	var active string
	defer func() {
		if pasv != nil {
			_ = pasv.Close()
		}
	}()
	say("220 conntop lab")
	for range ftpMaxCommands {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		cmd, arg, _ := strings.Cut(strings.TrimSpace(line), " ")
		switch strings.ToUpper(cmd) {
		case "USER":
			say("331 password please")
		case "PASS":
			say("230 logged in")
		case "PASV":
			if pasv != nil {
				_ = pasv.Close()
			}
			if err := ns.Do(func() error {
				var err error
				pasv, err = net.Listen("tcp4", ip+":0")
				return err
			}); err != nil {
				pasv = nil
				say("425 " + err.Error())
				continue
			}
			p := pasv.Addr().(*net.TCPAddr).Port
			say(fmt.Sprintf("227 Entering Passive Mode (%s,%d,%d).", strings.ReplaceAll(ip, ".", ","), p>>8, p&255))
		case "PORT":
			ap, err := parseHostPort(arg)
			if err != nil {
				say("501 " + err.Error())
				continue
			}
			active = ap.String()
			say("200 PORT ok")
		case "RETR":
			var dc net.Conn
			var err error
			switch {
			case pasv != nil:
				_ = pasv.(*net.TCPListener).SetDeadline(time.Now().Add(5 * time.Second))
				dc, err = pasv.Accept()
				_ = pasv.Close()
				pasv = nil
			case active != "":
				dc, err = ns.Dial("tcp4", active)
				active = ""
			default:
				say("425 use PASV or PORT first")
				continue
			}
			if err != nil {
				say("425 " + err.Error())
				continue
			}
			say("150 sending")
			_ = dc.SetDeadline(time.Now().Add(5 * time.Second))
			_, _ = io.WriteString(dc, FTPPayload)
			_ = dc.Close()
			say("226 done")
		case "QUIT":
			say("221 bye")
			return
		default:
			say("502 not implemented")
		}
	}
}

// parseHostPort parses the "h1,h2,h3,h4,p1,p2" of PORT and 227 replies.
func parseHostPort(s string) (netip.AddrPort, error) {
	f := strings.Split(strings.TrimSpace(s), ",")
	if len(f) != 6 {
		return netip.AddrPort{}, fmt.Errorf("bad host-port %q", s)
	}
	var n [6]byte
	for i, x := range f {
		v, err := strconv.ParseUint(x, 10, 8)
		if err != nil {
			return netip.AddrPort{}, fmt.Errorf("bad host-port %q: %w", s, err)
		}
		n[i] = byte(v)
	}
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte(n[:4])), uint16(n[4])<<8|uint16(n[5])), nil
}

// FTPClient is the client side of a lab FTP session, driven step by step
// so that a test can look at the conntrack table between the steps.
type FTPClient struct {
	ns *NS
	c  net.Conn
	r  *bufio.Reader
	// The data connection the next Retr reads: a passive one to dial,
	// or an active one's listener.
	passive netip.AddrPort
	active  net.Listener
}

// DialFTP connects from the namespace to an FTP server at addr and logs
// in. The session lasts at most 30 s; it is closed at cleanup.
func (ns *NS) DialFTP(t testing.TB, addr string) *FTPClient {
	t.Helper()
	c, err := ns.Dial("tcp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetDeadline(time.Now().Add(ftpSessionLimit))
	fc := &FTPClient{ns: ns, c: c, r: bufio.NewReader(io.LimitReader(c, 64<<10))}
	t.Cleanup(func() { fc.Close() })
	if _, err := fc.reply("220"); err != nil {
		t.Fatal(err)
	}
	for _, s := range []struct{ cmd, code string }{{"USER anonymous", "331"}, {"PASS lab@", "230"}} {
		if _, err := fc.Cmd(s.cmd, s.code); err != nil {
			t.Fatal(err)
		}
	}
	return fc
}

// LocalAddr is the client's end of the control connection.
func (fc *FTPClient) LocalAddr() netip.AddrPort {
	return fc.c.LocalAddr().(*net.TCPAddr).AddrPort()
}

// reply reads one reply line and checks its code.
func (fc *FTPClient) reply(code string) (string, error) {
	line, err := fc.r.ReadString('\n')
	if err != nil {
		return line, fmt.Errorf("ftp: want %s: %w", code, err)
	}
	if !strings.HasPrefix(line, code) {
		return line, fmt.Errorf("ftp: want %s, got %q", code, line)
	}
	return line, nil
}

// Cmd sends a command and reads a reply that must have code.
func (fc *FTPClient) Cmd(cmd, code string) (string, error) {
	if _, err := io.WriteString(fc.c, cmd+"\r\n"); err != nil {
		return "", fmt.Errorf("ftp %s: %w", cmd, err)
	}
	return fc.reply(code)
}

// Pasv asks for passive mode and returns the data address the server
// announced: the kernel's helper now expects a connection to it.
func (fc *FTPClient) Pasv() (netip.AddrPort, error) {
	line, err := fc.Cmd("PASV", "227")
	if err != nil {
		return netip.AddrPort{}, err
	}
	open, end := strings.IndexByte(line, '('), strings.IndexByte(line, ')')
	if open < 0 || end < open {
		return netip.AddrPort{}, fmt.Errorf("ftp: 227 without address: %q", line)
	}
	ap, err := parseHostPort(line[open+1 : end])
	if err != nil {
		return ap, err
	}
	fc.passive = ap
	return ap, nil
}

// Port listens in the client's namespace on ip (port 0: any) and announces
// that address with PORT: the helper now expects the server's connection
// to it. It returns the announced address.
func (fc *FTPClient) Port(ip string) (netip.AddrPort, error) {
	var ln net.Listener
	if err := fc.ns.Do(func() error {
		var err error
		ln, err = net.Listen("tcp4", ip+":0")
		return err
	}); err != nil {
		return netip.AddrPort{}, fmt.Errorf("ftp PORT: %w", err)
	}
	ap := ln.Addr().(*net.TCPAddr).AddrPort()
	a := ap.Addr().As4()
	if _, err := fc.Cmd(fmt.Sprintf("PORT %d,%d,%d,%d,%d,%d", a[0], a[1], a[2], a[3], ap.Port()>>8, ap.Port()&255), "200"); err != nil {
		_ = ln.Close()
		return netip.AddrPort{}, err
	}
	fc.active = ln
	return ap, nil
}

// Retr retrieves a file over the data connection announced by the last
// Pasv or Port, checks that FTPPayload arrived, and returns the data
// connection's addresses as the client saw them (its own, the server's).
func (fc *FTPClient) Retr() (local, remote netip.AddrPort, err error) {
	if _, err := io.WriteString(fc.c, "RETR file\r\n"); err != nil {
		return local, remote, fmt.Errorf("ftp RETR: %w", err)
	}
	var dc net.Conn
	switch {
	case fc.active != nil:
		_ = fc.active.(*net.TCPListener).SetDeadline(time.Now().Add(5 * time.Second))
		dc, err = fc.active.Accept()
		_ = fc.active.Close()
		fc.active = nil
	case fc.passive.IsValid():
		dc, err = fc.ns.Dial("tcp4", fc.passive.String())
		fc.passive = netip.AddrPort{}
	default:
		return local, remote, fmt.Errorf("ftp RETR: no PASV or PORT before")
	}
	if err != nil {
		return local, remote, fmt.Errorf("ftp data connection: %w", err)
	}
	defer func() { _ = dc.Close() }()
	local, remote = dc.LocalAddr().(*net.TCPAddr).AddrPort(), dc.RemoteAddr().(*net.TCPAddr).AddrPort()
	if _, err := fc.reply("150"); err != nil {
		return local, remote, err
	}
	_ = dc.SetDeadline(time.Now().Add(5 * time.Second))
	b, err := io.ReadAll(io.LimitReader(dc, 4096))
	if err != nil || string(b) != FTPPayload {
		return local, remote, fmt.Errorf("ftp data: got %q, %v", b, err)
	}
	if _, err := fc.reply("226"); err != nil {
		return local, remote, err
	}
	return local, remote, nil
}

// Close ends the session (QUIT, best effort) and closes the connections.
func (fc *FTPClient) Close() {
	if fc.active != nil {
		_ = fc.active.Close()
		fc.active = nil
	}
	if fc.c != nil {
		_ = fc.c.SetDeadline(time.Now().Add(time.Second))
		_, _ = fc.Cmd("QUIT", "221")
		_ = fc.c.Close()
		fc.c = nil
	}
}
