package datasets

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"runtime"

	"github.com/eftml/eft/shared/parallel"
)

var utf8BOM = []byte{0xEF, 0xBB, 0xBF}

// JSONOptions are the options of the json builder that Axolotl passes on.
type JSONOptions struct {
	// Field names the member of a top-level object whose list holds the rows
	// (HF's `field`, e.g. "data" for SQuAD-style files).
	Field string
}

// readJSON reads a .json or .jsonl file the way Hugging Face's json builder
// does: a top-level array is a list of rows (objects, or strings which become
// {"text": s}); otherwise the file is JSON lines; a file that is one
// pretty-printed object is read by columns (pandas' default orient), or
// through opts.Field.
func readJSON(r io.Reader, name string, opts JSONOptions, c *collector) error {
	br := bufio.NewReaderSize(r, 1<<20)
	head, _ := br.Peek(3)
	if bytes.Equal(head, utf8BOM) {
		_, _ = br.Discard(3)
	}
	first, err := firstNonSpace(br)
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil // an empty file has no rows
		}
		return fmt.Errorf("%s: %w", name, err)
	}
	if first == '[' || opts.Field != "" {
		data, err := io.ReadAll(br)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if opts.Field != "" {
			return readJSONField(data, name, opts.Field, c)
		}
		return readJSONArray(data, name, c)
	}
	return readJSONLines(br, name, c, true)
}

// firstNonSpace peeks at the first byte that is not JSON whitespace.
func firstNonSpace(br *bufio.Reader) (byte, error) {
	for i := 1; ; i++ {
		b, err := br.Peek(i)
		if len(b) < i {
			if err == nil {
				err = io.EOF
			}
			return 0, err
		}
		switch c := b[i-1]; c {
		case ' ', '\t', '\n', '\r':
			if i >= br.Size() {
				_, _ = br.Discard(i)
				i = 0
			}
		default:
			return c, nil
		}
	}
}

// lineCounter turns byte offsets into 1-based line numbers, moving forward.
type lineCounter struct {
	data []byte
	pos  int
	line int
}

func (lc *lineCounter) at(offset int) int {
	if offset > len(lc.data) {
		offset = len(lc.data)
	}
	lc.line += bytes.Count(lc.data[lc.pos:offset], []byte{'\n'})
	lc.pos = offset
	return lc.line
}

func jsonPosition(name string, data []byte, err error) error {
	var je *jsonError
	if !errors.As(err, &je) {
		return fmt.Errorf("%s: %w", name, err)
	}
	line := 1 + bytes.Count(data[:min(je.Offset, len(data))], []byte{'\n'})
	col := je.Offset - bytes.LastIndexByte(data[:min(je.Offset, len(data))], '\n')
	return fmt.Errorf("%s:%d:%d: malformed JSON: %s", name, line, col, je.Msg)
}

// readJSONArray reads a file that is one JSON array of rows. A syntax error
// anywhere makes the whole file unreadable (there is no next row to resume
// at), so it is returned as an error naming line and column.
func readJSONArray(data []byte, name string, c *collector) error {
	p := jsonParser{data: data}
	p.skipSpace()
	p.pos++ // '['
	p.depth = 1
	lines := lineCounter{data: data, line: 1}
	type element struct {
		v    any
		line int
	}
	var elems []element
	p.skipSpace()
	if p.pos < len(data) && data[p.pos] == ']' {
		p.pos++
	} else {
		for {
			p.skipSpace()
			line := lines.at(p.pos)
			v, err := p.value()
			if err != nil {
				return jsonPosition(name, data, err)
			}
			elems = append(elems, element{v, line})
			p.skipSpace()
			if p.pos >= len(data) {
				return jsonPosition(name, data, p.fail("unexpected end of input in the top-level array"))
			}
			if data[p.pos] == ']' {
				p.pos++
				break
			}
			if data[p.pos] != ',' {
				return jsonPosition(name, data, p.fail("unexpected %s, expected ',' or ']' in the top-level array", p.describe()))
			}
			p.pos++
		}
	}
	p.skipSpace()
	if p.pos != len(data) {
		return jsonPosition(name, data, p.fail("unexpected %s after the top-level array", p.describe()))
	}
	for i, e := range elems {
		src := Source{File: name, Line: e.line, Row: i}
		switch v := e.v.(type) {
		case Object:
			c.row(v, src)
		case string:
			c.row(Object{{Name: "text", Value: v}}, src)
		default:
			c.bad(src, ProblemNotObject, fmt.Sprintf("array element is %s, want an object or a string", Kind(v)))
		}
	}
	return nil
}

