package tui

import (
	"io"
	"maps"
	"path/filepath"
	"strings"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"

	"github.com/conntop/conntop/internal/export"
	"github.com/conntop/conntop/internal/store"
)

// defaultExportPath names an export after the time, in Options.ExportDir.
func (m *Model) defaultExportPath() string {
	ext := ".json"
	if m.exportCSV {
		ext = ".csv"
	}
	return filepath.Join(m.opts.ExportDir, "conntop-"+m.opts.Now().Format("20060102-150405")+ext)
}

func (m *Model) keyExport(msg tea.KeyPressMsg) tea.Cmd {
	switch k := m.keys; {
	case key.Matches(msg, k.Cancel):
		m.mode = modeNormal
		return nil
	case key.Matches(msg, k.ForceQuit):
		return tea.Quit
	case key.Matches(msg, k.NextFormat):
		// Switch format; a default name follows the format.
		wasDefault := m.edit.value() == m.defaultExportPath()
		m.exportCSV = !m.exportCSV
		if wasDefault {
			m.edit.set(m.defaultExportPath())
		}
		return nil
	case key.Matches(msg, k.Accept):
		path := strings.TrimSpace(m.edit.value())
		if path == "" {
			return nil
		}
		m.mode = modeNormal
		if m.exportBusy {
			m.setStatus(true, "an export is still running")
			return nil
		}
		if strings.HasSuffix(path, ".csv") {
			m.exportCSV = true
		} else if strings.HasSuffix(path, ".json") {
			m.exportCSV = false
		}
		m.exportBusy = true
		m.setStatus(false, "exporting to %s…", path)
		return m.exportCmd(path, m.exportCSV)
	}
	m.edit.handle(msg)
	return nil
}

// exportCmd writes the current filtered view in the background: the
// snapshot is taken in the command, under the engine's lock, so Update
// never copies the whole table. The command captures only values (the
// filter is immutable), never the Model.
func (m *Model) exportCmd(path string, csv bool) tea.Cmd {
	eng, match, now := m.eng, m.matcher(), m.opts.Now()
	return func() tea.Msg {
		snap := export.Snapshot{Time: now, Source: eng.Status().Source}
		eng.View(func(s *store.Store) {
			snap.Flows = s.Snapshot(match)
			snap.Table = s.Summary().Table
			snap.Table.InvalidReasons = maps.Clone(snap.Table.InvalidReasons)
		})
		err := export.WriteFile(path, export.FileOptions{}, func(w io.Writer) error {
			if csv {
				return export.WriteCSV(w, snap.Flows)
			}
			return export.WriteJSON(w, &snap)
		})
		return ExportDoneMsg{Path: path, Rows: len(snap.Flows), Err: err}
	}
}
