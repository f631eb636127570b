package tracker

import (
	"testing"
	"time"

	"github.com/conntop/conntop/internal/flow"
)

// FuzzSCTP feeds arbitrary chunk sequences of one association, in packets
// with a correct CRC32c (so they reach the state machine), whole and cut
// short, and checks the tracker's invariants. Input: records of a flags
// byte (bit 0: from the server; bit 1: tag 0; bit 2: the client's tag), a
// length byte, then that many chunk bytes.
func FuzzSCTP(f *testing.F) {
	rec := func(flags byte, chunks ...[]byte) []byte {
		var body []byte
		for _, c := range chunks {
			body = append(body, c...)
		}
		return append([]byte{flags, byte(len(body))}, body...)
	}
	cat := func(rs ...[]byte) []byte {
		var out []byte
		for _, r := range rs {
			out = append(out, r...)
		}
		return out
	}
	f.Add(cat(rec(2, sInit(chunkInit, tagC)), rec(1|4, sInit(chunkInitAck, tagS)),
		rec(0, sChunk(chunkCookieEcho, 0, []byte("ck"))), rec(1|4, sChunk(chunkCookieAck, 0, nil)),
		rec(0, sData(1, "x")), rec(1|4, sSack(1)), rec(0, sChunk(chunkShutdown, 0, []byte{0, 0, 0, 1})),
		rec(1|4, sChunk(chunkShutdownAck, 0, nil)), rec(0, sChunk(chunkShutdownComplete, 0, nil))))
	f.Add(cat(rec(0, sHeartbeat(chunkHeartbeat)), rec(1|4, sHeartbeat(chunkHeartbeatAck)), rec(0, sData(1, "y"))))
	f.Add(cat(rec(2, sInit(chunkInit, tagC)), rec(1, sInit(chunkInit, tagS)), rec(4, sChunk(chunkAbort, 1, nil))))
	f.Add([]byte{0, 4, 1, 0, 0, 0})
	f.Fuzz(func(t *testing.T, in []byte) {
		tr := New(DefaultConfig())
		p := newSCTPPeers(len(in)%2 == 1)
		now := t0
		n := 0
		for len(in) >= 2 && n < 64 {
			flags, l := in[0], int(in[1])
			in = in[2:]
			l = min(l, len(in))
			chunks := in[:l]
			in = in[l:]
			vtag := tagS
			switch {
			case flags&2 != 0:
				vtag = 0
			case flags&4 != 0:
				vtag = tagC
			}
			d := p.dg(flags&1 == 0, vtag, chunks)
			for _, cut := range []int{len(d), len(d) - l/2} {
				v := tr.Handle(now, &Packet{Data: d[:cut], Length: len(d)})
				n++
				if v.CtInfo == CtInvalid && v.Reason == "" {
					t.Fatalf("INVALID without a reason: %+v", v)
				}
				if v.CtInfo == CtRelated || v.CtInfo == CtUntracked {
					t.Fatalf("SCTP packet classified %v", v.CtInfo)
				}
				now = now.Add(100 * time.Millisecond)
			}
		}
		fl := tr.AppendFlows(nil, now)
		if len(fl) > 1 {
			t.Fatalf("%d entries for one association", len(fl))
		}
		for _, f := range fl {
			if f.Proto != flow.ProtoSCTP || f.Timeout > 210 {
				t.Fatalf("bad flow %+v", f)
			}
			if got := f.Counters.OrigPackets + f.Counters.ReplyPackets + tr.Stats().Invalid; got > uint64(n) {
				t.Fatalf("%d packets accounted or invalid of %d", got, n)
			}
		}
	})
}
