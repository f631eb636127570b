package tui

import (
	"time"

	"github.com/conntop/conntop/internal/explain"
)

// Options configure a Model. Zero values mean the defaults.
type Options struct {
	// Refresh is the frame interval (default 250ms, 4 frames a second).
	Refresh time.Duration
	// AllowDelete enables deleting flows (the source must support it).
	AllowDelete bool
	// ReadOnly disables delete and export to local disk (SSH sessions).
	ReadOnly bool
	// ASCII replaces Unicode box drawing, arrows, bars and sparklines with
	// ASCII.
	ASCII bool
	// NoColor renders without colours (bold, faint and reverse remain).
	// The NO_COLOR environment variable is honoured by the caller setting
	// this, and by Bubble Tea's colour profile detection.
	NoColor bool
	// NoMouse leaves the mouse to the terminal (its own text selection):
	// no clicks, no wheel.
	NoMouse bool
	// Filter is the initial filter expression.
	Filter string
	// ExportDir is where exports go by default (default: the current
	// directory).
	ExportDir string
	// Now is the clock (default time.Now); tests fix it.
	Now func() time.Time
	// PortNames starts with port names from /etc/services shown.
	PortNames bool
	// ServicesFile is the services database (default /etc/services).
	ServicesFile string
	// NoProcs disables the owning-process lookup.
	NoProcs bool
	// ProcNet is the directory with the socket tables used for the process
	// lookup (default /proc/self/net; "/proc/PID/net" for another network
	// namespace).
	ProcNet string
	// CoalesceKeys reads the engine once for a burst of key presses (keys
	// typed ahead over a slow link arrive together) instead of after each:
	// a key that comes within keyBurst of the previous one waits until the
	// burst ends. Off, every key is answered at once (tests).
	CoalesceKeys bool
	// Explain gives the pressure view the settings that govern the table
	// and when the source's listing ended (see explain.Hooks).
	Explain explain.Hooks
}

func (o *Options) defaults() {
	if o.Refresh <= 0 {
		o.Refresh = 250 * time.Millisecond
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.ExportDir == "" {
		o.ExportDir = "."
	}
}
