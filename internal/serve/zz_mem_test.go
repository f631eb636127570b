//go:build linux

package serve

import (
	"os"
	"runtime"
	"runtime/pprof"
	"testing"
	"time"
)

func TestZZMem(t *testing.T) {
	eng := newTestEngine(t, 2000)
	ts := startServer(t, eng, func(c *Config) { c.NewModel = tuiBenchFactory; c.IdleTimeout = time.Minute })
	runtime.GC()
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	cl := ts.mustDial(t, "alice")
	for range 2 {
		openPty(t, cl, 1000, 160)
	}
	time.Sleep(4 * time.Second)
	runtime.GC()
	runtime.ReadMemStats(&m1)
	t.Logf("heap in use +%d MB for 2 sessions", (int64(m1.HeapInuse)-int64(m0.HeapInuse))>>20)
	f, _ := os.Create("/tmp/utt/heap.prof")
	pprof.WriteHeapProfile(f)
	f.Close()
}
