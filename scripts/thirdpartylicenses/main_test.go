package main

import (
	"bytes"
	"debug/buildinfo"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const conntopPkg = "github.com/conntop/conntop/cmd/conntop"

// sections splits the output into title -> the text under it.
func sections(t *testing.T, out string) (listed []string, body map[string]string) {
	t.Helper()
	head, rest, ok := strings.Cut(out, "\n"+rule+"\n")
	if !ok {
		t.Fatalf("no section in the output:\n%s", out)
	}
	for _, l := range strings.Split(head, "\n") {
		if strings.HasPrefix(l, "  ") {
			listed = append(listed, strings.TrimPrefix(l, "  "))
		}
	}
	body = map[string]string{}
	parts := strings.Split(rest, "\n"+rule+"\n")
	// parts: title, text, title, text, ... (the text ends before the next
	// section's blank line and rule).
	if len(parts)%2 != 0 {
		t.Fatalf("unbalanced sections: %d parts", len(parts))
	}
	for i := 0; i < len(parts); i += 2 {
		title := parts[i]
		if _, dup := body[title]; dup {
			t.Errorf("section %q twice", title)
		}
		body[title] = parts[i+1]
	}
	return listed, body
}

// TestEveryModuleOfTheBinary generates the notices for conntop as the release
// builds it and checks them against the binary itself: every module the
// linker recorded in a CGO_ENABLED=0 linux/amd64 build has a section, with
// the unchanged text of its licence files from the module cache; nothing is
// listed that neither architecture's `go list -deps` names; the Go
// distribution's own licence comes first.
func TestEveryModuleOfTheBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds conntop")
	}
	entries, err := listEntries(conntopPkg, []string{"amd64", "arm64"})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := write(&buf, conntopPkg, entries); err != nil {
		t.Fatal(err)
	}
	listed, body := sections(t, buf.String())
	if len(listed) != len(body) {
		t.Errorf("%d modules listed, %d sections", len(listed), len(body))
	}

	// What the linker put in the binary (without -trimpath, to share the
	// build cache with the other tests' CGO_ENABLED=0 builds).
	bin := filepath.Join(t.TempDir(), "conntop")
	cmd := exec.Command("go", "build", "-o", bin, conntopPkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	bi, err := buildinfo.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	if len(bi.Deps) < 10 {
		t.Fatalf("the binary records %d modules; expected conntop's dozens", len(bi.Deps))
	}
	for _, d := range bi.Deps {
		title := d.Path + " " + d.Version
		if d.Replace != nil {
			title += " => " + strings.TrimSpace(d.Replace.Path+" "+d.Replace.Version)
		}
		if !slices.Contains(listed, title) {
			t.Errorf("module %s is compiled into conntop but not in THIRD_PARTY_LICENSES", title)
		}
		if _, ok := body[title]; !ok {
			t.Errorf("module %s has no section", title)
		}
	}

	// Every listed module is in the dependency graph (the brief's command,
	// independently of listEntries).
	graph := map[string]bool{}
	for _, goarch := range []string{"amd64", "arm64"} {
		cmd := exec.Command("go", "list", "-deps", "-f", "{{with .Module}}{{if not .Main}}{{.Path}} {{.Version}}{{end}}{{end}}", conntopPkg)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+goarch)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("go list: %v", err)
		}
		for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			if l != "" {
				graph[l] = true
			}
		}
	}
	if len(listed) == 0 || !strings.HasPrefix(listed[0], "Go standard library and runtime go1.") {
		t.Errorf("the Go distribution is not listed first: %q", listed)
	}
	for _, title := range listed[1:] {
		if !graph[title] {
			t.Errorf("%s is listed but not in go list -deps", title)
		}
	}
	for m := range graph {
		if !slices.Contains(listed, m) {
			t.Errorf("%s (go list -deps) is not listed", m)
		}
	}

	// Each section has at least one licence file, verbatim.
	for _, e := range entries {
		text := body[e.Title]
		files, hasLicence, err := licenceFiles(e.Dir)
		if err != nil || !hasLicence {
			t.Errorf("%s: licence files %q, %v", e.Title, files, err)
			continue
		}
		for _, name := range files {
			raw, err := os.ReadFile(filepath.Join(e.Dir, name))
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(text, "\n--- "+name+" ---\n\n"+string(raw)) {
				t.Errorf("%s: the section lacks %s verbatim", e.Title, name)
			}
		}
		if lower := strings.ToLower(text); !strings.Contains(lower, "copyright") && !strings.Contains(lower, "licens") {
			t.Errorf("%s: the section does not read like a licence:\n%.300s", e.Title, text)
		}
	}
}

