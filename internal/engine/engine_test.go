package engine

import (
	"context"
	"errors"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/conntop/conntop/internal/flow"
	"github.com/conntop/conntop/internal/store"
	"github.com/conntop/conntop/source/sourcetest"
)

// finiteSource emits its events, then ends like a finished replay.
type finiteSource struct {
	evs []flow.Event
	err error
}

func (s *finiteSource) Name() string { return "pcap" }
func (s *finiteSource) Run(ctx context.Context, out chan<- flow.Event) error {
	for _, ev := range s.evs {
		select {
		case out <- ev:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return s.err
}

func udpFlow(sport uint16) flow.Flow {
	return flow.Flow{
		Family: flow.FamilyIPv4, Proto: flow.ProtoUDP, Status: flow.StatusConfirmed, Timeout: 30,
		Orig:  flow.Tuple{Src: netip.MustParseAddr("10.0.0.1"), Dst: netip.MustParseAddr("10.0.0.2"), SrcPort: sport, DstPort: 53},
		Reply: flow.Tuple{Src: netip.MustParseAddr("10.0.0.2"), Dst: netip.MustParseAddr("10.0.0.1"), SrcPort: 53, DstPort: sport},
	}
}

func TestRunAppliesEverythingAndReportsStatus(t *testing.T) {
	t0 := time.Date(2009, 11, 3, 6, 0, 0, 0, time.UTC)
	var evs []flow.Event
	evs = append(evs, flow.Event{Type: flow.EventSynced, Time: time.Now()})
	for i := 0; i < 20000; i++ {
		evs = append(evs, flow.Event{Type: flow.EventNew, Time: t0.Add(time.Duration(i) * time.Millisecond), Flow: udpFlow(uint16(1000 + i))})
	}
	src := &finiteSource{evs: evs}
	eng := New(src, Options{EventClock: true, MaxBatch: 100})
	if err := eng.Run(context.Background()); err != nil {
		t.Fatalf("Run: %v", err)
	}
	var n int
	eng.View(func(s *store.Store) { n = s.Len() })
	if n != 20000 {
		t.Errorf("store holds %d flows, want 20000 (nothing the source sent before it ended may be lost)", n)
	}
	st := eng.Status()
	if st.Source != "pcap" || !st.Synced || !st.Done || st.Live || st.Err != nil {
		t.Errorf("status %+v", st)
	}
	// The replay's own clock: the last packet, not today.
	if want := t0.Add(19999 * time.Millisecond); !eng.Now().Equal(want) {
		t.Errorf("Now() = %v, want the last event's time %v", eng.Now(), want)
	}
}

func TestRunReturnsSourceError(t *testing.T) {
	boom := errors.New("boom")
	eng := New(&finiteSource{err: boom}, Options{})
	err := eng.Run(context.Background())
	if !errors.Is(err, boom) {
		t.Fatalf("Run = %v, want it to wrap %v", err, boom)
	}
	if st := eng.Status(); !errors.Is(st.Err, boom) || !st.Done {
		t.Errorf("status %+v", st)
	}
}

func TestRunStopsOnCancelAndReadersSeeProgress(t *testing.T) {
	clock := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	evs := []flow.Event{
		{Type: flow.EventNew, Time: clock, Flow: udpFlow(1)},
		{Type: flow.EventSynced, Time: clock},
	}
	src := sourcetest.New("conntrack", evs)
	eng := New(src, Options{Now: func() time.Time { return clock }, Tick: 10 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- eng.Run(ctx) }()

	// Concurrent readers, as SSH sessions are.
	var wg sync.WaitGroup
	for r := 0; r < 4; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			deadline := time.Now().Add(5 * time.Second)
			for time.Now().Before(deadline) {
				var n int
				eng.View(func(s *store.Store) { n = s.Query(store.Query{Limit: 10}).Total })
				if n == 1 && eng.Status().Synced {
					return
				}
				time.Sleep(time.Millisecond)
			}
			t.Error("a reader never saw the synced table")
		}()
	}
	wg.Wait()
	// The ticker runs every 10ms; a loaded CI machine may delay it, so
	// poll with a bounded deadline instead of sleeping a fixed time.
	v := eng.Version()
	ticked := false
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if eng.Version() != v {
			ticked = true
			break
		}
	}
	if !ticked {
		t.Error("the store's clock does not tick while Run runs (5s)")
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run after cancel = %v, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	if st := eng.Status(); st.Live || !st.Done {
		t.Errorf("status after cancel %+v", st)
	}
}

func TestDelete(t *testing.T) {
	eng := New(&finiteSource{}, Options{})
	if eng.CanDelete() {
		t.Error("a replay cannot delete")
	}
	if _, err := eng.Delete(context.Background(), []flow.Flow{udpFlow(1)}); !errors.Is(err, ErrReadOnly) {
		t.Errorf("Delete = %v, want ErrReadOnly", err)
	}
	src := sourcetest.New("conntrack", nil)
	eng = New(src, Options{})
	if !eng.CanDelete() {
		t.Fatal("sourcetest deletes")
	}
	n, err := eng.Delete(context.Background(), []flow.Flow{udpFlow(1), udpFlow(2)})
	if err != nil || n != 2 || len(src.Deleted()) != 2 {
		t.Errorf("Delete = %d, %v; deleted %v", n, err, src.Deleted())
	}
}

func TestNoticeAndNilSource(t *testing.T) {
	eng := New(nil, Options{})
	v := eng.Version()
	eng.SetNotice("kernel conntrack is not active")
	if eng.Status().Notice != "kernel conntrack is not active" || eng.Version() == v {
		t.Errorf("notice %+v", eng.Status())
	}
	if err := eng.Run(context.Background()); err == nil {
		t.Error("Run without a source succeeded")
	}
	if eng.CanDelete() {
		t.Error("no source, yet CanDelete")
	}
}

// TestViewersConcurrentWithPump: viewers with their own sorts and filters
// query while events are applied; each sees a consistent table (no race,
// sane answers), and a viewer of an unchanged table says nothing changed.
func TestViewersConcurrentWithPump(t *testing.T) {
	eng := New(nil, Options{})
	var evs []flow.Event
	for i := range 5000 {
		evs = append(evs, flow.Event{Type: flow.EventNew, Time: time.Now(), Flow: udpFlow(uint16(1000 + i))})
	}
	eng.Apply(append(evs, flow.Event{Type: flow.EventSynced}))
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for n := 0; ; n++ {
			select {
			case <-done:
				return
			default:
			}
			f := udpFlow(uint16(1000 + n%6000))
			typ := flow.EventNew
			if n%2 == 0 {
				typ = flow.EventDestroy
			}
			eng.Apply([]flow.Event{{Type: typ, Time: time.Now(), Flow: f}})
		}
	})
	for j := range 4 {
		wg.Go(func() {
			v := eng.NewViewer()
			defer v.Close()
			for k := range 50 {
				q := store.Query{Sort: store.SortKey((j + k) % int(store.NumSortKeys)), Desc: j%2 == 0, Limit: 20, Offset: j * 100}
				r := v.Query(q)
				if r.Matched > r.Total || len(r.Rows) > 20 || (r.Matched > j*100+20 && len(r.Rows) != 20) {
					t.Errorf("viewer %d: matched %d total %d rows %d", j, r.Matched, r.Total, len(r.Rows))
					return
				}
			}
		})
	}
	time.Sleep(50 * time.Millisecond)
	close(done)
	wg.Wait()
	v := eng.NewViewer()
	v.Query(store.Query{Limit: 10})
	if v.Changed() {
		t.Error("Changed on an unchanged table")
	}
	eng.Apply([]flow.Event{{Type: flow.EventNew, Time: time.Now(), Flow: udpFlow(9)}})
	if !v.Changed() {
		t.Error("a new flow, and Changed says no")
	}
	flows, _ := eng.Snapshot(nil)
	var n int
	eng.View(func(s *store.Store) { n = s.Len() })
	if len(flows) != n {
		t.Errorf("Snapshot has %d flows, Len %d", len(flows), n)
	}
}

