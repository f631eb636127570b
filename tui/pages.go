package tui

import (
	"strconv"

	"charm.land/bubbles/v2/help"
	tea "charm.land/bubbletea/v2"

	"github.com/conntop/conntop/internal/flow"
	"github.com/conntop/conntop/internal/store"
)

// component is one part of the screen, in soft-serve's shape: Update takes
// the messages the root routes to it (a pointer, changed in place), View
// draws it within the size SetSize gave it, and its help.KeyMap lists its
// keys for the footer and the help page.
type component interface {
	help.KeyMap
	Update(msg tea.Msg) tea.Cmd
	View() string
	SetSize(w, h int)
}

// page is a component shown below the header, one at a time.
type page interface {
	component
	// refresh reads what the page shows, from the engine or from the
	// still picture of a pause.
	refresh()
	// viewLines is the lines of View before they are cut to the size and
	// joined: the root joins the lines of all components once a frame.
	viewLines() []string
}

// procUser is a page that shows the owning processes of flows.
type procUser interface {
	// procFlows are the flows whose processes the page would show now.
	procFlows() []flow.Flow
}

// poller is a page that asks for data in the background while shown.
type poller interface {
	poll() tea.Cmd
}

// wheelStep is how many rows one wheel notch scrolls.
const wheelStep = 3

// phaseName names a phase of a flow's life in the timeline and matrix.
func phaseName(p store.Phase) string {
	switch p {
	case store.PhaseNone:
		return "none"
	case store.PhaseNew:
		return "NEW"
	case store.PhaseEstablished:
		return "ESTABLISHED"
	case store.PhaseRelated:
		return "RELATED"
	case store.PhaseDestroyed:
		return "destroyed"
	}
	if p >= store.PhaseTCP && p < store.NumPhases {
		return flow.TCPState(p - store.PhaseTCP).String()
	}
	return "phase " + strconv.Itoa(int(p))
}

const stamp = "15:04:05.000"
