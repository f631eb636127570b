package serve

import (
	"testing"
	"time"
)

// TestFrameRate: a session's renderer runs at least keyFrameRate frames a
// second whatever the refresh, faster for a faster refresh, at most 60.
func TestFrameRate(t *testing.T) {
	for _, tc := range []struct {
		refresh time.Duration
		want    int
	}{
		{DefaultRefresh, keyFrameRate},
		{time.Minute, keyFrameRate},
		{40 * time.Millisecond, keyFrameRate},
		{20 * time.Millisecond, 50},
		{time.Millisecond, 60},
	} {
		if got := frameRate(tc.refresh); got != tc.want {
			t.Errorf("frameRate(%v) = %d, want %d", tc.refresh, got, tc.want)
		}
	}
}
