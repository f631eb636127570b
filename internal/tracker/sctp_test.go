package tracker

import (
	"testing"
	"time"

	"github.com/conntop/conntop/internal/flow"
)

// sctpWant is the kernel's verdict on an SCTP packet sequence: the single
// entry left (nil: none), and the invalid count.
type sctpWant struct {
	origPk, origBy, replyPk, replyBy uint64
	status                           flow.Status // of ASSURED, SEEN_REPLY
	timeout                          uint32
}

// TestSCTPKernelVerdicts replays SCTP packet sequences with the verdicts
// this kernel (6.18) gave for them in the kernel-oracle harness
// (TestKernelDiffSCTP, same packets over IPv4) written in.
func TestSCTPKernelVerdicts(t *testing.T) {
	p := newSCTPPeers(false)
	hs := p.handshake()
	data := p.c(tagS, sData(1, "hello"))
	sack := p.s(tagC, sSack(1))
	cookie := sChunk(chunkCookieEcho, 0, []byte("cookie"))
	cat := func(parts ...any) [][]byte {
		var out [][]byte
		for _, x := range parts {
			switch v := x.(type) {
			case []byte:
				out = append(out, v)
			case [][]byte:
				out = append(out, v...)
			}
		}
		return out
	}
	life := cat(hs, data, sack,
		p.c(tagS, sHeartbeat(chunkHeartbeat)), p.s(tagC, sHeartbeat(chunkHeartbeatAck)),
		p.s(tagC, sData(7, "world")), p.c(tagS, sSack(7)),
		p.c(tagS, sChunk(chunkShutdown, 0, []byte{0, 0, 0, 7})),
		p.s(tagC, sChunk(chunkShutdownAck, 0, nil)),
		p.c(tagS, sChunk(chunkShutdownComplete, 0, nil)))
	const (
		as = flow.StatusAssured | flow.StatusSeenReply
		sr = flow.StatusSeenReply
	)
	for _, tc := range []struct {
		name    string
		pkts    [][]byte
		want    *sctpWant
		invalid uint64
	}{
		// INIT: CLOSED (10 s); INIT_ACK: COOKIE_WAIT (3 s); COOKIE_ECHO:
		// COOKIE_ECHOED (3 s); COOKIE_ACK: ESTABLISHED, ASSURED (210 s).
		{"init", life[:1], &sctpWant{1, 52, 0, 0, 0, 10}, 0},
		{"init-ack", life[:2], &sctpWant{1, 52, 1, 64, sr, 3}, 0},
		{"cookie-echo", life[:3], &sctpWant{2, 96, 1, 64, sr, 3}, 0},
		{"cookie-ack", life[:4], &sctpWant{2, 96, 2, 100, as, 210}, 0},
		{"heartbeat-ack", life[:8], &sctpWant{4, 196, 4, 192, as, 210}, 0},
		// SHUTDOWN: SHUTDOWN_SENT, SHUTDOWN_ACK: SHUTDOWN_ACK_SENT (3 s);
		// SHUTDOWN_COMPLETE: CLOSED (10 s).
		{"shutdown", life[:11], &sctpWant{6, 284, 5, 248, as, 3}, 0},
		{"shutdown-ack", life[:12], &sctpWant{6, 284, 6, 284, as, 3}, 0},
		{"shutdown-complete", life, &sctpWant{7, 320, 6, 284, as, 10}, 0},
		{"init-bad-crc", cat(badCRC(hs[0])), nil, 1},
		{"init-ack-bad-crc", cat(hs[0], badCRC(hs[1])), &sctpWant{1, 52, 0, 0, 0, 10}, 1},
		{"data-bad-crc", cat(hs, badCRC(data), sack), &sctpWant{2, 96, 3, 148, as, 210}, 1},
		{"data-bad-vtag", cat(hs, p.c(tagS+1, sData(1, "x")), sack), &sctpWant{2, 96, 3, 148, as, 210}, 1},
		{"data-own-tag", cat(hs, p.c(tagC, sData(1, "x"))), &sctpWant{2, 96, 2, 100, as, 210}, 1},
		{"init-nonzero-vtag", cat(p.c(5, sInit(chunkInit, tagC))), nil, 1},
		{"init-short-header", cat(p.c(0, sChunk(chunkInit, 0, []byte{1, 2, 3, 4}))), nil, 1},
		{"init-then-data", cat(p.c(0, sInit(chunkInit, tagC), sData(1, "x"))), nil, 1},
		// DATA, SACK, ERROR, unknown chunks cannot start an entry;
		// ABORT, SHUTDOWN_COMPLETE and COOKIE_ACK out of the blue neither.
		{"new-data", cat(p.c(tagS, sData(1, "x")), p.s(tagC, sSack(1))), nil, 2},
		{"new-error", cat(p.c(tagS, sChunk(chunkError, 0, []byte{0, 1, 0, 4}))), nil, 1},
		{"new-unknown", cat(p.c(0, sChunk(0xc0, 0, []byte{1, 2, 3, 4}))), nil, 1},
		{"new-abort", cat(p.c(tagS, sChunk(chunkAbort, 0, nil))), nil, 1},
		{"new-cookie-ack", cat(p.c(tagS, sChunk(chunkCookieAck, 0, nil))), nil, 1},
		{"new-shutdown-complete", cat(p.c(tagS, sChunk(chunkShutdownComplete, 0, nil))), nil, 1},
		// COOKIE_ECHO out of the blue: the general tag check wants 0.
		{"new-cookie-echo", cat(p.c(tagS, cookie), p.s(0, sChunk(chunkCookieAck, 0, nil))), nil, 2},
		// SHUTDOWN_ACK out of the blue: SHUTDOWN_ACK_SENT; the answer's
		// T-flag SHUTDOWN_COMPLETE carries the wrong tag here.
		{"new-shutdown-ack", cat(p.c(tagS, sChunk(chunkShutdownAck, 0, nil)),
			p.s(tagS, sChunk(chunkShutdownComplete, chunkFlagT, nil))), &sctpWant{1, 36, 0, 0, 0, 3}, 1},
		// HEARTBEAT starts HEARTBEAT_SENT (30 s); its ACK in reply makes
		// it ESTABLISHED and ASSURED.
		{"new-heartbeat", cat(p.c(tagS, sHeartbeat(chunkHeartbeat))), &sctpWant{1, 44, 0, 0, 0, 30}, 0},
		{"new-heartbeat-answered", cat(p.c(tagS, sHeartbeat(chunkHeartbeat)), p.s(tagC, sHeartbeat(chunkHeartbeatAck)),
			p.c(tagS, sData(1, "x"))), &sctpWant{2, 96, 1, 44, as, 210}, 0},
		{"new-heartbeat-ack", cat(p.c(tagS, sHeartbeat(chunkHeartbeatAck))), &sctpWant{1, 44, 0, 0, 0, 10}, 0},
		{"no-chunks", cat(p.c(0)), nil, 1},
		{"short", cat(p.raw(sctpSeg(p.cport, p.sport, 0)[:8])), nil, 1},
		{"zero-length-chunk", cat(p.c(0, []byte{1, 0, 0, 0})), nil, 1},
		// Retransmitted INITs in CLOSED neither count nor refresh.
		{"init-retransmit", cat(hs[0], hs[0], hs[0]), &sctpWant{1, 52, 0, 0, 0, 10}, 0},
		{"init-ack-wrong-tag", cat(hs[0], p.s(tagC+1, sInit(chunkInitAck, tagS))), &sctpWant{1, 52, 0, 0, 0, 10}, 1},
		{"cookie-echo-bad-vtag", cat(hs[0], hs[1], p.c(tagS+1, cookie)), &sctpWant{1, 52, 1, 64, sr, 3}, 1},
		{"cookie-echo-data", cat(hs[0], hs[1], p.c(tagS, cookie, sData(1, "x")),
			p.s(tagC, sChunk(chunkCookieAck, 0, nil), sSack(1))), &sctpWant{2, 116, 2, 116, as, 210}, 0},
		{"data-cookie-echo", cat(hs[0], hs[1], p.c(tagS, sData(1, "x"), cookie)), &sctpWant{1, 52, 1, 64, sr, 3}, 1},
		{"bundle", cat(hs, p.c(tagS, sSack(3), sData(1, "x"), sData(2, "y"))), &sctpWant{3, 184, 2, 100, as, 210}, 0},
		// ABORT: own tag, or the peer's with the T flag; CLOSED (10 s).
		{"abort-own-tag", cat(hs, p.c(tagS, sChunk(chunkAbort, 0, nil))), &sctpWant{3, 132, 2, 100, as, 10}, 0},
		{"abort-t-flag", cat(hs, p.c(tagC, sChunk(chunkAbort, chunkFlagT, nil))), &sctpWant{3, 132, 2, 100, as, 10}, 0},
		{"abort-bad-tag", cat(hs, p.c(tagC, sChunk(chunkAbort, 0, nil))), &sctpWant{2, 96, 2, 100, as, 210}, 1},
		{"abort-in-cookie-wait", cat(hs[0], p.s(tagC, sChunk(chunkAbort, 0, nil))), &sctpWant{1, 52, 1, 36, sr, 10}, 0},
		{"error-in-cookie-echoed", cat(hs[0], hs[1], hs[2], p.s(tagC, sChunk(chunkError, 0, []byte{0, 3, 0, 4}))),
			&sctpWant{2, 96, 2, 104, sr, 10}, 0},
		{"shutdown-complete-t", cat(hs, p.c(tagS, sChunk(chunkShutdown, 0, []byte{0, 0, 0, 1})),
			p.s(tagC, sChunk(chunkShutdownAck, 0, nil)), p.c(tagC, sChunk(chunkShutdownComplete, chunkFlagT, nil))),
			&sctpWant{4, 172, 3, 136, as, 10}, 0},
		// A HEARTBEAT with a new tag is let through unaccounted (a possible
		// restart); its ACK from the other side adopts the new tags, so
		// DATA with the old tag is then invalid.
		{"heartbeat-new-vtag", cat(hs, p.c(tagS+9, sHeartbeat(chunkHeartbeat)),
			p.s(tagC+9, sHeartbeat(chunkHeartbeatAck)), p.c(tagS+9, sData(1, "x"))), &sctpWant{2, 96, 3, 144, as, 210}, 1},
		{"heartbeat-bad-vtag-data", cat(hs, p.c(tagS+9, sHeartbeat(chunkHeartbeat), sData(1, "x"))), &sctpWant{2, 96, 2, 100, as, 210}, 1},
		{"heartbeat-ack-same-dir", cat(hs, p.c(tagS+9, sHeartbeat(chunkHeartbeat)),
			p.c(tagS+9, sHeartbeat(chunkHeartbeatAck))), &sctpWant{2, 96, 2, 100, as, 210}, 1},
		{"init-collision", cat(hs[0], p.s(0, sInit(chunkInit, tagS)), p.s(tagC, sInit(chunkInitAck, tagS)),
			p.c(tagS, sInit(chunkInitAck, tagC))), &sctpWant{2, 116, 1, 64, sr, 3}, 0},
		{"init-ack-collision-mismatch", cat(hs[0], p.s(0, sInit(chunkInit, tagS)), p.c(tagS, sInit(chunkInitAck, tagC+1))),
			&sctpWant{1, 52, 0, 0, sr, 10}, 1},
		// After SHUTDOWN_COMPLETE, an INIT with the old tag is stale: not
		// recorded, so an INIT_ACK with another tag is invalid; with a new
		// tag the association restarts.
		{"restart-stale-init", cat(life, hs[0], p.s(tagC, sInit(chunkInitAck, tagS+1))), &sctpWant{7, 320, 6, 284, as, 10}, 1},
		{"restart-new-tag", cat(life, p.c(0, sInit(chunkInit, tagC+5)), p.s(tagC+5, sInit(chunkInitAck, tagS+1)),
			p.c(tagS+1, cookie), p.s(tagC+5, sChunk(chunkCookieAck, 0, nil))), &sctpWant{8, 364, 8, 384, as, 210}, 0},
		{"init-ack-retransmit-new-tag", cat(hs[0], hs[0], p.s(tagC, sInit(chunkInitAck, tagS)), p.s(tagC, sInit(chunkInitAck, tagS+1))),
			&sctpWant{1, 52, 2, 128, sr, 3}, 0},
		// A chunk whose length runs past the datagram ends the walk.
		{"chunk-beyond-end", cat(p.c(0, sChunk(chunkInit, 0, make([]byte, 40))[:20])), &sctpWant{1, 52, 0, 0, 0, 10}, 0},
		{"init-cut-header", cat(p.c(0, sChunk(chunkInit, 0, make([]byte, 40))[:12])), nil, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := New(DefaultConfig())
			now := t0
			for _, d := range tc.pkts {
				now = now.Add(time.Millisecond)
				tr.Handle(now, &Packet{Data: d})
			}
			if got := tr.Stats().Invalid; got != tc.invalid {
				t.Errorf("invalid = %d, want %d (reasons %v)", got, tc.invalid, tr.Stats().InvalidReasons)
			}
			fl := tr.AppendFlows(nil, now)
			if tc.want == nil {
				if len(fl) != 0 {
					t.Fatalf("table has %d entries, want none: %+v", len(fl), fl)
				}
				return
			}
			f := only(t, tr, now)
			w := tc.want
			const mask = flow.StatusAssured | flow.StatusSeenReply
			got := sctpWant{f.Counters.OrigPackets, f.Counters.OrigBytes, f.Counters.ReplyPackets, f.Counters.ReplyBytes,
				f.Status & mask, f.Timeout}
			// An unaccounted last packet leaves the timeout a millisecond
			// short of the whole second.
			if got.timeout+1 == w.timeout {
				got.timeout = w.timeout
			}
			if got != *w {
				t.Fatalf("entry %+v, want %+v", got, *w)
			}
			if f.Orig.SrcPort != p.cport || f.Orig.DstPort != p.sport || f.Reply.SrcPort != p.sport {
				t.Fatalf("tuples %v / %v", f.Orig, f.Reply)
			}
		})
	}
}

