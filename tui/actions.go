package tui

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"

	"github.com/conntop/conntop/internal/engine"
	"github.com/conntop/conntop/internal/export"
	"github.com/conntop/conntop/internal/flow"
	"github.com/conntop/conntop/internal/store"
	"github.com/conntop/conntop/internal/termsafe"
	"github.com/conntop/conntop/tui/widget"
)

// deleteTimeout bounds one delete in the kernel.
const deleteTimeout = 10 * time.Second

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

// askMode is the question the actions line asks.
type askMode uint8

const (
	askNone    askMode = iota
	askExport          // the export path (a textinput)
	askConfirm         // delete? [y/N]
)

// selection is what the actions need of the flow table.
type selection interface {
	selectedRow() (store.Row, bool)
	// matchedTotal is how many flows match the filter, of how many.
	matchedTotal() (matched, total int)
}

// actions exports the filtered table to a file and deletes flows from the
// kernel table. While it asks (the export path, or whether to delete) it
// takes the filter bar's line and every key. The work runs in commands
// that read the store themselves: Update never copies the table.
type actions struct {
	*common
	table selection
	width int

	ask  askMode
	edit lineEdit

	exportCSV  bool
	exportBusy bool

	deleteAll   bool
	deleteCount int
	deleteBusy  bool

	bindings []key.Binding
}

func newActions(c *common, table selection) *actions {
	k := &c.keys
	return &actions{common: c, table: table, edit: newLineEdit(), bindings: []key.Binding{k.Export, k.Delete, k.DeleteAll}}
}

// ShortHelp implements help.KeyMap.
func (a *actions) ShortHelp() []key.Binding { return a.bindings[:1] }

// FullHelp implements help.KeyMap.
func (a *actions) FullHelp() [][]key.Binding { return [][]key.Binding{a.bindings} }

// asking reports whether a question is open (it has the keys).
func (a *actions) asking() bool { return a.ask != askNone }

// SetSize implements component.
func (a *actions) SetSize(w, _ int) { a.width = w }

// Update implements component: the keys of its KeyMap, every key and paste
// while it asks, and the results of its commands.
func (a *actions) Update(msg tea.Msg) tea.Cmd {
	switch msg := msg.(type) {
	case tea.PasteMsg:
		if a.ask == askExport {
			a.edit.handle(msg)
		}
	case tea.KeyPressMsg:
		switch a.ask {
		case askExport:
			return a.keyExport(msg)
		case askConfirm:
			return a.keyConfirm(msg)
		}
		switch k := &a.keys; {
		case key.Matches(msg, k.Export):
			if a.opts.ReadOnly {
				a.setStatus(true, "export is disabled in a read-only session; from your machine: ssh -p PORT HOST snapshot --format csv > flows.csv")
				return nil
			}
			a.ask = askExport
			a.edit.set(a.defaultExportPath())
		case key.Matches(msg, k.Delete, k.DeleteAll):
			a.startDelete(key.Matches(msg, k.DeleteAll))
		}
	case ExportDoneMsg:
		a.exportBusy = false
		if msg.Err != nil {
			a.setStatus(true, "export failed: %v", msg.Err)
		} else {
			a.setStatus(false, "exported %s flows to %s", widget.Count(uint64(msg.Rows)), msg.Path)
		}
	case DeleteDoneMsg:
		a.deleteBusy = false
		if msg.Err != nil {
			a.setStatus(true, "delete failed after %d flows: %v", msg.Deleted, msg.Err)
		} else {
			a.setStatus(false, "deleted %s flows", widget.Count(uint64(msg.Deleted)))
		}
	}
	return nil
}

// View implements component: the question, while one is open.
func (a *actions) View() string {
	st := &a.st
	var l string
	switch a.ask {
	case askExport:
		f := "json"
		if a.exportCSV {
			f = "csv"
		}
		prompt := "export " + f + " (tab: json/csv, enter: write, esc: cancel) to: "
		if len(prompt)+len(a.edit.value())+1 > a.width {
			prompt = "export " + f + " (tab: csv/json) to: "
		}
		l = st.key.Render(prompt) + a.edit.render(st)
	case askConfirm:
		what := "the selected flow"
		if a.deleteAll {
			what = fmt.Sprintf("%s flows matching %q", widget.Count(uint64(a.deleteCount)), a.filterText())
		}
		l = st.loud.Render(termsafe.Escape(" delete " + what + " from the kernel table? [y/N] "))
	}
	return widget.Truncate(l, a.width)
}

