package packaging

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

const buildinfoPkg = "github.com/conntop/conntop/internal/buildinfo"

// unit reads a systemd unit file: section -> key -> values (a key may
// repeat).
func unit(t *testing.T, path string) map[string]map[string][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]map[string][]string{}
	section := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = line[1 : len(line)-1]
			out[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Fatalf("%s: bad line %q", path, line)
			}
			out[section][k] = append(out[section][k], v)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestServiceConfinement: conntop serve runs as its own system user with
// only CAP_NET_ADMIN and CAP_NET_RAW, no new privileges and a read-only
// system; its flags come from /etc/default/conntop.
func TestServiceConfinement(t *testing.T) {
	u := unit(t, "conntop.service")
	svc := u["Service"]
	one := func(key string) string {
		if len(svc[key]) != 1 {
			t.Errorf("Service.%s = %q; want one value", key, svc[key])
			return ""
		}
		return svc[key][0]
	}
	want := map[string]string{
		"User":             "conntop",
		"Group":            "conntop",
		"NoNewPrivileges":  "yes",
		"ProtectSystem":    "strict",
		"ProtectHome":      "yes",
		"EnvironmentFile":  "-/etc/default/conntop",
		"ExecStart":        "/usr/bin/conntop serve $CONNTOP_OPTS",
		"StateDirectory":   "conntop",
		"PrivateTmp":       "yes",
		"RestrictSUIDSGID": "yes",
	}
	for k, v := range want {
		if got := one(k); got != v {
			t.Errorf("Service.%s = %q; want %q", k, got, v)
		}
	}
	for _, k := range []string{"CapabilityBoundingSet", "AmbientCapabilities"} {
		caps := strings.Fields(one(k))
		slices.Sort(caps)
		if !slices.Equal(caps, []string{"CAP_NET_ADMIN", "CAP_NET_RAW"}) {
			t.Errorf("Service.%s = %v; want CAP_NET_ADMIN CAP_NET_RAW only", k, caps)
		}
	}
	if _, ok := svc["DynamicUser"]; ok {
		t.Error("DynamicUser is set: the unit runs as the package's conntop user (the binary is executable by group conntop)")
	}
	if got := u["Install"]["WantedBy"]; !slices.Equal(got, []string{"multi-user.target"}) {
		t.Errorf("Install.WantedBy = %v", got)
	}
}

// TestMaintainerScripts: valid sh; the post-install script sets the two file
// capabilities after chown/chmod (which would clear them) and enables
// nothing.
func TestMaintainerScripts(t *testing.T) {
	for _, name := range []string{"postinstall.sh", "preremove.sh", "postremove.sh"} {
		if out, err := exec.Command("sh", "-n", name).CombinedOutput(); err != nil {
			t.Errorf("sh -n %s: %v\n%s", name, err, out)
		}
	}
	raw, err := os.ReadFile("postinstall.sh")
	if err != nil {
		t.Fatal(err)
	}
	s := string(raw)
	setcap := strings.Index(s, "\nsetcap cap_net_admin,cap_net_raw+ep \"$bin\"")
	chown := strings.Index(s, "\nchown root:conntop \"$bin\"")
	chmod := strings.Index(s, "\nchmod 0754 \"$bin\"")
	if setcap < 0 || chown < 0 || chmod < 0 || setcap < chown || setcap < chmod {
		t.Errorf("postinstall.sh must chown and chmod /usr/bin/conntop, then setcap cap_net_admin,cap_net_raw+ep (positions %d %d %d)", chown, chmod, setcap)
	}
	if strings.Contains(s, "systemctl enable") || strings.Contains(s, "systemctl start") {
		t.Error("postinstall.sh enables or starts the service; it must stay off until the admin enables it")
	}
}

// release is the part of .goreleaser.yaml the tests read.
type release struct {
	Version int `yaml:"version"`
	Before  struct {
		Hooks []string `yaml:"hooks"`
	} `yaml:"before"`
	Builds []struct {
		ID      string   `yaml:"id"`
		Main    string   `yaml:"main"`
		Env     []string `yaml:"env"`
		Goos    []string `yaml:"goos"`
		Goarch  []string `yaml:"goarch"`
		Flags   []string `yaml:"flags"`
		Ldflags []string `yaml:"ldflags"`
	} `yaml:"builds"`
	Archives []struct {
		Files []any `yaml:"files"`
	} `yaml:"archives"`
	Nfpms []struct {
		Formats  []string `yaml:"formats"`
		Bindir   string   `yaml:"bindir"`
		License  string   `yaml:"license"`
		Contents []struct {
			Src      string `yaml:"src"`
			Dst      string `yaml:"dst"`
			Type     string `yaml:"type"`
			Packager string `yaml:"packager"`
		} `yaml:"contents"`
		Scripts map[string]string `yaml:"scripts"`
	} `yaml:"nfpms"`
	Checksum map[string]string `yaml:"checksum"`
}

