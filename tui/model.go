package tui

import (
	"math"
	"slices"
	"time"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"

	"github.com/conntop/conntop/internal/engine"
	"github.com/conntop/conntop/internal/flow"
	"github.com/conntop/conntop/internal/procs"
	"github.com/conntop/conntop/internal/services"
	"github.com/conntop/conntop/internal/store"
)

// Bounds on what a Model keeps.
const (
	maxEvents = 2000 // transitions view buffer
	maxProcs  = 4096 // owning-process answers kept
	maxGroups = 500
	procEvery = 2 * time.Second
)

// tickMsg is the frame clock.
type tickMsg time.Time

// ProcsMsg carries owning processes of flows, looked up in the background.
type ProcsMsg struct {
	Keys  []flow.Key
	Procs []procs.Proc
	Found []bool
}

// ServicesMsg carries the loaded port-name table.
type ServicesMsg struct {
	Table *services.Table
	Err   error
}

type procAnswer struct {
	proc  procs.Proc
	found bool
}

// Model is the TUI. It implements tea.Model; use it through a pointer.
type Model struct {
	*common

	// viewer holds this model's own query state (filter, sort, window).
	viewer *engine.Viewer

	bar     *filterBar
	actions *actions

	// Table state.
	sortKey store.SortKey
	desc    bool
	sel     *flow.Key
	selIdx  int
	offset  int
	byIndex bool
	follow  bool
	res     store.Result

	// Data from the last refresh.
	version   uint64
	refreshed bool

	maxFrozen int

	detail   store.Detail
	detailOK bool

	events   []store.EventRecord
	lastSeq  uint64
	evScroll int    // rows scrolled up from the newest
	evGen    uint64 // the filterGen the events were pulled with

	pressure pressureView

	groupBy  store.GroupBy
	groups   []store.Group
	groupSel int

	header   *header
	footer   *footer
	helpPage *helpPage
	// needRefresh asks Update to read the engine again before it returns.
	needRefresh bool

	procAsked  time.Time
	procBusy   bool
	svcLoading bool

	frame string
	dirty bool
}

var _ tea.Model = (*Model)(nil)

// New returns a Model viewing eng.
func New(eng *engine.Engine, opts Options) *Model {
	opts.defaults()
	c := &common{
		eng:       eng,
		opts:      opts,
		keys:      newKeyMap(opts.ASCII),
		st:        newStyles(opts.ASCII, opts.NoColor, true),
		procs:     make(map[flow.Key]procAnswer),
		portNames: opts.PortNames,
	}
	m := &Model{
		common:    c,
		viewer:    eng.NewViewer(),
		dirty:     true,
		selIdx:    0,
		byIndex:   true,
		maxFrozen: maxFrozen,
	}
	if !opts.NoProcs {
		m.resolver = procs.New(procs.Options{NetDir: opts.ProcNet})
	}
	m.footer = newFooter(c, m)
	m.header = newHeader(c)
	m.helpPage = newHelpPage(c, m, m.header)
	m.bar = newFilterBar(c, m)
	m.actions = newActions(c, m)
	return m
}

// Init implements tea.Model.
func (m *Model) Init() tea.Cmd {
	// The terminal's background colour picks the palette.
	cmds := []tea.Cmd{m.tick(), tea.RequestBackgroundColor}
	if m.portNames {
		cmds = append(cmds, m.loadServices())
	}
	return tea.Batch(cmds...)
}

func (m *Model) tick() tea.Cmd {
	return tea.Tick(m.opts.Refresh, func(t time.Time) tea.Msg { return tickMsg(t) })
}

// maxPosted bounds the messages components may post within one Update.
const maxPosted = 16

// Update implements tea.Model. It routes msg, then the messages the
// components posted while handling it, then reads the engine again when
// something asked for it.
func (m *Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	cmd := m.route(msg)
	for i := 0; i < maxPosted && len(m.posted) > 0; i++ {
		next := m.posted[0]
		m.posted = m.posted[1:]
		if c := m.route(next); c != nil {
			cmd = tea.Batch(cmd, c)
		}
	}
	m.posted = m.posted[:0]
	if m.needRefresh {
		m.needRefresh = false
		m.refresh()
	}
	switch msg.(type) {
	case tickMsg:
		return m, tea.Batch(m.tick(), m.askProcs(), m.askPressure())
	case tea.MouseClickMsg, tea.MouseWheelMsg:
		return m, tea.Batch(cmd, m.askProcs(), m.askPressure())
	case tea.KeyPressMsg:
		m.dirty = true
		return m, tea.Batch(cmd, m.askProcs(), m.askPressure())
	}
	return m, cmd
}

