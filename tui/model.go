package tui

import (
	"reflect"
	"slices"
	"time"

	"charm.land/bubbles/v2/help"
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
	maxProcs  = 4096 // owning-process answers kept
	procEvery = 2 * time.Second
	// maxPosted bounds the messages components may post within one Update.
	maxPosted = 16
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

// Model is the TUI: the root of its components. It routes messages to
// them, reads the engine on the tick (when it changed) and after each key,
// and lays the components out: header, filter bar (or the actions'
// question), the page shown (or the help), footer. It implements
// tea.Model; use it through a pointer.
type Model struct {
	*common

	header   *header
	bar      *filterBar
	actions  *actions
	footer   *footer
	helpPage *helpPage

	table       *flowTable
	detail      *detailPage
	transitions *transitionsPage
	groups      *groupsPage
	pressure    *pressurePage
	// pages are the components below the header, by pageID.
	pages [numPages]page

	// version is the engine's version at the last refresh (of the
	// header or of everything), headerAt the clock then.
	version   uint64
	refreshed bool
	headerAt  time.Time
	// tableAt is the clock at the last refresh of everything (the table
	// queried).
	tableAt time.Time
	// needRefresh asks Update to read the engine again before it returns.
	needRefresh bool
	// lastKey is when the last key press arrived (wall clock), burstWait
	// whether a burstEndMsg is on its way (Options.CoalesceKeys).
	lastKey   time.Time
	burstWait bool
	// maxFrozen bounds the rows a pause keeps (tests lower it).
	maxFrozen int

	procAsked  time.Time
	procBusy   bool
	svcLoading bool

	frame string
	dirty bool

	// views are the keys that switch pages (the root handles them).
	views []key.Binding
}

var (
	_ tea.Model   = (*Model)(nil)
	_ help.KeyMap = (*Model)(nil)
)

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
	if !opts.NoProcs {
		c.resolver = procs.New(procs.Options{NetDir: opts.ProcNet})
	}
	k := &c.keys
	m := &Model{
		common:    c,
		dirty:     true,
		maxFrozen: maxFrozen,
		views:     []key.Binding{k.TableView, k.TransView, k.GroupView, k.PressureView, k.Next},
	}
	m.table = newFlowTable(c)
	m.detail = newDetailPage(c, m.table)
	m.transitions = newTransitionsPage(c)
	m.groups = newGroupsPage(c)
	m.pressure = newPressurePage(c)
	m.pages = [numPages]page{
		pageTable: m.table, pageDetail: m.detail, pageTransitions: m.transitions,
		pageGroups: m.groups, pagePressure: m.pressure,
	}
	m.header = newHeader(c)
	m.bar = newFilterBar(c, m.table)
	m.actions = newActions(c, m.table)
	m.footer = newFooter(c, m)
	m.helpPage = newHelpPage(c, m, m.header)
	return m
}

// ShortHelp implements help.KeyMap: the footer's hints, from the
// components' KeyMaps.
func (m *Model) ShortHelp() []key.Binding {
	k := &m.keys
	out := []key.Binding{k.Help}
	out = append(out, m.bar.ShortHelp()...)
	out = append(out, m.table.ShortHelp()...)
	out = append(out, k.TransView, k.GroupView)
	out = append(out, m.actions.ShortHelp()...)
	return append(out, k.Pause, k.Quit)
}

