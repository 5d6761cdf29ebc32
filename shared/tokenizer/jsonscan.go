package tokenizer

import (
	"bytes"
	"fmt"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// jsonScanner walks a JSON document without building a tree. tokenizer.json
// files hold hundreds of thousands of vocabulary entries and merges; decoding
// them with encoding/json costs one allocation per string, so the loader
// reads the model section with this scanner and hands only the small
// sections to encoding/json.
type jsonScanner struct {
	data []byte
	pos  int
	file string
}

// errorf reports a problem at the scanner's position as file:line:col.
func (s *jsonScanner) errorf(format string, args ...any) error {
	return s.errorAt(s.pos, format, args...)
}

func (s *jsonScanner) errorAt(pos int, format string, args ...any) error {
	line, col := lineCol(s.data, pos)
	return fmt.Errorf("%s:%d:%d: %s", s.file, line, col, fmt.Sprintf(format, args...))
}

// lineCol turns a byte offset into a 1-based line and column.
func lineCol(data []byte, pos int) (int, int) {
	if pos > len(data) {
		pos = len(data)
	}
	line := 1 + bytes.Count(data[:pos], []byte{'\n'})
	col := pos + 1
	if i := bytes.LastIndexByte(data[:pos], '\n'); i >= 0 {
		col = pos - i
	}
	return line, col
}

func (s *jsonScanner) skipSpace() {
	for s.pos < len(s.data) {
		switch s.data[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return
		}
	}
}

// peek returns the next non-space byte without consuming it (0 at the end).
func (s *jsonScanner) peek() byte {
	s.skipSpace()
	if s.pos >= len(s.data) {
		return 0
	}
	return s.data[s.pos]
}

func (s *jsonScanner) expect(c byte) error {
	if s.peek() != c {
		if s.pos >= len(s.data) {
			return s.errorf("unexpected end of JSON, want %q", c)
		}
		return s.errorf("unexpected %q, want %q", s.data[s.pos], c)
	}
	s.pos++
	return nil
}

// readString reads a JSON string. Without escapes it returns a sub-slice of
// the document (no copy); with escapes it decodes into buf[:0] and returns
// that. The result is only valid until buf is reused.
func (s *jsonScanner) readString(buf []byte) ([]byte, []byte, error) {
	if err := s.expect('"'); err != nil {
		return nil, buf, err
	}
	start := s.pos
	for i := start; i < len(s.data); i++ {
		c := s.data[i]
		if c == '"' {
			s.pos = i + 1
			return s.data[start:i], buf, nil
		}
		if c == '\\' {
			return s.readEscapedString(start, buf)
		}
		if c < 0x20 {
			s.pos = i
			return nil, buf, s.errorf("control character %#02x in string", c)
		}
	}
	s.pos = len(s.data)
	return nil, buf, s.errorAt(start-1, "unterminated string")
}

func (s *jsonScanner) readEscapedString(start int, buf []byte) ([]byte, []byte, error) {
	out := buf[:0]
	i := start
	for i < len(s.data) {
		c := s.data[i]
		switch {
		case c == '"':
			s.pos = i + 1
			return out, out, nil
		case c < 0x20:
			s.pos = i
			return nil, out, s.errorf("control character %#02x in string", c)
		case c != '\\':
			out = append(out, c)
			i++
			continue
		}
		if i+1 >= len(s.data) {
			break
		}
		esc := s.data[i+1]
		i += 2
		switch esc {
		case '"', '\\', '/':
			out = append(out, esc)
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r, ok := hex4(s.data, i)
			if !ok {
				s.pos = i
				return nil, out, s.errorf("bad \\u escape")
			}
			i += 4
			if utf16.IsSurrogate(r) {
				if r2, ok := hex4(s.data, i+2); ok && i+1 < len(s.data) && s.data[i] == '\\' && s.data[i+1] == 'u' {
					if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
						i += 6
						out = utf8.AppendRune(out, dec)
						continue
					}
				}
				r = utf8.RuneError
			}
			out = utf8.AppendRune(out, r)
		default:
			s.pos = i - 1
			return nil, out, s.errorf("bad escape \\%c", esc)
		}
	}
	s.pos = len(s.data)
	return nil, out, s.errorAt(start-1, "unterminated string")
}