// route hands msg to the component it is for.
func (m *Model) route(msg tea.Msg) tea.Cmd {
	var cmd tea.Cmd
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.w, m.h = max(0, msg.Width), max(0, msg.Height)
		m.bar.SetSize(m.w, 1)
		m.actions.SetSize(m.w, 1)
		m.needRefresh = true
	case tickMsg:
		if had := m.footer.text; had != "" {
			m.footer.Update(msg)
			m.dirty = m.dirty || m.footer.text != had
		}
		switch {
		case m.paused && m.frozen != nil && m.eng.Version() != m.version:
			m.countWaiting()
		case !m.paused && (m.eng.Version() != m.version || !m.refreshed):
			m.refresh()
		}
	case tea.PasteMsg:
		// A paste goes into the line being edited.
		switch {
		case m.bar.editing():
			m.bar.Update(msg)
			m.needRefresh = true
		case m.actions.asking():
			m.actions.Update(msg)
			m.needRefresh = true
		}
	case tea.MouseClickMsg, tea.MouseWheelMsg:
		m.handleMouse(msg.(tea.MouseMsg))
		m.needRefresh = true
	case tea.KeyPressMsg:
		cmd = m.handleKey(msg)
		m.needRefresh = true
	case tea.BackgroundColorMsg:
		m.st = newStyles(m.opts.ASCII, m.opts.NoColor, msg.IsDark())
		m.footer.Update(msg)
		m.needRefresh = true
	case statusMsg:
		m.footer.Update(msg)
		m.dirty = true
	case showPageMsg:
		m.page = pageID(msg)
		m.dirty = true
	case FrozenMsg:
		if m.paused && m.frozen == nil {
			m.frozen = msg.Table
			m.needRefresh = true
		}
	case ExportDoneMsg, DeleteDoneMsg:
		m.actions.Update(msg)
	case tableTopMsg:
		m.byIndex, m.selIdx, m.offset = true, 0, 0
	case ProcsMsg:
		m.procBusy = false
		if len(m.procs)+len(msg.Keys) > maxProcs {
			clear(m.procs)
		}
		for i, k := range msg.Keys {
			m.procs[k] = procAnswer{msg.Procs[i], msg.Found[i]}
		}
		m.dirty = true
	case PressureMsg:
		m.pressureDone(msg)
	case ServicesMsg:
		m.svcLoading = false
		if msg.Err != nil {
			m.portNames = false
			m.setStatus(true, "port names: %v", msg.Err)
		} else {
			m.svc = msg.Table
		}
		m.dirty = true
	}
	return cmd
}

// countWaiting counts the flow events that arrived since the pause.
func (m *Model) countWaiting() {
	m.version = m.eng.Version()
	var n uint64
	m.eng.View(func(s *store.Store) {
		sum := s.Summary()
		n = eventCount(&sum)
	})
	m.waiting = n - min(n, m.frozen.events)
	m.buildHeader()
	m.dirty = true
}

// buildHeader lays out the header in the lines it may take.
func (m *Model) buildHeader() {
	m.header.SetSize(m.w, m.h-m.filterHeight()-len(m.footer.lines())-1-minTableRows)
	m.header.refresh()
}