// readJSONField reads rows from the list under one member of a top-level
// object.
func readJSONField(data []byte, name, field string, c *collector) error {
	v, err := parseJSON(data)
	if err != nil {
		return jsonPosition(name, data, err)
	}
	obj, ok := v.(Object)
	if !ok {
		return fmt.Errorf("%s: field %q: the file holds a JSON %s, not an object", name, field, Kind(v))
	}
	inner, ok := obj.Get(field)
	if !ok {
		return fmt.Errorf("%s: field %q: no such member (members: %v)", name, field, obj.Keys())
	}
	switch x := inner.(type) {
	case []any:
		for i, e := range x {
			src := Source{File: name, Row: i}
			switch ev := e.(type) {
			case Object:
				c.row(ev, src)
			case string:
				c.row(Object{{Name: "text", Value: ev}}, src)
			default:
				c.bad(src, ProblemNotObject, fmt.Sprintf("element of %q is %s, want an object or a string", field, Kind(e)))
			}
		}
		return nil
	case Object:
		return readColumns(x, name, c)
	default:
		return fmt.Errorf("%s: field %q is %s, want a list of rows", name, field, Kind(inner))
	}
}

// readColumns reads an object of columns: {"col": [v0, v1, ...]} or
// {"col": {"0": v0, "1": v1}} (pandas' "columns" orient).
func readColumns(obj Object, name string, c *collector) error {
	n := -1
	columns := make([][]any, len(obj))
	for i, f := range obj {
		switch x := f.Value.(type) {
		case []any:
			columns[i] = x
		case Object:
			vals := make([]any, len(x))
			for j, e := range x {
				vals[j] = e.Value
			}
			columns[i] = vals
		default:
			return fmt.Errorf("%s: column %q is %s; a JSON object file must map each column to a list of values", name, f.Name, Kind(f.Value))
		}
		if n >= 0 && len(columns[i]) != n {
			return fmt.Errorf("%s: column %q has %d values, column %q has %d", name, f.Name, len(columns[i]), obj[0].Name, n)
		}
		n = len(columns[i])
	}
	for row := 0; row < n; row++ {
		fields := make(Object, len(obj))
		for i, f := range obj {
			fields[i] = Field{Name: f.Name, Value: columns[i][row]}
		}
		c.row(fields, Source{File: name, Row: row})
	}
	return nil
}

// readJSONLines reads one JSON object per line; blank lines are skipped and
// a bad line is a bad row. When allowColumns is set and the first line does
// not parse but the whole file is one JSON object, the file is read by
// columns instead (what pandas does for a pretty-printed object). Once the
// first row is read, the rest is parsed a batch of lines at a time on all
// cores (readLinesInBatches).
func readJSONLines(br *bufio.Reader, name string, c *collector, allowColumns bool) error {
	var consumed []byte // the lines read so far, kept until the first row parses
	lineNo := 0
	var line []byte
	for {
		var err error
		line, err = readLine(br, line[:0])
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("%s: %w", name, err)
		}
		if len(line) == 0 && err != nil {
			return nil
		}
		lineNo++
		if allowColumns {
			consumed = append(append(consumed, line...), '\n')
		}
		text := bytes.TrimRight(line, "\r")
		if len(bytes.TrimSpace(text)) == 0 {
			if err != nil {
				return nil
			}
			continue
		}
		v, perr := parseJSON(text)
		if perr != nil && allowColumns {
			rest, rerr := io.ReadAll(br)
			if rerr != nil {
				return fmt.Errorf("%s: %w", name, rerr)
			}
			whole := append(consumed, rest...)
			if v, err := parseJSON(whole); err == nil {
				if obj, ok := v.(Object); ok {
					return readColumns(obj, name, c)
				}
			}
			return readJSONLines(bufio.NewReader(bytes.NewReader(whole)), name, c, false)
		}
		lineRow(c, Source{File: name, Line: lineNo, Row: 0}, v, perr)
		if err != nil { // io.EOF after a last line without newline
			return nil
		}
		return readLinesInBatches(br, name, c, lineNo, 1)
	}
}

