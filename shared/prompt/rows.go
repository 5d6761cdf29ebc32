package prompt

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"unsafe"

	"github.com/eftml/eft/shared/datasets"
	"github.com/eftml/eft/shared/parallel"
)

// RowsFormat names the encoding of the normalized rows the ingest stage
// stores and the tokenizer stage reads: one record per row, each
//
//	uvarint length of the rest | uvarint dataset | uvarint line | uvarint row |
//	uvarint length + bytes of file | fields (datasets.AppendBinary of an object)
//
// dataset indexes the config's datasets (test_datasets for test rows), file,
// line and row say where the row was read (datasets.Source), and fields are
// the row's values, key order kept. The rows only pass between eft's own
// stages, so they are binary rather than JSON: the tokenizer stage decodes
// a row without scanning its text (v1 was JSON lines, ~3× the parsing cost).
const RowsFormat = "eft-rows/v2"

// Row is one dataset row on its way from ingest to tokenization.
type Row struct {
	Dataset int
	Source  datasets.Source
	Fields  datasets.Object
}

// AppendRow appends r's record (RowsFormat).
func AppendRow(dst []byte, r Row) []byte {
	// The length comes first: encode after room for the longest uvarint,
	// then move the record down next to its actual length.
	const room = binary.MaxVarintLen64
	start := len(dst)
	dst = append(dst, make([]byte, room)...)
	dst = binary.AppendUvarint(dst, uint64(r.Dataset))
	dst = binary.AppendUvarint(dst, uint64(r.Source.Line))
	dst = binary.AppendUvarint(dst, uint64(r.Source.Row))
	dst = binary.AppendUvarint(dst, uint64(len(r.Source.File)))
	dst = append(dst, r.Source.File...)
	dst = datasets.AppendBinary(dst, r.Fields)
	n := len(dst) - start - room
	head := binary.AppendUvarint(dst[start:start], uint64(n))
	copy(dst[start+len(head):], dst[start+room:])
	return dst[:start+len(head)+n]
}

// parallelReadBytes is the size from which a rows file is read and
// decoded in parts on all cores.
const parallelReadBytes = 4 << 20

// Rows is a rows file held in memory, each row decoded when asked for: the
// tokenizer stage decodes a block of rows on the core that then tokenizes
// them, while their bytes are in its cache, and keeps no decoded copy of the
// whole split. Decoded rows' strings share the file's memory (no copy per
// string), so the bytes must not change while rows are in use. A record
// that does not decode is an error naming the row and its byte offset when
// that row is asked for: the file is ours, so damage is not a bad row to skip.
type Rows struct {
	data  []byte
	name  string
	spans []rowSpan
}

// rowSpan is where one row's record body is in the file (after its
// length): data[start:end], or end < 0 for a length that runs past the end
// of the file (the last span; start is then where that length is).
type rowSpan struct{ start, end int }

// IndexRows finds the records of a RowsFormat file's bytes (named name in
// errors), without decoding them.
func IndexRows(data []byte, name string) *Rows {
	r := &Rows{data: data, name: name, spans: make([]rowSpan, 0, len(data)/256+1)}
	for at := 0; at < len(data); {
		n, k := binary.Uvarint(data[at:])
		if k <= 0 || n > uint64(len(data)-at-k) {
			r.spans = append(r.spans, rowSpan{start: at, end: -1})
			break
		}
		r.spans = append(r.spans, rowSpan{start: at + k, end: at + k + int(n)})
		at += k + int(n)
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
	parts := runtime.GOMAXPROCS(0)
	part := (len(data) + parts - 1) / parts
	errs := make([]error, parts)
	parallel.Chunks(len(data), part, parts, func(_, lo, hi int) bool {
		if _, err := f.ReadAt(data[lo:hi], int64(lo)); err != nil {
			errs[lo/part] = fmt.Errorf("%s: bytes %d to %d of %d: %w (did the file change while it was read?)", path, lo, hi, size, err)
		}
		return true
	})
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

// Row decodes row i (0 <= i < Len()).
func (r *Rows) Row(i int) (Row, error) { return r.RowIn(i, nil) }

// RowIn decodes row i into a (see datasets.DecodeBinaryArena): the row
// the previous call with a returned is then no longer valid. For loops
// that are done with each row before the next, which then allocate
// nothing for rows; a nil a is Row.
func (r *Rows) RowIn(i int, a *datasets.Arena) (Row, error) {
	s := r.spans[i]
	if s.end < 0 {
		return Row{}, fmt.Errorf("rows: %s: row %d (byte %d): its length runs past the end of the file (%d bytes): was it cut short?", r.name, i, s.start, len(r.data))
	}
	row, err := decodeRow(r.data[s.start:s.end], a)
	if err != nil {
		// Named by where its record starts (its length), as a cut one is.
		record := s.start - len(binary.AppendUvarint(nil, uint64(s.end-s.start)))
		return Row{}, fmt.Errorf("rows: %s: row %d (byte %d): %w", r.name, i, record, err)
	}
	return row, nil
}

// decodeRow decodes one record, its length already read, into a when not nil.
func decodeRow(rec []byte, a *datasets.Arena) (Row, error) {
	var row Row
	var head [4]uint64 // dataset, line, row, length of file
	for k := range head {
		v, n := binary.Uvarint(rec)
		if n <= 0 {
			return row, errors.New("the record ends in its header")
		}
		head[k], rec = v, rec[n:]
	}
	if head[0] > math.MaxInt32 || head[1] > math.MaxInt || head[2] > math.MaxInt || head[3] > uint64(len(rec)) {
		return row, fmt.Errorf("the header's numbers %v are out of range", head)
	}
	row.Dataset, row.Source.Line, row.Source.Row = int(head[0]), int(head[1]), int(head[2])
	if head[3] > 0 {
		row.Source.File = unsafe.String(&rec[0], int(head[3]))
	}
	v, rest, err := datasets.DecodeBinaryArena(rec[head[3]:], a)
	if err != nil {
		return row, fmt.Errorf("fields: %w", err)
	}
	fields, ok := v.(datasets.Object)
	if !ok {
		return row, fmt.Errorf("the fields are a %s, want an object", datasets.Kind(v))
	}
	if len(rest) > 0 {
		return row, fmt.Errorf("%d bytes follow the fields", len(rest))
	}
	row.Fields = fields
	return row, nil
}

// All decodes every row, on all cores for a large file; the error is the
// first bad row's.
func (r *Rows) All() ([]Row, error) {
	out := make([]Row, r.Len())
	workers := 1
	if len(r.data) >= parallelReadBytes {
		workers = 0 // every core
	}
	// Blocks are claimed in row order, so every block before a bad one is
	// decoded whole: the first error in block order is the first bad row's.
	const block = 1024
	errs := make([]error, (len(out)+block-1)/block)
	parallel.Chunks(len(out), block, workers, func(_, lo, hi int) bool {
		for i := lo; i < hi; i++ {
			var err error
			if out[i], err = r.Row(i); err != nil {
				errs[lo/block] = err
				return false
			}
		}
		return true
	})
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}
