package serve

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"

	"charm.land/ssh"

	"github.com/conntop/conntop/internal/export"
	"github.com/conntop/conntop/internal/filter"
	"github.com/conntop/conntop/internal/store"
	"github.com/conntop/conntop/internal/termsafe"
)

// commandUsage lists the commands an SSH client may run.
const commandUsage = "snapshot [--format json|csv|text] [--filter EXPR]"

// Exit statuses of SSH commands, as the CLI's.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

// runCommand runs the command an SSH client asked for instead of a shell.
func (s *Server) runCommand(se *session, sess ssh.Session) int {
	args := se.info.Command
	stderr := sess.Stderr()
	switch args[0] {
	case "snapshot":
		return s.snapshot(se, sess, stderr, args[1:])
	case "help", "-h", "--help":
		fmt.Fprintf(sess, "commands: %s\nwithout a command: the conntop TUI (read-only; use ssh -t)\n", commandUsage)
		return exitOK
	}
	// %q escapes whatever the client sent.
	fmt.Fprintf(stderr, "conntop: unknown command %q; this server runs: %s\n", args[0], commandUsage)
	return exitUsage
}

// snapshot streams the shared store's current table to the client, in the
// format of `conntop snapshot`.
func (s *Server) snapshot(se *session, sess ssh.Session, stderr io.Writer, args []string) int {
	fs := flag.NewFlagSet("snapshot", flag.ContinueOnError)
	// The flag package would echo what the client sent (a flag's name)
	// unescaped: it prints nothing, and errors go out escaped below.
	fs.SetOutput(io.Discard)
	format := fs.String("format", "json", "output format: json, csv or text")
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
		fmt.Fprintf(stderr, "conntop: snapshot: %s\n", termsafe.Escape(err.Error()))
		return exitUsage
	}
	flt, err := filter.Parse(*expr)
	if err != nil {
		// The message quotes the client's expression.
		fmt.Fprintf(stderr, "conntop: snapshot: %s\n", termsafe.Escape(err.Error()))
		return exitUsage
	}

	snap := export.Snapshot{Time: s.eng.Now(), Source: s.eng.Status().Source}
	s.eng.View(func(st *store.Store) {
		sum := st.Summary()
		snap.Table = sum.Table
		snap.Degraded = export.DegradedFrom(sum.Degraded)
		snap.Table.InvalidReasons = maps.Clone(snap.Table.InvalidReasons) // the store's map
		snap.Flows = st.Snapshot(flt)
	})

	w := bufio.NewWriterSize(outputWriter{w: sess, se: se}, 64<<10)
	err = export.WriteSnapshot(w, f, &snap)
	if err == nil {
		err = w.Flush()
	}
	if err != nil {
		if se.ctx.Err() == nil {
			s.log.Info("ssh snapshot: write failed", "session", se.info.ID, "error", err)
		}
		return exitError
	}
	return exitOK
}
