package prompt

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"strconv"
	"sync"

	"github.com/eftml/eft/shared/datasets"
)

// RowsFormat names the encoding of the normalized rows the ingest stage
// stores and the tokenizer stage reads: JSON lines, one row each,
//
//	{"dataset":0,"file":"data/a.jsonl","line":3,"row":2,"fields":{...}}
//
// dataset indexes the config's datasets (test_datasets for test rows), file,
// line and row say where the row was read (datasets.Source), and fields are
// the row in datasets.AppendJSON's canonical encoding (key order kept,
// integers exact).
const RowsFormat = "eft-rows-jsonl/v1"

// Row is one dataset row on its way from ingest to tokenization.
type Row struct {
	Dataset int
	Source  datasets.Source
	Fields  datasets.Object
}

// AppendRow appends r as one line of RowsFormat, newline included.
func AppendRow(dst []byte, r Row) []byte {
	dst = append(dst, `{"dataset":`...)
	dst = strconv.AppendInt(dst, int64(r.Dataset), 10)
	dst = append(dst, `,"file":`...)
	dst = datasets.AppendJSON(dst, r.Source.File)
	dst = append(dst, `,"line":`...)
	dst = strconv.AppendInt(dst, int64(r.Source.Line), 10)
	dst = append(dst, `,"row":`...)
	dst = strconv.AppendInt(dst, int64(r.Source.Row), 10)
	dst = append(dst, `,"fields":`...)
	dst = datasets.AppendJSON(dst, r.Fields)
	return append(dst, "}\n"...)
}

// parallelReadBytes is the size from which a rows file is indexed and
// parsed in parts on all cores.
const parallelReadBytes = 4 << 20

// Rows is a rows file held in memory, each row parsed when asked for: the
// tokenizer stage parses a block of rows on the core that then tokenizes
// them, while their bytes are in its cache, and keeps no parsed copy of the
// whole split. Parsed rows' strings share the file's memory (no copy per
// string), so the bytes must not change while rows are in use. A line that
// is not a row is an error naming the file and line when that row is parsed:
// the file is ours, so damage is not a bad row to skip.
type Rows struct {
	data  []byte
	name  string
	spans []rowSpan
}

// rowSpan is where one row's line is in the file: data[start:end] on line
// line (blank lines hold no row but count as lines).
type rowSpan struct{ start, end, line int }

// IndexRows finds the rows of a RowsFormat file's bytes (named name in
// errors), without parsing them.
func IndexRows(data []byte, name string) *Rows {
	bounds := lineBounds(data, partsFor(data))
	found := make([][]rowSpan, len(bounds)-1)
	lines := make([]int, len(found))
	var wg sync.WaitGroup
	for i := range found {
		wg.Go(func() { found[i], lines[i] = indexLines(data, bounds[i], bounds[i+1]) })
	}
	wg.Wait()
	r := &Rows{data: data, name: name}
	if len(found) == 1 {
		r.spans = found[0]
		return r
	}
	n := 0
	for _, f := range found {
		n += len(f)
	}
	r.spans = make([]rowSpan, 0, n)
	line := 0
	for i, f := range found {
		for _, s := range f {
			s.line += line
			r.spans = append(r.spans, s)
		}
		line += lines[i]
	}
	return r
}

// ReadRows reads a RowsFormat file and indexes its rows.
func ReadRows(path string) (*Rows, error) {
	data, err := readParts(path)
	if err != nil {
		return nil, fmt.Errorf("rows: %w", err)
	}
	return IndexRows(data, path), nil
}

