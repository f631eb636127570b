package sourcetest

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/conntop/conntop/internal/flow"
)

func tcpFlow(sport uint16) flow.Flow {
	return flow.Flow{Family: flow.FamilyIPv4, Proto: flow.ProtoTCP, Orig: flow.Tuple{
		Src: netip.MustParseAddr("10.0.0.1"), Dst: netip.MustParseAddr("10.0.0.2"), SrcPort: sport, DstPort: 80}}
}

func TestRunEmitsThenBlocks(t *testing.T) {
	t0 := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	evs := []flow.Event{
		{Type: flow.EventNew, Time: t0, Flow: tcpFlow(1)},
		{Type: flow.EventSynced, Time: t0},
		{Type: flow.EventDestroy, Time: t0.Add(time.Second), Flow: tcpFlow(1)},
	}
	s := New("test", evs, WithGap(time.Millisecond))
	if s.Name() != "test" {
		t.Fatalf("Name() = %q", s.Name())
	}
	ctx, cancel := context.WithCancel(context.Background())
	out := make(chan flow.Event, 10)
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, out) }()
	for i, want := range evs {
		select {
		case got := <-out:
			if got.Type != want.Type || !got.Time.Equal(want.Time) || got.Flow.Key() != want.Flow.Key() {
				t.Fatalf("event %d = %+v, want %+v", i, got, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("event %d not sent", i)
		}
	}
	select {
	case <-s.Sent():
	case <-time.After(5 * time.Second):
		t.Fatal("Sent not closed")
	}
	select {
	case err := <-done:
		t.Fatalf("Run returned %v before ctx was cancelled", err)
	case <-time.After(20 * time.Millisecond):
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run = %v, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}

func TestDelete(t *testing.T) {
	t0 := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name    string
		opts    []Option
		wantN   int
		wantErr error
		wantEvs int
	}{
		{"accepts", []Option{WithClock(func() time.Time { return t0 })}, 2, nil, 2},
		{"refuses", []Option{WithRefuseDelete()}, 0, ErrDeleteRefused, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := New("test", nil, tt.opts...)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			out := make(chan flow.Event, 10)
			go func() { _ = s.Run(ctx, out) }()
			<-s.Sent()
			n, err := s.Delete(ctx, []flow.Flow{tcpFlow(1), tcpFlow(2)})
			if n != tt.wantN || !errors.Is(err, tt.wantErr) {
				t.Fatalf("Delete = %d, %v; want %d, %v", n, err, tt.wantN, tt.wantErr)
			}
			if len(out) != tt.wantEvs {
				t.Fatalf("%d events emitted, want %d", len(out), tt.wantEvs)
			}
			for range tt.wantEvs {
				ev := <-out
				if ev.Type != flow.EventDestroy || !ev.Time.Equal(t0) {
					t.Fatalf("emitted %+v, want a destroy at %v", ev, t0)
				}
			}
			if got := len(s.Deleted()); got != tt.wantN {
				t.Fatalf("Deleted() has %d flows, want %d", got, tt.wantN)
			}
		})
	}
}