// refresh reads what the current view needs from the engine; while paused
// it lays out the still picture again (after a key or a resize) and reads
// nothing new.
func (m *Model) refresh() {
	m.dirty = true
	if m.paused {
		m.buildHeader()
		m.queryTable(max(1, m.tableRows()))
		if m.page == pageDetail && m.sel != nil && m.frozen != nil {
			if r, ok := m.frozen.find(*m.sel); ok {
				if m.detail.Flow.Key() != *m.sel {
					m.detail.History = nil // recorded live only
				}
				m.detail.Row, m.detailOK = r, true
			}
		}
		if m.page == pageGroups {
			// Groups are counted on the live table.
			m.eng.View(func(s *store.Store) { m.groups = s.Groups(m.groupBy, m.matcher(), maxGroups) })
			m.groupSel = max(0, min(m.groupSel, len(m.groups)-1))
		}
		return
	}
	m.refreshed = true
	m.version = m.eng.Version()
	m.status = m.eng.Status()
	m.now = m.opts.Now()
	m.eng.View(func(s *store.Store) {
		m.sum = s.Summary()
		m.sum.CountHistory = slices.Clone(m.sum.CountHistory)
	})
	m.sum.Table.InvalidReasons = nil // not shown; do not keep the store's map
	m.buildHeader()
	limit := max(1, m.tableRows())
	m.queryTable(limit)
	m.eng.View(func(s *store.Store) {
		switch m.page {
		case pageDetail:
			m.detail, m.detailOK = store.Detail{}, false
			if m.sel != nil {
				m.detail, m.detailOK = s.Detail(*m.sel)
				m.detail.History = slices.Clone(m.detail.History)
			}
		case pageTransitions:
			m.pullEvents(s)
		case pageGroups:
			m.groups = s.Groups(m.groupBy, m.matcher(), maxGroups)
			m.groupSel = max(0, min(m.groupSel, len(m.groups)-1))
		}
	})
}

// querier answers table queries: the live table (engine.Viewer) or the
// still picture of a pause (frozenTable).
type querier interface {
	Query(q store.Query) store.Result
}

// queryTable fetches the visible window, keeping the selection on the same
// flow when it can, else on the same row number.
func (m *Model) queryTable(limit int) {
	var src querier = m.viewer
	if m.paused {
		if m.frozen == nil {
			return // the picture is being taken: keep the rows shown
		}
		src = m.frozen
	}
	q := store.Query{Filter: m.matcher(), Sort: m.sortKey, Desc: m.desc, Limit: limit}
	if m.follow {
		m.byIndex = true
		m.selIdx = math.MaxInt32
	}
	if !m.byIndex && m.sel != nil {
		q.Offset = m.offset
		sel := *m.sel
		q.Select = &sel
		res := src.Query(q)
		if res.SelectedIndex >= 0 {
			m.res = res
			m.selIdx, m.offset = res.SelectedIndex, res.Offset
			return
		}
		// The selected flow is gone: stay on the same row number.
	}
	m.byIndex = false
	q.Select = nil
	// First learn how many rows match, then place the window around the
	// wanted row.
	q.Offset = m.offset
	res := src.Query(q)
	if res.Matched == 0 {
		m.res, m.sel, m.selIdx, m.offset = res, nil, 0, 0
		return
	}
	idx := max(0, min(m.selIdx, res.Matched-1))
	off := max(0, min(m.offset, res.Matched-limit))
	if idx < off {
		off = idx
	} else if idx >= off+limit {
		off = idx - limit + 1
	}
	if off != res.Offset {
		q.Offset = off
		res = src.Query(q)
	}
	m.res = res
	m.offset = res.Offset
	m.selIdx = idx
	if i := idx - res.Offset; i >= 0 && i < len(res.Rows) {
		k := res.Rows[i].Flow.Key()
		m.sel = &k
	}
}

// selectedRow returns the selected row of the window.
func (m *Model) selectedRow() (store.Row, bool) {
	i := m.selIdx - m.res.Offset
	if i < 0 || i >= len(m.res.Rows) {
		return store.Row{}, false
	}
	return m.res.Rows[i], true
}

