package serve

import "sync"

// The terminal cells all sessions together may draw. Each cell of a
// session's terminal costs about 234 bytes in Bubble Tea's renderer
// (two ultraviolet cell buffers of ~117 bytes a cell; measured: 37.5 MB
// for a 1000×160 session), and those buffers never shrink while the
// session lives: a resize to fewer columns or rows keeps the memory, a
// resize to a new shape adds lines. So a session is charged for its box:
// the most columns times the most rows it was ever given. A session's
// terminal may change within its box freely; the box grows only while the
// server-wide budget has room, and never past MaxCells. A session always
// gets at least MinColumns×MinRows (or the smaller size it asked for), even
// with the budget spent: 16 such sessions cost 7 MB.
const (
	// DefaultCellBudget is Config.CellBudget's default: two sessions of
	// MaxCells, about 75 MB of renderer buffers (at most twice that if a
	// client grows its terminal in steps that make Go over-allocate each
	// line).
	DefaultCellBudget = 2 * MaxCells
	// MinColumns and MinRows are the size every session may have.
	MinColumns = 80
	MinRows    = 24
)

// cellBudget is the server-wide pool of terminal cells.
type cellBudget struct {
	mu    sync.Mutex
	total int
	used  int
}

// termBox is one session channel's share: the box it was given (the
// largest columns and rows) and the cells charged for it.
type termBox struct {
	w, h uint32
}

func (b termBox) cells() int { return int(b.w) * int(b.h) }

// fit returns the size a channel holding box gets when it asks for
// cols×rows (already within MaxColumns, MaxRows and MaxCells), and its new
// box. The box grows toward the size asked as far as the budget allows:
// rows are given up first (down to MinRows, or what was asked), then
// columns; it never shrinks. limited says the budget cut the size.
func (bu *cellBudget) fit(box termBox, cols, rows uint32) (w, h uint32, nb termBox, limited bool) {
	bu.mu.Lock()
	defer bu.mu.Unlock()
	allowed := min(MaxCells, box.cells()+max(bu.total-bu.used, 0))
	floorH := min(rows, MinRows)
	allowed = max(allowed, int(min(cols, MinColumns)*floorH))
	nb = termBox{w: max(box.w, cols), h: max(box.h, rows)}
	if nb.cells() > allowed {
		nb.h = max(box.h, min(nb.h, max(uint32(allowed)/nb.w, floorH)))
	}
	if nb.cells() > allowed {
		nb.w = max(box.w, uint32(allowed)/nb.h)
	}
	bu.used += nb.cells() - box.cells()
	w, h = min(cols, nb.w), min(rows, nb.h)
	return w, h, nb, w < cols || h < rows
}

// release gives a channel's box back.
func (bu *cellBudget) release(box termBox) {
	bu.mu.Lock()
	bu.used -= box.cells()
	bu.mu.Unlock()
}

// inUse returns the cells charged to live boxes.
func (bu *cellBudget) inUse() int {
	bu.mu.Lock()
	defer bu.mu.Unlock()
	return bu.used
}
