package main

import (
	"fmt"
	"os"
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

// storeOptions returns the store's options for a command that keeps reserve
// bytes for everything but its flows: the linger from the flags and a
// memory budget from the process's limit (its cgroup's and GOMEMLIMIT),
// whose Go soft limit it sets. countsOnly keeps only the counts (a
// metrics-only server). The caller runs plan.Tune. A limit that cannot be read is reported in err;
// the store then runs without a budget.
func (env *runEnv) storeOptions(reserve int64, countsOnly bool) (store.Options, memlimit.Plan, error) {
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
