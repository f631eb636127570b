package store

import (
	"runtime"
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

// inBackground runs fn, a view's background read (a periodic refresh
// that nobody waits for), on one of the store's background workers and
// waits for it. At most bg's capacity run at once (a core less than the
// store reads with, see newBackgroundSlots). A worker's goroutine is
// locked to an OS thread that runs at backgroundNice, and it is never
// unlocked: the thread ends with the goroutine, so no other goroutine ever
// runs at that priority, and raising a thread's priority back (which
// needs CAP_SYS_NICE) is never needed. A panic in fn is raised again in
// the caller.
func (s *Store) inBackground(fn func()) {
	s.bg.acquire()
	defer s.bg.release()
	done := make(chan any, 1)
	job := func() {
		defer func() { done <- recover() }()
		fn()
	}
	select {
	case s.idle <- job: // a worker was waiting for work
	default:
		go s.backgroundWorker(job)
	}
	if p := <-done; p != nil {
		panic(p)
	}
}

// backgroundWorker runs job and then the jobs inBackground hands it, until
// none comes for backgroundIdle.
func (s *Store) backgroundWorker(job func()) {
	runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
	// If the kernel refuses, the reads run at the process's priority, as
	// foreground reads do: slower for others, not wrong. (Go starts new
	// threads from a thread of its own, never from a locked one: the nice
	// value set here is not inherited.)
	tid := unix.Gettid()
	if p, err := unix.Getpriority(unix.PRIO_PROCESS, tid); err == nil {
		// The system call answers 20 - nice.
		_ = unix.Setpriority(unix.PRIO_PROCESS, tid, min(20-p+backgroundNice, 19))
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
