package tui

import (
	"strings"

	"github.com/conntop/conntop/internal/store"
)

// degradedText is the header's word on what the store gave up to stay
// within its memory limit ("" when nothing): flows and counts stay
// complete, so only history and lingering are named.
func degradedText(d store.Degradation) string {
	if !d.Any() {
		return ""
	}
	var off []string
	if d.NoHistory {
		off = append(off, "history")
	}
	if d.NoLinger {
		off = append(off, "linger")
	}
	return "memory limit: " + strings.Join(off, "+") + " off"
}
