package datasets

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"unicode/utf8"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

var arrowFileMagic = []byte("ARROW1")

// readArrow reads an Arrow IPC file: the stream format that
// `datasets.save_to_disk` and the datasets cache write, or the random-access
// file format (recognized by its ARROW1 magic).
func readArrow(path, name string, c *collector) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	magic := make([]byte, len(arrowFileMagic))
	n, _ := io.ReadFull(f, magic)
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	row := 0
	if n == len(magic) && bytes.Equal(magic, arrowFileMagic) {
		fr, err := ipc.NewFileReader(f, ipc.WithAllocator(memory.DefaultAllocator))
		if err != nil {
			return fmt.Errorf("%s: not a readable Arrow file: %w", name, err)
		}
		defer fr.Close()
		for i := 0; i < fr.NumRecords(); i++ {
			rec, err := fr.RecordBatch(i)
			if err != nil {
				return fmt.Errorf("%s: record batch %d: %w", name, i, err)
			}
			row = emitRecordBatch(rec, name, row, c)
		}
		return nil
	}
	rr, err := ipc.NewReader(f, ipc.WithAllocator(memory.DefaultAllocator))
	if err != nil {
		return fmt.Errorf("%s: not a readable Arrow IPC stream: %w", name, err)
	}
	defer rr.Release()
	for rr.Next() {
		row = emitRecordBatch(rr.RecordBatch(), name, row, c)
	}
	if err := rr.Err(); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("%s: row %d: %w", name, row, err)
	}
	return nil
}

func emitRecordBatch(rec arrow.RecordBatch, name string, row int, c *collector) int {
	schema := rec.Schema()
	cols := rec.Columns()
	for i := 0; i < int(rec.NumRows()); i++ {
		fields := make(Object, len(cols))
		for j, col := range cols {
			fields[j] = Field{Name: schema.Field(j).Name, Value: arrowValue(col, i)}
		}
		c.row(fields, Source{File: name, Row: row})
		row++
	}
	return row
}

// arrowValue converts element i of an Arrow array to a row value.
func arrowValue(arr arrow.Array, i int) any {
	if arr.IsNull(i) {
		return nil
	}
	switch a := arr.(type) {
	case *array.Null:
		return nil
	case *array.Boolean:
		return a.Value(i)
	case *array.Int8:
		return int64(a.Value(i))
	case *array.Int16:
		return int64(a.Value(i))
	case *array.Int32:
		return int64(a.Value(i))
	case *array.Int64:
		return a.Value(i)
	case *array.Uint8:
		return int64(a.Value(i))
	case *array.Uint16:
		return int64(a.Value(i))
	case *array.Uint32:
		return int64(a.Value(i))
	case *array.Uint64:
		if v := a.Value(i); v <= math.MaxInt64 {
			return int64(v)
		} else {
			return float64(v)
		}
	case *array.Float16:
		return float64(a.Value(i).Float32())
	case *array.Float32:
		return float64(a.Value(i))
	case *array.Float64:
		return a.Value(i)
	case *array.String:
		return a.Value(i)
	case *array.LargeString:
		return a.Value(i)
	case *array.StringView:
		return a.Value(i)
	case *array.Binary:
		return binaryValue(a.Value(i))
	case *array.LargeBinary:
		return binaryValue(a.Value(i))
	case *array.FixedSizeBinary:
		return binaryValue(a.Value(i))
	case array.ListLike:
		start, end := a.ValueOffsets(i)
		values := a.ListValues()
		out := make([]any, 0, end-start)
		for j := start; j < end; j++ {
			out = append(out, arrowValue(values, int(j)))
		}
		return out
	case *array.Struct:
		st := a.DataType().(*arrow.StructType)
		obj := make(Object, a.NumField())
		for j := 0; j < a.NumField(); j++ {
			obj[j] = Field{Name: st.Field(j).Name, Value: arrowValue(a.Field(j), i)}
		}
		return obj
	case *array.Dictionary:
		return arrowValue(a.Dictionary(), a.GetValueIndex(i))
	default:
		// Dates, timestamps, decimals...: Arrow's own text form.
		return arr.ValueStr(i)
	}
}

// binaryValue keeps UTF-8 bytes as text and base64-encodes anything else, so
// every row value stays valid JSON.
func binaryValue(b []byte) any {
	if utf8.Valid(b) {
		return string(b)
	}
	return base64.StdEncoding.EncodeToString(b)
}