// FullHelp implements help.KeyMap: the help page's columns, assembled from
// the components' KeyMaps: moving (table, detail), views and their
// orderings (root, table, groups), filtering (filter bar), the rest (root,
// actions).
func (m *Model) FullHelp() [][]key.Binding {
	k := &m.keys
	tbl := m.table.FullHelp()
	move := slices.Concat(tbl[0], m.detail.ShortHelp())
	views := slices.Concat(m.views, tbl[1], m.groups.ShortHelp())
	rest := slices.Concat([]key.Binding{k.PortNames, k.Pause}, m.actions.FullHelp()[0], m.pressure.FullHelp()[1],
		[]key.Binding{k.Help, k.Quit})
	return [][]key.Binding{move, views, m.bar.FullHelp()[0], rest}
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
	if _, ok := msg.(burstEndMsg); ok {
		m.burstWait = false
	}
	if m.needRefresh {
		if c, wait := m.coalesce(msg); wait {
			cmd = tea.Batch(cmd, c)
		} else {
			m.needRefresh = false
			m.refresh()
		}
	}
	switch msg.(type) {
	case tickMsg:
		return m, tea.Batch(m.tick(), m.askProcs(), m.poll())
	case tea.MouseClickMsg, tea.MouseWheelMsg:
		return m, tea.Batch(cmd, m.askProcs(), m.poll())
	case tea.KeyPressMsg:
		m.dirty = true
		return m, tea.Batch(cmd, m.askProcs(), m.poll())
	}
	return m, cmd
}

// keyBurst is how close key presses come to count as one burst (typed
// ahead, or delivered together by a slow link): faster than anyone types
// or a key repeats.
const keyBurst = 8 * time.Millisecond

// burstEndMsg comes keyBurst after a key press of a burst was left
// unanswered.
type burstEndMsg struct{}

// coalesce reports whether the engine read that msg asks for waits for
// the end of a burst of key presses (Options.CoalesceKeys), and returns
// the command that ends the wait. A query of a big table costs tens of
// milliseconds: a burst is answered once, after its last key.
func (m *Model) coalesce(msg tea.Msg) (tea.Cmd, bool) {
	if !m.opts.CoalesceKeys {
		return nil, false
	}
	now := time.Now()
	switch msg.(type) {
	case tea.KeyPressMsg:
		burst := now.Sub(m.lastKey) < keyBurst
		m.lastKey = now
		if !burst {
			return nil, false
		}
	case burstEndMsg:
		if now.Sub(m.lastKey) >= keyBurst {
			return nil, false
		}
	default:
		return nil, false
	}
	if m.burstWait {
		return nil, true
	}
	m.burstWait = true
	return tea.Tick(keyBurst, func(time.Time) tea.Msg { return burstEndMsg{} }), true
}

// route hands msg to the component it is for.
func (m *Model) route(msg tea.Msg) tea.Cmd {
	var cmd tea.Cmd
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.w, m.h = max(0, msg.Width), max(0, msg.Height)
		m.needRefresh = true
	case tickMsg:
		if had := m.footer.text; had != "" {
			m.footer.Update(msg)
			m.dirty = m.dirty || m.footer.text != had
		}
		switch {
		case m.paused && m.frozen != nil && m.eng.Version() != m.version:
			m.countWaiting()
		case !m.paused && !m.refreshed:
			m.refresh()
		case !m.paused && m.eng.Version() != m.version:
			m.tickRefresh()
		}
	case tea.PasteMsg:
		// A paste goes into the line being edited.
		if c := m.inputOwner(); c != nil {
			cmd = c.Update(msg)
			m.needRefresh = true
		}
	case tea.MouseClickMsg, tea.MouseWheelMsg:
		m.mouse(msg.(tea.MouseMsg))
		m.needRefresh = true
	case tea.KeyPressMsg:
		cmd = m.key(msg)
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
	case tableTopMsg:
		m.table.top()
	case openGroupMsg:
		if m.bar.narrow(msg.filter) {
			m.page = pageTable
			m.table.top()
		}
	case FrozenMsg:
		if m.paused && m.frozen == nil {
			m.frozen = msg.Table
			m.needRefresh = true
		}
	case ExportDoneMsg, DeleteDoneMsg:
		m.actions.Update(msg)
	case PressureMsg:
		m.pressure.Update(msg)
		m.dirty = true
	case ProcsMsg:
		m.procBusy = false
		if len(m.procs)+len(msg.Keys) > maxProcs {
			clear(m.procs)
		}
		for i, k := range msg.Keys {
			m.procs[k] = procAnswer{msg.Procs[i], msg.Found[i]}
		}
		m.dirty = true
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

// inputOwner is the component that has every key while it edits a line or
// asks a question, or nil.
func (m *Model) inputOwner() component {
	switch {
	case m.bar.editing():
		return m.bar
	case m.actions.asking():
		return m.actions
	case m.pressure.editing():
		return m.pressure
	}
	return nil
}

// key routes a key: to the component that has the input, else to the help
// overlay while it is open, else to the component whose KeyMap holds it
// (the root's own keys first), else to the page shown.
func (m *Model) key(msg tea.KeyPressMsg) tea.Cmd {
	if c := m.inputOwner(); c != nil {
		return c.Update(msg)
	}
	k := &m.keys
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
			return m.table.freezeCmd(m.maxFrozen)
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
	case key.Matches(msg, m.views...):
		m.page = m.viewKey(msg)
	default:
		m.layout()
		return m.pages[m.page].Update(msg)
	}
	return nil
}

