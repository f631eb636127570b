package store

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"time"

	"golang.org/x/sys/unix"
)

// backgroundNice is how much nicer than the rest of the process the
// threads that run views' background reads are. Linux shares a busy core
// by weight: a thread 10 nicer gets about a tenth of what the others do
// and gives way to one that wakes (the event pump, a scrape, the scraper
// itself, a key press), so that viewers' periodic refreshes take what is
// left over.
const backgroundNice = 10

// backgroundIdle is how long a background worker waits for its next read
// before it ends (and its thread with it).
const backgroundIdle = 2 * time.Second

// backgroundPanic is what a panic in a background read is raised again
// as, in the caller: the value and the worker's stack where it happened.
type backgroundPanic struct {
	value any
	stack []byte
}

func (p backgroundPanic) Error() string {
	return fmt.Sprintf("%v\n\nin a background read of the store:\n%s", p.value, p.stack)
}

// outcome is how a background read ended.
type outcome struct {
	finished bool             // fn returned
	panicked *backgroundPanic // fn panicked
}

// inBackground runs fn, a view's background read (a periodic refresh
// that nobody waits for), on one of the store's background workers and
// waits for it. At most bg's capacity run at once (a core less than the
// store reads with, see newBackgroundSlots); a worker that has just
// finished may not be waiting yet, and then another one starts (the
// spare ends after backgroundIdle). A worker's goroutine is locked to an
// OS thread that runs backgroundNice nicer than the process, and it is
// never unlocked: the thread ends with the goroutine, so no other
// goroutine ever runs at that priority, and raising a thread's priority
// back (which needs CAP_SYS_NICE) is never needed. Work of the whole
// runtime that fn's allocations start (a GC assist, the start or end of a
// GC cycle) runs niced too. A panic in fn is raised again in the caller
// (as a backgroundPanic, with the worker's stack), and runtime.Goexit in
// fn (a test's t.FailNow) ends the caller too.
func (s *Store) inBackground(fn func()) {
	s.bg.acquire()
	defer s.bg.release()
	done := make(chan outcome, 1)
	job := func() {
		var out outcome
		defer func() {
			if !out.finished {
				if p := recover(); p != nil {
					out.panicked = &backgroundPanic{value: p, stack: debug.Stack()}
				}
			}
			done <- out
		}()
		fn()
		out.finished = true
	}
	select {
	case s.idle <- job: // a worker was waiting for work
	default:
		go s.backgroundWorker(job)
	}
	switch out := <-done; {
	case out.panicked != nil:
		panic(*out.panicked)
	case !out.finished:
		runtime.Goexit()
	}
}

// backgroundWorker runs job and then the jobs inBackground hands it, until
// none comes for backgroundIdle.
func (s *Store) backgroundWorker(job func()) {
	runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
	tid := unix.Gettid()
	if tid == unix.Getpid() {
		// The process's main thread, whose nice value ps and top show
		// for the whole process: not niced. Go never ends it: with this
		// goroutine still locked to it when it ends, the runtime parks
		// it for good (once in the process's life), and the worker
		// started here runs on another thread.
		go s.backgroundWorker(job)
		return
	}
	// If the kernel refuses, the reads run at the process's priority, as
	// foreground reads do: slower for others, not wrong. (Go starts new
	// threads from a thread of its own, never from a locked one: the nice
	// value set here is not inherited.)
	if nice, err := threadNice(tid); err == nil {
		_ = unix.Setpriority(unix.PRIO_PROCESS, tid, min(nice+backgroundNice, 19))
	}
	idle := time.NewTimer(backgroundIdle)
	defer idle.Stop()
	for {
		job()
		idle.Reset(backgroundIdle)
		select {
		case job = <-s.idle:
		case <-idle.C:
			return
		}
	}
}

// threadNice returns the nice value of thread tid.
func threadNice(tid int) (int, error) {
	p, err := unix.Getpriority(unix.PRIO_PROCESS, tid)
	if err != nil {
		return 0, fmt.Errorf("thread %d's priority: %w", tid, err)
	}
	return 20 - p, nil // the system call answers 20 - nice (1 to 40)
}
