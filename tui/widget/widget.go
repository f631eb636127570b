// Package widget holds the small pure building blocks of conntop's TUI:
// column layout, fitting text into cells by display width, sparklines,
// gauges and human-readable numbers. Nothing here knows about flows.
package widget

import (
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/charmbracelet/x/ansi"
	"github.com/conntop/conntop/internal/numfmt"
)

// Column describes one table column for Layout.
type Column struct {
	// Width is the preferred width; Min the narrowest the column may get
	// when it is Flex (it then shares the spare width).
	Width, Min int
	Flex       bool
	// Hidden columns get width 0.
	Hidden bool
}

// Layout fits columns into total cells, with one separator cell between
// visible columns. Columns are kept left to right in priority order given
// by prio (indexes into cols, most important first): a column that does not
// fit is hidden. Flex columns start at Min and share what is left up to
// their Width; then any remaining width goes to the last flex column.
// It returns the width of each column (0 = hidden).
func Layout(cols []Column, prio []int, total int) []int {
	w := make([]int, len(cols))
	used := 0
	for _, i := range prio {
		c := cols[i]
		if c.Hidden {
			continue
		}
		need := c.Width
		if c.Flex {
			need = c.Min
		}
		sep := 0
		if used > 0 {
			sep = 1
		}
		if used+sep+need > total {
			continue
		}
		w[i] = need
		used += sep + need
	}
	spare := total - used
	for spare > 0 {
		grew := false
		for i, c := range cols {
			if spare == 0 {
				break
			}
			if w[i] > 0 && c.Flex && w[i] < c.Width {
				w[i]++
				spare--
				grew = true
			}
		}
		if !grew {
			break
		}
	}
	return w
}

// Fit returns s cut or padded to exactly w display cells. Cut text ends with
// ellipsis (which must be one cell wide). Right aligns padded text right.
// s must not contain escape sequences.
func Fit(s string, w int, right bool, ellipsis string) string {
	if w <= 0 {
		return ""
	}
	sw := Width(s)
	if sw > w {
		if w == 1 {
			return ellipsis
		}
		return ansi.Truncate(s, w, ellipsis)
	}
	if sw == w {
		return s
	}
	pad := strings.Repeat(" ", w-sw)
	if right {
		return pad + s
	}
	return s + pad
}

// Truncate cuts a possibly styled line to w display cells.
func Truncate(s string, w int) string {
	if w <= 0 {
		return ""
	}
	if plainASCII(s) {
		// One byte, one cell: the common case of addresses and numbers.
		if len(s) <= w {
			return s
		}
		return s[:w]
	}
	if Width(s) <= w {
		return s
	}
	return ansi.Truncate(s, w, "")
}

// Width returns the display width of a possibly styled line, as
// ansi.StringWidth does. A line of printable ASCII, SGR sequences (CSI
// parameters, then 'm': what lipgloss writes for colours and attributes)
// and the one-cell symbols the TUI draws with (narrowRunes: arrows,
// ellipsis, box drawing, gauge and sparkline blocks), every line of a
// frame but the rare one with an address or name in another script, is
// measured as it is read; any other line goes to ansi.StringWidth, which
// segments it into grapheme clusters.
func Width(s string) int {
	w := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 0x20 && c < 0x7f:
			w++
		case c >= 0xc0:
			r, n := utf8.DecodeRuneInString(s[i:])
			if !narrowRune(r) {
				return ansi.StringWidth(s)
			}
			w++
			i += n - 1
		case c == 0x1b && i+1 < len(s) && s[i+1] == '[':
			j := i + 2
			for j < len(s) && (s[j] >= '0' && s[j] <= '9' || s[j] == ';' || s[j] == ':') {
				j++
			}
			if j == len(s) || s[j] != 'm' {
				return ansi.StringWidth(s)
			}
			i = j
		default:
			return ansi.StringWidth(s)
		}
	}
	return w
}

// narrowRunes are ranges of runes one cell wide that never join a
// neighbour into one grapheme cluster: Latin-1 letters and signs (not the
// soft hyphen), general punctuation (dashes, quotes, bullets, …), arrows,
// box drawing, block elements and geometric shapes (not the two squares
// drawn as emoji). TestNarrowRunes holds each to ansi.StringWidth.
var narrowRunes = [...][2]rune{
	{0xa0, 0xac}, {0xae, 0xff}, {0x2010, 0x2027}, {0x2030, 0x205e},
	{0x2190, 0x21ff}, {0x2500, 0x25fc}, {0x25ff, 0x25ff},
}

