package tui

import (
	"io"
	"maps"
	"path/filepath"
	"strings"

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
	switch msg.Keystroke() {
	case "esc":
		m.mode = modeNormal
		return nil
	case "ctrl+c":
		return tea.Quit
	case "tab":
		// Switch format; a default name follows the format.
		wasDefault := m.edit.value() == m.defaultExportPath()
		m.exportCSV = !m.exportCSV
		if wasDefault {
			m.edit.set(m.defaultExportPath())
		}
		return nil
	case "enter":
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

// exportCmd writes the current filtered view in the background. The
// snapshot is taken here, on the UI goroutine (the store's readers are not
// meant to run concurrently with this Model's own queries); the command
// captures only values, never the Model.
func (m *Model) exportCmd(path string, csv bool) tea.Cmd {
	snap := export.Snapshot{Time: m.opts.Now(), Source: m.eng.Status().Source}
	m.eng.View(func(s *store.Store) {
		snap.Flows = s.Snapshot(m.matcher())
		sum := s.Summary()
		snap.Table = sum.Table
		snap.Degraded = export.DegradedFrom(sum.Degraded)
	})
	snap.Table.InvalidReasons = maps.Clone(snap.Table.InvalidReasons)
	return func() tea.Msg {
		err := export.WriteFile(path, export.FileOptions{}, func(w io.Writer) error {
			if csv {
				return export.WriteCSV(w, snap.Flows)
			}
			return export.WriteJSON(w, &snap)
		})
		return ExportDoneMsg{Path: path, Rows: len(snap.Flows), Err: err}
	}
}
