// Command conntop shows the Linux connection tracking table live: an
// interactive TUI, headless snapshot and events commands for scripts, and a
// server for many SSH viewers plus Prometheus metrics. It reads the kernel's
// table over netlink, or captures packets itself and tracks them like the
// kernel does, or replays a pcap file.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"

	"github.com/conntop/conntop/internal/buildinfo"
	"github.com/conntop/conntop/internal/filter"
	"github.com/conntop/conntop/internal/termsafe"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run executes one command line and returns the exit status: 0 on
// success, 2 on bad usage or a bad filter, 1 otherwise.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	o, err := parseArgs(args)
	if err != nil {
		help := "conntop --help"
		if o != nil && o.cmd != cmdTUI {
			help = "conntop " + string(o.cmd) + " --help"
		}
		fmt.Fprintf(stderr, "conntop: %s\nRun '%s' for usage.\n", escapeLines(err.Error()), help)
		return 2
	}
	switch o.cmd {
	case cmdHelp:
		return exitStatus(writeHelp(stdout, o.helpFor), stderr)
	case cmdVersion:
		fmt.Fprintf(stdout, "conntop %s\n", buildinfo.Get())
		return 0
	case cmdCompletion:
		return exitStatus(writeCompletion(stdout, o.arg), stderr)
	case cmdMan:
		return exitStatus(writeManPage(stdout, buildinfo.Get()), stderr)
	}
	if o.cpuProfile != "" {
		stop, err := startCPUProfile(o.cpuProfile)
		if err != nil {
			return exitStatus(err, stderr)
		}
		defer stop()
	}
	env := &runEnv{opts: o, stdin: stdin, stdout: stdout, stderr: stderr}
	switch o.cmd {
	case cmdSnapshot:
		err = env.snapshot(ctx)
	case cmdEvents:
		err = env.events(ctx)
	case cmdServe:
		err = env.serve(ctx)
	case cmdExplain:
		err = env.explain(ctx)
	default:
		err = env.tui(ctx)
	}
	return exitStatus(err, stderr)
}

// exitStatus prints err (if any) and maps it to an exit status.
func exitStatus(err error, stderr io.Writer) int {
	if err == nil {
		return 0
	}
	// Errors quote user paths, namespace names and kernel text: escape them,
	// keeping the line breaks our own messages use.
	fmt.Fprintf(stderr, "conntop: %s\n", escapeLines(err.Error()))
	var se *filter.SyntaxError
	if errors.As(err, &se) {
		// Point at the offending position under the expression.
		fmt.Fprintf(stderr, "  %s\n  %s^\n", termsafe.Escape(se.Expr), strings.Repeat(" ", caretColumn(se.Expr, se.Pos)))
		return 2
	}
	if errors.Is(err, errUsage) {
		return 2
	}
	return 1
}

// startCPUProfile profiles the whole run into path; stop ends it.
func startCPUProfile(path string) (stop func(), err error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, fmt.Errorf("--cpuprofile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("--cpuprofile: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}

// escapeLines escapes s for the terminal line by line, so that a message's
// own line breaks stay line breaks while every other control is made
// visible.
func escapeLines(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = termsafe.Escape(l)
	}
	return strings.Join(lines, "\n")
}

// caretColumn is the display column of byte position pos in expr, counting
// each escaped rune at its escaped width.
func caretColumn(expr string, pos int) int {
	pos = max(0, min(pos, len(expr)))
	return len([]rune(termsafe.Escape(expr[:pos])))
}
