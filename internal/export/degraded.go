package export

import "github.com/conntop/conntop/internal/store"

// DegradedFrom returns what a snapshot says of a store's degradation: nil
// when the store gave nothing up.
func DegradedFrom(d store.Degradation) *Degraded {
	if !d.Any() {
		return nil
	}
	return &Degraded{History: d.NoHistory, Linger: d.NoLinger, LimitBytes: d.Limit, UsedBytes: d.Used}
}