// TestSCTPChecksumSetting: with nf_conntrack_checksum off, or a packet
// whose checksum the NIC verified, a bad CRC32c is not looked at.
func TestSCTPChecksumSetting(t *testing.T) {
	p := newSCTPPeers(true)
	bad := badCRC(p.handshake()[0])
	for _, tc := range []struct {
		name     string
		checksum bool
		nicOK    bool
		want     CtInfo
	}{
		{"checked", true, false, CtInvalid},
		{"sysctl-off", false, false, CtNew},
		{"nic-verified", true, true, CtNew},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.Checksum = tc.checksum
			tr := New(cfg)
			v := tr.Handle(t0, &Packet{Data: bad, ChecksumOK: tc.nicOK})
			if v.CtInfo != tc.want {
				t.Fatalf("verdict %+v, want %v", v, tc.want)
			}
			if tc.want == CtInvalid && v.Reason != reasonSCTPChecksum {
				t.Fatalf("reason %q, want %q", v.Reason, reasonSCTPChecksum)
			}
		})
	}
}

// TestSCTPTruncatedCapture: a capture cut inside the chunk headers cannot be
// tracked (the kernel saw the whole packet); it is reported, not counted as
// invalid. A capture cut in DATA payload is tracked at its real length.
func TestSCTPTruncatedCapture(t *testing.T) {
	p := newSCTPPeers(false)
	hs := p.handshake()
	twoData := p.c(tagS, sData(1, "0123456789abcdef"), sData(2, "x"))
	oneData := p.c(tagS, sData(1, "0123456789abcdef0123456789abcdef"))
	for _, tc := range []struct {
		name   string
		data   []byte
		cut    int // captured bytes
		want   CtInfo
		reason string
	}{
		{"in-common-header", hs[0], 20 + 8, CtInvalid, reasonTruncatedCapture},
		{"in-init-header", hs[0], 20 + 12 + 8, CtInvalid, reasonTruncatedCapture},
		{"in-second-chunk-header", twoData, 20 + 12 + 28 + 2, CtInvalid, reasonTruncatedCapture},
		{"in-payload", oneData, 20 + 12 + 20, CtEstablished, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := New(DefaultConfig())
			for i, d := range hs {
				if v := tr.Handle(t0.Add(time.Duration(i)*time.Millisecond), &Packet{Data: d}); v.CtInfo == CtInvalid {
					t.Fatalf("handshake packet %d: %+v", i, v)
				}
			}
			now := t0.Add(time.Second)
			v := tr.Handle(now, &Packet{Data: tc.data[:tc.cut], Length: len(tc.data)})
			if v.CtInfo != tc.want || v.Reason != tc.reason {
				t.Fatalf("verdict %+v, want %v %q", v, tc.want, tc.reason)
			}
			if tr.Stats().Invalid != 0 {
				t.Fatalf("invalid = %d, want 0", tr.Stats().Invalid)
			}
			if tc.want != CtInvalid {
				if f := only(t, tr, now); f.Counters.OrigBytes != 96+uint64(len(tc.data)) {
					t.Fatalf("orig bytes %d, want %d", f.Counters.OrigBytes, 96+len(tc.data))
				}
			}
		})
	}
}

