package tui

import (
	"fmt"
	"slices"
	"strings"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"

	"github.com/conntop/conntop/internal/flow"
	"github.com/conntop/conntop/internal/store"
	"github.com/conntop/conntop/tui/widget"
)

// maxEvents bounds the transitions page's event buffer.
const maxEvents = 2000

// transitionsPage shows the transition matrix above the live event stream
// of the filtered flows (like conntrack -E), scrollable back through the
// last maxEvents events.
type transitionsPage struct {
	*common
	width, height int

	events   []store.EventRecord
	lastSeq  uint64
	evScroll int    // rows scrolled up from the newest
	evGen    uint64 // the filterGen the events were pulled with
}

var _ page = (*transitionsPage)(nil)

func newTransitionsPage(c *common) *transitionsPage { return &transitionsPage{common: c} }

// ShortHelp implements help.KeyMap.
func (m *transitionsPage) ShortHelp() []key.Binding {
	return []key.Binding{m.keys.Up, m.keys.Down, m.keys.End, m.keys.Back}
}

// FullHelp implements help.KeyMap.
func (m *transitionsPage) FullHelp() [][]key.Binding { return [][]key.Binding{m.ShortHelp()} }

// SetSize implements component.
func (m *transitionsPage) SetSize(w, h int) { m.width, m.height = w, h }

// View implements component.
func (m *transitionsPage) View() string { return fitLines(m.viewLines(), m.width, m.height) }

// viewLines implements page.
func (m *transitionsPage) viewLines() []string { return m.transitionLines(m.height) }

// refresh implements page: the events that arrived since (none while
// paused).
func (m *transitionsPage) refresh() {
	if m.paused {
		return
	}
	m.eng.View(m.pullEvents)
}

// pullEvents appends new events of the stream to the bounded buffer.
func (m *transitionsPage) pullEvents(s *store.Store) {
	if m.evGen != m.filterGen {
		// A new filter: start over.
		m.events, m.lastSeq, m.evScroll, m.evGen = nil, 0, 0, m.filterGen
	}
	if m.lastSeq == 0 {
		// First look (or a new filter): the newest events only.
		evs := s.EventsTail(maxEvents, m.matcher())
		m.events = append(m.events[:0], evs...)
		m.lastSeq = s.LastSeq()
		return
	}
	for range 20 { // bounded catch-up
		evs := s.Events(m.lastSeq, 1000, m.matcher())
		if len(evs) == 0 {
			return
		}
		m.lastSeq = evs[len(evs)-1].Seq
		m.events = append(m.events, evs...)
		if n := len(m.events) - maxEvents; n > 0 {
			m.events = append(m.events[:0], m.events[n:]...)
		}
		if len(evs) < 1000 {
			return
		}
	}
}

// Update implements component: scrolling back and forth, and back.
func (m *transitionsPage) Update(msg tea.Msg) tea.Cmd {
	switch msg := msg.(type) {
	case tea.KeyPressMsg:
		k := &m.keys
		page := max(1, m.height-1)
		switch {
		case key.Matches(msg, k.Up):
			m.evScroll++
		case key.Matches(msg, k.Down):
			m.evScroll--
		case key.Matches(msg, k.PageUp):
			m.evScroll += page
		case key.Matches(msg, k.PageDown):
			m.evScroll -= page
		case key.Matches(msg, k.Home):
			m.evScroll = len(m.events)
		case key.Matches(msg, k.End, k.Follow):
			m.evScroll = 0
		case key.Matches(msg, k.Back):
			m.show(pageTable)
		}
		m.evScroll = max(0, min(m.evScroll, len(m.events)-1))
	case tea.MouseWheelMsg:
		delta := 0
		switch msg.Button {
		case tea.MouseWheelUp:
			delta = -wheelStep
		case tea.MouseWheelDown:
			delta = wheelStep
		}
		m.evScroll = max(0, min(m.evScroll-delta, len(m.events)-1))
	}
	return nil
}

