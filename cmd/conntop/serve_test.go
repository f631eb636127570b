package main

import (
	"runtime"
	"testing"
)

// TestSpareScheduler: serve runs the scheduler with a P more than the
// cores its store reads with, gives the runtime its default back when
// done, and leaves a GOMAXPROCS the user set alone.
func TestSpareScheduler(t *testing.T) {
	runtime.SetDefaultGOMAXPROCS()
	def := runtime.GOMAXPROCS(0)
	defer runtime.SetDefaultGOMAXPROCS()
	runtime.GOMAXPROCS(3)
	cores, undo := spareScheduler("")
	if cores != 3 || runtime.GOMAXPROCS(0) != 4 {
		t.Errorf("store cores %d, scheduler Ps %d; want 3 and 4", cores, runtime.GOMAXPROCS(0))
	}
	undo()
	if got := runtime.GOMAXPROCS(0); got != def {
		t.Errorf("after undo: %d Ps, want the default %d", got, def)
	}

	runtime.GOMAXPROCS(3)
	cores, undo = spareScheduler("3")
	if cores != 3 || runtime.GOMAXPROCS(0) != 3 {
		t.Errorf("GOMAXPROCS=3 set: store cores %d, scheduler Ps %d; want 3 and 3", cores, runtime.GOMAXPROCS(0))
	}
	undo()
	if runtime.GOMAXPROCS(0) != 3 {
		t.Errorf("GOMAXPROCS=3 set: undo changed the Ps to %d", runtime.GOMAXPROCS(0))
	}
}
