//go:build linux

package conntrack

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/conntop/conntop/internal/engine"
	"github.com/conntop/conntop/internal/flow"
	"github.com/conntop/conntop/internal/store"
)

// TestSilentEntriesReconciledDownstream runs the kernel source into an
// engine, as the TUI and serve do, so that the store, not the source,
// keeps the entries that predate the event subscription (the kernel never
// reports their changes or their end): one is deleted, one gets its reply,
// both silently, and the store learns of both from the source's polls; an
// entry made afterwards reports its own events and is not silent. Once no
// silent entry is left the polls stop listing entries. A full and a
// counts-only store (serve --metrics) watch the same namespace.
func TestSilentEntriesReconciledDownstream(t *testing.T) {
	l := newLab(t)
	cli, srv := l.link.B4, l.link.A4
	// With nf_conntrack_events=2 (the default) the kernel gives entries no
	// event cache while nobody listens for events; the flag that says so
	// is one for all namespaces, and tests on this machine listen all the
	// time. Events off while the entries are made gives them none, as on
	// a host where conntop is the first listener.
	l.srv.Sysctl(t, "net.netfilter.nf_conntrack_events", "0")
	for _, port := range []string{"7001", "7301"} {
		if err := l.cli.SendUDP(cli+":7000", srv+":"+port, 1, []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	l.srv.Sysctl(t, "net.netfilter.nf_conntrack_events", "1")
	key := func(sport, dport uint16) flow.Key {
		o := flow.Tuple{Src: netip.MustParseAddr(cli), Dst: netip.MustParseAddr(srv), SrcPort: sport, DstPort: dport}
		return flow.Key{Proto: flow.ProtoUDP, Orig: o}
	}
	victim, replied, later := key(7000, 7001), key(7000, 7301), key(7400, 7401)

	type watcher struct {
		name string
		src  *Source
		eng  *engine.Engine
	}
	var ws []watcher
	for _, countsOnly := range []bool{false, true} {
		src := New(Options{NetNS: l.srv.Name, CountersInterval: 100 * time.Millisecond, StatsInterval: 100 * time.Millisecond})
		// Polls as often as their own duration allows: a dump walks the
		// kernel's global conntrack hash, every namespace's entries, and
		// other tests may hold big tables meanwhile.
		src.spacing = 2
		eng := engine.New(src, engine.Options{Store: store.Options{CountsOnly: countsOnly, Linger: -1}})
		if src.left == nil {
			t.Fatal("the engine did not take over the reconciliation (ReconcileDownstream not called)")
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- eng.Run(ctx) }()
		t.Cleanup(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("engine: %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Error("engine did not stop")
			}
		})
		name := "full store"
		if countsOnly {
			name = "counts-only store"
		}
		ws = append(ws, watcher{name: name, src: src, eng: eng})
	}
	full := ws[0].eng

	// waitFor polls cond on the store under the engine's read lock, giving
	// slow dumps time, as TestCounters does.
	waitFor := func(w watcher, what string, cond func(s *store.Store) bool) {
		t.Helper()
		deadline := time.Now().Add(40 * time.Second)
		for {
			ok := false
			w.eng.View(func(s *store.Store) { ok = cond(s) })
			if ok {
				return
			}
			if time.Now().After(deadline) {
				var sum store.Summary
				silent := 0
				w.eng.View(func(s *store.Store) { sum, silent = s.Summary(), s.SilentLeft() })
				t.Fatalf("%s: timed out waiting for %s (live %d, silent %d, events %v)", w.name, what, sum.Live, silent, sum.Events)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	udpState := func(s *store.Store, want flow.State) int { return s.Summary().ByState[want] }

	for _, w := range ws {
		waitFor(w, "the initial listing", func(s *store.Store) bool { return s.Synced() && s.Len() == 2 })
		w.eng.View(func(s *store.Store) {
			if s.SilentLeft() != 2 {
				t.Errorf("%s: %d silent flows after the listing, want 2", w.name, s.SilentLeft())
			}
		})
	}

	// An entry made now reports its events (a listener exists): not silent.
	if err := l.cli.SendUDP(cli+":7400", srv+":7401", 1, []byte("x")); err != nil {
		t.Fatal(err)
	}
	for _, w := range ws {
		waitFor(w, "the new entry", func(s *store.Store) bool { return s.Len() == 3 })
		w.eng.View(func(s *store.Store) {
			if s.SilentLeft() != 2 {
				t.Errorf("%s: %d silent flows after a new entry, want still 2", w.name, s.SilentLeft())
			}
		})
	}

	// The silent entries change without an event.
	if n, err := ws[0].src.Delete(context.Background(), []flow.Flow{{Family: flow.FamilyIPv4, Proto: flow.ProtoUDP, Orig: victim.Orig}}); err != nil || n != 1 {
		t.Fatalf("delete: %d, %v", n, err)
	}
	if err := l.srv.SendUDP(srv+":7301", cli+":7000", 1, []byte("y")); err != nil {
		t.Fatal(err)
	}
	for _, w := range ws {
		waitFor(w, "the deleted entry gone and the reply seen", func(s *store.Store) bool {
			return s.Len() == 2 && udpState(s, flow.StateEstablished) == 1 && s.SilentLeft() == 1
		})
	}
	full.View(func(s *store.Store) {
		if r, ok := s.Row(victim); ok && !r.Destroyed {
			t.Error("the deleted entry is still live")
		}
		r, ok := s.Row(replied)
		if !ok || !r.Flow.Replied() {
			t.Errorf("the replied entry: %+v (found %v), want replied", r.Flow, ok)
		}
		if _, ok := s.Row(later); !ok {
			t.Error("the entry made after the start is missing")
		}
	})

	// The last silent one goes: polls stop listing entries.
	if n, err := ws[0].src.Delete(context.Background(), []flow.Flow{{Family: flow.FamilyIPv4, Proto: flow.ProtoUDP, Orig: replied.Orig}}); err != nil || n != 1 {
		t.Fatalf("delete: %d, %v", n, err)
	}
	for _, w := range ws {
		waitFor(w, "no silent entry left", func(s *store.Store) bool { return s.SilentLeft() == 0 && s.Len() == 1 })
	}
	var polled uint64
	full.View(func(s *store.Store) { polled = s.Summary().Events[flow.EventPolled] })
	time.Sleep(time.Second) // several poll intervals
	full.View(func(s *store.Store) {
		if n := s.Summary().Events[flow.EventPolled]; n != polled {
			t.Errorf("%d more EventPolled after no silent entry was left, want none", n-polled)
		}
	})
}