// pullEvents appends new events of the stream to the bounded buffer.
func (m *Model) pullEvents(s *store.Store) {
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

func sub(a, b uint64) uint64 {
	if a < b {
		return 0 // counters reset (e.g. a new namespace)
	}
	return a - b
}

func (m *Model) handleKey(msg tea.KeyPressMsg) tea.Cmd {
	k := m.keys
	switch {
	case m.bar.editing():
		return m.bar.Update(msg)
	case m.actions.asking():
		return m.actions.Update(msg)
	}
	if m.helpPage.open {
		if key.Matches(msg, k.Quit) {
			return tea.Quit
		}
		return m.helpPage.Update(msg)
	}
	switch {
	case key.Matches(msg, k.Quit):
		return tea.Quit
	case key.Matches(msg, k.Help):
		m.helpPage.open = true
	case key.Matches(msg, k.Pause):
		m.paused = !m.paused
		m.frozen, m.waiting = nil, 0
		if m.paused {
			q := store.Query{Filter: m.matcher(), Sort: m.sortKey, Desc: m.desc, Offset: m.offset, Select: m.sel}
			return freezeCmd(m.eng, q, m.selIdx, m.maxFrozen)
		}
	case key.Matches(msg, m.bar.bindings...):
		return m.bar.Update(msg)
	case key.Matches(msg, k.PortNames):
		m.portNames = !m.portNames
		if m.portNames && m.svc == nil && !m.svcLoading {
			return m.loadServices()
		}
	case key.Matches(msg, m.actions.bindings...):
		return m.actions.Update(msg)
	case key.Matches(msg, k.TableView):
		m.page = pageTable
	case key.Matches(msg, k.TransView):
		m.page = pageTransitions
	case key.Matches(msg, k.GroupView):
		m.page = pageGroups
	case key.Matches(msg, k.PressureView):
		m.page = pagePressure
	case key.Matches(msg, k.Next):
		switch m.page {
		case pageTable, pageDetail:
			m.page = pageTransitions
		case pageTransitions:
			m.page = pageGroups
		default:
			m.page = pageTable
		}
	default:
		switch m.page {
		case pageTable:
			m.keyTable(msg)
		case pageDetail:
			m.keyDetail(msg)
		case pageTransitions:
			m.keyTransitions(msg)
		case pageGroups:
			m.keyGroups(msg)
		case pagePressure:
			m.keyPressure(msg)
		}
	}
	return nil
}

// moveSel moves the selection by delta rows (by position).
func (m *Model) moveSel(delta int) {
	m.follow = false
	m.byIndex = true
	m.selIdx = max(0, min(m.selIdx+delta, m.res.Matched-1))
}

func (m *Model) keyTable(msg tea.KeyPressMsg) {
	k := m.keys
	page := max(1, m.tableRows()-1)
	switch {
	case key.Matches(msg, k.Up):
		m.moveSel(-1)
	case key.Matches(msg, k.Down):
		m.moveSel(1)
	case key.Matches(msg, k.PageUp):
		m.moveSel(-page)
		m.offset = max(0, m.offset-page)
	case key.Matches(msg, k.PageDown):
		m.moveSel(page)
		m.offset += page
	case key.Matches(msg, k.Home):
		m.moveSel(-m.selIdx)
		m.offset = 0
	case key.Matches(msg, k.End):
		m.moveSel(m.res.Matched)
	case key.Matches(msg, k.Follow):
		m.follow = !m.follow
	case key.Matches(msg, k.SortNext):
		m.sortKey = (m.sortKey + 1) % store.NumSortKeys
	case key.Matches(msg, k.SortPrev):
		m.sortKey = (m.sortKey + store.NumSortKeys - 1) % store.NumSortKeys
	case key.Matches(msg, k.Reverse):
		m.desc = !m.desc
	case key.Matches(msg, k.Detail):
		if m.sel != nil {
			m.page = pageDetail
		}
	case key.Matches(msg, k.Back):
		if m.follow {
			m.follow = false
		}
	}
}

func (m *Model) keyDetail(msg tea.KeyPressMsg) {
	k := m.keys
	switch {
	case key.Matches(msg, k.Back, k.Detail):
		m.page = pageTable
	case key.Matches(msg, k.Up):
		m.moveSel(-1)
	case key.Matches(msg, k.Down):
		m.moveSel(1)
	case key.Matches(msg, k.Master):
		if !m.detailOK || m.detail.Flow.Master == nil {
			m.setStatus(true, "this flow has no master flow")
			return
		}
		mt := *m.detail.Flow.Master
		var found *flow.Key
		m.eng.View(func(s *store.Store) {
			for _, p := range []uint8{m.detail.Flow.Proto, flow.ProtoTCP, flow.ProtoUDP, flow.ProtoSCTP} {
				k := flow.Key{Proto: p, Zone: m.detail.Flow.Zone, Orig: mt}
				if _, ok := s.Detail(k); ok {
					found = &k
					return
				}
			}
		})
		if found == nil {
			m.setStatus(true, "the master flow is no longer in the table")
			return
		}
		// Show it even if the filter hides it from the table.
		m.sel, m.byIndex, m.follow = found, false, false
	}
}

func (m *Model) keyTransitions(msg tea.KeyPressMsg) {
	k := m.keys
	page := max(1, m.bodyRows()-1)
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
		m.page = pageTable
	}
	m.evScroll = max(0, min(m.evScroll, len(m.events)-1))
}