func readRelease(t *testing.T) *release {
	t.Helper()
	raw, err := os.ReadFile("../.goreleaser.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var r release
	if err := yaml.Unmarshal(raw, &r); err != nil {
		t.Fatalf(".goreleaser.yaml: %v", err)
	}
	return &r
}

// xSymbols are the -X targets of ldflags ("pkg.var").
func xSymbols(ldflags string) []string {
	var out []string
	for _, m := range regexp.MustCompile(`-X\s+([^=\s]+)=`).FindAllStringSubmatch(ldflags, -1) {
		out = append(out, m[1])
	}
	slices.Sort(out)
	return out
}

// TestReleaseConfig: static linux/amd64 and linux/arm64 binaries with
// -trimpath and version stamping; tarballs with README, completions and the
// man page; deb and rpm with binary, man page, completions, unit, default
// file and the post-install script; checksums.
func TestReleaseConfig(t *testing.T) {
	r := readRelease(t)
	if r.Version != 2 {
		t.Errorf("version %d; want 2 (GoReleaser v2)", r.Version)
	}
	var arches []string
	wantX := []string{buildinfoPkg + ".commit", buildinfoPkg + ".date", buildinfoPkg + ".version"}
	for _, b := range r.Builds {
		arches = append(arches, b.Goarch...)
		if b.Main != "./cmd/conntop" || !slices.Equal(b.Goos, []string{"linux"}) {
			t.Errorf("build %s: main %q goos %v", b.ID, b.Main, b.Goos)
		}
		if !slices.Contains(b.Env, "CGO_ENABLED=0") || !slices.Contains(b.Flags, "-trimpath") {
			t.Errorf("build %s: env %v flags %v; want CGO_ENABLED=0 and -trimpath", b.ID, b.Env, b.Flags)
		}
		if got := xSymbols(strings.Join(b.Ldflags, " ")); !slices.Equal(got, wantX) {
			t.Errorf("build %s: -X %v; want %v", b.ID, got, wantX)
		}
	}
	slices.Sort(arches)
	if !slices.Equal(arches, []string{"amd64", "arm64"}) {
		t.Errorf("architectures %v; want amd64 and arm64", arches)
	}
	if !slices.ContainsFunc(r.Before.Hooks, func(h string) bool { return strings.Contains(h, "scripts/release-assets.sh") }) {
		t.Errorf("before hooks %v do not generate completions and man page", r.Before.Hooks)
	}
	if len(r.Archives) != 1 {
		t.Fatalf("%d archives; want 1", len(r.Archives))
	}
	files, _ := yaml.Marshal(r.Archives[0].Files)
	for _, want := range []string{"README.md", "build/completions/", "build/man/conntop.1.gz"} {
		if !strings.Contains(string(files), want) {
			t.Errorf("archive files lack %s:\n%s", want, files)
		}
	}
	if r.Checksum["name_template"] == "" {
		t.Error("no checksum file")
	}
	if len(r.Nfpms) != 1 {
		t.Fatalf("%d nfpms; want 1", len(r.Nfpms))
	}
	n := r.Nfpms[0]
	if !slices.Equal(n.Formats, []string{"deb", "rpm"}) || n.Bindir != "/usr/bin" {
		t.Errorf("nfpm formats %v bindir %q", n.Formats, n.Bindir)
	}
	dst := map[string]string{}
	for _, c := range n.Contents {
		dst[c.Dst] = c.Src
		if c.Src != "" && !strings.HasPrefix(c.Src, "build/") {
			if _, err := os.Stat(filepath.Join("..", c.Src)); err != nil {
				t.Errorf("package content %s: %v", c.Src, err)
			}
		}
		if c.Dst == "/etc/default/conntop" && c.Type != "config|noreplace" {
			t.Errorf("/etc/default/conntop is type %q; want config|noreplace (kept on upgrade)", c.Type)
		}
	}
	for _, want := range []string{
		"/usr/share/man/man1/conntop.1.gz",
		"/usr/share/bash-completion/completions/conntop",
		"/usr/share/zsh/vendor-completions/_conntop",
		"/usr/share/fish/vendor_completions.d/conntop.fish",
		"/usr/lib/systemd/system/conntop.service",
		"/etc/default/conntop",
	} {
		if _, ok := dst[want]; !ok {
			t.Errorf("packages do not install %s", want)
		}
	}
	if n.Scripts["postinstall"] != "packaging/postinstall.sh" {
		t.Errorf("postinstall script %q", n.Scripts["postinstall"])
	}
}

// apacheSHA256 is the SHA-256 of the Apache License 2.0 text as the ASF
// publishes it (https://www.apache.org/licenses/LICENSE-2.0.txt) and Debian
// ships it (/usr/share/common-licenses/Apache-2.0).
const apacheSHA256 = "cfc7749b96f63bd31c3c42b5c471bf756814053e847c10f3eb003417bc523d30"

// TestLicenceShipped: LICENSE is the unmodified Apache License 2.0; the
// tarballs carry it and THIRD_PARTY_LICENSES (generated by the before hook)
// at their top; the packages declare Apache-2.0 and install both under
// /usr/share/doc/conntop, the .deb with its Debian copyright file, the .rpm
// marking them %license.
func TestLicenceShipped(t *testing.T) {
	raw, err := os.ReadFile("../LICENSE")
	if err != nil {
		t.Fatal(err)
	}
	if sum := sha256.Sum256(raw); hex.EncodeToString(sum[:]) != apacheSHA256 {
		t.Errorf("LICENSE is not the unmodified Apache License 2.0 text (sha256 %x)", sum)
	}
	script, err := os.ReadFile("../scripts/release-assets.sh")
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^go run \./scripts/thirdpartylicenses .*-o "\$out/THIRD_PARTY_LICENSES" \./cmd/conntop$`).Match(script) {
		t.Error("scripts/release-assets.sh does not generate $out/THIRD_PARTY_LICENSES with scripts/thirdpartylicenses")
	}

	r := readRelease(t)
	// The archive's files: "path" or {src, dst, strip_parent}; both licence
	// files at the top of the tarball.
	top := map[string]bool{}
	for _, f := range r.Archives[0].Files {
		switch f := f.(type) {
		case string:
			top[f] = !strings.Contains(f, "/")
		case map[string]any:
			src, _ := f["src"].(string)
			dst, _ := f["dst"].(string)
			strip, _ := f["strip_parent"].(bool)
			top[src] = dst == "" && (strip || !strings.Contains(src, "/"))
		}
	}
	for _, want := range []string{"LICENSE", "build/THIRD_PARTY_LICENSES"} {
		if !top[want] {
			t.Errorf("the tarball does not carry %s at its top (files %v)", want, r.Archives[0].Files)
		}
	}

	n := r.Nfpms[0]
	if n.License != "Apache-2.0" {
		t.Errorf("nfpm license %q; want Apache-2.0", n.License)
	}
	// What each format installs: nfpm leaves an entry of an rpm-only type
	// (license, doc, readme, ghost) out of the .deb.
	type file struct{ src, typ string }
	installs := map[string]map[string]file{"deb": {}, "rpm": {}}
	for _, c := range n.Contents {
		for format := range installs {
			rpmOnly := slices.Contains([]string{"license", "licence", "doc", "readme", "ghost"}, c.Type)
			if (c.Packager == "" || c.Packager == format) && (format == "rpm" || !rpmOnly) {
				installs[format][c.Dst] = file{c.Src, c.Type}
			}
		}
	}
	const doc = "/usr/share/doc/conntop/"
	for format, files := range installs {
		for dst, src := range map[string]string{doc + "LICENSE": "LICENSE", doc + "THIRD_PARTY_LICENSES": "build/THIRD_PARTY_LICENSES"} {
			f, ok := files[dst]
			switch {
			case !ok || f.src != src:
				t.Errorf("the .%s does not install %s as %s (%+v)", format, src, dst, f)
			case format == "rpm" && f.typ != "license":
				t.Errorf("the .rpm installs %s as type %q; want license (%%license)", dst, f.typ)
			}
		}
	}
	if f := installs["deb"][doc+"copyright"]; f.src != "packaging/copyright" {
		t.Errorf("the .deb does not install packaging/copyright as %scopyright (%+v)", doc, f)
	}

	// packaging/copyright: Debian's machine-readable format, Apache-2.0.
	cr, err := os.ReadFile("copyright")
	if err != nil {
		t.Fatal(err)
	}
	paras := strings.Split(strings.TrimSpace(string(cr)), "\n\n")
	if len(paras) < 3 || !strings.HasPrefix(paras[0], "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n") ||
		!strings.Contains(paras[0], "\nUpstream-Name: conntop\n") {
		t.Fatalf("copyright: no machine-readable header paragraph:\n%s", cr)
	}
	if !strings.HasPrefix(paras[1], "Files: *\n") || !strings.Contains(paras[1], "\nLicense: Apache-2.0") {
		t.Errorf("copyright: the Files: * paragraph is not Apache-2.0:\n%s", paras[1])
	}
	if !strings.HasPrefix(paras[len(paras)-1], "License: Apache-2.0\n") ||
		!strings.Contains(paras[len(paras)-1], "/usr/share/common-licenses/Apache-2.0") {
		t.Errorf("copyright: no stand-alone License: Apache-2.0 paragraph pointing at common-licenses:\n%s", paras[len(paras)-1])
	}
	for i, p := range paras {
		for _, l := range strings.Split(p, "\n") {
			if l == "" || (l[0] != ' ' && !strings.Contains(l, ":")) {
				t.Errorf("copyright paragraph %d: bad line %q (continuation lines start with a space, blank ones are \" .\")", i, l)
			}
		}
	}
}

// TestContainerfileSameSettings: the image is built with the release's
// settings.
func TestContainerfileSameSettings(t *testing.T) {
	raw, err := os.ReadFile("../Containerfile")
	if err != nil {
		t.Fatal(err)
	}
	cf := strings.ReplaceAll(string(raw), "\\\n", " ")
	var build string
	for _, l := range strings.Split(cf, "\n") {
		if strings.HasPrefix(l, "RUN ") && strings.Contains(l, "go build") {
			build = l
		}
	}
	if build == "" {
		t.Fatal("Containerfile has no go build")
	}
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", "-s -w", "./cmd/conntop"} {
		if !strings.Contains(build, want) {
			t.Errorf("Containerfile build lacks %q: %s", want, build)
		}
	}
	r := readRelease(t)
	if got, want := xSymbols(build), xSymbols(strings.Join(r.Builds[0].Ldflags, " ")); !slices.Equal(got, want) {
		t.Errorf("Containerfile -X %v; release -X %v", got, want)
	}
	// The image carries the licence and the third-party notices, as the
	// tarballs and packages do.
	for _, want := range []string{
		"\nRUN go run ./scripts/thirdpartylicenses -goarch \"$(go env GOARCH)\" -o /out/THIRD_PARTY_LICENSES ./cmd/conntop\n",
		"\nCOPY --from=build /src/LICENSE /out/THIRD_PARTY_LICENSES /usr/share/doc/conntop/\n",
		"\nLABEL org.opencontainers.image.licenses=\"Apache-2.0\"\n",
	} {
		if !strings.Contains(cf, want) {
			t.Errorf("Containerfile lacks %q", strings.TrimSpace(want))
		}
	}
}

// TestStampedVersion builds conntop with the release's ldflags (templates
// filled in) and checks --version prints what was stamped: the -X targets
// exist under those names.
func TestStampedVersion(t *testing.T) {
	r := readRelease(t)
	ld := strings.NewReplacer("{{ .Version }}", "9.8.7", "{{ .FullCommit }}", "0123456789abcdef0123456789abcdef01234567",
		"{{ .Date }}", "2026-12-01T10:00:00Z").Replace(strings.Join(r.Builds[0].Ldflags, " "))
	if strings.Contains(ld, "{{") {
		t.Fatalf("unfilled template in %q", ld)
	}
	bin := filepath.Join(t.TempDir(), "conntop")
	// Without -trimpath, to share the build cache with .ci/run's CGO_ENABLED=0 build.
	cmd := exec.Command("go", "build", "-ldflags", ld, "-o", bin, "../cmd/conntop")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "--version").CombinedOutput()
	if err != nil {
		t.Fatalf("--version: %v\n%s", err, out)
	}
	if want := "conntop 9.8.7 (commit 0123456789ab, built 2026-12-01T10:00:00Z, go"; !strings.HasPrefix(string(out), want) {
		t.Errorf("--version = %q; want prefix %q", out, want)
	}
}
