package prompt

import (
	"bytes"
	"fmt"
	"io"
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
// A large file is cut at line ends into one part per core, each parsed on
// its own (through a temporary copy: the JSON reader reads files); should a
// part fail, the whole file is read again in one piece so that the error
// names the file's own line.
func ReadRows(path string) ([]Row, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("rows: %w", err)
	}
	parts := runtime.GOMAXPROCS(0)
	if info.Size() < parallelReadBytes || parts < 2 {
		return readRows(path)
	}
	bounds, err := lineBounds(path, info.Size(), parts)
	if err != nil {
		return nil, err
	}
	results := make([][]Row, len(bounds)-1)
	errs := make([]error, len(bounds)-1)
	var wg sync.WaitGroup
	for i := range results {
		wg.Go(func() { results[i], errs[i] = readRowsPart(path, bounds[i], bounds[i+1]) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return readRows(path)
		}
	}
	n := 0
	for _, r := range results {
		n += len(r)
	}
	rows := make([]Row, 0, n)
	for _, r := range results {
		rows = append(rows, r...)
	}
	return rows, nil
}

// lineBounds cuts a file into about n parts that start at line starts.
func lineBounds(path string, size int64, n int) ([]int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("rows: %w", err)
	}
	defer f.Close()
	bounds := []int64{0}
	buf := make([]byte, 64<<10)
	for i := 1; i < n; i++ {
		at := max(size*int64(i)/int64(n), bounds[len(bounds)-1])
		for {
			k, err := f.ReadAt(buf, at)
			if j := bytes.IndexByte(buf[:k], '\n'); j >= 0 {
				at += int64(j) + 1
				break
			}
			at += int64(k)
			if err != nil {
				at = size
				break
			}
		}
		if at < size && at > bounds[len(bounds)-1] {
			bounds = append(bounds, at)
		}
	}
	return append(bounds, size), nil
}

// readRowsPart reads the rows between two offsets of a file.
func readRowsPart(path string, from, to int64) ([]Row, error) {
	src, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer src.Close()
	tmp, err := os.CreateTemp("", "eft-rows-part-*.jsonl")
	if err != nil {
		return nil, err
	}
	defer os.Remove(tmp.Name())
	_, err = io.Copy(tmp, io.NewSectionReader(src, from, to-from))
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	return readRows(tmp.Name())
}

func readRows(path string) ([]Row, error) {
	recs, rep, err := datasets.ReadFile(path, "json", nil)
	if err != nil {
		return nil, fmt.Errorf("rows %s: %w", path, err)
	}
	if rep.Rejected > 0 {
		return nil, fmt.Errorf("rows %s: %s", path, rep.Problems[0])
	}
	rows := make([]Row, len(recs))
	for i, rec := range recs {
		r, err := rowOf(rec.Fields)
		if err != nil {
			return nil, fmt.Errorf("rows %s: %s: %w", path, rec.Source, err)
		}
		rows[i] = r
	}
	return rows, nil
}

func rowOf(o datasets.Object) (Row, error) {
	var r Row
	ints := map[string]*int{"dataset": &r.Dataset, "line": &r.Source.Line, "row": &r.Source.Row}
	var haveFile, haveFields bool
	for _, f := range o {
		if p, ok := ints[f.Name]; ok {
			n, ok := f.Value.(int64)
			if !ok || n < 0 {
				return r, fmt.Errorf("%q is %s, want a non-negative integer", f.Name, datasets.Kind(f.Value))
			}
			*p = int(n)
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
