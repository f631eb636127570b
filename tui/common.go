package tui

import (
	"fmt"
	"strings"
	"time"

	tea "charm.land/bubbletea/v2"

	"github.com/conntop/conntop/internal/engine"
	"github.com/conntop/conntop/internal/filter"
	"github.com/conntop/conntop/internal/flow"
	"github.com/conntop/conntop/internal/procs"
	"github.com/conntop/conntop/internal/services"
	"github.com/conntop/conntop/internal/store"
	"github.com/conntop/conntop/tui/widget"
)

// common is what every component shares, as soft-serve's common.Common:
// the engine and options, the look, the one keymap, the terminal size and
// what the last refresh read. The root Model owns it; a component reads
// it and writes only the fields whose comment names that component.
type common struct {
	eng  *engine.Engine
	opts Options
	st   styles
	keys keyMap

	// w, h is the terminal size.
	w, h int

	// The last refresh (root): its clock, the engine's status and the
	// store's summary.
	now    time.Time
	status engine.Status
	sum    store.Summary

	// page is the page shown below the header (root).
	page pageID

	// filter is the filter in use (filter bar); filterGen counts its
	// changes, so that a page keeping filtered data knows to start over.
	filter    *filter.Filter
	filterGen uint64

	// Pause (root): the still picture (nil while it is being taken) and how
	// many flow events arrived since.
	paused  bool
	frozen  *frozenTable
	waiting uint64

	// Port names (root): shown or not, and the table once loaded.
	portNames bool
	svc       *services.Table

	// Owning processes (root): the resolver (nil when off) and its answers.
	resolver *procs.Resolver
	procs    map[flow.Key]procAnswer

	// posted holds the messages components send each other; the root
	// handles them before its Update returns (see post).
	posted []tea.Msg
}

// pageID names a page: the index of a component in Model.pages.
type pageID uint8

// The pages below the header.
const (
	pageTable pageID = iota
	pageDetail
	pageTransitions
	pageGroups
	pagePressure // what fills the table (pressure.go)
	numPages
)

// post sends msg to the root, which handles it within the current Update
// (not through the program loop, so a key's effects are whole before the
// next key).
func (c *common) post(msg tea.Msg) { c.posted = append(c.posted, msg) }

// show asks the root for page p.
func (c *common) show(p pageID) { c.post(showPageMsg(p)) }

// setStatus reports a result or an error in the footer.
func (c *common) setStatus(isErr bool, format string, args ...any) {
	c.post(statusMsg{text: fmt.Sprintf(format, args...), err: isErr})
}

// matcher returns the filter in use as a store.Matcher (nil = all).
func (c *common) matcher() store.Matcher {
	if c.filter == nil {
		return nil
	}
	return c.filter
}

// filterText is the filter in use, as its expression.
func (c *common) filterText() string {
	if c.filter == nil {
		return ""
	}
	return c.filter.String()
}

// showPageMsg asks the root to show a page.
type showPageMsg pageID

// statusMsg is a line for the footer: a result, or an error.
type statusMsg struct {
	text string
	err  bool
}

// fitLines cuts each line to w cells and pads or cuts the list to h lines,
// joined for a component's View.
func fitLines(lines []string, w, h int) string {
	if h <= 0 || w <= 0 {
		return ""
	}
	for len(lines) < h {
		lines = append(lines, "")
	}
	lines = lines[:h]
	for i, l := range lines {
		lines[i] = widget.Truncate(l, w)
	}
	return strings.Join(lines, "\n")
}
