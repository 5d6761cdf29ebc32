package datasets

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"strconv"
	"sync"
	"unicode/utf16"
	"unicode/utf8"
	"unsafe"
)

// maxJSONDepth bounds nesting so hostile input cannot exhaust the stack;
// Python's json module stops near the same depth (its recursion limit).
const maxJSONDepth = 1000

// jsonError is a syntax error at a byte offset of the parsed text.
type jsonError struct {
	Offset int
	Msg    string
}

func (e *jsonError) Error() string { return e.Msg }

// jsonParser decodes JSON into row values (Object keeps key order, integers
// stay int64). It is hand-written rather than encoding/json because that
// decodes objects into unordered maps.
type jsonParser struct {
	data  []byte
	pos   int
	depth int
	alias bool // strings without escapes share data's memory instead of copying it
	// fields and items hold the members of the objects and arrays being
	// parsed (nested ones above their parents'), so that each is made once
	// at its exact size when it closes instead of growing as it is read.
	fields []Field
	items  []any
}

// parsers keeps parsers with their scratch stacks between calls.
var parsers = sync.Pool{New: func() any { return new(jsonParser) }}

// parseWith runs whole on a pooled parser.
func parseWith(data []byte, alias bool) (any, error) {
	p := parsers.Get().(*jsonParser)
	p.data, p.pos, p.depth, p.alias = data, 0, 0, alias
	v, err := p.whole()
	// Keep no values alive from the pool: closed objects and arrays cleared
	// their part of the stacks, an error leaves the open ones below len.
	clear(p.fields)
	clear(p.items)
	p.data, p.fields, p.items = nil, p.fields[:0], p.items[:0]
	parsers.Put(p)
	return v, err
}

// parseJSON decodes exactly one JSON value that may be surrounded by
// whitespace.
func parseJSON(data []byte) (any, error) {
	return parseWith(data, false)
}

// ParseJSONShared decodes one JSON value (surrounded by whitespace or not)
// into row values as the readers do, without copying its strings: they
// share data's memory, so data must never change afterwards. It serves
// readers of large files held whole in memory, where a copy of every string
// is most of the reading time. The error's message names the byte offset.
func ParseJSONShared(data []byte) (any, error) {
	v, err := parseWith(data, true)
	if je, ok := err.(*jsonError); ok {
		return nil, fmt.Errorf("malformed JSON at column %d: %s", je.Offset+1, je.Msg)
	}
	return v, err
}

func (p *jsonParser) whole() (any, error) {
	v, err := p.value()
	if err != nil {
		return nil, err
	}
	p.skipSpace()
	if p.pos != len(p.data) {
		return nil, p.fail("unexpected %s after the JSON value", p.describe())
	}
	return v, nil
}

func (p *jsonParser) fail(format string, args ...any) error {
	return &jsonError{Offset: p.pos, Msg: fmt.Sprintf(format, args...)}
}

func (p *jsonParser) describe() string {
	if p.pos >= len(p.data) {
		return "end of input"
	}
	c := p.data[p.pos]
	if c >= 0x20 && c < 0x7f {
		return fmt.Sprintf("character %q", c)
	}
	return fmt.Sprintf("byte 0x%02x", c)
}

