package serve

import (
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/conntop/conntop/internal/explain"
	"github.com/conntop/conntop/internal/filter"
	"github.com/conntop/conntop/internal/termsafe"
)

// explainUsage is the explain command's usage line.
const explainUsage = "explain [--format text|json] [--filter EXPR] [--what-if SECONDS|SYSCTL=SECONDS,...]"

// explain writes what fills the shared table and what would relieve it, as
// `conntop explain` does (the rate window is the server's own watch).
func (s *Server) explain(se *session, stdout, stderr io.Writer, args []string) int {
	fs := flag.NewFlagSet("explain", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors go out escaped below
	format := fs.String("format", "text", "output format: text or json")
	expr := fs.String("filter", "", "filter expression")
	whatIf := fs.String("what-if", "", "timeout SECONDS for every class, or SYSCTL=SECONDS,...")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(stderr, "usage: %s\n", explainUsage)
			return exitOK
		}
		fmt.Fprintf(stderr, "conntop: explain: %s\nusage: %s\n", termsafe.Escape(err.Error()), explainUsage)
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "conntop: explain: unexpected argument %q (put a filter in --filter)\n", fs.Arg(0))
		return exitUsage
	}
	if *format != "text" && *format != "json" {
		fmt.Fprintf(stderr, "conntop: explain: --format %q: want text or json\n", *format)
		return exitUsage
	}
	flt, err := filter.Parse(*expr)
	if err != nil {
		fmt.Fprintf(stderr, "conntop: explain: %s\n", termsafe.Escape(err.Error()))
		return exitUsage
	}
	wi, err := explain.ParseWhatIf(*whatIf)
	if err != nil {
		fmt.Fprintf(stderr, "conntop: explain: %s\n", termsafe.Escape(err.Error()))
		return exitUsage
	}
	opts := explain.Options{Filter: flt.String(), WhatIf: wi}
	if flt.String() != "" {
		opts.Matcher = flt
	}
	rep := explain.FromEngine(s.eng, s.cfg.Explain, opts)

	// Both writers hand the client whole buffers (the JSON encoder one
	// write, the text writer its own buffer).
	if *format == "json" {
		err = explain.WriteJSON(stdout, rep)
	} else {
		err = explain.WriteText(stdout, rep)
	}
	if err != nil {
		if se.ctx.Err() == nil {
			s.log.Info("ssh explain: write failed", "session", se.info.ID, "error", err)
		}
		return exitError
	}
	return exitOK
}