// nextPage is the page the Next key goes to from each page.
var nextPage = [numPages]pageID{
	pageTable: pageTransitions, pageDetail: pageTransitions, pageTransitions: pageGroups,
	pageGroups: pageTable, pagePressure: pageTable,
}

// viewKey is the page a view key asks for.
func (m *Model) viewKey(msg tea.KeyPressMsg) pageID {
	k := &m.keys
	switch {
	case key.Matches(msg, k.TransView):
		return pageTransitions
	case key.Matches(msg, k.GroupView):
		return pageGroups
	case key.Matches(msg, k.PressureView):
		return pagePressure
	case key.Matches(msg, k.Next):
		return nextPage[m.page]
	}
	return pageTable
}

// mouse routes a click or a wheel notch (not while a line is edited): a
// click on the header's view tabs opens the view; other clicks and the
// wheel go to the page shown, with Y counted from the page's top.
func (m *Model) mouse(msg tea.MouseMsg) {
	if m.inputOwner() != nil {
		return
	}
	ms := msg.Mouse()
	if _, click := msg.(tea.MouseClickMsg); click && ms.Button == tea.MouseLeft && ms.Y == 0 {
		if p, ok := m.header.tabAt(ms.X); ok {
			m.helpPage.open = false
			m.page = p
		}
		return
	}
	if m.helpPage.open {
		return
	}
	m.layout()
	switch msg.(type) {
	case tea.MouseWheelMsg:
		m.pages[m.page].Update(msg)
	case tea.MouseClickMsg:
		ms.Y -= m.bodyTop()
		if ms.Y < 0 || ms.Y >= m.bodyRows() {
			return
		}
		m.pages[m.page].Update(tea.MouseClickMsg(ms))
	}
}

// countWaiting counts the flow events that arrived since the pause.
func (m *Model) countWaiting() {
	m.version = m.eng.Version()
	sum := m.eng.Summary()
	n := eventCount(&sum)
	m.waiting = n - min(n, m.frozen.events)
	m.buildHeader()
	m.dirty = true
}

// buildHeader lays out the header in the lines it may take.
func (m *Model) buildHeader() {
	m.header.SetSize(m.w, m.h-m.barHeight()-m.footer.height()-1-minTableRows)
	m.header.refresh()
}

// listingRefresh is how often the table's rows are read while the source
// lists its table (see tickRefresh).
const listingRefresh = time.Second