func (m *Model) keyGroups(msg tea.KeyPressMsg) {
	k := m.keys
	switch {
	case key.Matches(msg, k.Up):
		m.groupSel = max(0, m.groupSel-1)
	case key.Matches(msg, k.Down):
		m.groupSel = min(len(m.groups)-1, m.groupSel+1)
	case key.Matches(msg, k.Home):
		m.groupSel = 0
	case key.Matches(msg, k.End):
		m.groupSel = len(m.groups) - 1
	case key.Matches(msg, k.GroupNext):
		m.groupBy = (m.groupBy + 1) % store.NumGroupBys
		m.groupSel = 0
	case key.Matches(msg, k.GroupPrev):
		m.groupBy = (m.groupBy + store.NumGroupBys - 1) % store.NumGroupBys
		m.groupSel = 0
	case key.Matches(msg, k.Back):
		m.page = pageTable
	case key.Matches(msg, k.Detail):
		m.openGroup()
	}
	m.groupSel = max(0, m.groupSel)
}

// openGroup shows the table filtered to the selected group.
func (m *Model) openGroup() {
	if m.groupSel < 0 || m.groupSel >= len(m.groups) {
		return
	}
	if m.bar.narrow(m.groups[m.groupSel].Filter) {
		m.page = pageTable
		m.byIndex, m.selIdx, m.offset = true, 0, 0
	}
}

// tableRows is the number of data rows the table shows.
func (m *Model) tableRows() int { return max(0, m.bodyRows()-1) }

func (m *Model) loadServices() tea.Cmd {
	m.svcLoading = true
	path := m.opts.ServicesFile
	if path == "" {
		path = services.DefaultPath
	}
	return func() tea.Msg {
		t, err := services.Load(path)
		return ServicesMsg{Table: t, Err: err}
	}
}

// askProcs starts a background lookup of the owning processes of the
// visible rows, when the process column or the detail view shows them.
func (m *Model) askProcs() tea.Cmd {
	if m.resolver == nil || m.procBusy || m.paused {
		return nil
	}
	if m.page != pageDetail && !m.procColumnShown() {
		return nil
	}
	now := time.Now()
	if now.Sub(m.procAsked) < procEvery {
		return nil
	}
	var flows []flow.Flow
	for i := range m.res.Rows {
		f := &m.res.Rows[i].Flow
		if f.Proto == flow.ProtoTCP || f.Proto == flow.ProtoUDP {
			flows = append(flows, *f)
		}
	}
	if m.page == pageDetail && m.detailOK {
		flows = append(flows, m.detail.Flow)
	}
	if len(flows) == 0 {
		return nil
	}
	m.procAsked, m.procBusy = now, true
	r := m.resolver
	return func() tea.Msg {
		ps, found, _ := r.Resolve(flows) // a missing table just means "not found"
		keys := make([]flow.Key, len(flows))
		for i := range flows {
			keys[i] = flows[i].Key()
		}
		return ProcsMsg{Keys: keys, Procs: ps, Found: found}
	}
}

// matchedTotal implements tableStatus.
func (m *Model) matchedTotal() (matched, total int) { return m.res.Matched, m.res.Total }

// sortStatus implements tableStatus.
func (m *Model) sortStatus() string {
	var s string
	if m.page == pageTable || m.page == pageDetail {
		dir := m.st.up
		if m.desc {
			dir = m.st.down
		}
		s += "  sort " + sortNames[m.sortKey] + " " + dir
	}
	if m.follow {
		s += "  " + m.st.ok.Render("FOLLOW")
	}
	return s
}
