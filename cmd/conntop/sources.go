package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/conntop/conntop/internal/filter"
	"github.com/conntop/conntop/internal/tracker"
	"github.com/conntop/conntop/internal/wiretrack"
	"github.com/conntop/conntop/source"
	"github.com/conntop/conntop/source/capture"
	"github.com/conntop/conntop/source/compare"
	"github.com/conntop/conntop/source/conntrack"
	"github.com/conntop/conntop/source/pcap"
)

// runEnv carries one invocation's options and standard streams.
type runEnv struct {
	opts   *options
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
}

// chosenSource is the source a command runs, and why it was chosen.
type chosenSource struct {
	src source.Source
	// kind is "conntrack", "capture", "pcap" or "compare" (conntrack,capture).
	kind string
	// notice explains a choice the user did not make explicitly (auto fell
	// back to capture); shown as a banner or on stderr.
	notice string
}

// parseFilter parses --filter; a syntax error keeps its position for the
// exit status 2.
func (env *runEnv) parseFilter() (*filter.Filter, error) {
	f, err := filter.Parse(env.opts.filter)
	if err != nil {
		return nil, err // a *filter.SyntaxError: the exit status is 2 and the position is shown
	}
	return f, nil
}

// trackerConfig builds the in-process tracker's settings from the flags.
func (env *runEnv) trackerConfig() *tracker.Config {
	o := env.opts
	cfg := tracker.DefaultConfig()
	cfg.Loose = o.tcpLoose
	cfg.BeLiberal = o.beLiberal
	cfg.Checksum = !o.noChecksum
	ports, _ := o.ftpPortList() // validated by parseArgs
	cfg.FTPPorts = ports
	cfg.Max = o.maxFlows
	if cfg.Max == 0 {
		cfg.Max = hostConntrackMax()
	}
	return &cfg
}

// hostConntrackMax reads this host's nf_conntrack_max, the tracker's default
// table limit; 0 (the tracker's own default) when it cannot be read.
func hostConntrackMax() int {
	b, err := os.ReadFile("/proc/sys/net/netfilter/nf_conntrack_max")
	if err != nil {
		return 0
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || n <= 0 {
		return 0
	}
	return n
}

func (env *runEnv) conntrackOptions() conntrack.Options {
	o := env.opts
	ci := o.counterInterval
	if ci == 0 {
		ci = -1 // --counters 0 means never
	}
	return conntrack.Options{NetNS: o.netns, ReadBuffer: o.rcvBuf, CountersInterval: ci,
		// A snapshot reads the table once and stops.
		OneShot: o.cmd == cmdSnapshot}
}

func (env *runEnv) captureSource() *capture.Source {
	o := env.opts
	return capture.New(capture.Config{
		Interfaces: o.ifaceList(),
		NetNS:      o.netns,
		Filter:     o.bpf,
		RingSize:   o.ringMB << 20,
		Pipeline:   wiretrack.Config{Tracker: env.trackerConfig()},
	})
}

func (env *runEnv) pcapConfig() pcap.Config {
	return pcap.Config{Pipeline: wiretrack.Config{Tracker: env.trackerConfig()}, Host: env.opts.replayHost}
}

// chooseSource builds the source the flags ask for. With --source auto it
// probes the kernel table first and falls back to capture, saying why.
func (env *runEnv) chooseSource() (*chosenSource, error) {
	o := env.opts
	switch o.source {
	case "pcap":
		if o.read == "-" {
			return &chosenSource{src: pcap.NewReader("-", env.stdin, env.pcapConfig()), kind: "pcap"}, nil
		}
		if _, err := os.Stat(o.read); err != nil {
			return nil, fmt.Errorf("--read: %w", err)
		}
		return &chosenSource{src: pcap.New(o.read, env.pcapConfig()), kind: "pcap"}, nil
	case "capture":
		return &chosenSource{src: env.captureSource(), kind: "capture"}, nil
	case "conntrack":
		copts := env.conntrackOptions()
		info, err := conntrack.Probe(copts)
		if err != nil {
			return nil, err
		}
		if !info.Active {
			return nil, fmt.Errorf("%w: %s; turn it on with:\n  %s\nor watch the wire instead with --source capture",
				conntrack.ErrNotActive, info.Reason, conntrack.EnableCommand)
		}
		return &chosenSource{src: conntrack.New(copts), kind: "conntrack"}, nil
	case "conntrack,capture", "capture,conntrack":
		// Kernel vs wire: both sources at once, flows marked where they
		// disagree (source/compare).
		copts := env.conntrackOptions()
		info, err := conntrack.Probe(copts)
		if err != nil {
			return nil, err
		}
		if !info.Active {
			return nil, fmt.Errorf("%w: %s; the comparison needs the kernel's table, turn it on with:\n  %s",
				conntrack.ErrNotActive, info.Reason, conntrack.EnableCommand)
		}
		return &chosenSource{src: compare.New(conntrack.New(copts), env.captureSource(), compare.Options{}), kind: "compare"}, nil
	case "auto":
		copts := env.conntrackOptions()
		info, err := conntrack.Probe(copts)
		switch {
		case err == nil && info.Active:
			return &chosenSource{src: conntrack.New(copts), kind: "conntrack"}, nil
		case err == nil:
			return &chosenSource{src: env.captureSource(), kind: "capture",
				notice: fmt.Sprintf("showing conntop's own capture: kernel conntrack is not active here (%s). "+
					"For the kernel's table: %s", info.Reason, conntrack.EnableCommand)}, nil
		case errors.Is(err, conntrack.ErrNotLoaded):
			return &chosenSource{src: env.captureSource(), kind: "capture",
				notice: "showing conntop's own capture: the kernel has no conntrack (module nf_conntrack not loaded). " +
					"For the kernel's table: modprobe nf_conntrack and add a rule that uses ct state"}, nil
		default:
			return nil, err
		}
	}
	return nil, usageErr("--source %q is not supported here", o.source)
}
