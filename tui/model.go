package tui

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"

	"github.com/conntop/conntop/internal/engine"
	"github.com/conntop/conntop/internal/filter"
	"github.com/conntop/conntop/internal/flow"
	"github.com/conntop/conntop/internal/procs"
	"github.com/conntop/conntop/internal/services"
	"github.com/conntop/conntop/internal/store"
	"github.com/conntop/conntop/tui/widget"
)

// viewKind is the page shown below the header.
type viewKind uint8

const (
	viewTable viewKind = iota
	viewDetail
	viewTransitions
	viewGroups
	viewPressure // what fills the table (pressure.go)
)

// mode says what keys do: navigate, or edit a line, or answer a question.
type mode uint8

const (
	modeNormal mode = iota
	modeFilter
	modePort
	modeExport
	modeConfirmDelete
	modeWhatIf // the pressure view's what-if value (pressure.go)
)

// Bounds on what a Model keeps.
const (
	maxEvents     = 2000 // transitions view buffer
	maxProcs      = 4096 // owning-process answers kept
	maxGroups     = 500
	loudFor       = 10 * time.Second // how long a drop keeps the header loud
	statusFor     = 8 * time.Second  // how long a status message stays
	procEvery     = 2 * time.Second
	deleteTimeout = 10 * time.Second
)

// tickMsg is the frame clock.
type tickMsg time.Time

// ExportDoneMsg reports the end of an export.
type ExportDoneMsg struct {
	Path string
	Rows int
	Err  error
}

// DeleteDoneMsg reports the end of a delete.
type DeleteDoneMsg struct {
	Deleted int
	Err     error
}

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

// quickFilter holds the quick toggles, combined with the typed filter.
type quickFilter struct {
	states [3]bool // NEW, ESTABLISHED, RELATED
	protos [3]bool // tcp, udp, icmp (with icmpv6)
	port   string
}

type procAnswer struct {
	proc  procs.Proc
	found bool
}

// Model is the TUI. It implements tea.Model; use it through a pointer.
type Model struct {
	eng *engine.Engine
	// viewer holds this model's own query state (filter, sort, window).
	viewer *engine.Viewer
	opts   Options
	keys   keyMap
	st     styles

	w, h int
	view viewKind
	mode mode
	help bool

	// Filter: the typed expression, the quick toggles and the compiled
	// combination in use.
	typed     string
	quick     quickFilter
	filter    *filter.Filter
	filterErr *filter.SyntaxError
	otherErr  string
	edit      lineEdit
	// savedTyped is the typed filter before the filter line was opened.
	savedTyped string

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
	now       time.Time
	status    engine.Status
	sum       store.Summary
	version   uint64
	refreshed bool
	prevStats flow.TableStats
	statRate  [6]float64 // drop, early_drop, insert_failed, invalid, search_restart, error per second
	dropAt    time.Time

	// Pause: the still picture (nil while it is being taken) and how many
	// flow events arrived since.
	paused    bool
	frozen    *frozenTable
	waiting   uint64
	maxFrozen int

	detail   store.Detail
	detailOK bool

	events   []store.EventRecord
	lastSeq  uint64
	evScroll int // rows scrolled up from the newest

	pressure pressureView

	groupBy  store.GroupBy
	groups   []store.Group
	groupSel int

	exportCSV   bool
	exportBusy  bool
	deleteAll   bool
	deleteCount int
	deleteBusy  bool

	statusMsg string
	statusErr bool
	statusAt  time.Time

	resolver   *procs.Resolver
	procs      map[flow.Key]procAnswer
	procAsked  time.Time
	procBusy   bool
	portNames  bool
	svc        *services.Table
	svcLoading bool

	frame string
	dirty bool

	// hints is the rendered key-hint footer for hintsWidth columns: it
	// only changes with the width.
	hints      string
	hintsWidth int

	// hdr is the header (with its notices), laid out at the last refresh;
	// tabX the columns of its view tabs (for the mouse).
	hdr  []string
	tabX [][2]int
}

var _ tea.Model = (*Model)(nil)

