package serve

import "testing"

// TestCellBudgetFit: boxes grow while the budget has room, rows are given
// up first, a session always gets MinColumns×MinRows, boxes never shrink,
// and releasing them gives the cells back.
func TestCellBudgetFit(t *testing.T) {
	type step struct {
		box        termBox
		cols, rows uint32
		w, h       uint32
		nb         termBox
		limited    bool
		usedAfter  int
	}
	bu := &cellBudget{total: 200000}
	steps := []step{
		// The first session gets all it asks (within MaxCells).
		{termBox{}, 1000, 160, 1000, 160, termBox{1000, 160}, false, 160000},
		// A second one gets what is left: rows first.
		{termBox{}, 1000, 160, 1000, 40, termBox{1000, 40}, true, 200000},
		// With nothing left, still 80×24 (over the budget by that).
		{termBox{}, 300, 100, 80, 24, termBox{80, 24}, true, 201920},
		// Smaller than the floor: what it asked.
		{termBox{}, 40, 10, 40, 10, termBox{40, 10}, false, 202320},
	}
	for i, s := range steps {
		w, h, nb, limited := bu.fit(s.box, s.cols, s.rows)
		if w != s.w || h != s.h || nb != s.nb || limited != s.limited || bu.inUse() != s.usedAfter {
			t.Errorf("step %d: fit(%v, %d×%d) = %d×%d box %v limited %v, in use %d; want %d×%d box %v limited %v, in use %d",
				i, s.box, s.cols, s.rows, w, h, nb, limited, bu.inUse(), s.w, s.h, s.nb, s.limited, s.usedAfter)
		}
	}
	// Within its box a session changes shape freely and costs nothing more.
	box := termBox{1000, 160}
	if w, h, nb, limited := bu.fit(box, 320, 100); w != 320 || h != 100 || nb != box || limited || bu.inUse() != 202320 {
		t.Errorf("within the box: %d×%d box %v limited %v in use %d", w, h, nb, limited, bu.inUse())
	}
	// A new shape outside the box with the budget spent: clamped to the box.
	if w, h, nb, limited := bu.fit(box, 320, 500); w != 320 || h != 160 || nb != box || !limited {
		t.Errorf("outside the box: %d×%d box %v limited %v", w, h, nb, limited)
	}
	bu.release(termBox{1000, 40})
	bu.release(termBox{80, 24})
	bu.release(termBox{40, 10})
	// Now there is room: the box grows (to MaxCells at most), never shrinks.
	if w, h, nb, limited := bu.fit(box, 320, 500); w != 320 || h != 160 || nb != box || !limited {
		t.Errorf("box at MaxCells: %d×%d box %v limited %v", w, h, nb, limited)
	}
	_, _, small, _ := bu.fit(termBox{}, 200, 50)
	if w, h, nb, _ := bu.fit(small, 100, 300); w != 100 || h != 200 || nb != (termBox{200, 200}) {
		t.Errorf("growing a box: %d×%d box %v; want 100×200 in a 200×200 box (40,000 cells left)", w, h, nb)
	}
	bu.release(termBox{200, 200})
	bu.release(box)
	if bu.inUse() != 0 {
		t.Errorf("%d cells in use after every box was released", bu.inUse())
	}
}
