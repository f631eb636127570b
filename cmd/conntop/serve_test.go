package main

import (
	"runtime"
	"testing"
)

// TestSpareScheduler: serve runs the scheduler with a P more than the
// cores its store reads with, gives the runtime its default back when
// done, and leaves a GOMAXPROCS the user set alone.
func TestSpareScheduler(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0)) // as go test set it (-cpu, GOMAXPROCS)
	runtime.SetDefaultGOMAXPROCS()
	def := runtime.GOMAXPROCS(0)
	runtime.GOMAXPROCS(3)
	cores, undo := spareScheduler("")
	if cores != 3 || runtime.GOMAXPROCS(0) != 4 {
		t.Errorf("store cores %d, scheduler Ps %d; want 3 and 4", cores, runtime.GOMAXPROCS(0))
	}
	undo()
	if got := runtime.GOMAXPROCS(0); got != def {
		t.Errorf("after undo: %d Ps, want the default %d", got, def)
	}

	for _, env := range []string{"0", "abc"} { // values the runtime ignores
		runtime.GOMAXPROCS(3)
		cores, undo = spareScheduler(env)
		if cores != 3 || runtime.GOMAXPROCS(0) != 4 {
			t.Errorf("GOMAXPROCS=%s: store cores %d, scheduler Ps %d; want 3 and 4", env, cores, runtime.GOMAXPROCS(0))
		}
		undo()
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
