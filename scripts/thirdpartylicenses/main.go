// Command thirdpartylicenses writes the licence notices a conntop binary must
// carry (THIRD_PARTY_LICENSES in the release tarballs and packages): for
// every Go module compiled into the binary, its path and version and the full,
// unchanged text of its licence files (LICENSE, LICENCE, COPYING, COPYRIGHT,
// UNLICENSE, NOTICE, PATENTS, with any suffix such as .txt or .md) from the
// module cache, and the same for the Go distribution itself, whose standard
// library and runtime are compiled in too.
//
// The modules are those of `go list -deps` of the main package as the release
// builds it (GOOS=linux, CGO_ENABLED=0), for each release architecture; the
// main module is conntop's own (its LICENSE ships beside this file). A module
// without a licence file, or with only NOTICE or PATENTS, is an error, and
// nothing is written.
//
//	go run ./scripts/thirdpartylicenses [-o FILE] [-goarch amd64,arm64] [PACKAGE]
//
// scripts/release-assets.sh runs it into build/THIRD_PARTY_LICENSES.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
)

// module is the part of `go list -json` Module the notices need.
type module struct {
	Path    string
	Version string
	Dir     string
	Main    bool
	Replace *module
}

// entry is one section of the output: a module (or the Go distribution) and
// the directory its licence files are in.
type entry struct {
	Title string // "path version", "path version => replacement version"
	Dir   string
}

func main() {
	out := flag.String("o", "", "write to this file (atomically) instead of standard output")
	goarch := flag.String("goarch", "amd64,arm64", "comma-separated architectures whose dependency graphs are listed (GOOS=linux, CGO_ENABLED=0)")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: thirdpartylicenses [-o FILE] [-goarch LIST] [PACKAGE (default ./cmd/conntop)]\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	pkg := "./cmd/conntop"
	switch flag.NArg() {
	case 0:
	case 1:
		pkg = flag.Arg(0)
	default:
		flag.Usage()
		os.Exit(2)
	}
	if err := run(*out, pkg, strings.Split(*goarch, ",")); err != nil {
		fmt.Fprintf(os.Stderr, "thirdpartylicenses: %v\n", err)
		os.Exit(1)
	}
}

func run(out, pkg string, goarches []string) error {
	entries, err := listEntries(pkg, goarches)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	if err := write(&buf, pkg, entries); err != nil {
		return err
	}
	if out == "" {
		_, err := os.Stdout.Write(buf.Bytes())
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(out), ".thirdpartylicenses-*")
	if err != nil {
		return err
	}
	defer func() { _ = os.Remove(tmp.Name()) }() // gone after the rename
	if _, err := tmp.Write(buf.Bytes()); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), out)
}

// goCmd runs the go command for the release's platform and architecture.
func goCmd(goarch string, args ...string) *exec.Cmd {
	cmd := exec.Command("go", args...)
	cmd.Env = append(os.Environ(), "GOOS=linux", "GOARCH="+goarch, "CGO_ENABLED=0")
	cmd.Stderr = os.Stderr
	return cmd
}

// listEntries returns the Go distribution and then every module other than
// the main one that provides a package to pkg's build on any of goarches,
// sorted by title.
func listEntries(pkg string, goarches []string) ([]entry, error) {
	if len(goarches) == 0 || slices.Contains(goarches, "") {
		return nil, fmt.Errorf("no architecture in %q", goarches)
	}
	out, err := goCmd(goarches[0], "env", "GOROOT", "GOVERSION").Output()
	if err != nil {
		return nil, fmt.Errorf("go env: %w", err)
	}
	env := strings.Fields(string(out))
	if len(env) != 2 {
		return nil, fmt.Errorf("go env GOROOT GOVERSION: %q", out)
	}
	entries := []entry{{Title: "Go standard library and runtime " + env[1], Dir: env[0]}}

	seen := map[string]bool{}
	var mods []entry
	for _, goarch := range goarches {
		out, err := goCmd(goarch, "list", "-deps", "-json=ImportPath,Module", pkg).Output()
		if err != nil {
			return nil, fmt.Errorf("go list -deps %s (GOARCH=%s): %w", pkg, goarch, err)
		}
		dec := json.NewDecoder(bytes.NewReader(out))
		for {
			var p struct {
				ImportPath string
				Module     *module
			}
			if err := dec.Decode(&p); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				return nil, fmt.Errorf("go list -deps %s: %w", pkg, err)
			}
			if p.Module == nil || p.Module.Main { // the standard library; conntop itself
				continue
			}
			e, err := moduleEntry(*p.Module)
			if err != nil {
				return nil, fmt.Errorf("%s (for %s): %w", p.Module.Path, p.ImportPath, err)
			}
			if !seen[e.Title] {
				seen[e.Title] = true
				mods = append(mods, e)
			}
		}
	}
	slices.SortFunc(mods, func(a, b entry) int { return strings.Compare(a.Title, b.Title) })
	return append(entries, mods...), nil
}

