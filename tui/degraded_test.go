package tui

import (
	"strings"
	"testing"
	"time"

	"github.com/conntop/conntop/internal/engine"
	"github.com/conntop/conntop/internal/store"
)

func TestDegradedText(t *testing.T) {
	tests := []struct {
		d    store.Degradation
		want string
	}{
		{store.Degradation{Limit: 1 << 20, Used: 1 << 10}, ""},
		{store.Degradation{NoHistory: true}, "memory limit: history off"},
		{store.Degradation{NoHistory: true, NoLinger: true}, "memory limit: history+linger off"},
	}
	for _, tt := range tests {
		if got := degradedText(tt.d); got != tt.want {
			t.Errorf("degradedText(%+v) = %q, want %q", tt.d, got, tt.want)
		}
	}
}

// TestHeaderSaysDegraded renders the header of a store that gave up
// history and lingering to stay within a tiny memory budget.
func TestHeaderSaysDegraded(t *testing.T) {
	eng := engine.New(nil, engine.Options{Now: func() time.Time { return t0 }, Store: store.Options{MemoryLimit: 1 << 10}})
	eng.Apply(scenario())
	eng.Tick(t0)
	out := drive(t, New(eng, testOptions()), 160, 30)
	if !strings.Contains(out, "memory limit: history+linger off") {
		t.Errorf("the header does not say the store is degraded:\n%s", out)
	}
	ok := drive(t, New(newEngine(t, scenario()), testOptions()), 160, 30)
	if strings.Contains(ok, "memory limit") {
		t.Errorf("a store with no limit is said to be degraded:\n%s", ok)
	}
}
