package store

import (
	"runtime"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

// niceHere returns the nice value of the calling thread (it may run on a
// background worker: it reports an error, never stops the test).
func niceHere(t *testing.T) int {
	t.Helper()
	n, err := threadNice(unix.Gettid())
	if err != nil {
		t.Error(err)
		return -100
	}
	return n
}

// TestBackgroundReadsRunNiced: a view's background reads (a Background
// query, Changed) run on a thread backgroundNice nicer; a query somebody
// waits for runs at the caller's. (For a process at nice 9 or more the
// two differ less.)
func TestBackgroundReadsRunNiced(t *testing.T) {
	s, _ := buildRandom(t, 3000, 7)
	before := niceHere(t)
	nicer := min(before+backgroundNice, 19)
	var mu sync.RWMutex
	var got []int
	lk := probeLocker{&mu, func() { got = append(got, niceHere(t)) }}
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
// recovery can see it), with the worker's stack, not in the worker, where
// it would end the process; the read's background slot is given back (the
// store has one: a second read would wait for ever otherwise).
func TestBackgroundPanicReachesTheCaller(t *testing.T) {
	s := New(Options{Cores: 2})
	if cap(s.bg) != 1 {
		t.Fatalf("%d background slots, want 1", cap(s.bg))
	}
	func() {
		defer func() {
			bp, ok := recover().(backgroundPanic)
			if !ok || bp.value != "boom" || !strings.Contains(string(bp.stack), "TestBackgroundPanicReachesTheCaller") {
				t.Errorf("recovered %#v, want boom with the worker's stack", bp)
			}
		}()
		s.inBackground(func() { panic("boom") })
		t.Error("inBackground returned after a panic")
	}()
	ran := false
	s.inBackground(func() { ran = true })
	if !ran {
		t.Error("a read after the panic did not run")
	}
}

// TestBackgroundGoexitEndsTheCaller: runtime.Goexit in a background read
// (a test's FailNow) ends the goroutine that asked for it, which does not
// go on with a result that was never made.
func TestBackgroundGoexitEndsTheCaller(t *testing.T) {
	s := New(Options{})
	returned := make(chan bool, 1)
	go func() {
		defer func() { returned <- false }()
		s.inBackground(runtime.Goexit)
		returned <- true
	}()
	if <-returned {
		t.Error("inBackground returned after runtime.Goexit in the read")
	}
}