// moduleEntry names a module as "path version" (and its replacement, whose
// directory holds the code that is compiled in).
func moduleEntry(m module) (entry, error) {
	e := entry{Title: strings.TrimSpace(m.Path + " " + m.Version), Dir: m.Dir}
	if r := m.Replace; r != nil {
		e.Title += " => " + strings.TrimSpace(r.Path+" "+r.Version)
		e.Dir = r.Dir
	}
	if e.Dir == "" {
		return e, errors.New("no source directory (not in the module cache? run go mod download)")
	}
	return e, nil
}

// licenceStems are the names (upper case, before any '.', '-' or '_'
// suffix) of the files copied; notice-only ones do not count as a licence.
var licenceStems = map[string]bool{
	"LICENSE": true, "LICENCE": true, "COPYING": true, "COPYRIGHT": true, "UNLICENSE": true,
	"NOTICE": false, "PATENTS": false,
}

// licenceFile says whether a file name is a licence or notice file, and
// whether it is a licence (not only a notice).
func licenceFile(name string) (include, licence bool) {
	stem := strings.ToUpper(name)
	if i := strings.IndexAny(stem, ".-_"); i >= 0 {
		stem = stem[:i]
	}
	licence, include = licenceStems[stem]
	return include, licence
}

// licenceFiles returns the licence and notice files at the top of dir,
// sorted by name.
func licenceFiles(dir string) (files []string, hasLicence bool, err error) {
	des, err := os.ReadDir(dir)
	if err != nil {
		return nil, false, err
	}
	for _, de := range des {
		include, licence := licenceFile(de.Name())
		if !include || !de.Type().IsRegular() {
			continue
		}
		files = append(files, de.Name())
		hasLicence = hasLicence || licence
	}
	slices.Sort(files)
	return files, hasLicence, nil
}

const rule = "================================================================================"

// write writes the notices of entries to w, or, when any entry lacks a
// licence file or has an empty one, nothing, and an error naming every such
// entry.
func write(w io.Writer, pkg string, entries []entry) error {
	var body bytes.Buffer
	var bad []string
	for _, e := range entries {
		files, hasLicence, err := licenceFiles(e.Dir)
		switch {
		case err != nil:
			bad = append(bad, fmt.Sprintf("%s: %v", e.Title, err))
			continue
		case !hasLicence:
			bad = append(bad, fmt.Sprintf("%s: no LICENSE, LICENCE, COPYING or COPYRIGHT file in %s (found %q)", e.Title, e.Dir, files))
			continue
		}
		fmt.Fprintf(&body, "\n%s\n%s\n%s\n", rule, e.Title, rule)
		for _, name := range files {
			text, err := os.ReadFile(filepath.Join(e.Dir, name))
			if err != nil {
				bad = append(bad, fmt.Sprintf("%s: %v", e.Title, err))
				continue
			}
			if len(bytes.TrimSpace(text)) == 0 {
				bad = append(bad, fmt.Sprintf("%s: %s is empty", e.Title, filepath.Join(e.Dir, name)))
				continue
			}
			fmt.Fprintf(&body, "\n--- %s ---\n\n", name)
			body.Write(text)
			if !bytes.HasSuffix(text, []byte("\n")) {
				body.WriteByte('\n')
			}
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("%d of %d modules have no usable licence file:\n  %s", len(bad), len(entries), strings.Join(bad, "\n  "))
	}
	fmt.Fprintf(w, "Third-party licences in the conntop binary (built from %s)\n\n", pkg)
	fmt.Fprintf(w, "conntop is licensed under the Apache License 2.0 (see LICENSE). Its binary\n"+
		"also contains, compiled in statically, the Go code listed below. The licence\n"+
		"and notice files of each follow, in full and unchanged.\n\n")
	for _, e := range entries {
		fmt.Fprintf(w, "  %s\n", e.Title)
	}
	_, err := w.Write(body.Bytes())
	return err
}
