package jinja

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// tokenKind is the lexical class of a token.
type tokenKind int

const (
	tkEOF tokenKind = iota
	tkData
	tkBlockBegin // {%
	tkBlockEnd   // %}
	tkVarBegin   // {{
	tkVarEnd     // }}
	tkName
	tkString
	tkInt
	tkFloat
	tkOp
)

func (k tokenKind) String() string {
	switch k {
	case tkEOF:
		return "end of template"
	case tkData:
		return "template data"
	case tkBlockBegin:
		return "begin of statement block"
	case tkBlockEnd:
		return "end of statement block"
	case tkVarBegin:
		return "begin of print statement"
	case tkVarEnd:
		return "end of print statement"
	case tkName:
		return "name"
	case tkString:
		return "string"
	case tkInt:
		return "integer"
	case tkFloat:
		return "float"
	}
	return "operator"
}

type token struct {
	kind tokenKind
	val  string // data text, name, decoded string, operator, or number text
	line int
}

// describe names a token in syntax errors as Jinja2 does: quoted.
func (t token) describe() string {
	switch t.kind {
	case tkName, tkOp:
		return "'" + t.val + "'"
	}
	return "'" + t.kind.String() + "'"
}

// normalizeSource does what Jinja2 does to a template source before lexing:
// every line ending becomes "\n" and one trailing newline is dropped
// (keep_trailing_newline is off in transformers' environment).
func normalizeSource(src string) string {
	if strings.IndexByte(src, '\r') >= 0 {
		src = strings.ReplaceAll(src, "\r\n", "\n")
		src = strings.ReplaceAll(src, "\r", "\n")
	}
	return strings.TrimSuffix(src, "\n")
}

// lexer splits a template into tokens the way Jinja2's lexer does with
// trim_blocks and lstrip_blocks on: whitespace control signs (- and +), the
// newline after a block or comment tag removed, and the indentation before
// a block or comment tag on its own line removed.
type lexer struct {
	src          string
	pos          int
	line         int
	lineStarting bool
	toks         []token
}

func tokenize(src string) ([]token, error) {
	lx := &lexer{src: normalizeSource(src), line: 1, lineStarting: true}
	if err := lx.run(); err != nil {
		return nil, err
	}
	lx.toks = append(lx.toks, token{kind: tkEOF, line: lx.line})
	return lx.toks, nil
}

func (lx *lexer) errorf(line int, format string, args ...any) error {
	return &Error{Kind: SyntaxError, Line: line, Msg: fmt.Sprintf(format, args...)}
}

// tagStart finds the next "{{", "{%" or "{#" at or after pos.
func (lx *lexer) tagStart(pos int) int {
	for {
		i := strings.IndexByte(lx.src[pos:], '{')
		if i < 0 {
			return -1
		}
		i += pos
		if i+1 < len(lx.src) {
			switch lx.src[i+1] {
			case '{', '%', '#':
				return i
			}
		}
		pos = i + 1
	}
}

func (lx *lexer) emitData(text string) {
	if text != "" {
		lx.toks = append(lx.toks, token{kind: tkData, val: text, line: lx.line})
	}
}