// readParts reads a file, a large one in parts on all cores: the cost of
// reading a fresh buffer is mostly the kernel giving it pages, which one
// core does at a few hundred MB/s, and the cores would wait.
func readParts(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, err
	}
	size := info.Size()
	if !info.Mode().IsRegular() || size < parallelReadBytes {
		return io.ReadAll(f)
	}
	data := make([]byte, size)
	parts := int64(runtime.GOMAXPROCS(0))
	errs := make([]error, parts)
	var wg sync.WaitGroup
	for p := range parts {
		wg.Go(func() {
			lo, hi := size*p/parts, size*(p+1)/parts
			if _, err := f.ReadAt(data[lo:hi], lo); err != nil {
				errs[p] = fmt.Errorf("%s: bytes %d to %d of %d: %w (did the file change while it was read?)", path, lo, hi, size, err)
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	// What was appended since Stat is read too, as os.ReadFile would.
	more, err := io.ReadAll(io.NewSectionReader(f, size, math.MaxInt64-size))
	if err != nil {
		return nil, err
	}
	return append(data, more...), nil
}

// RowsOf encodes rows already parsed (RowsFormat), for callers that made
// them rather than read them.
func RowsOf(rows []Row) *Rows {
	var data []byte
	for _, r := range rows {
		data = AppendRow(data, r)
	}
	return IndexRows(data, "rows")
}

// Len is the number of rows (0 for nil Rows: a split that is absent).
func (r *Rows) Len() int {
	if r == nil {
		return 0
	}
	return len(r.spans)
}

// Row parses row i (0 <= i < Len()).
func (r *Rows) Row(i int) (Row, error) {
	s := r.spans[i]
	v, err := datasets.ParseJSONShared(r.data[s.start:s.end])
	var row Row
	if err == nil {
		o, ok := v.(datasets.Object)
		if !ok {
			err = fmt.Errorf("line holds a JSON %s, want an object", datasets.Kind(v))
		} else {
			row, err = rowOf(o)
		}
	}
	if err != nil {
		return Row{}, fmt.Errorf("rows: %s:%d: %w", r.name, s.line, err)
	}
	return row, nil
}

// All parses every row, on all cores for a large file; the error is the
// first bad row's.
func (r *Rows) All() ([]Row, error) {
	out := make([]Row, r.Len())
	parts := partsFor(r.data)
	errs := make([]error, parts)
	var wg sync.WaitGroup
	for p := range parts {
		wg.Go(func() {
			for i := p * len(out) / parts; i < (p+1)*len(out)/parts; i++ {
				var err error
				if out[i], err = r.Row(i); err != nil {
					errs[p] = err
					return
				}
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// partsFor is how many parts a rows file's bytes are indexed or parsed in:
// one per core from parallelReadBytes on.
func partsFor(data []byte) int {
	if len(data) >= parallelReadBytes {
		return runtime.GOMAXPROCS(0)
	}
	return 1
}

// lineBounds cuts data into about n parts that start at line starts.
func lineBounds(data []byte, n int) []int {
	bounds := []int{0}
	for i := 1; i < n; i++ {
		at := max(len(data)*i/n, bounds[len(bounds)-1])
		j := bytes.IndexByte(data[at:], '\n')
		if j < 0 {
			break
		}
		if at += j + 1; at < len(data) {
			bounds = append(bounds, at)
		}
	}
	return append(bounds, len(data))
}

// indexLines finds the rows of data[from:to] (which starts at a line start):
// their spans, with lines counted from the part's first, and the part's
// number of lines. Blank lines hold no row.
func indexLines(data []byte, from, to int) ([]rowSpan, int) {
	spans := make([]rowSpan, 0, (to-from)/256+1)
	lines := 0
	for at := from; at < to; {
		end := to
		if j := bytes.IndexByte(data[at:to], '\n'); j >= 0 {
			end = at + j
		}
		lines++
		if !blank(data[at:end]) {
			spans = append(spans, rowSpan{start: at, end: end, line: lines})
		}
		at = end + 1
	}
	return spans, lines
}

// blank reports whether line is only JSON whitespace.
func blank(line []byte) bool {
	for _, c := range line {
		if c != ' ' && c != '\t' && c != '\r' {
			return false
		}
	}
	return true
}

func rowOf(o datasets.Object) (Row, error) {
	var r Row
	var haveFile, haveFields bool
	for _, f := range o {
		var n *int
		switch f.Name {
		case "dataset":
			n = &r.Dataset
		case "line":
			n = &r.Source.Line
		case "row":
			n = &r.Source.Row
		}
		if n != nil {
			v, ok := f.Value.(int64)
			if !ok || v < 0 {
				return r, fmt.Errorf("%q is %s, want a non-negative integer", f.Name, datasets.Kind(f.Value))
			}
			*n = int(v)
			continue
		}
		switch f.Name {
		case "file":
			s, ok := f.Value.(string)
			if !ok {
				return r, fmt.Errorf(`"file" is %s, want a string`, datasets.Kind(f.Value))
			}
			r.Source.File, haveFile = s, true
		case "fields":
			obj, ok := f.Value.(datasets.Object)
			if !ok {
				return r, fmt.Errorf(`"fields" is %s, want an object`, datasets.Kind(f.Value))
			}
			r.Fields, haveFields = obj, true
		default:
			return r, fmt.Errorf("unknown member %q", f.Name)
		}
	}
	if !haveFile || !haveFields {
		return r, fmt.Errorf("a row needs file and fields")
	}
	return r, nil
}
