package numfmt

import "testing"

func TestCount(t *testing.T) {
	for _, tt := range []struct {
		n    uint64
		want string
	}{{0, "0"}, {999, "999"}, {1000, "1,000"}, {262144, "262,144"}, {4194304, "4,194,304"}, {18446744073709551615, "18,446,744,073,709,551,615"}} {
		if got := Count(tt.n); got != tt.want {
			t.Errorf("Count(%d) = %q, want %q", tt.n, got, tt.want)
		}
	}
}