func hex4(b []byte, i int) (rune, bool) {
	if i+4 > len(b) {
		return 0, false
	}
	var r rune
	for _, c := range b[i : i+4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}

// readNumber reads a JSON number and returns its text.
func (s *jsonScanner) readNumber() ([]byte, error) {
	s.skipSpace()
	start := s.pos
	for s.pos < len(s.data) {
		c := s.data[s.pos]
		if (c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E' {
			s.pos++
			continue
		}
		break
	}
	if start == s.pos {
		return nil, s.errorf("want a number")
	}
	return s.data[start:s.pos], nil
}

// readInt reads a JSON integer.
func (s *jsonScanner) readInt() (int64, error) {
	start := s.pos
	num, err := s.readNumber()
	if err != nil {
		return 0, err
	}
	v, err := strconv.ParseInt(string(num), 10, 64)
	if err != nil {
		return 0, s.errorAt(start, "want an integer, got %s", num)
	}
	return v, nil
}

// readFloat reads a JSON number as a float64.
func (s *jsonScanner) readFloat() (float64, error) {
	start := s.pos
	num, err := s.readNumber()
	if err != nil {
		return 0, err
	}
	v, err := strconv.ParseFloat(string(num), 64)
	if err != nil {
		return 0, s.errorAt(start, "want a number, got %s", num)
	}
	return v, nil
}

// skipValue skips one JSON value of any kind and returns its raw bytes.
func (s *jsonScanner) skipValue() ([]byte, error) {
	c := s.peek()
	start := s.pos
	switch {
	case c == '"':
		if _, _, err := s.readString(nil); err != nil {
			return nil, err
		}
	case c == '{' || c == '[':
		depth := 0
		for s.pos < len(s.data) {
			switch ch := s.data[s.pos]; ch {
			case '"':
				if _, _, err := s.readString(nil); err != nil {
					return nil, err
				}
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					s.pos++
					return s.data[start:s.pos], nil
				}
			}
			s.pos++
		}
		return nil, s.errorAt(start, "unterminated %c", c)
	case c == 't' || c == 'f' || c == 'n':
		for _, word := range []string{"true", "false", "null"} {
			if bytes.HasPrefix(s.data[s.pos:], []byte(word)) {
				s.pos += len(word)
				return s.data[start:s.pos], nil
			}
		}
		return nil, s.errorf("unexpected %q", c)
	case c == '-' || (c >= '0' && c <= '9'):
		if _, err := s.readNumber(); err != nil {
			return nil, err
		}
	case c == 0:
		return nil, s.errorf("unexpected end of JSON")
	default:
		return nil, s.errorf("unexpected %q", c)
	}
	return s.data[start:s.pos], nil
}

// eachMember calls fn for each member of the JSON object at the scanner.
// fn must consume the member's value.
func (s *jsonScanner) eachMember(fn func(key string) error) error {
	if err := s.expect('{'); err != nil {
		return err
	}
	if s.peek() == '}' {
		s.pos++
		return nil
	}
	var buf []byte
	for {
		key, nb, err := s.readString(buf)
		buf = nb
		if err != nil {
			return err
		}
		if err := s.expect(':'); err != nil {
			return err
		}
		if err := fn(string(key)); err != nil {
			return err
		}
		switch s.peek() {
		case ',':
			s.pos++
		case '}':
			s.pos++
			return nil
		default:
			return s.errorf("want ',' or '}' in object")
		}
	}
}

// eachElement calls fn for each element of the JSON array at the scanner.
// fn must consume the element.
func (s *jsonScanner) eachElement(fn func(i int) error) error {
	if err := s.expect('['); err != nil {
		return err
	}
	if s.peek() == ']' {
		s.pos++
		return nil
	}
	for i := 0; ; i++ {
		if err := fn(i); err != nil {
			return err
		}
		switch s.peek() {
		case ',':
			s.pos++
		case ']':
			s.pos++
			return nil
		default:
			return s.errorf("want ',' or ']' in array")
		}
	}
}
