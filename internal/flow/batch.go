package flow

// Batch is a run of events that a source hands over at once, in an
// EventBatch. The source owns it again once the receiver has released
// it: a source reuses a few batches, so a listing of millions of entries
// allocates nothing per event.
type Batch struct {
	// Events are the events, in order.
	Events []Event
	// free is where Release returns the batch (nil: nowhere).
	free chan<- *Batch
}

// NewBatch returns an empty batch with room for size events that Release
// sends back on free, which must have room for it (a buffered channel
// with a slot for every batch of the pool never blocks).
func NewBatch(size int, free chan<- *Batch) *Batch {
	return &Batch{Events: make([]Event, 0, size), free: free}
}

// Release hands the batch back to its source. The receiver calls it once
// it has taken the events, and keeps neither the batch nor its slice.
func (b *Batch) Release() {
	clear(b.Events) // drop references to flows' strings and masters
	b.Events = b.Events[:0]
	if b.free != nil {
		b.free <- b
	}
}
