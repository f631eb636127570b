// Package termsafe makes untrusted strings (from the kernel or the network:
// conntrack helper names, security contexts, labels, packet payload) safe to
// write to a terminal. Control characters, C1 controls, DEL, Unicode bidi
// and line-separator controls and invalid UTF-8 become visible escapes, so a
// string can neither move the cursor, change colours, reorder the text
// around it, nor confuse the terminal's UTF-8 decoder.
//
// The escaping is unambiguous: a backslash is written as `\\`, so every
// escaped string maps back to exactly one original.
package termsafe

import (
	"unicode/utf8"
)

const hexDigits = "0123456789abcdef"

// Escape returns s with every character that is unsafe on a terminal
// replaced by a visible escape:
//
//   - ASCII control bytes (0x00-0x1f), DEL (0x7f): \t, \n, \r, or \xNN;
//   - bytes that are not valid UTF-8: \xNN;
//   - C1 controls (U+0080-U+009F), bidi controls (U+061C, U+200E, U+200F,
//     U+202A-U+202E, U+2066-U+2069), U+2028, U+2029 and U+FEFF: \uNNNN;
//   - the backslash: \\.
//
// When nothing needs escaping, s itself is returned without allocating.
func Escape(s string) string {
	i := firstUnsafe(s)
	if i < 0 {
		return s
	}
	b := make([]byte, 0, len(s)+16)
	b = append(b, s[:i]...)
	b = appendEscaped(b, s[i:])
	return string(b)
}

// AppendEscape appends the escaped form of s (see [Escape]) to dst and
// returns the extended slice. It does not allocate when dst has room.
func AppendEscape(dst []byte, s string) []byte {
	i := firstUnsafe(s)
	if i < 0 {
		return append(dst, s...)
	}
	dst = append(dst, s[:i]...)
	return appendEscaped(dst, s[i:])
}

// Safe reports whether s can be written to a terminal as is (Escape(s) == s).
func Safe(s string) bool { return firstUnsafe(s) < 0 }

// firstUnsafe returns the index of the first byte of s that starts something
// to escape, or -1.
func firstUnsafe(s string) int {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c < 0x20 || c == 0x7f || c == '\\' {
				return i
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 || unsafeRune(r) {
			return i
		}
		i += n
	}
	return -1
}

// UnsafeRune reports whether r is a character that Escape escapes: an ASCII
// control, DEL, a C1 control, a bidi or line-separator control, or U+FEFF.
// (The backslash, which Escape doubles, is not unsafe.) Other encoders (the
// JSON writer) use it to escape the same set.
func UnsafeRune(r rune) bool {
	if r < 0x20 || r == 0x7f {
		return true
	}
	return unsafeRune(r)
}

// unsafeRune reports whether a non-ASCII rune must be escaped.
func unsafeRune(r rune) bool {
	switch {
	case r >= 0x80 && r <= 0x9f: // C1 controls (0x9b is CSI)
		return true
	case r == 0x061c, r == 0x200e, r == 0x200f: // ALM, LRM, RLM
		return true
	case r >= 0x202a && r <= 0x202e: // LRE RLE PDF LRO RLO
		return true
	case r >= 0x2066 && r <= 0x2069: // LRI RLI FSI PDI
		return true
	case r == 0x2028, r == 0x2029, r == 0xfeff: // line/paragraph separator, BOM
		return true
	}
	return false
}

// appendEscaped escapes all of s onto dst.
func appendEscaped(dst []byte, s string) []byte {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '\\':
				dst = append(dst, '\\', '\\')
			case c == '\t':
				dst = append(dst, '\\', 't')
			case c == '\n':
				dst = append(dst, '\\', 'n')
			case c == '\r':
				dst = append(dst, '\\', 'r')
			case c < 0x20 || c == 0x7f:
				dst = append(dst, '\\', 'x', hexDigits[c>>4], hexDigits[c&0xf])
			default:
				dst = append(dst, c)
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			dst = append(dst, '\\', 'x', hexDigits[c>>4], hexDigits[c&0xf])
		case unsafeRune(r):
			dst = append(dst, '\\', 'u',
				hexDigits[r>>12&0xf], hexDigits[r>>8&0xf], hexDigits[r>>4&0xf], hexDigits[r&0xf])
		default:
			dst = append(dst, s[i:i+n]...)
		}
		i += n
	}
	return dst
}
