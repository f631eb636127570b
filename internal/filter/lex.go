package filter

import (
	"fmt"
	"strings"
)

// tokKind is the kind of a lexical token.
type tokKind uint8

const (
	tokEOF tokKind = iota
	tokWord
	tokAnd
	tokOr
	tokNot
	tokLParen
	tokRParen
)

// token is one lexical token with its byte offset in the expression.
type token struct {
	kind tokKind
	text string
	pos  int
}

// describe names a token for error messages.
func (t token) describe() string {
	if t.kind == tokEOF {
		return "end of filter"
	}
	return fmt.Sprintf("%q", t.text)
}

// isSpace reports whether c separates tokens.
func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'
}

// isWordByte reports whether c can be part of a word (keyword, address,
// number, port range, state list).
func isWordByte(c byte) bool {
	return !isSpace(c) && c != '(' && c != ')' && c != '!' && c != '&' && c != '|'
}

// lex splits expr into tokens. Words made only of "and", "or" and "not" (any
// case) become operator tokens.
func lex(expr string) ([]token, error) {
	var toks []token
	for i := 0; i < len(expr); {
		c := expr[i]
		switch {
		case isSpace(c):
			i++
		case c == '(':
			toks = append(toks, token{tokLParen, "(", i})
			i++
		case c == ')':
			toks = append(toks, token{tokRParen, ")", i})
			i++
		case c == '!':
			toks = append(toks, token{tokNot, "!", i})
			i++
		case c == '&' || c == '|':
			if i+1 >= len(expr) || expr[i+1] != c {
				return nil, &SyntaxError{Expr: expr, Pos: i, Msg: fmt.Sprintf("unexpected %q (did you mean %q?)", string(c), string([]byte{c, c}))}
			}
			if c == '&' {
				toks = append(toks, token{tokAnd, "&&", i})
			} else {
				toks = append(toks, token{tokOr, "||", i})
			}
			i += 2
		default:
			j := i
			for j < len(expr) && isWordByte(expr[j]) {
				j++
			}
			w := expr[i:j]
			kind := tokWord
			switch {
			case strings.EqualFold(w, "and"):
				kind = tokAnd
			case strings.EqualFold(w, "or"):
				kind = tokOr
			case strings.EqualFold(w, "not"):
				kind = tokNot
			}
			toks = append(toks, token{kind, w, i})
			i = j
		}
	}
	toks = append(toks, token{tokEOF, "", len(expr)})
	return toks, nil
}
