package engine

import "github.com/conntop/conntop/internal/store"

// Viewer is one reader of the table (a TUI, an SSH session, an export): it
// owns its query state (filter, sort, the flows passing the filter, the
// first flows of its order; see store.View), so viewers do not disturb
// each other, and a viewer's query re-evaluates only what changed since
// its last one. Queries read under the engine's read lock, which long
// scans release between chunks so that the event pump is never held up
// for long. A Viewer is used by one goroutine at a time; Close releases
// what it holds (a viewer that is simply dropped is garbage collected).
type Viewer struct {
	e *Engine
	v *store.View
}

// NewViewer returns a viewer of e's table.
func (e *Engine) NewViewer() *Viewer { return &Viewer{e: e, v: store.NewView()} }

// Query answers q for this viewer (see store.Query and store.View).
func (v *Viewer) Query(q store.Query) store.Result {
	return v.v.Query(v.e.st, v.e.mu.RLocker(), q)
}

// Changed reports whether the answer to the viewer's last Query may have
// changed since (rows, their order, counts); it costs what re-evaluating
// the changed flows costs, which the next Query then saves. A viewer that
// has nothing else to redraw can skip the frame when it returns false.
func (v *Viewer) Changed() bool {
	return v.v.Changed(v.e.st, v.e.mu.RLocker())
}

// Close releases the viewer's query state. Using it afterwards is a bug.
func (v *Viewer) Close() { v.v.Close() }