func (lx *lexer) run() error {
	src := lx.src
	for lx.pos < len(src) {
		start := lx.tagStart(lx.pos)
		if start < 0 {
			lx.emitData(src[lx.pos:])
			lx.line += strings.Count(src[lx.pos:], "\n")
			lx.pos = len(src)
			return nil
		}
		text := src[lx.pos:start]
		kind := src[start+1]
		sign := byte(0)
		if start+2 < len(src) && (src[start+2] == '-' || src[start+2] == '+') {
			sign = src[start+2]
		}
		// Whitespace control on the text before the tag.
		stripped := text
		if sign == '-' {
			stripped = trimRightPySpace(text)
		} else if sign != '+' && kind != '{' {
			lpos := strings.LastIndexByte(text, '\n') + 1
			if lpos > 0 || lx.lineStarting {
				if rest := text[lpos:]; rest != "" && isAllPySpace(rest) {
					stripped = text[:lpos]
				}
			}
		}
		lx.emitData(stripped)
		lx.line += strings.Count(text, "\n")
		lx.pos = start + 2
		if sign != 0 {
			lx.pos++
		}
		var err error
		switch kind {
		case '#':
			err = lx.comment()
		case '%':
			if lx.rawBlock(start) {
				continue
			}
			lx.toks = append(lx.toks, token{kind: tkBlockBegin, line: lx.line})
			err = lx.inTag(true)
		case '{':
			lx.toks = append(lx.toks, token{kind: tkVarBegin, line: lx.line})
			err = lx.inTag(false)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// closeTag consumes a tag end at lx.pos ("%}" or "#}" with its sign) and
// what trim_blocks or "-" removes after it.
func (lx *lexer) closeTag(closer string, trimBlocks bool) {
	src := lx.src
	end := lx.pos
	switch src[end] {
	case '+':
		end += 1 + len(closer)
	case '-':
		end += 1 + len(closer)
		for end < len(src) {
			r, size := utf8.DecodeRuneInString(src[end:])
			if !isPySpace(r) {
				break
			}
			end += size
		}
	default:
		end += len(closer)
		if trimBlocks && end < len(src) && src[end] == '\n' {
			end++
		}
	}
	lx.line += strings.Count(src[lx.pos:end], "\n")
	lx.lineStarting = src[end-1] == '\n'
	lx.pos = end
}

// atClose reports whether a tag end ("%}", "}}", "#}"), possibly signed,
// starts at pos; sign reports whether it has one.
func atClose(src string, pos int, closer string, signs string) bool {
	if strings.HasPrefix(src[pos:], closer) {
		return true
	}
	return pos < len(src) && strings.IndexByte(signs, src[pos]) >= 0 && strings.HasPrefix(src[pos+1:], closer)
}

func (lx *lexer) comment() error {
	src := lx.src
	for i := lx.pos; i < len(src); i++ {
		if (src[i] == '-' || src[i] == '+') && strings.HasPrefix(src[i+1:], "#}") || strings.HasPrefix(src[i:], "#}") {
			lx.line += strings.Count(src[lx.pos:i], "\n")
			lx.pos = i
			lx.closeTag("#}", true)
			return nil
		}
	}
	return lx.errorf(lx.line, "Missing end of comment tag")
}

// rawBlock handles {% raw %}...{% endraw %}: its body is data, untouched.
func (lx *lexer) rawBlock(start int) bool {
	src := lx.src
	p := lx.pos
	p = skipPySpace(src, p)
	if !strings.HasPrefix(src[p:], "raw") {
		return false
	}
	p = skipPySpace(src, p+3)
	switch {
	case strings.HasPrefix(src[p:], "-%}"):
		p = skipPySpace(src, p+3)
	case strings.HasPrefix(src[p:], "%}"):
		p += 2
	default:
		return false
	}
	// Find "{%[-+]? endraw [-+]?%}".
	for q := p; ; {
		i := strings.Index(src[q:], "{%")
		if i < 0 {
			// Jinja2 reports a missing endraw; let the parser see it as data.
			lx.emitData(src[p:])
			lx.pos = len(src)
			return true
		}
		i += q
		j := i + 2
		sign := byte(0)
		if j < len(src) && (src[j] == '-' || src[j] == '+') {
			sign = src[j]
			j++
		}
		j = skipPySpace(src, j)
		if !strings.HasPrefix(src[j:], "endraw") {
			q = i + 2
			continue
		}
		j = skipPySpace(src, j+6)
		if !atClose(src, j, "%}", "-+") {
			q = i + 2
			continue
		}
		body := src[p:i]
		if sign == '-' {
			body = trimRightPySpace(body)
		} else if sign != '+' {
			lpos := strings.LastIndexByte(body, '\n') + 1
			if rest := body[lpos:]; rest != "" && isAllPySpace(rest) {
				body = body[:lpos]
			}
		}
		lx.emitData(body)
		lx.line += strings.Count(src[lx.pos:j], "\n")
		lx.pos = j
		lx.closeTag("%}", true)
		return true
	}
}

func skipPySpace(src string, p int) int {
	for p < len(src) {
		r, size := utf8.DecodeRuneInString(src[p:])
		if !isPySpace(r) {
			break
		}
		p += size
	}
	return p
}

// twoCharOps and oneCharOps are Jinja2's operators.
var twoCharOps = []string{"//", "**", "==", "!=", ">=", "<="}

const oneCharOps = "+-/*%~[](){}<>=.,:|;"

// inTag lexes the expression tokens of a {% %} or {{ }} tag up to its end.
func (lx *lexer) inTag(block bool) error {
	src := lx.src
	closer := "}}"
	if block {
		closer = "%}"
	}
	var stack []byte
	startLine := lx.line
	for {
		p := skipPySpace(src, lx.pos)
		lx.line += strings.Count(src[lx.pos:p], "\n")
		lx.pos = p
		if lx.pos >= len(src) {
			if block {
				return lx.errorf(startLine, "unexpected end of template, expected 'end of statement block'")
			}
			return lx.errorf(startLine, "unexpected end of template, expected 'end of print statement'")
		}
		if len(stack) == 0 {
			signs := "-"
			if block {
				signs = "-+"
			}
			if atClose(src, lx.pos, closer, signs) {
				if block {
					lx.toks = append(lx.toks, token{kind: tkBlockEnd, line: lx.line})
					lx.closeTag("%}", true)
				} else {
					lx.toks = append(lx.toks, token{kind: tkVarEnd, line: lx.line})
					lx.closeTag("}}", false)
				}
				return nil
			}
		}
		c := src[lx.pos]
		switch {
		case c == '\'' || c == '"':
			if err := lx.stringLit(); err != nil {
				return err
			}
		case c >= '0' && c <= '9':
			lx.number()
		case c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= 0x80 && lx.unicodeNameStart():
			lx.name()
		default:
			op := ""
			for _, o := range twoCharOps {
				if strings.HasPrefix(src[lx.pos:], o) {
					op = o
					break
				}
			}
			if op == "" {
				if strings.IndexByte(oneCharOps, c) < 0 {
					r, _ := utf8.DecodeRuneInString(src[lx.pos:])
					return lx.errorf(lx.line, "unexpected char %s at %d", pyRepr(string(r)), lx.pos)
				}
				op = src[lx.pos : lx.pos+1]
			}
			switch op {
			case "(", "[", "{":
				stack = append(stack, map[string]byte{"(": ')', "[": ']', "{": '}'}[op])
			case ")", "]", "}":
				if len(stack) == 0 {
					return lx.errorf(lx.line, "unexpected '%s'", op)
				}
				if want := stack[len(stack)-1]; want != op[0] {
					return lx.errorf(lx.line, "unexpected '%s', expected '%c'", op, want)
				}
				stack = stack[:len(stack)-1]
			}
			lx.toks = append(lx.toks, token{kind: tkOp, val: op, line: lx.line})
			lx.pos += len(op)
		}
	}
}

func (lx *lexer) unicodeNameStart() bool {
	r, _ := utf8.DecodeRuneInString(lx.src[lx.pos:])
	return isIdentStart(r)
}

func (lx *lexer) name() {
	src := lx.src
	p := lx.pos
	for p < len(src) {
		r, size := utf8.DecodeRuneInString(src[p:])
		if !(isIdentStart(r) || r >= '0' && r <= '9') {
			break
		}
		p += size
	}
	lx.toks = append(lx.toks, token{kind: tkName, val: src[lx.pos:p], line: lx.line})
	lx.pos = p
}

// number lexes Jinja2's integer and float literals (with _ separators).
func (lx *lexer) number() {
	src := lx.src
	p := lx.pos
	digits := func() {
		for p < len(src) && (src[p] >= '0' && src[p] <= '9' || src[p] == '_' && p+1 < len(src) && src[p+1] >= '0' && src[p+1] <= '9') {
			p++
		}
	}
	kind := tkInt
	if strings.HasPrefix(src[p:], "0b") || strings.HasPrefix(src[p:], "0o") || strings.HasPrefix(src[p:], "0x") {
		q := p + 2
		for q < len(src) && (isHexDigit(src[q]) || src[q] == '_') {
			q++
		}
		if q > p+2 {
			lx.toks = append(lx.toks, token{kind: tkInt, val: src[p:q], line: lx.line})
			lx.pos = q
			return
		}
	}
	digits()
	if p+1 < len(src) && src[p] == '.' && src[p+1] >= '0' && src[p+1] <= '9' {
		p++
		digits()
		kind = tkFloat
	}
	if p < len(src) && (src[p] == 'e' || src[p] == 'E') {
		q := p + 1
		if q < len(src) && (src[q] == '+' || src[q] == '-') {
			q++
		}
		if q < len(src) && src[q] >= '0' && src[q] <= '9' {
			p = q
			digits()
			kind = tkFloat
		}
	}
	lx.toks = append(lx.toks, token{kind: kind, val: src[lx.pos:p], line: lx.line})
	lx.pos = p
}

func isHexDigit(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// stringLit lexes a quoted string and decodes its escapes as Jinja2 does
// (Python's unicode-escape codec).
func (lx *lexer) stringLit() error {
	src := lx.src
	q := src[lx.pos]
	p := lx.pos + 1
	for p < len(src) && src[p] != q {
		if src[p] == '\\' {
			p++
		}
		p++
	}
	if p >= len(src) {
		return lx.errorf(lx.line, "unexpected char %s at %d", pyRepr(string(q)), lx.pos)
	}
	raw := src[lx.pos+1 : p]
	val, err := unescapePython(raw)
	if err != nil {
		return lx.errorf(lx.line, "%v", err)
	}
	lx.toks = append(lx.toks, token{kind: tkString, val: val, line: lx.line})
	lx.line += strings.Count(raw, "\n")
	lx.pos = p + 1
	return nil
}

// unescapePython decodes backslash escapes the way Python's unicode-escape
// codec does (\n \t \\ \' \" \xNN \uNNNN \UNNNNNNNN \ooo \a \b \f \v \r and
// a backslash before a newline); an unknown escape is kept as written.
func unescapePython(s string) (string, error) {
	if strings.IndexByte(s, '\\') < 0 {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' || i+1 >= len(s) {
			b.WriteByte(c)
			continue
		}
		i++
		switch e := s[i]; e {
		case '\n':
		case '\\', '\'', '"':
			b.WriteByte(e)
		case 'n':
			b.WriteByte('\n')
		case 't':
			b.WriteByte('\t')
		case 'r':
			b.WriteByte('\r')
		case 'a':
			b.WriteByte('\a')
		case 'b':
			b.WriteByte('\b')
		case 'f':
			b.WriteByte('\f')
		case 'v':
			b.WriteByte('\v')
		case 'x', 'u', 'U':
			n := map[byte]int{'x': 2, 'u': 4, 'U': 8}[e]
			var r rune
			for j := 1; j <= n; j++ {
				if i+j >= len(s) || !isHexDigit(s[i+j]) {
					return "", fmt.Errorf("truncated \\%c escape", e)
				}
				r = r*16 + rune(hexVal(s[i+j]))
			}
			if r > utf8.MaxRune {
				return "", fmt.Errorf("illegal Unicode character")
			}
			b.WriteRune(r)
			i += n
		case '0', '1', '2', '3', '4', '5', '6', '7':
			r := rune(e - '0')
			for j := 1; j < 3 && i+1 < len(s) && s[i+1] >= '0' && s[i+1] <= '7'; j++ {
				i++
				r = r*8 + rune(s[i]-'0')
			}
			b.WriteRune(r)
		default:
			b.WriteByte('\\')
			b.WriteByte(e)
		}
	}
	return b.String(), nil
}

func hexVal(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	}
	return int(c-'A') + 10
}