func (p *jsonParser) skipSpace() {
	for p.pos < len(p.data) {
		switch p.data[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

func (p *jsonParser) value() (any, error) {
	p.skipSpace()
	if p.pos >= len(p.data) {
		return nil, p.fail("unexpected end of input, expected a JSON value")
	}
	switch c := p.data[p.pos]; {
	case c == '{':
		return p.object()
	case c == '[':
		return p.array()
	case c == '"':
		return p.str()
	case c == '-' || (c >= '0' && c <= '9'):
		return p.number()
	case c == 't':
		return true, p.literal("true")
	case c == 'f':
		return false, p.literal("false")
	case c == 'n':
		return nil, p.literal("null")
	default:
		return nil, p.fail("unexpected %s, expected a JSON value", p.describe())
	}
}

func (p *jsonParser) literal(word string) error {
	if len(p.data)-p.pos < len(word) || string(p.data[p.pos:p.pos+len(word)]) != word {
		return p.fail("invalid literal, expected %q", word)
	}
	p.pos += len(word)
	return nil
}

func (p *jsonParser) enter() error {
	p.depth++
	if p.depth > maxJSONDepth {
		return p.fail("JSON nested deeper than %d levels", maxJSONDepth)
	}
	return nil
}

func (p *jsonParser) object() (any, error) {
	if err := p.enter(); err != nil {
		return nil, err
	}
	p.pos++ // '{'
	base := len(p.fields)
	p.skipSpace()
	if p.pos < len(p.data) && p.data[p.pos] == '}' {
		p.pos++
		p.depth--
		return Object{}, nil
	}
	for {
		p.skipSpace()
		if p.pos >= len(p.data) || p.data[p.pos] != '"' {
			return nil, p.fail("unexpected %s, expected a string key", p.describe())
		}
		key, err := p.str()
		if err != nil {
			return nil, err
		}
		p.skipSpace()
		if p.pos >= len(p.data) || p.data[p.pos] != ':' {
			return nil, p.fail("unexpected %s, expected ':' after object key", p.describe())
		}
		p.pos++
		v, err := p.value()
		if err != nil {
			return nil, err
		}
		p.fields = setFrom(p.fields, base, key, v)
		p.skipSpace()
		if p.pos >= len(p.data) {
			return nil, p.fail("unexpected end of input in object")
		}
		switch p.data[p.pos] {
		case ',':
			p.pos++
		case '}':
			p.pos++
			p.depth--
			obj := make(Object, len(p.fields)-base)
			copy(obj, p.fields[base:])
			clear(p.fields[base:])
			p.fields = p.fields[:base]
			return obj, nil
		default:
			return nil, p.fail("unexpected %s, expected ',' or '}' in object", p.describe())
		}
	}
}

// setFrom sets name in the object held in fields[base:]: a repeated key
// keeps its first position and takes the last value (as Python's json
// does), a new one is appended.
func setFrom(fields []Field, base int, name string, v any) []Field {
	for i := base; i < len(fields); i++ {
		if fields[i].Name == name {
			fields[i].Value = v
			return fields
		}
	}
	return append(fields, Field{Name: name, Value: v})
}

func (p *jsonParser) array() (any, error) {
	if err := p.enter(); err != nil {
		return nil, err
	}
	p.pos++ // '['
	base := len(p.items)
	p.skipSpace()
	if p.pos < len(p.data) && p.data[p.pos] == ']' {
		p.pos++
		p.depth--
		return []any{}, nil
	}
	for {
		v, err := p.value()
		if err != nil {
			return nil, err
		}
		p.items = append(p.items, v)
		p.skipSpace()
		if p.pos >= len(p.data) {
			return nil, p.fail("unexpected end of input in array")
		}
		switch p.data[p.pos] {
		case ',':
			p.pos++
		case ']':
			p.pos++
			p.depth--
			arr := make([]any, len(p.items)-base)
			copy(arr, p.items[base:])
			clear(p.items[base:])
			p.items = p.items[:base]
			return arr, nil
		default:
			return nil, p.fail("unexpected %s, expected ',' or ']' in array", p.describe())
		}
	}
}

func (p *jsonParser) number() (any, error) {
	start := p.pos
	isFloat := false
	if p.data[p.pos] == '-' {
		p.pos++
	}
	digits := func() int {
		n := 0
		for p.pos < len(p.data) && p.data[p.pos] >= '0' && p.data[p.pos] <= '9' {
			p.pos++
			n++
		}
		return n
	}
	if p.pos < len(p.data) && p.data[p.pos] == '0' {
		p.pos++
	} else if digits() == 0 {
		return nil, p.fail("invalid number: expected a digit")
	}
	if p.pos < len(p.data) && p.data[p.pos] == '.' {
		isFloat = true
		p.pos++
		if digits() == 0 {
			return nil, p.fail("invalid number: expected a digit after '.'")
		}
	}
	if p.pos < len(p.data) && (p.data[p.pos] == 'e' || p.data[p.pos] == 'E') {
		isFloat = true
		p.pos++
		if p.pos < len(p.data) && (p.data[p.pos] == '+' || p.data[p.pos] == '-') {
			p.pos++
		}
		if digits() == 0 {
			return nil, p.fail("invalid number: expected a digit in the exponent")
		}
	}
	text := string(p.data[start:p.pos])
	if !isFloat {
		if n, err := strconv.ParseInt(text, 10, 64); err == nil {
			return n, nil
		}
		// Out of int64 range: keep the magnitude as a float (pyarrow does too).
	}
	f, err := strconv.ParseFloat(text, 64)
	if err != nil && !math.IsInf(f, 0) {
		return nil, &jsonError{Offset: start, Msg: fmt.Sprintf("invalid number %q", text)}
	}
	return f, nil
}

func (p *jsonParser) str() (string, error) {
	p.pos++ // opening quote
	start := p.pos
	// Fast path: no escapes. Eight bytes at a time while none of them ends
	// the string, starts an escape or is a control character; high gathers
	// the bytes' top bits, so that an ASCII string skips the UTF-8 check.
	var high uint64
	for p.pos+8 <= len(p.data) {
		x := binary.LittleEndian.Uint64(p.data[p.pos:])
		if endsRun(x) {
			break
		}
		high |= x
		p.pos += 8
	}
	for p.pos < len(p.data) {
		c := p.data[p.pos]
		if c == '"' {
			s := p.data[start:p.pos]
			if high&highBits != 0 && !utf8.Valid(s) {
				return "", p.fail("string is not valid UTF-8")
			}
			p.pos++
			if p.alias && len(s) > 0 {
				return unsafe.String(&s[0], len(s)), nil
			}
			return string(s), nil
		}
		if c == '\\' {
			break
		}
		if c < 0x20 {
			return "", p.fail("control character 0x%02x in string", c)
		}
		high |= uint64(c)
		p.pos++
	}
	// Escapes: decode into one buffer of the string's escaped length (no
	// escape decodes longer than it is written), copying plain runs whole;
	// the buffer becomes the string (it is not used again).
	buf := make([]byte, 0, escapedEnd(p.data, p.pos)-start)
	buf = append(buf, p.data[start:p.pos]...)
	for {
		run := p.pos
		for p.pos+8 <= len(p.data) && !endsRun(binary.LittleEndian.Uint64(p.data[p.pos:])) {
			p.pos += 8
		}
		for p.pos < len(p.data) && p.data[p.pos] != '"' && p.data[p.pos] != '\\' && p.data[p.pos] >= 0x20 {
			p.pos++
		}
		buf = append(buf, p.data[run:p.pos]...)
		if p.pos >= len(p.data) {
			return "", p.fail("unexpected end of input in string")
		}
		c := p.data[p.pos]
		switch {
		case c == '"':
			p.pos++
			if !utf8.Valid(buf) {
				return "", &jsonError{Offset: start, Msg: "string is not valid UTF-8"}
			}
			if len(buf) == 0 {
				return "", nil
			}
			return unsafe.String(&buf[0], len(buf)), nil
		case c < 0x20:
			return "", p.fail("control character 0x%02x in string", c)
		}
		p.pos++ // backslash
		if p.pos >= len(p.data) {
			return "", p.fail("unexpected end of input in string escape")
		}
		e := p.data[p.pos]
		p.pos++
		switch e {
		case '"', '\\', '/':
			buf = append(buf, e)
		case 'b':
			buf = append(buf, '\b')
		case 'f':
			buf = append(buf, '\f')
		case 'n':
			buf = append(buf, '\n')
		case 'r':
			buf = append(buf, '\r')
		case 't':
			buf = append(buf, '\t')
		case 'u':
			r, ok := p.hex4()
			if !ok {
				return "", p.fail("invalid \\u escape in string")
			}
			if utf16.IsSurrogate(r) {
				// A surrogate pair spells one rune; a lone half becomes U+FFFD.
				save := p.pos
				if p.pos+1 < len(p.data) && p.data[p.pos] == '\\' && p.data[p.pos+1] == 'u' {
					p.pos += 2
					if r2, ok := p.hex4(); ok {
						if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
							buf = utf8.AppendRune(buf, dec)
							continue
						}
					}
				}
				p.pos = save
				r = utf8.RuneError
			}
			buf = utf8.AppendRune(buf, r)
		default:
			p.pos--
			return "", p.fail("invalid escape '\\%c' in string", e)
		}
	}
}

// endsRun reports whether one of eight string bytes ends a plain run: a
// quote, a backslash or a control character.
func endsRun(x uint64) bool {
	return hasByteBelow(x, 0x20)|hasByte(x, '"')|hasByte(x, '\\') != 0
}

// escapedEnd is where the string whose bytes continue at data[i:] ends:
// the index of its closing quote (escaped quotes skipped), or len(data).
func escapedEnd(data []byte, i int) int {
	for i < len(data) {
		j := bytes.IndexAny(data[i:], `"\`)
		if j < 0 {
			return len(data)
		}
		i += j
		if data[i] == '"' {
			return i
		}
		i += 2
	}
	return len(data)
}

// Byte tests on eight bytes at once (a uint64): each is non-zero exactly
// when some byte of x is below n (n <= 0x80), or equals c.
const (
	lowBits  = 0x0101010101010101
	highBits = 0x8080808080808080
)

func hasByteBelow(x uint64, n byte) uint64 { return (x - lowBits*uint64(n)) & ^x & highBits }

func hasByte(x uint64, c byte) uint64 { return hasByteBelow(x^(lowBits*uint64(c)), 1) }

func (p *jsonParser) hex4() (rune, bool) {
	if len(p.data)-p.pos < 4 {
		return 0, false
	}
	var r rune
	for _, c := range p.data[p.pos : p.pos+4] {
		r <<= 4
		switch {
		case c >= '0' && c <= '9':
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c - 'a' + 10)
		case c >= 'A' && c <= 'F':
			r |= rune(c - 'A' + 10)
		default:
			return 0, false
		}
	}
	p.pos += 4
	return r, true
}
