package tui

import (
	"testing"

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