// New returns a Model viewing eng.
func New(eng *engine.Engine, opts Options) *Model {
	opts.defaults()
	m := &Model{
		eng:       eng,
		viewer:    eng.NewViewer(),
		opts:      opts,
		keys:      newKeyMap(opts.ASCII),
		st:        newStyles(opts.ASCII, opts.NoColor, true),
		procs:     make(map[flow.Key]procAnswer),
		portNames: opts.PortNames,
		dirty:     true,
		selIdx:    0,
		byIndex:   true,
		maxFrozen: maxFrozen,
		edit:      newLineEdit(),
	}
	if !opts.NoProcs {
		m.resolver = procs.New(procs.Options{NetDir: opts.ProcNet})
	}
	if f, err := filter.Parse(opts.Filter); err != nil {
		m.setFilterErr(err)
	} else {
		m.typed = opts.Filter
		m.filter = f
	}
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

// Update implements tea.Model.
func (m *Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	var cmd tea.Cmd
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.w, m.h = max(0, msg.Width), max(0, msg.Height)
		m.refresh()
	case tickMsg:
		now := m.opts.Now()
		if m.statusMsg != "" && now.Sub(m.statusAt) > statusFor {
			m.statusMsg = ""
			m.dirty = true
		}
		switch {
		case m.paused && m.frozen != nil && m.eng.Version() != m.version:
			m.countWaiting()
		case !m.paused && (m.eng.Version() != m.version || !m.refreshed):
			m.refresh()
		}
		return m, tea.Batch(m.tick(), m.askProcs(), m.askPressure())
	case tea.PasteMsg:
		// A paste goes into the line being edited.
		if m.mode == modeFilter || m.mode == modePort || m.mode == modeExport || m.mode == modeWhatIf {
			if m.edit.handle(msg) && m.mode == modeFilter {
				m.applyTyped(m.edit.value())
			}
			m.refresh()
		}
	case tea.MouseClickMsg, tea.MouseWheelMsg:
		m.handleMouse(msg.(tea.MouseMsg))
		m.refresh()
		return m, tea.Batch(m.askProcs(), m.askPressure())
	case tea.KeyPressMsg:
		cmd = m.handleKey(msg)
		m.refresh()
		m.dirty = true
		return m, tea.Batch(cmd, m.askProcs(), m.askPressure())
	case tea.BackgroundColorMsg:
		m.st = newStyles(m.opts.ASCII, m.opts.NoColor, msg.IsDark())
		m.hints = ""
		m.refresh()
	case FrozenMsg:
		if m.paused && m.frozen == nil {
			m.frozen = msg.Table
			m.refresh()
		}
	case ExportDoneMsg:
		m.exportBusy = false
		if msg.Err != nil {
			m.setStatus(true, "export failed: %v", msg.Err)
		} else {
			m.setStatus(false, "exported %s flows to %s", widget.Count(uint64(msg.Rows)), msg.Path)
		}
	case DeleteDoneMsg:
		m.deleteBusy = false
		if msg.Err != nil {
			m.setStatus(true, "delete failed after %d flows: %v", msg.Deleted, msg.Err)
		} else {
			m.setStatus(false, "deleted %s flows", widget.Count(uint64(msg.Deleted)))
		}
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
	return m, cmd
}

func (m *Model) setStatus(isErr bool, format string, args ...any) {
	m.statusMsg = fmt.Sprintf(format, args...)
	m.statusErr = isErr
	m.statusAt = m.opts.Now()
	m.dirty = true
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

// refresh reads what the current view needs from the engine; while paused
// it lays out the still picture again (after a key or a resize) and reads
// nothing new.
func (m *Model) refresh() {
	m.dirty = true
	if m.paused {
		m.buildHeader()
		m.queryTable(max(1, m.tableRows()))
		if m.view == viewDetail && m.sel != nil && m.frozen != nil {
			if r, ok := m.frozen.find(*m.sel); ok {
				if m.detail.Flow.Key() != *m.sel {
					m.detail.History = nil // recorded live only
				}
				m.detail.Row, m.detailOK = r, true
			}
		}
		if m.view == viewGroups {
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
	m.updateRates()
	m.buildHeader()
	limit := max(1, m.tableRows())
	m.queryTable(limit)
	m.eng.View(func(s *store.Store) {
		switch m.view {
		case viewDetail:
			m.detail, m.detailOK = store.Detail{}, false
			if m.sel != nil {
				m.detail, m.detailOK = s.Detail(*m.sel)
				m.detail.History = slices.Clone(m.detail.History)
			}
		case viewTransitions:
			m.pullEvents(s)
		case viewGroups:
			m.groups = s.Groups(m.groupBy, m.matcher(), maxGroups)
			m.groupSel = max(0, min(m.groupSel, len(m.groups)-1))
		}
	})
}

// matcher returns the filter in use as a store.Matcher (nil = all).
func (m *Model) matcher() store.Matcher {
	if m.filter == nil {
		return nil
	}
	return m.filter
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

// updateRates derives per-second rates of the kernel counters since the
// last frame that brought new statistics.
func (m *Model) updateRates() {
	cur := m.sum.Table
	prev := m.prevStats
	if cur.Time.IsZero() || !cur.Time.After(prev.Time) {
		return
	}
	if !prev.Time.IsZero() {
		dt := cur.Time.Sub(prev.Time).Seconds()
		d := [6]uint64{
			sub(cur.Drop, prev.Drop), sub(cur.EarlyDrop, prev.EarlyDrop), sub(cur.InsertFailed, prev.InsertFailed),
			sub(cur.Invalid, prev.Invalid), sub(cur.SearchRestart, prev.SearchRestart), sub(cur.Error, prev.Error),
		}
		for i := range d {
			m.statRate[i] = float64(d[i]) / dt
		}
		if d[0] > 0 || d[1] > 0 {
			m.dropAt = m.now
		}
	}
	m.prevStats = cur
	m.prevStats.InvalidReasons = nil
}

func sub(a, b uint64) uint64 {
	if a < b {
		return 0 // counters reset (e.g. a new namespace)
	}
	return a - b
}

// setFilterErr records a filter error for display.
func (m *Model) setFilterErr(err error) {
	if se, ok := err.(*filter.SyntaxError); ok {
		m.filterErr = se
		m.otherErr = ""
		return
	}
	m.filterErr = nil
	m.otherErr = err.Error()
}

// combined returns the filter expression of typed plus the quick toggles.
func (m *Model) combined(typed string) string {
	var parts []string
	typed = strings.TrimSpace(typed)
	var st []string
	for i, on := range m.quick.states {
		if on {
			st = append(st, flow.State(i).String())
		}
	}
	if len(st) > 0 {
		parts = append(parts, "state "+strings.Join(st, ","))
	}
	var pr []string
	for i, on := range m.quick.protos {
		if on {
			pr = append(pr, [...]string{"tcp", "udp", "icmp or icmpv6"}[i])
		}
	}
	if len(pr) > 0 {
		p := strings.Join(pr, " or ")
		if len(pr) > 1 || m.quick.protos[2] {
			p = "(" + p + ")"
		}
		parts = append(parts, p)
	}
	if m.quick.port != "" {
		parts = append(parts, "port "+m.quick.port)
	}
	if typed != "" {
		if len(parts) > 0 {
			typed = "(" + typed + ")"
		}
		parts = append([]string{typed}, parts...)
	}
	return strings.Join(parts, " and ")
}

// applyTyped compiles typed plus the quick toggles; on error the filter in
// use stays and the error is shown.
func (m *Model) applyTyped(typed string) bool {
	if _, err := filter.Parse(typed); err != nil {
		m.setFilterErr(err)
		return false
	}
	f, err := filter.Parse(m.combined(typed))
	if err != nil {
		m.setFilterErr(err)
		return false
	}
	m.typed, m.filter, m.filterErr, m.otherErr = typed, f, nil, ""
	m.events, m.lastSeq, m.evScroll = nil, 0, 0
	return true
}

func (m *Model) handleKey(msg tea.KeyPressMsg) tea.Cmd {
	k := m.keys
	switch m.mode {
	case modeFilter:
		return m.keyFilter(msg)
	case modePort:
		return m.keyPort(msg)
	case modeExport:
		return m.keyExport(msg)
	case modeConfirmDelete:
		return m.keyConfirm(msg)
	case modeWhatIf:
		return m.keyWhatIf(msg)
	}
	if m.help {
		switch {
		case key.Matches(msg, k.Quit):
			return tea.Quit
		case key.Matches(msg, k.Help, k.Back):
			m.help = false
		}
		return nil
	}
	switch {
	case key.Matches(msg, k.Quit):
		return tea.Quit
	case key.Matches(msg, k.Help):
		m.help = true
	case key.Matches(msg, k.Pause):
		m.paused = !m.paused
		m.frozen, m.waiting = nil, 0
		if m.paused {
			q := store.Query{Filter: m.matcher(), Sort: m.sortKey, Desc: m.desc, Offset: m.offset, Select: m.sel}
			return freezeCmd(m.eng, q, m.selIdx, m.maxFrozen)
		}
	case key.Matches(msg, k.Filter):
		m.mode = modeFilter
		m.savedTyped = m.typed
		m.edit.set(m.typed)
	case key.Matches(msg, k.PortFilter):
		m.mode = modePort
		m.edit.set(m.quick.port)
	case key.Matches(msg, k.ClearFilter):
		m.quick = quickFilter{}
		m.applyTyped("")
	case key.Matches(msg, k.ToggleNew, k.ToggleEst, k.ToggleRel):
		for i, b := range []key.Binding{k.ToggleNew, k.ToggleEst, k.ToggleRel} {
			if key.Matches(msg, b) {
				m.quick.states[i] = !m.quick.states[i]
			}
		}
		m.applyTyped(m.typed)
	case key.Matches(msg, k.ToggleTCP, k.ToggleUDP, k.ToggleICMP):
		for i, b := range []key.Binding{k.ToggleTCP, k.ToggleUDP, k.ToggleICMP} {
			if key.Matches(msg, b) {
				m.quick.protos[i] = !m.quick.protos[i]
			}
		}
		m.applyTyped(m.typed)
	case key.Matches(msg, k.PortNames):
		m.portNames = !m.portNames
		if m.portNames && m.svc == nil && !m.svcLoading {
			return m.loadServices()
		}
	case key.Matches(msg, k.Export):
		if m.opts.ReadOnly {
			m.setStatus(true, "export is disabled in a read-only session; from your machine: ssh -p PORT HOST snapshot --format csv > flows.csv")
			return nil
		}
		m.mode = modeExport
		m.edit.set(m.defaultExportPath())
	case key.Matches(msg, k.Delete, k.DeleteAll):
		return m.startDelete(key.Matches(msg, k.DeleteAll))
	case key.Matches(msg, k.TableView):
		m.view = viewTable
	case key.Matches(msg, k.TransView):
		m.view = viewTransitions
	case key.Matches(msg, k.GroupView):
		m.view = viewGroups
	case key.Matches(msg, k.PressureView):
		m.view = viewPressure
	case key.Matches(msg, k.Next):
		switch m.view {
		case viewTable, viewDetail:
			m.view = viewTransitions
		case viewTransitions:
			m.view = viewGroups
		default:
			m.view = viewTable
		}
	default:
		switch m.view {
		case viewTable:
			m.keyTable(msg)
		case viewDetail:
			m.keyDetail(msg)
		case viewTransitions:
			m.keyTransitions(msg)
		case viewGroups:
			m.keyGroups(msg)
		case viewPressure:
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
			m.view = viewDetail
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
		m.view = viewTable
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
		m.view = viewTable
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
		m.view = viewTable
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
	g := m.groups[m.groupSel].Filter
	typed := g
	if t := strings.TrimSpace(m.typed); t != "" {
		typed = "(" + t + ") and " + g
	}
	if m.applyTyped(typed) {
		m.view = viewTable
		m.byIndex, m.selIdx, m.offset = true, 0, 0
	}
}

func (m *Model) keyFilter(msg tea.KeyPressMsg) tea.Cmd {
	switch k := m.keys; {
	case key.Matches(msg, k.Cancel):
		m.mode = modeNormal
		m.applyTyped(m.savedTyped)
		m.filterErr, m.otherErr = nil, ""
		return nil
	case key.Matches(msg, k.Accept):
		if m.applyTyped(m.edit.value()) {
			m.mode = modeNormal
			m.byIndex, m.selIdx, m.offset = true, 0, 0
		}
		return nil
	case key.Matches(msg, k.ForceQuit):
		return tea.Quit
	}
	if m.edit.handle(msg) {
		// Live preview: apply when it parses, else keep the previous
		// filter and show where the error is.
		m.applyTyped(m.edit.value())
	}
	return nil
}

func (m *Model) keyPort(msg tea.KeyPressMsg) tea.Cmd {
	switch k := m.keys; {
	case key.Matches(msg, k.Cancel):
		m.mode = modeNormal
		return nil
	case key.Matches(msg, k.Accept):
		p := strings.TrimSpace(m.edit.value())
		if p != "" {
			if _, err := filter.Parse("port " + p); err != nil {
				m.setStatus(true, "bad port %q: %v", p, err)
				return nil
			}
		}
		m.quick.port = p
		m.applyTyped(m.typed)
		m.mode = modeNormal
		return nil
	case key.Matches(msg, k.ForceQuit):
		return tea.Quit
	}
	m.edit.handle(msg)
	return nil
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
	if m.view != viewDetail && !m.procColumnShown() {
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
	if m.view == viewDetail && m.detailOK {
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

// startDelete asks for confirmation of deleting the selected flow or every
// flow the filter matches.
func (m *Model) startDelete(all bool) tea.Cmd {
	switch {
	case m.opts.ReadOnly:
		m.setStatus(true, "delete is disabled in a read-only session")
		return nil
	case !m.opts.AllowDelete:
		m.setStatus(true, "read-only: start conntop with --allow-delete to delete flows")
		return nil
	case m.eng.Source() == nil || !m.eng.CanDelete():
		m.setStatus(true, "%v", engine.ErrReadOnly)
		return nil
	case m.deleteBusy:
		m.setStatus(true, "a delete is still running")
		return nil
	}
	if all {
		n := m.res.Matched // the count shown; the command deletes what matches then
		if n == 0 {
			m.setStatus(true, "no flows match the filter")
			return nil
		}
		m.deleteCount = n
	} else {
		if _, ok := m.selectedRow(); !ok {
			m.setStatus(true, "no flow selected")
			return nil
		}
		m.deleteCount = 1
	}
	m.deleteAll = all
	m.mode = modeConfirmDelete
	return nil
}

func (m *Model) keyConfirm(msg tea.KeyPressMsg) tea.Cmd {
	switch k := m.keys; {
	case key.Matches(msg, k.Confirm):
	case key.Matches(msg, k.ForceQuit):
		return tea.Quit
	default:
		m.mode = modeNormal
		m.setStatus(false, "delete cancelled")
		return nil
	}
	m.mode = modeNormal
	var one *flow.Flow
	if !m.deleteAll {
		r, ok := m.selectedRow()
		if !ok || r.Destroyed {
			m.setStatus(true, "nothing left to delete")
			return nil
		}
		one = &r.Flow
	}
	m.deleteBusy = true
	m.setStatus(false, "deleting…")
	return deleteCmd(m.eng, m.matcher(), one)
}

// deleteCmd deletes one flow, or every live flow the filter matches (the
// list is taken in the command, never in Update).
func deleteCmd(eng *engine.Engine, match store.Matcher, one *flow.Flow) tea.Cmd {
	var flows []flow.Flow
	if one != nil {
		flows = []flow.Flow{*one}
	}
	return func() tea.Msg {
		if one == nil {
			eng.View(func(s *store.Store) {
				s.Walk(match, func(r *store.Row) bool {
					if r.Flow.Status&flow.StatusDying == 0 {
						flows = append(flows, r.Flow)
					}
					return true
				})
			})
		}
		if len(flows) == 0 {
			return DeleteDoneMsg{}
		}
		ctx, cancel := context.WithTimeout(context.Background(), deleteTimeout)
		defer cancel()
		n, err := eng.Delete(ctx, flows)
		return DeleteDoneMsg{Deleted: n, Err: err}
	}
}
