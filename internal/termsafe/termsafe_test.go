package termsafe

import (
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestEscape(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"empty", "", ""},
		{"plain", "ftp", "ftp"},
		{"spaces and punctuation", "system_u:object_r:x_t:s0 a=b", "system_u:object_r:x_t:s0 a=b"},
		{"utf8 kept", "héllo 世界 ✓", "héllo 世界 ✓"},
		{"replacement char kept", "a\uFFFDb", "a\uFFFDb"},
		{"esc sequence", "\x1b[31mred\x1b[0m", `\x1b[31mred\x1b[0m`},
		{"osc title", "\x1b]0;pwned\x07", `\x1b]0;pwned\x07`},
		{"tab newline cr", "a\tb\nc\rd", `a\tb\nc\rd`},
		{"nul", "a\x00b", `a\x00b`},
		{"del", "a\x7fb", `a\x7fb`},
		{"backslash", `a\b`, `a\\b`},
		{"c1 csi", "a\u009b31mb", `a\u009b31mb`},
		{"c1 nel", "\u0085", `\u0085`},
		{"bidi rlo", "abc\u202Edef", `abc\u202edef`},
		{"bidi isolates", "\u2066x\u2069", `\u2066x\u2069`},
		{"lrm rlm alm", "\u200e\u200f\u061c", `\u200e\u200f\u061c`},
		{"line separators", "a\u2028b\u2029c", `a\u2028b\u2029c`},
		{"bom", "\ufeffx", `\ufeffx`},
		{"invalid byte", "a\xffb", `a\xffb`},
		{"truncated utf8", "a\xe4\xb8", `a\xe4\xb8`},
		{"encoded surrogate", "\xed\xa0\x80", `\xed\xa0\x80`},
		{"raw c1 byte", "\x9b", `\x9b`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Escape(tt.in); got != tt.want {
				t.Errorf("Escape(%q) = %q, want %q", tt.in, got, tt.want)
			}
			if got := string(AppendEscape([]byte("x"), tt.in)); got != "x"+tt.want {
				t.Errorf("AppendEscape(%q) = %q, want %q", tt.in, got, "x"+tt.want)
			}
			if got, want := Safe(tt.in), tt.in == tt.want; got != want {
				t.Errorf("Safe(%q) = %v, want %v", tt.in, got, want)
			}
			if back, err := unescape(tt.want); err != nil || back != tt.in {
				t.Errorf("unescape(%q) = %q, %v; want %q", tt.want, back, err, tt.in)
			}
		})
	}
}

func TestEscapeSafeNoAlloc(t *testing.T) {
	s := "tcp 10.0.0.1 ftp héllo"
	if n := testing.AllocsPerRun(100, func() { _ = Escape(s) }); n != 0 {
		t.Errorf("Escape of a safe string allocated %v times", n)
	}
	buf := make([]byte, 0, 64)
	if n := testing.AllocsPerRun(100, func() { _ = AppendEscape(buf[:0], "a\x1bb") }); n != 0 {
		t.Errorf("AppendEscape into a roomy buffer allocated %v times", n)
	}
}

// unescape inverts Escape; it exists to prove that Escape is unambiguous.
func unescape(s string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			b.WriteByte(s[i])
			continue
		}
		i++
		if i >= len(s) {
			return "", strconv.ErrSyntax
		}
		switch s[i] {
		case '\\':
			b.WriteByte('\\')
		case 't':
			b.WriteByte('\t')
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case 'x':
			if i+2 >= len(s) {
				return "", strconv.ErrSyntax
			}
			v, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
			if err != nil {
				return "", err
			}
			b.WriteByte(byte(v))
			i += 2
		case 'u':
			if i+4 >= len(s) {
				return "", strconv.ErrSyntax
			}
			v, err := strconv.ParseUint(s[i+1:i+5], 16, 32)
			if err != nil {
				return "", err
			}
			b.WriteRune(rune(v))
			i += 4
		default:
			return "", strconv.ErrSyntax
		}
	}
	return b.String(), nil
}

func FuzzEscape(f *testing.F) {
	for _, s := range []string{"", "ftp", "\x1b[2J", "a\u202eb", "\xff\xfe", "\u009b", `\x1b`, "héllo\n", "\ufeff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := Escape(s)
		if !utf8.ValidString(out) {
			t.Fatalf("Escape(%q) = %q is not valid UTF-8", s, out)
		}
		for _, r := range out {
			if r < 0x20 || r == 0x7f || unsafeRune(r) {
				t.Fatalf("Escape(%q) = %q still holds %U", s, out, r)
			}
		}
		if Safe(s) != (out == s) {
			t.Fatalf("Safe(%q) = %v but Escape changed it to %q", s, Safe(s), out)
		}
		back, err := unescape(out)
		if err != nil || back != s {
			t.Fatalf("unescape(Escape(%q)) = %q, %v", s, back, err)
		}
	})
}

func BenchmarkEscape(b *testing.B) {
	cases := []struct{ name, s string }{
		{"safe-ascii", "system_u:object_r:unlabeled_t:s0"},
		{"safe-utf8", "héllo wörld ✓ 世界"},
		{"unsafe", "\x1b[31mred\x1b[0m \u202e evil"},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(c.s)))
			for b.Loop() {
				_ = Escape(c.s)
			}
		})
	}
}
