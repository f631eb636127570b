package widget

import (
	"fmt"
	"testing"
	"time"

	"github.com/charmbracelet/x/ansi"
)

func TestLayout(t *testing.T) {
	cols := []Column{
		{Width: 3},                       // 0 state
		{Width: 11},                      // 1 tcp
		{Width: 21, Min: 15, Flex: true}, // 2 src
		{Width: 21, Min: 15, Flex: true}, // 3 dst
		{Width: 7},                       // 4 bytes
		{Width: 16, Hidden: true},        // 5 proc
	}
	prio := []int{0, 2, 3, 1, 4, 5}
	tests := []struct {
		total int
		want  string
	}{
		{0, "[0 0 0 0 0 0]"},
		{3, "[3 0 0 0 0 0]"},
		{19, "[3 0 15 0 0 0]"},
		{35, "[3 0 15 15 0 0]"},
		{47, "[3 11 15 15 0 0]"},
		{55, "[3 11 15 15 7 0]"},
		{60, "[3 11 18 17 7 0]"},
		{200, "[3 11 21 21 7 0]"},
	}
	for _, tt := range tests {
		if got := fmt.Sprint(Layout(cols, prio, tt.total)); got != tt.want {
			t.Errorf("Layout(%d) = %s, want %s", tt.total, got, tt.want)
		}
	}
}

func TestFit(t *testing.T) {
	tests := []struct {
		s     string
		w     int
		right bool
		want  string
	}{
		{"abc", 5, false, "abc  "},
		{"abc", 5, true, "  abc"},
		{"abcdef", 4, false, "abc…"},
		{"abc", 3, false, "abc"},
		{"abc", 1, false, "…"},
		{"abc", 0, false, ""},
		{"日本", 3, false, "日…"},
	}
	for _, tt := range tests {
		if got := Fit(tt.s, tt.w, tt.right, "…"); got != tt.want {
			t.Errorf("Fit(%q, %d, %v) = %q, want %q", tt.s, tt.w, tt.right, got, tt.want)
		}
	}
}

func TestSparklineGauge(t *testing.T) {
	if got := Sparkline([]int{0, 7, 14, 7}, 10, false); got != "▁▄█▄" {
		t.Errorf("Sparkline = %q", got)
	}
	if got := Sparkline([]int{1, 2, 3, 4, 5}, 3, true); got != "_:#" {
		t.Errorf("Sparkline ascii, cut = %q", got)
	}
	if got := Sparkline([]int{5, 5}, 3, true); got != "__" {
		t.Errorf("Sparkline flat = %q", got)
	}
	if got := Sparkline(nil, 3, true); got != "" {
		t.Errorf("Sparkline empty = %q", got)
	}
	for _, tt := range []struct {
		frac float64
		w    int
		want string
	}{
		{0.5, 10, "#####....."}, {0, 4, "...."}, {0.001, 4, "#..."}, {2, 4, "####"}, {0.5, 0, ""},
	} {
		f, e := Gauge(tt.frac, tt.w, true)
		if f+e != tt.want {
			t.Errorf("Gauge(%v, %d) = %q, want %q", tt.frac, tt.w, f+e, tt.want)
		}
	}
}

func TestHuman(t *testing.T) {
	for _, tt := range []struct{ got, want string }{
		{Count(0), "0"}, {Count(999), "999"}, {Count(1000), "1,000"}, {Count(262144), "262,144"},
		{Count(1234567), "1,234,567"},
		{SI(0), "0"}, {SI(999), "999"}, {SI(1234), "1.2k"}, {SI(34000), "34k"}, {SI(5.6e6), "5.6M"}, {SI(-1500), "-1.5k"},
		{Bytes(512), "512B"}, {Bytes(1536), "1.5K"}, {Bytes(23 << 20), "23M"},
		{Duration(-time.Second), "0s"}, {Duration(45 * time.Second), "45s"}, {Duration(200 * time.Second), "3m20s"},
		{Duration(2*time.Hour + 5*time.Minute), "2h05m"}, {Duration(76 * time.Hour), "3d04h"},
	} {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
}

func TestTruncate(t *testing.T) {
	tests := []struct {
		in   string
		w    int
		want string
	}{
		{"10.0.0.1:443", 20, "10.0.0.1:443"},
		{"10.0.0.1:443", 5, "10.0."},
		{"10.0.0.1:443", 0, ""},
		{"fd00::1", -1, ""},
		{"", 3, ""},
		{"héllo", 3, "hél"},
		{"日本語", 4, "日本"},
		{"\x1b[1mbold\x1b[0m", 2, "\x1b[1mbo\x1b[0m"},
	}
	for _, tt := range tests {
		if got := Truncate(tt.in, tt.w); got != tt.want {
			t.Errorf("Truncate(%q, %d) = %q, want %q", tt.in, tt.w, got, tt.want)
		}
	}
}

// TestWidthMatchesANSI checks Width against ansi.StringWidth on plain,
// styled and other lines (its fast path and its fallback).
func TestWidthMatchesANSI(t *testing.T) {
	for _, s := range []string{
		"", "10.0.0.1:443", "\x1b[1;38;2;10;20;30mEST\x1b[m x", "\x1b[38:5:1mred\x1b[0m",
		"a\x1b[", "a\x1b[1", "\x1b[2Jclear", "\x1b]8;;http://x\x07link\x1b]8;;\x07", "café", "…", "漢字 wide", "tab\there", "\x1b[31m漢\x1b[m",
	} {
		if got, want := Width(s), ansi.StringWidth(s); got != want {
			t.Errorf("Width(%q) = %d, ansi.StringWidth %d", s, got, want)
		}
	}
}

// TestNarrowRunes checks every rune Width counts as one cell without
// segmenting the line: one cell alone and between two letters, as
// ansi.StringWidth says; and the neighbours of the ranges that are not.
func TestNarrowRunes(t *testing.T) {
	for _, rg := range narrowRunes {
		for r := rg[0]; r <= rg[1]; r++ {
			for _, s := range []string{string(r), "a" + string(r) + "b", "\x1b[1m" + string(r) + string(r) + "\x1b[m"} {
				if got, want := Width(s), ansi.StringWidth(s); got != want {
					t.Errorf("Width(%q) = %d, ansi.StringWidth %d", s, got, want)
				}
			}
		}
	}
	for _, r := range []rune{0xad, 0x25fd, 0x25fe, 0x200d, 0xfe0f, 0x2028} {
		if narrowRune(r) {
			t.Errorf("%U counts as narrow", r)
		}
	}
	for _, s := range []string{"→\ufe0f", "↔\ufe0f x", "a\u0301→", "…\u200d…", "█▁▂ 中"} {
		if got, want := Width(s), ansi.StringWidth(s); got != want {
			t.Errorf("Width(%q) = %d, ansi.StringWidth %d", s, got, want)
		}
	}
}

func FuzzWidth(f *testing.F) {
	f.Add("→ ▲ … ─ █░ ▁▂")
	f.Add("↔\ufe0f")
	f.Add("\x1b[1;31mEST\x1b[m 10.0.0.1")
	f.Add("\x1b[38:2::1:2:3mx")
	f.Add("plain")
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := Width(s), ansi.StringWidth(s); got != want {
			t.Errorf("Width(%q) = %d, ansi.StringWidth %d", s, got, want)
		}
	})
}