// defaultExportPath names an export after the time, in Options.ExportDir.
func (a *actions) defaultExportPath() string {
	ext := ".json"
	if a.exportCSV {
		ext = ".csv"
	}
	return filepath.Join(a.opts.ExportDir, "conntop-"+a.opts.Now().Format("20060102-150405")+ext)
}

func (a *actions) keyExport(msg tea.KeyPressMsg) tea.Cmd {
	switch k := &a.keys; {
	case key.Matches(msg, k.Cancel):
		a.ask = askNone
		return nil
	case key.Matches(msg, k.ForceQuit):
		return tea.Quit
	case key.Matches(msg, k.NextFormat):
		// Switch format; a default name follows the format.
		wasDefault := a.edit.value() == a.defaultExportPath()
		a.exportCSV = !a.exportCSV
		if wasDefault {
			a.edit.set(a.defaultExportPath())
		}
		return nil
	case key.Matches(msg, k.Accept):
		path := strings.TrimSpace(a.edit.value())
		if path == "" {
			return nil
		}
		a.ask = askNone
		if a.exportBusy {
			a.setStatus(true, "an export is still running")
			return nil
		}
		if strings.HasSuffix(path, ".csv") {
			a.exportCSV = true
		} else if strings.HasSuffix(path, ".json") {
			a.exportCSV = false
		}
		a.exportBusy = true
		a.setStatus(false, "exporting to %s…", path)
		return exportCmd(a.eng, a.matcher(), a.opts.Now(), path, a.exportCSV)
	}
	a.edit.handle(msg)
	return nil
}

// exportCmd writes the flows match selects in the background: the
// snapshot is taken in the command, so Update never copies the whole
// table. The command captures only values (the
// filter is immutable), never a component.
func exportCmd(eng *engine.Engine, match store.Matcher, now time.Time, path string, csv bool) tea.Cmd {
	return func() tea.Msg {
		snap := export.Snapshot{Time: now, Source: eng.Status().Source}
		// Read in chunks: the event pump is not held up for the whole copy.
		flows, sum := eng.Snapshot(match)
		snap.Flows, snap.Table, snap.Degraded = flows, sum.Table, export.DegradedFrom(sum.Degraded)
		err := export.WriteFile(path, export.FileOptions{}, func(w io.Writer) error {
			if csv {
				return export.WriteCSV(w, snap.Flows)
			}
			return export.WriteJSON(w, &snap)
		})
		return ExportDoneMsg{Path: path, Rows: len(snap.Flows), Err: err}
	}
}

// startDelete asks for confirmation of deleting the selected flow or every
// flow the filter matches.
func (a *actions) startDelete(all bool) {
	switch {
	case a.opts.ReadOnly:
		a.setStatus(true, "delete is disabled in a read-only session")
		return
	case !a.opts.AllowDelete:
		a.setStatus(true, "read-only: start conntop with --allow-delete to delete flows")
		return
	case a.eng.Source() == nil || !a.eng.CanDelete():
		a.setStatus(true, "%v", engine.ErrReadOnly)
		return
	case a.deleteBusy:
		a.setStatus(true, "a delete is still running")
		return
	}
	if all {
		n, _ := a.table.matchedTotal() // the count shown; the command deletes what matches then
		if n == 0 {
			a.setStatus(true, "no flows match the filter")
			return
		}
		a.deleteCount = n
	} else {
		if _, ok := a.table.selectedRow(); !ok {
			a.setStatus(true, "no flow selected")
			return
		}
		a.deleteCount = 1
	}
	a.deleteAll = all
	a.ask = askConfirm
}

func (a *actions) keyConfirm(msg tea.KeyPressMsg) tea.Cmd {
	switch k := &a.keys; {
	case key.Matches(msg, k.Confirm):
	case key.Matches(msg, k.ForceQuit):
		return tea.Quit
	default:
		a.ask = askNone
		a.setStatus(false, "delete cancelled")
		return nil
	}
	a.ask = askNone
	var one *flow.Flow
	if !a.deleteAll {
		r, ok := a.table.selectedRow()
		if !ok || r.Destroyed {
			a.setStatus(true, "nothing left to delete")
			return nil
		}
		one = &r.Flow
	}
	a.deleteBusy = true
	a.setStatus(false, "deleting…")
	return deleteCmd(a.eng, a.matcher(), one)
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