// tickRefresh is a tick's refresh after the engine changed. On the flow
// table the rows are read again only when the table's viewer says what it
// shows may have changed (store.View.Changed); else only the header's
// figures are, once a second, or at once when the source's statistics,
// the engine's status or the degraded mode changed. An idle viewer of a
// busy table thus neither queries nor redraws on every tick. The other
// pages read everything on every change. While a live source lists its
// table, the rows are read at most every listingRefresh: the listing
// changes more flows between two ticks than a view catches up with, so
// every read would scan the whole table, and on a big one those scans
// would slow the listing itself.
func (m *Model) tickRefresh() {
	// Nothing the user did: a selected flow that went far is not chased.
	m.table.near = true
	defer func() { m.table.near = false }()
	if m.page != pageTable || m.helpPage.open {
		m.refresh()
		return
	}
	now := m.opts.Now()
	st := m.eng.Status()
	if m.table.changed() && (st.Synced || !st.Live || now.Sub(m.tableAt) >= listingRefresh) {
		m.refresh()
		return
	}
	sum := m.eng.Summary()
	sum.Table.InvalidReasons = nil
	if now.Sub(m.headerAt) < time.Second && !headerNews(&m.sum, &sum, &m.status, &st) {
		return // the version stays: the figures are read again next tick
	}
	sum.CountHistory = slices.Clone(sum.CountHistory)
	height := m.header.height()
	m.version, m.status, m.now, m.sum, m.headerAt = m.eng.Version(), st, now, sum, now
	m.dirty = true
	m.buildHeader()
	if m.header.height() != height {
		m.refresh() // the table has another number of rows
	}
}

// headerNews reports whether the header has news that must not wait for
// its next second: the source's statistics, the engine's status or the
// degraded mode changed.
func headerNews(old, cur *store.Summary, os, cs *engine.Status) bool {
	return !reflect.DeepEqual(old.Table, cur.Table) || old.Degraded != cur.Degraded ||
		os.Source != cs.Source || os.Live != cs.Live || os.Synced != cs.Synced || os.Done != cs.Done ||
		os.Notice != cs.Notice || (os.Err == nil) != (cs.Err == nil)
}

// refresh reads the engine's status and summary, lays out the header, and
// has the table and the page shown read what they show; while paused it
// lays out the still picture again (after a key or a resize) and reads
// nothing new but the groups.
func (m *Model) refresh() {
	m.dirty = true
	if !m.paused {
		m.refreshed = true
		m.version = m.eng.Version()
		m.status = m.eng.Status()
		m.now = m.opts.Now()
		m.headerAt, m.tableAt = m.now, m.now
		m.sum = m.eng.Summary() // never waits behind the pump or a viewer's scan
		m.sum.CountHistory = slices.Clone(m.sum.CountHistory)
		m.sum.Table.InvalidReasons = nil // not shown; do not keep the store's map
	}
	m.buildHeader()
	m.layout()
	m.table.refresh() // the filter bar shows its counts on every page
	if p := m.pages[m.page]; p != m.table {
		p.refresh()
	}
}

// layout gives each component its size: the page gets the lines the
// header, the filter bar and the footer leave.
func (m *Model) layout() {
	m.bar.SetSize(m.w, 1)
	m.actions.SetSize(m.w, 1)
	m.footer.SetSize(m.w, m.h)
	body := m.bodyRows()
	m.helpPage.SetSize(m.w, body)
	for _, p := range m.pages {
		p.SetSize(m.w, body)
	}
}

// barHeight is the height of the filter bar, or of the actions' question.
func (m *Model) barHeight() int {
	if m.actions.asking() {
		return 1
	}
	return m.bar.height()
}

// bodyRows is the height of the page between the filter line and the
// footer.
func (m *Model) bodyRows() int {
	return max(0, m.h-m.header.height()-m.barHeight()-m.footer.height())
}

// bodyTop is the screen line where the page starts.
func (m *Model) bodyTop() int { return m.header.height() + m.barHeight() }

// poll lets the page shown ask for background data (the pressure report).
func (m *Model) poll() tea.Cmd {
	if p, ok := m.pages[m.page].(poller); ok {
		return p.poll()
	}
	return nil
}

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
// flows the page shown would show them for.
func (m *Model) askProcs() tea.Cmd {
	if m.resolver == nil || m.procBusy || m.paused {
		return nil
	}
	pu, ok := m.pages[m.page].(procUser)
	if !ok {
		return nil
	}
	now := time.Now()
	if now.Sub(m.procAsked) < procEvery {
		return nil
	}
	flows := pu.procFlows()
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
