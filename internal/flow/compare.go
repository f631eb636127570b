package flow

// Seen says which sides of a kernel-versus-wire comparison (the compare
// source, `--source conntrack,capture`) hold a flow: the kernel's conntrack
// table, conntop's own tracker fed from the captured packets, or both. It is
// zero for every other source.
type Seen uint8

// Sides of a comparison.
const (
	SeenKernel Seen = 1 << iota
	SeenWire
)

// String returns "kernel+wire", "kernel", "wire" or "" (not compared).
func (s Seen) String() string {
	switch s & (SeenKernel | SeenWire) {
	case SeenKernel | SeenWire:
		return "kernel+wire"
	case SeenKernel:
		return "kernel"
	case SeenWire:
		return "wire"
	}
	return ""
}

// Disagree is how the kernel's and the wire's view of a flow differ, once
// the difference has outlasted the compare source's grace period.
type Disagree uint8

// Kinds of disagreement.
const (
	// DisagreeNone: both sides agree (or the flow is not compared, or a
	// difference is still within the grace period).
	DisagreeNone Disagree = iota
	// DisagreeKernelOnly: the kernel tracks the flow, the wire tracker does
	// not (no packets of it crossed the captured interfaces, or it predates
	// the capture).
	DisagreeKernelOnly
	// DisagreeWireOnly: packets of the flow crossed the wire but the kernel
	// has no entry (notrack, a zone, another namespace, …).
	DisagreeWireOnly
	// DisagreeState: both have it, in different netfilter or TCP states.
	DisagreeState
)

var disagreeNames = [...]string{"", "kernel only", "wire only", "state differs"}

// String returns "", "kernel only", "wire only" or "state differs".
func (d Disagree) String() string {
	if int(d) < len(disagreeNames) {
		return disagreeNames[d]
	}
	return "unknown"
}

// Compare is a flow's kernel-versus-wire mark, set only by the compare
// source; the zero value means "not compared". It is four bytes and
// comparable.
type Compare struct {
	// Seen says which sides hold the flow now.
	Seen Seen
	// Disagree is the published disagreement.
	Disagree Disagree
	// WireState and WireTCPState are the wire tracker's states of the flow
	// when Disagree is DisagreeState (the flow itself carries the kernel's);
	// zero otherwise.
	WireState    State
	WireTCPState TCPState
}

// DisagreeReason explains the flow's kernel-versus-wire disagreement: ""
// when there is none, "kernel only", "wire only", or for a state difference
// "state differs: kernel ESTABLISHED/TIME_WAIT, wire NEW/SYN_SENT" (the
// TCP state only for TCP flows).
func (f *Flow) DisagreeReason() string {
	switch f.Compare.Disagree {
	case DisagreeNone:
		return ""
	case DisagreeState:
		k := f.State().String()
		w := f.Compare.WireState.String()
		if f.Proto == ProtoTCP {
			k += "/" + f.TCPState.String()
			w += "/" + f.Compare.WireTCPState.String()
		}
		return "state differs: kernel " + k + ", wire " + w
	}
	return f.Compare.Disagree.String()
}
