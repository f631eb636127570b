package tracker

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gopacket/gopacket/pcapgo"

	"github.com/conntop/conntop/internal/decode"
	"github.com/conntop/conntop/source"
)

type frame struct {
	at   time.Duration // since the first packet of its capture
	data []byte
	wire int
}

// loadOracleFrames reads every oracle capture into memory.
func loadOracleFrames(b *testing.B) []frame {
	b.Helper()
	names, _ := filepath.Glob(filepath.Join(oracleDir, "*.replay.pcap"))
	if len(names) == 0 {
		b.Fatal("no oracle captures")
	}
	var out []frame
	var base time.Duration
	for _, n := range names {
		fh, err := os.Open(n)
		if err != nil {
			b.Fatal(err)
		}
		r, err := pcapgo.NewReader(fh)
		if err != nil {
			b.Fatal(err)
		}
		var first, last time.Time
		for {
			data, ci, err := r.ReadPacketData()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			if first.IsZero() {
				first = ci.Timestamp
			}
			last = ci.Timestamp
			out = append(out, frame{at: base + ci.Timestamp.Sub(first), data: data, wire: ci.Length})
		}
		fh.Close()
		base += last.Sub(first) + time.Second
	}
	return out
}

// BenchmarkDecodeTrack decodes and tracks the oracle captures' packets
// (preloaded), round after round with the clock moving on; one op is one
// packet. Events are drained every 64 packets as a source would.
func BenchmarkDecodeTrack(b *testing.B) {
	frames := loadOracleFrames(b)
	span := frames[len(frames)-1].at + time.Second
	dec := decode.New(decode.Config{})
	tr := New(DefaultConfig())
	var dg decode.Datagram
	var p Packet
	evs := make([]source.Event, 0, 1024)
	b.ReportAllocs()
	b.ResetTimer()
	round := time.Duration(0)
	for i := 0; i < b.N; i++ {
		k := i % len(frames)
		if k == 0 && i > 0 {
			round += span
		}
		f := &frames[k]
		now := t0.Add(round + f.at)
		if dec.Decode(now, decode.LinkEthernet, f.data, f.wire, &dg) == decode.StatusDatagram {
			p = Packet{Data: dg.Data, Length: dg.Length}
			tr.Handle(now, &p)
		}
		if i&63 == 63 {
			evs = tr.AppendEvents(evs[:0])
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds()/1e6, "Mpps")
}

// BenchmarkEstablished tracks the packets of one established TCP flow in
// both directions: the steady state of a busy connection.
func BenchmarkEstablished(b *testing.B) {
	tr := New(DefaultConfig())
	for _, s := range handshake {
		tr.Handle(t0.Add(s.at), &Packet{Data: s.data})
	}
	tr.AppendEvents(nil)
	up := c2s(1001, 5001, fACK, "")
	down := s2c(5001, 1001, fACK, "")
	pu, pd := Packet{Data: up}, Packet{Data: down}
	now := t0.Add(time.Second)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i&1 == 0 {
			tr.Handle(now, &pu)
		} else {
			tr.Handle(now, &pd)
		}
	}
}
