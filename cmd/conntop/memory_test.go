package main

import (
	"os"
	"runtime/debug"
	"testing"
)

// TestGCPercent checks that a command holding a table (storeOptions) sets
// GOGC to gcPercent, and leaves a GOGC from the environment alone.
func TestGCPercent(t *testing.T) {
	prev, prevLimit := debug.SetGCPercent(100), debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetGCPercent(prev); debug.SetMemoryLimit(prevLimit) })
	t.Setenv("GOGC", "") // restored at the end
	os.Unsetenv("GOGC")
	t.Setenv("GOMEMLIMIT", "")
	env := &runEnv{opts: &options{}}
	if _, _, err := env.storeOptions(reserveTUI, false); err != nil {
		t.Logf("storeOptions: %v", err)
	}
	if got := debug.SetGCPercent(100); got != gcPercent {
		t.Errorf("GOGC unset: the collector runs at %d, want %d", got, gcPercent)
	}
	t.Setenv("GOGC", "100")
	if _, _, err := env.storeOptions(reserveTUI, false); err != nil {
		t.Logf("storeOptions: %v", err)
	}
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("GOGC=100 in the environment: the collector runs at %d", got)
	}
}
