package export_test

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/conntop/conntop/internal/export"
	"github.com/conntop/conntop/internal/flow"
)

func exampleFlow() flow.Flow {
	orig := flow.Tuple{Src: netip.MustParseAddr("10.0.0.1"), Dst: netip.MustParseAddr("10.0.0.2"), SrcPort: 47494, DstPort: 8080}
	return flow.Flow{
		Family: flow.FamilyIPv4, Proto: flow.ProtoTCP, TCPState: flow.TCPTimeWait,
		Status: flow.StatusConfirmed | flow.StatusSeenReply | flow.StatusAssured,
		Orig:   orig, Reply: orig.Reverse(flow.ProtoTCP), Timeout: 117,
		HasCounters: true, Counters: flow.Counters{OrigPackets: 6, OrigBytes: 398, ReplyPackets: 4, ReplyBytes: 292},
	}
}

func ExampleWriteText() {
	_ = export.WriteText(os.Stdout, []flow.Flow{exampleFlow()})
	// Output:
	// tcp      6 117 TIME_WAIT src=10.0.0.1 dst=10.0.0.2 sport=47494 dport=8080 packets=6 bytes=398 src=10.0.0.2 dst=10.0.0.1 sport=8080 dport=47494 packets=4 bytes=292 [ASSURED] mark=0 use=1
}

func ExampleEventWriter() {
	ew := export.NewEventWriter(os.Stdout, export.FormatText)
	f := exampleFlow()
	_ = ew.Write(flow.Event{Type: flow.EventDestroy, Flow: f})
	_ = ew.Write(flow.Event{Type: flow.EventResync, Lost: 12})

	ew = export.NewEventWriter(os.Stdout, export.FormatNDJSON)
	_ = ew.Write(flow.Event{Type: flow.EventResync, Time: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC), Lost: 12})
	// Output:
	// [DESTROY] tcp      6 117 TIME_WAIT src=10.0.0.1 dst=10.0.0.2 sport=47494 dport=8080 packets=6 bytes=398 src=10.0.0.2 dst=10.0.0.1 sport=8080 dport=47494 packets=4 bytes=292 [ASSURED]
	//  [RESYNC] lost=12
	// {"time":"2026-11-25T12:00:00Z","type":"resync","lost":12}
}

func ExampleWriteFile() {
	dir, _ := os.MkdirTemp("", "export-example")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "snapshot.csv")
	flows := []flow.Flow{exampleFlow()}
	write := func(w io.Writer) error { return export.WriteCSV(w, flows) }

	fmt.Println(export.WriteFile(path, export.FileOptions{}, write))
	err := export.WriteFile(path, export.FileOptions{}, write)
	fmt.Println(err != nil && errors.Is(err, export.ErrExists))
	fmt.Println(export.WriteFile(path, export.FileOptions{Force: true}, write))
	fi, _ := os.Stat(path)
	fmt.Println(fi.Mode().Perm())
	// Output:
	// <nil>
	// true
	// <nil>
	// -rw-------
}
