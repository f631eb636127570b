package widget

import (
	"testing"

	"charm.land/lipgloss/v2"
)

// paintStyles are the kinds of style the TUI paints lines with.
func paintStyles() []lipgloss.Style {
	fg := lipgloss.Color("42")
	return []lipgloss.Style{
		lipgloss.NewStyle(),
		lipgloss.NewStyle().Foreground(fg),
		lipgloss.NewStyle().Foreground(fg).Bold(true),
		lipgloss.NewStyle().Faint(true),
		lipgloss.NewStyle().Reverse(true),
		lipgloss.NewStyle().Bold(true).Foreground(lipgloss.Color("231")).Background(lipgloss.Color("160")),
		lipgloss.NewStyle().Foreground(fg).Bold(true).Underline(true),
		lipgloss.NewStyle().Strikethrough(true),
		lipgloss.NewStyle().Padding(0, 1),
		lipgloss.NewStyle().Width(12),
	}
}

var paintTexts = []string{
	"", "x", "ESTABLISHED", "10.0.0.4:1028 → 10.255.0.4:84", "  lead", "trail  ", "…▲▼ 中文",
	"tab\there", "two\nlines", "cr\r", "\x1b[1mbold\x1b[m in it", "\u00a0nbsp", "e\u0301", "🇩🇪 flag",
}

func TestPaintRendersAsLipgloss(t *testing.T) {
	for i, st := range paintStyles() {
		p := NewPaint(st)
		for _, s := range paintTexts {
			if got, want := p.Render(s), st.Render(s); got != want {
				t.Errorf("style %d, %q: Paint %q, Render %q", i, s, got, want)
			}
		}
	}
}

// TestPaintFixedStyles checks that the styles drawn on every frame take
// the fast path, and those lipgloss renders rune by rune or to a width do
// not.
func TestPaintFixedStyles(t *testing.T) {
	styles := paintStyles()
	for i, want := range []bool{true, true, true, true, true, true, false, false, true, false} {
		if got := NewPaint(styles[i]).fixed; got != want {
			t.Errorf("style %d: fixed %v, want %v", i, got, want)
		}
	}
}

func FuzzPaint(f *testing.F) {
	for _, s := range paintTexts {
		f.Add(s)
	}
	styles := paintStyles()
	paints := make([]Paint, len(styles))
	for i, st := range styles {
		paints[i] = NewPaint(st)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for i, st := range styles {
			if got, want := paints[i].Render(s), st.Render(s); got != want {
				t.Fatalf("style %d, %q: Paint %q, Render %q", i, s, got, want)
			}
		}
	})
}

func BenchmarkPaint(b *testing.B) {
	st := lipgloss.NewStyle().Foreground(lipgloss.Color("42"))
	p := NewPaint(st)
	const s = "ESTABLISHED"
	b.Run("lipgloss", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = st.Render(s)
		}
	})
	b.Run("paint", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = p.Render(s)
		}
	})
}
