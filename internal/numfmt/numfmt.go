// Package numfmt formats numbers for people, the same way in the TUI and in
// headless text output.
package numfmt

import (
	"strconv"
	"strings"
)

// Count formats n with thousands separators: 262144 -> "262,144".
func Count(n uint64) string {
	s := strconv.FormatUint(n, 10)
	if len(s) <= 3 {
		return s
	}
	var b strings.Builder
	pre := len(s) % 3
	if pre > 0 {
		b.WriteString(s[:pre])
	}
	for i := pre; i < len(s); i += 3 {
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(s[i : i+3])
	}
	return b.String()
}