// TestSCTPEvents: state changes that matter (ASSURED) reach the event
// stream; a destroyed-by-timeout entry goes after its state's timeout.
func TestSCTPEvents(t *testing.T) {
	p := newSCTPPeers(false)
	tr := New(DefaultConfig())
	for i, d := range p.handshake() {
		tr.Handle(t0.Add(time.Duration(i)*time.Millisecond), &Packet{Data: d})
	}
	ev := tr.AppendEvents(nil)
	if len(ev) < 2 || ev[0].Type.String() != "new" {
		t.Fatalf("events %+v", ev)
	}
	last := ev[len(ev)-1]
	if last.Flow.Status&flow.StatusAssured == 0 {
		t.Fatalf("last event %+v lacks ASSURED", last)
	}
	tr.Expire(t0.Add(209 * time.Second))
	if tr.Len() != 1 {
		t.Fatalf("entry gone before its 210 s")
	}
	tr.Expire(t0.Add(211 * time.Second))
	if tr.Len() != 0 {
		t.Fatalf("entry alive after its 210 s")
	}
}

// BenchmarkSCTP tracks an established association's DATA/SACK exchange
// (CRC32c verified on every packet).
func BenchmarkSCTP(b *testing.B) {
	p := newSCTPPeers(false)
	tr := New(DefaultConfig())
	now := t0
	for _, d := range p.handshake() {
		tr.Handle(now, &Packet{Data: d})
	}
	data := p.c(tagS, sData(1, string(make([]byte, 1200))))
	sack := p.s(tagC, sSack(1))
	b.ReportAllocs()
	b.SetBytes(int64(len(data) + len(sack)))
	for b.Loop() {
		now = now.Add(time.Microsecond)
		if v := tr.Handle(now, &Packet{Data: data}); v.CtInfo != CtEstablished {
			b.Fatalf("data: %+v", v)
		}
		if v := tr.Handle(now, &Packet{Data: sack}); v.CtInfo != CtEstablished {
			b.Fatalf("sack: %+v", v)
		}
	}
}
