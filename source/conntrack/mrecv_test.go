//go:build linux

package conntrack

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestMrecv reads datagrams of a unix datagram socket pair in batches:
// counts, contents, truncation of a datagram longer than its slot, the
// batch limit, and the receive timeout when nothing is queued.
func TestMrecv(t *testing.T) {
	const slots, size = 4, 64
	tests := []struct {
		name  string
		sizes []int // datagrams queued before the first recv
		want  []int // datagrams per recv (then a timeout)
	}{
		{"one", []int{10}, []int{1}},
		{"batch", []int{1, 20, 64, 3}, []int{4}},
		{"more than a batch", []int{5, 5, 5, 5, 5, 5}, []int{4, 2}},
		{"truncated", []int{100, 7}, []int{2}},
		{"empty datagram", []int{0, 8}, []int{2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer unix.Close(fds[0])
			defer unix.Close(fds[1])
			tv := unix.NsecToTimeval((50 * time.Millisecond).Nanoseconds())
			if err := unix.SetsockoptTimeval(fds[1], unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
				t.Fatal(err)
			}
			var sent [][]byte
			for i, n := range tt.sizes {
				b := bytes.Repeat([]byte{byte('a' + i)}, n)
				if err := unix.Send(fds[0], b, 0); err != nil {
					t.Fatal(err)
				}
				sent = append(sent, b)
			}
			m := newMrecv(fds[1], slots, size)
			next := 0
			for _, want := range tt.want {
				n, err := m.recv()
				if err != nil || n != want {
					t.Fatalf("recv = %d, %v; want %d", n, err, want)
				}
				for i := range n {
					b, trunc := m.datagram(i)
					s := sent[next]
					next++
					if wantTrunc := len(s) > size; trunc != wantTrunc {
						t.Errorf("datagram %d: truncated %v, want %v", next-1, trunc, wantTrunc)
					}
					if len(s) > size {
						s = s[:size]
					}
					if !bytes.Equal(b, s) {
						t.Errorf("datagram %d: %q, want %q", next-1, b, s)
					}
				}
			}
			start := time.Now()
			if n, err := m.recv(); n != 0 || !errors.Is(err, errTimeout) {
				t.Fatalf("recv on an empty queue = %d, %v; want errTimeout", n, err)
			}
			if d := time.Since(start); d < 40*time.Millisecond {
				t.Errorf("recv on an empty queue returned after %v, before the 50 ms timeout", d)
			}
		})
	}
}
