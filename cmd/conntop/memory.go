package main

import (
	"fmt"
	"os"
	"runtime/debug"
	"time"

	"github.com/conntop/conntop/internal/memlimit"
	"github.com/conntop/conntop/internal/store"
)

// What each command needs besides the store's flows: the Go runtime, the
// event channel between source and engine, socket buffers, the UI, SSH
// sessions. Measured as the peak RSS with an empty table plus room for
// queries and frames (README, Performance; scripts/measure-bigtable.sh).
const (
	reserveTUI         = 48 << 20
	reserveServe       = 64 << 20 // plus reservePerSession for each allowed SSH session
	reservePerSession  = 4 << 20
	reserveMetricsOnly = 32 << 20
)

// memTuneInterval is how often the Go soft limit follows the memory the
// store holds outside the Go heap (memlimit.Plan.Tune).
const memTuneInterval = 250 * time.Millisecond

// gcPercent is the collector's GOGC for the commands that hold a table
// (the TUI, serve, explain) when the environment sets none. Their Go heap
// is small beside the store's flows, which live outside it, and grows
// slowly (a few MB a second with 16 SSH viewers at 4,194,304 flows, where
// a collection takes about 12 ms of CPU): collecting once it has grown by a
// quarter instead of doubled costs about 1 % of a core and keeps tens of
// MiB of the sessions' screens and the views' bitmaps off the process's
// peak (README, Performance).
const gcPercent = 25

// setGCPercent sets GOGC to gcPercent unless the environment sets it.
func setGCPercent() {
	if _, ok := os.LookupEnv("GOGC"); !ok {
		debug.SetGCPercent(gcPercent)
	}
}

// storeOptions returns the store's options for a command that keeps reserve
// bytes for everything but its flows: the linger from the flags and a
// memory budget from the process's limit (its cgroup's and GOMEMLIMIT),
// whose Go soft limit it sets, and GOGC (setGCPercent). countsOnly keeps
// only the counts (a metrics-only server). The caller runs plan.Tune. A
// limit that cannot be read is reported in err; the store then runs
// without a budget.
func (env *runEnv) storeOptions(reserve int64, countsOnly bool) (store.Options, memlimit.Plan, error) {
	setGCPercent()
	opts := store.Options{Linger: env.opts.linger, CountsOnly: countsOnly}
	cg, err := memlimit.Cgroup("/")
	if err != nil {
		err = fmt.Errorf("memory limit not known: %w", err)
	}
	plan, perr := memlimit.NewPlan(cg, os.Getenv("GOMEMLIMIT"), reserve)
	if perr != nil {
		// The Go runtime refuses to start with a malformed GOMEMLIMIT, so
		// this is not reached in practice; keep going without a budget.
		return opts, memlimit.Plan{}, perr
	}
	plan.Apply()
	opts.MemoryLimit = plan.Store
	return opts, plan, err
}