// transitionLines shows the transition matrix (non-zero cells, busiest
// first) above the live event stream.
func (m *transitionsPage) transitionLines(n int) []string {
	st := &m.st
	type cell struct {
		from, to store.Phase
		c        store.TransitionCount
	}
	var cells []cell
	for i := range store.NumPhases {
		for j := range store.NumPhases {
			if c := m.sum.Transitions[i][j]; c.Total > 0 {
				cells = append(cells, cell{i, j, c})
			}
		}
	}
	slices.SortStableFunc(cells, func(a, b cell) int {
		if a.c.Total != b.c.Total {
			if a.c.Total > b.c.Total {
				return -1
			}
			return 1
		}
		return 0
	})
	out := []string{st.colHead.Render(widget.Fit("transitions (from "+st.arrow+" to: total, per second)", m.width, false, st.ellipsis))}
	// The matrix gets at most a third of the page, in as many columns as fit.
	const cw = 44
	ncol := max(1, m.width/cw)
	mrows := min((len(cells)+ncol-1)/ncol, max(1, n/3))
	for r := range mrows {
		var b strings.Builder
		for c := range ncol {
			i := r + c*mrows
			if i >= len(cells) {
				break
			}
			x := cells[i]
			s := fmt.Sprintf("%s %s %s %s %s/s", widget.Fit(phaseName(x.from), 11, true, st.ellipsis), st.arrow,
				widget.Fit(phaseName(x.to), 11, false, st.ellipsis), widget.Fit(widget.Count(x.c.Total), 8, true, st.ellipsis),
				widget.SI(x.c.PerSecond))
			b.WriteString(widget.Fit(s, cw, false, st.ellipsis))
		}
		out = append(out, b.String())
	}
	if len(cells) == 0 {
		out = append(out, st.dim.Render("no transitions yet"))
	}
	title := "events (like conntrack -E; filtered)"
	if m.paused {
		title += "  PAUSED (p resumes)"
	} else if m.evScroll > 0 {
		title += fmt.Sprintf("  scrolled back %d (end: newest)", m.evScroll)
	}
	out = append(out, st.colHead.Render(widget.Fit(title, m.width, false, st.ellipsis)))
	room := n - len(out)
	if room <= 0 {
		return out
	}
	end := len(m.events) - m.evScroll
	start := max(0, end-room)
	// Endpoints other than IPv6 are never cut: the columns are as wide as
	// the widest shown (IPv6 is shortened in the middle).
	epw := 24
	if m.width < 110 {
		epw = endpointMin
		for i := start; i < end; i++ {
			if f := &m.events[i].Flow; f.Family != flow.FamilyIPv6 {
				epw = max(epw, min(endpointMax4, m.endpointWidth(f.Proto, f.Orig, true)), min(endpointMax4, m.endpointWidth(f.Proto, f.Orig, false)))
			}
		}
	}
	for i := start; i < end; i++ {
		out = append(out, m.eventLine(&m.events[i], epw))
	}
	if len(m.events) == 0 {
		out = append(out, st.dim.Render("waiting for events…"))
	}
	return out
}

func (m *transitionsPage) eventLine(e *store.EventRecord, epw int) string {
	st := &m.st
	var typ string
	switch e.Type {
	case flow.EventNew:
		typ = st.evNew.Render("[NEW]    ")
	case flow.EventUpdate:
		typ = st.evUpdate.Render("[UPDATE] ")
	case flow.EventDestroy:
		typ = st.evDestroy.Render("[DESTROY]")
	case flow.EventResync:
		return e.Time.Format(stamp) + " " + st.evResync.Render(fmt.Sprintf("[RESYNC]  %d events lost; table re-listed", e.Lost))
	default:
		typ = widget.Fit("["+strings.ToUpper(e.Type.String())+"]", 9, false, st.ellipsis)
	}
	f := &e.Flow
	// On narrow terminals the line drops the milliseconds and tightens the
	// columns so that the state change at its end stays visible.
	ts, pw, phSep := e.Time.Format(stamp), 6, " "+st.arrow+" "
	if m.width < 110 {
		ts, pw, phSep = e.Time.Format("15:04:05"), 4, st.arrow
	}
	src := fitEndpoint(m.endpoint(f.Proto, f.Orig, true), epw, st.ellipsis)
	dst := fitEndpoint(m.endpoint(f.Proto, f.Orig, false), epw, st.ellipsis)
	ph := phaseName(e.From) + phSep + phaseName(e.To)
	if e.From == e.To {
		ph = phaseName(e.To)
	}
	return ts + " " + typ + " " + widget.Fit(flow.ProtoName(f.Proto), pw, false, st.ellipsis) + " " +
		src + " " + st.arrow + " " + dst + " " + ph
}
