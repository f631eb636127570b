//go:build linux

package tracker

import (
	"fmt"
	"strings"
	"testing"
)

// sctpScenarios are SCTP associations and malformed packets for the
// kernel-oracle harness, over IPv4 and IPv6.
func sctpScenarios() []scenario {
	var out []scenario
	for _, v6 := range []bool{false, true} {
		p := newSCTPPeers(v6)
		fam := "v4"
		if v6 {
			fam = "v6"
		}
		add := func(name string, dgs ...[]byte) {
			s := scen{name: "sctp-" + fam + "-" + name}
			s.add(dgs...)
			out = append(out, s.done())
		}
		hs := p.handshake()
		data := p.c(tagS, sData(1, "hello"))
		sack := p.s(tagC, sSack(1))
		life := append(append([][]byte{}, hs...),
			data, sack,
			p.c(tagS, sHeartbeat(chunkHeartbeat)), p.s(tagC, sHeartbeat(chunkHeartbeatAck)),
			p.s(tagC, sData(7, "world")), p.c(tagS, sSack(7)),
			p.c(tagS, sChunk(chunkShutdown, 0, []byte{0, 0, 0, 7})),
			p.s(tagC, sChunk(chunkShutdownAck, 0, nil)),
			p.c(tagS, sChunk(chunkShutdownComplete, 0, nil)))
		// Every prefix of a whole association (states and timeouts).
		for i := 1; i <= len(life); i++ {
			add(fmt.Sprintf("life-%02d", i), life[:i]...)
		}
		add("init-bad-crc", badCRC(hs[0]))
		add("init-ack-bad-crc", hs[0], badCRC(hs[1]))
		add("data-bad-crc", append(append([][]byte{}, hs...), badCRC(data), sack)...)
		add("data-bad-vtag", append(append([][]byte{}, hs...), p.c(tagS+1, sData(1, "x")), sack)...)
		add("sack-bad-vtag", append(append([][]byte{}, hs...), data, p.s(tagS, sSack(1)))...)
		add("init-nonzero-vtag", p.c(5, sInit(chunkInit, tagC)))
		add("init-short-header", p.c(0, sChunk(chunkInit, 0, []byte{1, 2, 3, 4})))
		add("init-then-data", p.c(0, sInit(chunkInit, tagC), sData(1, "x")))
		add("new-data", p.c(tagS, sData(1, "x")), p.s(tagC, sSack(1)))
		add("new-data-vtag0", p.c(0, sData(1, "x")))
		add("new-sack", p.c(0, sSack(1)))
		add("new-abort", p.c(tagS, sChunk(chunkAbort, 0, nil)))
		add("new-cookie-ack", p.c(tagS, sChunk(chunkCookieAck, 0, nil)))
		add("new-shutdown-complete", p.c(tagS, sChunk(chunkShutdownComplete, 0, nil)))
		add("new-shutdown-ack", p.c(tagS, sChunk(chunkShutdownAck, 0, nil)), p.s(tagS, sChunk(chunkShutdownComplete, chunkFlagT, nil)))
		add("new-cookie-echo", p.c(tagS, sChunk(chunkCookieEcho, 0, []byte("cookie"))), p.s(0, sChunk(chunkCookieAck, 0, nil)))
		add("new-heartbeat", p.c(tagS, sHeartbeat(chunkHeartbeat)), p.s(tagC, sHeartbeat(chunkHeartbeatAck)), p.c(tagS, sData(1, "x")))
		add("new-heartbeat-ack", p.c(tagS, sHeartbeat(chunkHeartbeatAck)))
		add("new-error", p.c(tagS, sChunk(chunkError, 0, []byte{0, 1, 0, 4})))
		add("no-chunks", p.c(0))
		add("short-8", p.raw(sctpSeg(p.cport, p.sport, 0)[:8]))
		add("zero-length-chunk", p.c(0, []byte{1, 0, 0, 0}))
		add("init-retransmit", hs[0], hs[0], hs[0])
		add("init-ack-wrong-tag", hs[0], p.s(tagC+1, sInit(chunkInitAck, tagS)))
		add("cookie-echo-bad-vtag", hs[0], hs[1], p.c(tagS+1, sChunk(chunkCookieEcho, 0, []byte("cookie"))))
		add("cookie-echo-data", hs[0], hs[1], p.c(tagS, sChunk(chunkCookieEcho, 0, []byte("cookie")), sData(1, "x")), p.s(tagC, sChunk(chunkCookieAck, 0, nil), sSack(1)))
		add("data-cookie-echo", hs[0], hs[1], p.c(tagS, sData(1, "x"), sChunk(chunkCookieEcho, 0, []byte("cookie"))))
		add("data-sack-bundle", append(append([][]byte{}, hs...), p.c(tagS, sSack(3), sData(1, "x"), sData(2, "y")))...)
		add("abort-own-tag", append(append([][]byte{}, hs...), p.c(tagS, sChunk(chunkAbort, 0, nil)))...)
		add("abort-t-flag", append(append([][]byte{}, hs...), p.c(tagC, sChunk(chunkAbort, chunkFlagT, nil)))...)
		add("abort-bad-tag", append(append([][]byte{}, hs...), p.c(tagC, sChunk(chunkAbort, 0, nil)))...)
		add("abort-in-cookie-wait", hs[0], p.s(tagC, sChunk(chunkAbort, 0, nil)))
		add("server-shutdown", append(append([][]byte{}, hs...), p.s(tagC, sChunk(chunkShutdown, 0, []byte{0, 0, 0, 1})),
			p.c(tagS, sChunk(chunkShutdownAck, 0, nil)), p.s(tagC, sChunk(chunkShutdownComplete, 0, nil)))...)
		add("shutdown-complete-t", append(append([][]byte{}, hs...), p.c(tagS, sChunk(chunkShutdown, 0, []byte{0, 0, 0, 1})),
			p.s(tagC, sChunk(chunkShutdownAck, 0, nil)), p.c(tagC, sChunk(chunkShutdownComplete, chunkFlagT, nil)))...)
		add("error-in-cookie-echoed", hs[0], hs[1], hs[2], p.s(tagC, sChunk(chunkError, 0, []byte{0, 3, 0, 4})))
		add("heartbeat-new-vtag", append(append([][]byte{}, hs...), p.c(tagS+9, sHeartbeat(chunkHeartbeat)),
			p.s(tagC+9, sHeartbeat(chunkHeartbeatAck)), p.c(tagS+9, sData(1, "x")))...)
		add("heartbeat-bad-vtag-data", append(append([][]byte{}, hs...), p.c(tagS+9, sHeartbeat(chunkHeartbeat), sData(1, "x")))...)
		add("heartbeat-ack-same-dir", append(append([][]byte{}, hs...), p.c(tagS+9, sHeartbeat(chunkHeartbeat)),
			p.c(tagS+9, sHeartbeat(chunkHeartbeatAck)))...)
		add("init-collision", hs[0], p.s(0, sInit(chunkInit, tagS)), p.s(tagC, sInit(chunkInitAck, tagS)),
			p.c(tagS, sInit(chunkInitAck, tagC)))
		add("init-ack-collision-mismatch", hs[0], p.s(0, sInit(chunkInit, tagS)), p.c(tagS, sInit(chunkInitAck, tagC+1)))
		add("restart-new-tag-after-close", append(append(append([][]byte{}, life...), p.c(0, sInit(chunkInit, tagC+5))),
			p.s(tagC+5, sInit(chunkInitAck, tagS+1)), p.c(tagS+1, sChunk(chunkCookieEcho, 0, []byte("cookie"))),
			p.s(tagC+5, sChunk(chunkCookieAck, 0, nil)))...)
		add("init-ack-retransmit-new-tag", hs[0], hs[0], p.s(tagC, sInit(chunkInitAck, tagS)), p.s(tagC, sInit(chunkInitAck, tagS+1)))
		add("restart-after-close", append(append(append([][]byte{}, life...), hs[0]), p.s(tagC, sInit(chunkInitAck, tagS+1)))...)
		add("chunk-beyond-end", p.c(0, sChunk(chunkInit, 0, make([]byte, 40))[:20]))
		add("init-cut-header", p.c(0, sChunk(chunkInit, 0, make([]byte, 40))[:12]))
		add("unknown-chunk-first", p.c(0, sChunk(0xc0, 0, []byte{1, 2, 3, 4})))
		add("data-after-established-orig-tag", append(append([][]byte{}, hs...), p.c(tagC, sData(1, "x")))...)
	}
	return out
}

// TestKernelDiffSCTP compares the SCTP scenarios with the live kernel:
// entries with their SCTP state, remaining timeouts (within a second),
// statistics and every packet's verdict.
func TestKernelDiffSCTP(t *testing.T) {
	lab := newKernelLab(t)
	failed := 0
	scens := sctpScenarios()
	for _, sc := range scens {
		for i := range sc.frames {
			if len(sc.frames[i].data) < 14 {
				t.Fatalf("%s: frame %d too short", sc.name, i)
			}
		}
		kern, sent, err := lab.runKernel(sc.frames, 0)
		if err != nil {
			t.Fatalf("%s: %v", sc.name, err)
		}
		ours := runTrackerConfig(DefaultConfig(), sc.frames, sent)
		if diff := diffResults(kern, ours); diff != "" {
			failed++
			t.Errorf("%s: tracker differs from the kernel:\n%s", sc.name, diff)
		} else if testing.Verbose() {
			t.Logf("%s: %s invalid=%d verdicts=%v", sc.name, strings.Join(kern.lines, " | "), kern.invalid, kern.verdicts)
		}
	}
	t.Logf("%d SCTP scenarios, %d differ", len(scens), failed)
}