// lineRow hands one parsed line to the collector: a row, or a bad row
// saying why.
func lineRow(c *collector, src Source, v any, perr error) {
	if perr != nil {
		var je *jsonError
		msg := perr.Error()
		if errors.As(perr, &je) {
			msg = fmt.Sprintf("malformed JSON at column %d: %s", je.Offset+1, je.Msg)
		}
		c.bad(src, ProblemMalformed, msg)
		return
	}
	obj, ok := v.(Object)
	if !ok {
		c.bad(src, ProblemNotObject, fmt.Sprintf("line holds a JSON %s, want an object", Kind(v)))
		return
	}
	c.row(obj, src)
}

// linesPerBatch is how many lines readLinesInBatches reads before parsing
// them together.
const linesPerBatch = 4096

// readLinesInBatches reads the JSON lines after line lineNo (row row): a
// batch of lines is read, parsed on all cores, and handed to the collector
// in file order, so rows, line numbers and bad rows are what reading them
// one by one gives. The next batch is read while one is parsed and
// collected (reading and collecting are one core's work each).
func readLinesInBatches(br *bufio.Reader, name string, c *collector, lineNo, row int) error {
	type pending struct {
		from, to, line int
		v              any
		err            error
	}
	type lineBatch struct {
		text  []byte // the batch's lines, back to back
		lines []pending
		atEnd bool
		err   error
	}
	// Two batches take turns: one filled by the reader, one parsed here.
	free := make(chan *lineBatch, 2)
	for range 2 {
		free <- &lineBatch{lines: make([]pending, 0, linesPerBatch)}
	}
	full := make(chan *lineBatch, 1)
	go func() {
		for {
			b := <-free
			b.text, b.lines, b.atEnd, b.err = b.text[:0], b.lines[:0], false, nil
			for len(b.lines) < linesPerBatch && !b.atEnd {
				from := len(b.text)
				var err error
				b.text, err = readLine(br, b.text)
				if err != nil && !errors.Is(err, io.EOF) {
					b.err = fmt.Errorf("%s: %w", name, err)
					break
				}
				b.atEnd = err != nil
				if len(b.text) == from && b.atEnd {
					break
				}
				lineNo++
				line := bytes.TrimRight(b.text[from:], "\r")
				if len(bytes.TrimSpace(line)) == 0 {
					continue
				}
				b.lines = append(b.lines, pending{from: from, to: from + len(line), line: lineNo})
			}
			last := b.atEnd || b.err != nil
			full <- b // b is the consumer's from here
			if last {
				return
			}
		}
	}()
	workers := runtime.GOMAXPROCS(0)
	for {
		b := <-full
		if b.err != nil {
			return b.err
		}
		// Lines are handed out a few at a time, so that a part of long
		// lines does not keep the other cores waiting.
		parallel.Chunks(len(b.lines), 64, workers, func(_, lo, hi int) bool {
			for i := lo; i < hi; i++ {
				p := &b.lines[i]
				p.v, p.err = parseJSON(b.text[p.from:p.to])
			}
			return true
		})
		for i := range b.lines {
			p := &b.lines[i]
			lineRow(c, Source{File: name, Line: p.line, Row: row}, p.v, p.err)
			p.v = nil // the batch is refilled: keep no row alive through it
			row++
		}
		if b.atEnd {
			return nil
		}
		free <- b
	}
}

// readLine appends the next line (without its '\n') to buf, however long.
// It returns io.EOF with the last line when the input ends without a newline,
// and io.EOF with an empty line at the end.
func readLine(br *bufio.Reader, buf []byte) ([]byte, error) {
	for {
		chunk, err := br.ReadSlice('\n')
		buf = append(buf, chunk...)
		switch {
		case err == nil:
			return buf[:len(buf)-1], nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		default:
			return buf, err
		}
	}
}
