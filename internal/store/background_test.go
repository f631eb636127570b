package store

import (
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

// threadNice returns the nice value of the calling thread.
func threadNice(t *testing.T) int {
	t.Helper()
	// The raw system call answers 20 - nice (1 to 40).
	p, err := unix.Getpriority(unix.PRIO_PROCESS, unix.Gettid())
	if err != nil {
		t.Fatalf("getpriority: %v", err)
	}
	return 20 - p
}

// TestBackgroundReadsRunNiced: a view's background reads (a Background
// query, Changed) run on a thread backgroundNice nicer; a query somebody
// waits for runs on the caller's thread, and the caller's priority is as
// it was. (For a process at nice 9 or more the two differ less.)
func TestBackgroundReadsRunNiced(t *testing.T) {
	s, _ := buildRandom(t, 3000, 7)
	before := threadNice(t)
	nicer := min(before+backgroundNice, 19)
	var mu sync.RWMutex
	var got []int
	lk := probeLocker{&mu, func() { got = append(got, threadNice(t)) }}
	v := NewView()
	for _, step := range []struct {
		name string
		read func()
		want int
	}{
		{"background query", func() { v.Query(s, lk, Query{Sort: SortBytes, Limit: 20, Background: true}) }, nicer},
		{"Changed", func() { v.Changed(s, lk) }, nicer},
		{"foreground query", func() { v.Query(s, lk, Query{Sort: SortSrc, Limit: 20}) }, before},
	} {
		got = got[:0]
		step.read()
		if len(got) == 0 {
			t.Fatalf("%s: the lock was not taken", step.name)
		}
		for _, n := range got {
			if n != step.want {
				t.Errorf("%s: read the store at nice %d, want %d", step.name, n, step.want)
			}
		}
	}
	if now := threadNice(t); now != before {
		t.Errorf("the caller's thread is at nice %d after background reads, was %d", now, before)
	}
}

// probeLocker is a read lock that calls probe each time it is taken.
type probeLocker struct {
	mu    *sync.RWMutex
	probe func()
}

func (l probeLocker) Lock()   { l.mu.RLock(); l.probe() }
func (l probeLocker) Unlock() { l.mu.RUnlock() }

// TestBackgroundPanicReachesTheCaller: a panic in a background read is
// raised again in the goroutine that asked for it (where a session's
// recovery can see it), not in the worker, where it would end the process.
func TestBackgroundPanicReachesTheCaller(t *testing.T) {
	s := New(Options{})
	defer func() {
		if p := recover(); p != "boom" {
			t.Errorf("recovered %v, want boom", p)
		}
	}()
	s.inBackground(func() { panic("boom") })
	t.Error("inBackground returned after a panic")
}
