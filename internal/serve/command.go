package serve

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"

	"charm.land/ssh"

	"github.com/conntop/conntop/internal/export"
	"github.com/conntop/conntop/internal/filter"
	"github.com/conntop/conntop/internal/termsafe"
)

// commandUsage lists the commands an SSH client may run.
const commandUsage = "snapshot [--format json|ndjson|csv|text] [--filter EXPR] | explain [--format text|json] [--filter EXPR] [--what-if SECONDS|SYSCTL=SECONDS,...]"

// maxSnapshotCopies bounds the snapshot commands running at once (each
// holds its flows' keys, 44 bytes a flow: 11.5 MB at 262,144 flows, and a
// page of rows; see snapshot.go); a further snapshot waits for one to be
// written.
const maxSnapshotCopies = 2

// Exit statuses of SSH commands, as the CLI's.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

// command is one command an SSH client may run: run gets the session, its
// output (stdout, stderr: counted and under the stall check) and the
// arguments after the command's name, and returns the exit status.
type command struct {
	run func(s *Server, se *session, stdout, stderr io.Writer, args []string) int
}

// commands are the commands SSH clients may run, by name.
var commands = map[string]command{
	"snapshot": {run: (*Server).snapshot},
	"explain":  {run: (*Server).explain},
}

// runCommand runs the command an SSH client asked for instead of a shell.
func (s *Server) runCommand(se *session, sess ssh.Session) int {
	args := se.info.Command
	stdout, stderr := se.writer(sess), se.writer(sess.Stderr())
	if c, ok := commands[args[0]]; ok {
		return c.run(s, se, stdout, stderr, args[1:])
	}
	switch args[0] {
	case "help", "-h", "--help":
		fmt.Fprintf(stdout, "commands: %s\nwithout a command: the conntop TUI (read-only; use ssh -t)\n", commandUsage)
		return exitOK
	}
	// %q escapes whatever the client sent.
	fmt.Fprintf(stderr, "conntop: unknown command %q; this server runs: %s\n", args[0], commandUsage)
	return exitUsage
}

// snapshot streams the shared store's current table to the client, in the
// format of `conntop snapshot`.
func (s *Server) snapshot(se *session, stdout, stderr io.Writer, args []string) int {
	fs := flag.NewFlagSet("snapshot", flag.ContinueOnError)
	// The flag package would echo what the client sent (a flag's name)
	// unescaped: it prints nothing, and errors go out escaped below.
	fs.SetOutput(io.Discard)
	format := fs.String("format", "json", "output format: json, ndjson, csv or text")
	expr := fs.String("filter", "", "filter expression")
	if err := fs.Parse(args); err != nil {
		fs.SetOutput(stderr)
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(stderr, "usage: %s\n", commandUsage)
			fs.PrintDefaults()
			return exitOK
		}
		fmt.Fprintf(stderr, "conntop: snapshot: %s\nusage: %s\n", termsafe.Escape(err.Error()), commandUsage)
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "conntop: snapshot: unexpected argument %q (put a filter in --filter)\n", fs.Arg(0))
		return exitUsage
	}
	f, err := export.ParseFormat(*format)
	if err != nil {
		fmt.Fprintf(stderr, "conntop: snapshot: unknown format \"%s\" (want json, ndjson, csv or text)\n", termsafe.Escape(*format))
		return exitUsage
	}
	flt, err := filter.Parse(*expr)
	if err != nil {
		// The message quotes the client's expression.
		fmt.Fprintf(stderr, "conntop: snapshot: %s\n", termsafe.Escape(err.Error()))
		return exitUsage
	}

	// At most maxSnapshotCopies snapshots collect and sort keys at once;
	// the slot is given back when the snapshot is written (or the session
	// ends).
	select {
	case s.snapSlots <- struct{}{}:
	case <-se.ctx.Done():
		return exitError
	}
	w := bufio.NewWriterSize(stdout, 64<<10)
	gone, err := writeSnapshot(se.ctx, s.eng, w, f, flt)
	<-s.snapSlots
	if err == nil {
		err = w.Flush()
	}
	if err != nil {
		if se.ctx.Err() == nil {
			s.log.Info("ssh snapshot: write failed", "session", se.info.ID, "error", err)
		}
		return exitError
	}
	if gone > 0 {
		fmt.Fprintf(stderr, "conntop: snapshot: %d flows ended while the snapshot was written and are not in it\n", gone)
	}
	return exitOK
}