func mkModule(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestMissingLicenceFails: a module with no licence file, with only a NOTICE
// or PATENTS file, with an empty LICENSE or without a directory fails the
// whole run, naming each, and nothing is written.
func TestMissingLicenceFails(t *testing.T) {
	good := mkModule(t, map[string]string{"LICENSE.md": "MIT License\n\nCopyright (c) someone", "NOTICE": "a notice\n", "go.mod": "module good\n"})
	entries := []entry{
		{Title: "example.com/good v1.0.0", Dir: good},
		{Title: "example.com/none v1.0.0", Dir: mkModule(t, map[string]string{"README.md": "MIT licensed, trust me\n", "go.mod": "module none\n"})},
		{Title: "example.com/notice v1.0.0", Dir: mkModule(t, map[string]string{"NOTICE": "a notice\n", "PATENTS": "a grant\n"})},
		{Title: "example.com/empty v1.0.0", Dir: mkModule(t, map[string]string{"LICENSE": " \n"})},
		{Title: "example.com/gone v1.0.0", Dir: filepath.Join(t.TempDir(), "gone")},
	}
	var buf bytes.Buffer
	err := write(&buf, "example.com/cmd", entries)
	if err == nil {
		t.Fatalf("no error; wrote:\n%s", buf.String())
	}
	for _, m := range []string{"none", "notice", "empty", "gone"} {
		if !strings.Contains(err.Error(), "example.com/"+m+" v1.0.0") {
			t.Errorf("the error does not name example.com/%s:\n%v", m, err)
		}
	}
	if strings.Contains(err.Error(), "example.com/good") {
		t.Errorf("the error names the good module:\n%v", err)
	}
	if buf.Len() != 0 {
		t.Errorf("wrote %d bytes despite the error", buf.Len())
	}

	// The good one alone: its LICENSE.md and NOTICE, not go.mod.
	buf.Reset()
	if err := write(&buf, "example.com/cmd", entries[:1]); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{"\n  example.com/good v1.0.0\n", "\n--- LICENSE.md ---\n\nMIT License\n\nCopyright (c) someone\n", "\n--- NOTICE ---\n\na notice\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "go.mod") {
		t.Errorf("output has go.mod:\n%s", out)
	}
}

func TestLicenceFileNames(t *testing.T) {
	for _, c := range []struct {
		name             string
		include, licence bool
	}{
		{"LICENSE", true, true}, {"LICENSE.txt", true, true}, {"license.md", true, true}, {"LICENCE", true, true},
		{"LICENSE-APACHE", true, true}, {"LICENSE_MIT", true, true}, {"COPYING", true, true}, {"COPYING.LESSER", true, true},
		{"COPYRIGHT", true, true}, {"UNLICENSE", true, true},
		{"NOTICE", true, false}, {"NOTICE.txt", true, false}, {"PATENTS", true, false},
		{"README.md", false, false}, {"LICENSES", false, false}, {"licenses.go", false, false}, {"go.mod", false, false},
	} {
		include, licence := licenceFile(c.name)
		if include != c.include || licence != c.licence {
			t.Errorf("licenceFile(%q) = %v, %v; want %v, %v", c.name, include, licence, c.include, c.licence)
		}
	}
}

// TestModuleEntry: a replaced module is named with its replacement, whose
// directory is read.
func TestModuleEntry(t *testing.T) {
	e, err := moduleEntry(module{Path: "a.example/m", Version: "v1.2.3", Dir: "/cache/a", Replace: &module{Path: "b.example/m", Version: "v1.2.4", Dir: "/cache/b"}})
	if err != nil || e.Title != "a.example/m v1.2.3 => b.example/m v1.2.4" || e.Dir != "/cache/b" {
		t.Errorf("moduleEntry = %+v, %v", e, err)
	}
	e, err = moduleEntry(module{Path: "a.example/m", Version: "v1.2.3", Replace: &module{Path: "../m", Dir: "/src/m"}})
	if err != nil || e.Title != "a.example/m v1.2.3 => ../m" || e.Dir != "/src/m" {
		t.Errorf("moduleEntry (local replacement) = %+v, %v", e, err)
	}
	if _, err := moduleEntry(module{Path: "a.example/m", Version: "v1.2.3"}); err == nil {
		t.Error("a module without a directory is accepted")
	}
}
