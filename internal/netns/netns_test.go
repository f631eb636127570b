//go:build linux

package netns_test

import (
	"errors"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/conntop/conntop/internal/labtest"
	"github.com/conntop/conntop/internal/netns"
)

func TestResolveErrors(t *testing.T) {
	tests := []struct {
		name, spec string
		notFound   bool
		msg        string
	}{
		{"missing name", "ct-netns-does-not-exist", true, `network namespace "ct-netns-does-not-exist" not found: /run/netns/ct-netns-does-not-exist`},
		{"missing path", "/nonexistent/ns", true, `network namespace "/nonexistent/ns" not found`},
		{"bad pid", "pid:abc", true, "PID must be a positive number"},
		{"zero pid", "pid:0", true, "PID must be a positive number"},
		{"dead pid", "pid:2147483646", true, "/proc/2147483646/ns/net"},
		{"not a namespace", "/etc/hostname", true, "not a namespace file"},
		{"dot", "..", true, "not a namespace name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := netns.Resolve(tt.spec)
			if err == nil {
				t.Fatalf("Resolve(%q) = nil error", tt.spec)
			}
			if errors.Is(err, netns.ErrNotFound) != tt.notFound {
				t.Errorf("errors.Is(%v, ErrNotFound) = %v, want %v", err, !tt.notFound, tt.notFound)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error %q lacks %q", err, tt.msg)
			}
			if err := netns.Do(tt.spec, func() error { t.Error("fn ran"); return nil }); err == nil {
				t.Error("Do succeeded")
			}
		})
	}
}

func TestResolveCurrent(t *testing.T) {
	p, err := netns.Resolve("")
	if err != nil || p != "" {
		t.Fatalf(`Resolve("") = %q, %v`, p, err)
	}
	ran := false
	if err := netns.Do("", func() error { ran = true; return nil }); err != nil || !ran {
		t.Fatalf(`Do("") ran=%v err=%v`, ran, err)
	}
	self := "pid:" + strconv.Itoa(os.Getpid())
	if p, err := netns.Resolve(self); err != nil || p != "/proc/"+strconv.Itoa(os.Getpid())+"/ns/net" {
		t.Fatalf("Resolve(%q) = %q, %v", self, p, err)
	}
}

// TestDoSpecs enters one namespace by name, path and pid and checks that
// sockets made inside stay there and the caller's namespace is unchanged.
func TestDoSpecs(t *testing.T) {
	labtest.RequireRoot(t)
	ns := labtest.NewNS(t, "netns")
	want, err := netns.Inode(ns.Path)
	if err != nil {
		t.Fatal(err)
	}
	home, err := netns.Current()
	if err != nil {
		t.Fatal(err)
	}
	// A process living in the namespace, for pid:PID.
	ln := ns.Listen(t, "tcp", "127.0.0.1:0")
	for _, spec := range []string{ns.Name, ns.Path} {
		t.Run(spec, func(t *testing.T) {
			var got uint64
			var c net.Conn
			err := netns.Do(spec, func() error {
				var err error
				if got, err = netns.Current(); err != nil {
					return err
				}
				c, err = net.Dial("tcp", ln.Addr().String())
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			c.Close()
			if got != want {
				t.Errorf("inside %q: namespace %d, want %d", spec, got, want)
			}
			if now, _ := netns.Current(); now != home {
				t.Errorf("caller moved to namespace %d", now)
			}
		})
	}
	// pid:PID of a process in the namespace.
	out, err := ns.Exec("sh", "-c", "sleep 5 >/dev/null 2>&1 & echo $!")
	if err != nil {
		t.Fatal(err, out)
	}
	pid := strings.TrimSpace(out)
	t.Cleanup(func() { labtest.Run(labtest.DefaultTimeout, nil, "kill", pid) })
	if got, err := netns.Inode("pid:" + pid); err != nil || got != want {
		t.Errorf("Inode(pid:%s) = %d, %v; want %d", pid, got, err, want)
	}
	errWant := errors.New("boom")
	if err := netns.Do(ns.Name, func() error { return errWant }); !errors.Is(err, errWant) {
		t.Errorf("Do returned %v, want fn's error", err)
	}
}