// narrowRune reports whether r is in narrowRunes.
func narrowRune(r rune) bool {
	for _, rg := range narrowRunes {
		if r >= rg[0] && r <= rg[1] {
			return true
		}
	}
	return false
}

// plainASCII reports whether s is printable ASCII only (no escape
// sequences, no wide or combining characters).
func plainASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f {
			return false
		}
	}
	return true
}

var (
	sparkUnicode = []rune("▁▂▃▄▅▆▇█")
	sparkASCII   = []rune("_.-:=+*#")
)

// Sparkline draws the last w values as one line of w cells (fewer when
// there are fewer values), scaled from the minimum to the maximum shown so
// that changes in a nearly full table stay visible.
func Sparkline(vals []int, w int, ascii bool) string {
	if w <= 0 || len(vals) == 0 {
		return ""
	}
	if len(vals) > w {
		vals = vals[len(vals)-w:]
	}
	levels := sparkUnicode
	if ascii {
		levels = sparkASCII
	}
	lo, hi := vals[0], vals[0]
	for _, v := range vals {
		lo, hi = min(lo, v), max(hi, v)
	}
	var b strings.Builder
	for _, v := range vals {
		i := 0
		if hi > lo {
			i = (v - lo) * (len(levels) - 1) / (hi - lo)
		}
		b.WriteRune(levels[i])
	}
	return b.String()
}

// Gauge returns the filled and empty parts of a bar w cells wide showing
// frac (clamped to 0..1).
func Gauge(frac float64, w int, ascii bool) (filled, empty string) {
	if w <= 0 {
		return "", ""
	}
	if math.IsNaN(frac) || frac < 0 {
		frac = 0
	}
	frac = min(frac, 1)
	n := int(math.Round(frac * float64(w)))
	if frac > 0 && n == 0 {
		n = 1
	}
	f, e := "█", "░"
	if ascii {
		f, e = "#", "."
	}
	return strings.Repeat(f, n), strings.Repeat(e, w-n)
}

// Count formats n with thousands separators: 262144 -> "262,144".
func Count(n uint64) string { return numfmt.Count(n) }

// SI formats n compactly: 999, 1.2k, 34k, 5.6M, 7.8G.
func SI(n float64) string {
	if n < 0 {
		return "-" + SI(-n)
	}
	units := []string{"", "k", "M", "G", "T", "P"}
	u := 0
	for n >= 999.5 && u < len(units)-1 {
		n /= 1000
		u++
	}
	switch {
	case u == 0:
		return strconv.FormatFloat(math.Round(n), 'f', 0, 64)
	case n < 9.95:
		return strconv.FormatFloat(n, 'f', 1, 64) + units[u]
	}
	return strconv.FormatFloat(n, 'f', 0, 64) + units[u]
}

// Bytes formats a byte count with binary units: 512B, 1.5K, 23M.
func Bytes(n float64) string {
	units := []string{"B", "K", "M", "G", "T", "P"}
	u := 0
	for n >= 1023.5 && u < len(units)-1 {
		n /= 1024
		u++
	}
	if u == 0 {
		return strconv.FormatFloat(math.Round(n), 'f', 0, 64) + "B"
	}
	if n < 9.95 {
		return strconv.FormatFloat(n, 'f', 1, 64) + units[u]
	}
	return strconv.FormatFloat(n, 'f', 0, 64) + units[u]
}

// Duration formats d coarsely in at most two units: 45s, 3m20s, 2h05m,
// 3d04h. Negative durations are shown as 0s.
func Duration(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	s := int64(d / time.Second)
	switch {
	case s < 60:
		return strconv.FormatInt(s, 10) + "s"
	case s < 3600:
		return strconv.FormatInt(s/60, 10) + "m" + pad2(s%60) + "s"
	case s < 86400:
		return strconv.FormatInt(s/3600, 10) + "h" + pad2(s/60%60) + "m"
	}
	return strconv.FormatInt(s/86400, 10) + "d" + pad2(s/3600%24) + "h"
}

func pad2(n int64) string {
	if n < 10 {
		return "0" + strconv.FormatInt(n, 10)
	}
	return strconv.FormatInt(n, 10)
}