// TestSummaryNeverWaits: while a writer holds the store, Summary answers
// from the copy taken at the latest Tick instead of waiting.
func TestSummaryNeverWaits(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	e := New(nil, Options{Now: func() time.Time { return t0 }})
	f := flow.Flow{Family: flow.FamilyIPv4, Proto: flow.ProtoUDP, Timeout: 30,
		Orig: flow.Tuple{Src: netip.MustParseAddr("10.0.0.1"), Dst: netip.MustParseAddr("10.0.0.2"), SrcPort: 1000, DstPort: 53}}
	f.Reply = f.Orig.Reverse(f.Proto)
	e.Apply([]flow.Event{{Type: flow.EventNew, Time: t0, Flow: f}, {Type: flow.EventSynced, Time: t0}})
	if got := e.Summary().Live; got != 1 {
		t.Fatalf("Summary().Live = %d with the lock free, want 1 (fresh)", got)
	}
	e.Tick(t0)
	e.mu.Lock() // a writer holds the store
	done := make(chan int, 1)
	go func() { done <- e.Summary().Live }()
	select {
	case got := <-done:
		if got != 1 {
			t.Errorf("Summary().Live = %d from the published copy, want 1", got)
		}
	case <-time.After(10 * time.Second):
		t.Error("Summary waited for the writer")
	}
	e.mu.Unlock()
}

// TestApplyBatches: an EventBatch stands for its events, in order among
// the others (a destroy after the batch removes a flow the batch listed),
// applied in slices of MaxBatch; the batch is released afterwards.
func TestApplyBatches(t *testing.T) {
	free := make(chan *flow.Batch, 1)
	b := flow.NewBatch(300, free)
	for i := range 250 {
		b.Events = append(b.Events, flow.Event{Type: flow.EventNew, Time: time.Now(), Flow: udpFlow(uint16(2000 + i))})
	}
	eng := New(nil, Options{MaxBatch: 100})
	eng.Apply([]flow.Event{
		{Type: flow.EventNew, Time: time.Now(), Flow: udpFlow(1000)},
		{Type: flow.EventBatch, Batch: b},
		{Type: flow.EventDestroy, Time: time.Now(), Flow: udpFlow(2007)},
		{Type: flow.EventSynced, Time: time.Now()},
	})
	// 1 + 250 - 1: had the destroy come before the batch's new, 251.
	var n int
	eng.View(func(s *store.Store) { n = s.Len() })
	if n != 250 {
		t.Errorf("store holds %d live flows, want 250", n)
	}
	if !eng.Status().Synced {
		t.Error("not synced")
	}
	select {
	case r := <-free:
		if r != b || len(r.Events) != 0 || cap(r.Events) != 300 {
			t.Errorf("released batch: %d events, cap %d", len(r.Events), cap(r.Events))
		}
	default:
		t.Fatal("the batch was not released")
	}
}

// TestRunTakesBatches: a source.Batcher is run with RunBatches and its
// batched listing arrives whole.
func TestRunTakesBatches(t *testing.T) {
	src := &batchedListingSource{listingSource{n: 5000, t0: time.Now()}}
	eng := New(src, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- eng.Run(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for !eng.Status().Synced && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	var n int
	eng.View(func(s *store.Store) { n = s.Len() })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n != 5000 {
		t.Errorf("store holds %d flows after the listing, want 5000", n)
	}
}
