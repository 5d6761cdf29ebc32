package prompt

import (
	"bytes"
	"fmt"
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

// parallelReadBytes is the size from which ReadRows parses a file in parts
// on all cores.
const parallelReadBytes = 4 << 20

// ReadRows reads a RowsFormat file. Any line that is not a row is an error
// naming the file and line: the file is ours, so damage is not a bad row.
// The file is read whole and its rows' strings share that memory (no copy
// per string: most of the reading time otherwise); a large file is cut at
// line ends into one part per core, each parsed on its own.
func ReadRows(path string) ([]Row, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("rows: %w", err)
	}
	return ParseRows(data, path)
}

// ParseRows is ReadRows on a rows file's bytes (named name in errors). The
// rows' strings share data's memory: data must not change afterwards.
func ParseRows(data []byte, name string) ([]Row, error) {
	parts := 1
	if len(data) >= parallelReadBytes {
		parts = runtime.GOMAXPROCS(0)
	}
	bounds := lineBounds(data, parts)
	results := make([]rowsPart, len(bounds)-1)
	var wg sync.WaitGroup
	for i := range results {
		wg.Go(func() { results[i] = parseRows(data[bounds[i]:bounds[i+1]]) })
	}
	wg.Wait()
	n, line := 0, 0
	for _, r := range results {
		if r.err != nil {
			return nil, fmt.Errorf("rows: %s:%d: %w", name, line+r.errLine, r.err)
		}
		n += len(r.rows)
		line += r.lines
	}
	if len(results) == 1 {
		return results[0].rows, nil
	}
	rows := make([]Row, 0, n)
	for _, r := range results {
		rows = append(rows, r.rows...)
	}
	return rows, nil
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

// rowsPart is what parseRows made of one part of a rows file: its rows, its
// number of lines, and the first error with its line in the part.
type rowsPart struct {
	rows    []Row
	lines   int
	err     error
	errLine int
}

// parseRows parses the lines of one part of a rows file; blank lines are
// skipped.
func parseRows(data []byte) rowsPart {
	var out rowsPart
	out.rows = make([]Row, 0, bytes.Count(data, []byte{'\n'})+1)
	for len(data) > 0 {
		line := data
		if j := bytes.IndexByte(data, '\n'); j >= 0 {
			line, data = data[:j], data[j+1:]
		} else {
			data = nil
		}
		out.lines++
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		v, err := datasets.ParseJSONShared(line)
		var r Row
		if err == nil {
			o, ok := v.(datasets.Object)
			if !ok {
				err = fmt.Errorf("line holds a JSON %s, want an object", datasets.Kind(v))
			} else {
				r, err = rowOf(o)
			}
		}
		if err != nil {
			out.err, out.errLine = err, out.lines
			return out
		}
		out.rows = append(out.rows, r)
	}
	return out
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
