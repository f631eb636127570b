package source_test

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/conntop/conntop/internal/flow"
	"github.com/conntop/conntop/source"
	"github.com/conntop/conntop/source/sourcetest"
)

// Every Source starts with the current table (EventNew per flow, then
// EventSynced) and then streams changes until its context ends.
func Example() {
	t0 := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	f := flow.Flow{Family: flow.FamilyIPv4, Proto: flow.ProtoTCP, TCPState: flow.TCPEstablished,
		Status: flow.StatusConfirmed | flow.StatusSeenReply | flow.StatusAssured,
		Orig:   flow.Tuple{Src: netip.MustParseAddr("10.0.0.1"), Dst: netip.MustParseAddr("10.0.0.2"), SrcPort: 40000, DstPort: 443}}
	f.Reply = f.Orig.Reverse(f.Proto)
	gone := f
	gone.TCPState = flow.TCPTimeWait
	var src source.Source = sourcetest.New("conntrack", []flow.Event{
		{Type: flow.EventNew, Time: t0, Flow: f},
		{Type: flow.EventSynced, Time: t0},
		{Type: flow.EventDestroy, Time: t0.Add(time.Minute), Flow: gone},
	})

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := make(chan flow.Event, 16)
	go func() { _ = src.Run(ctx, out) }()
	for range 3 {
		ev := <-out
		switch ev.Type {
		case flow.EventSynced:
			fmt.Println("-- table listed; changes follow")
		default:
			fmt.Println(ev.Type, ev.Flow.Orig.Src, "->", ev.Flow.Orig.Dst, ev.Flow.State(), ev.Flow.TCPState)
		}
	}
	// Output:
	// new 10.0.0.1 -> 10.0.0.2 ESTABLISHED ESTABLISHED
	// -- table listed; changes follow
	// destroy 10.0.0.1 -> 10.0.0.2 ESTABLISHED TIME_WAIT
}
