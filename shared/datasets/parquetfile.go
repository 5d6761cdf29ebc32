package datasets

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"sort"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/format"
)

// readParquet reads every row of a Parquet file (all row groups) with
// parquet-go, keeping the column order of the file's schema.
func readParquet(path, name string, c *collector) (err error) {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	// A corrupt file can trip parquet-go's decoders; report it as a bad file
	// rather than take the process down.
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%s: not a readable Parquet file: %v", name, r)
		}
	}()
	pf, err := parquet.OpenFile(f, st.Size())
	if err != nil {
		return fmt.Errorf("%s: not a readable Parquet file: %w", name, err)
	}
	root := pf.Root()
	reader := parquet.NewReader(pf)
	defer reader.Close()
	for row := 0; ; row++ {
		var v any
		if err := reader.Read(&v); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("%s: row %d: %w", name, row, err)
		}
		m, ok := v.(map[string]any)
		if !ok {
			return fmt.Errorf("%s: row %d: expected a group, got %T", name, row, v)
		}
		fields := make(Object, 0, len(root.Fields()))
		for _, col := range root.Fields() {
			fields = append(fields, Field{Name: col.Name(), Value: parquetValue(col, m[col.Name()])})
		}
		c.row(fields, Source{File: name, Row: row})
	}
}

// parquetValue converts what parquet-go reconstructs for one schema node into
// a row value, ordering struct members as the schema does.
func parquetValue(node parquet.Node, v any) any {
	switch x := v.(type) {
	case nil:
		return nil
	case bool:
		return x
	case int32:
		return int64(x)
	case int64:
		return x
	case uint32:
		return int64(x)
	case uint64:
		if x <= math.MaxInt64 {
			return int64(x)
		}
		return float64(x)
	case int:
		return int64(x)
	case float32:
		return float64(x)
	case float64:
		return x
	case string:
		return x
	case []byte:
		return binaryValue(x)
	case []any:
		elem := listElement(node)
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = parquetValue(elem, e)
		}
		return out
	case map[string]any:
		if node != nil && !node.Leaf() && !isParquetMap(node) {
			obj := make(Object, 0, len(x))
			for _, f := range node.Fields() {
				obj = append(obj, Field{Name: f.Name(), Value: parquetValue(f, x[f.Name()])})
			}
			return obj
		}
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		obj := make(Object, 0, len(x))
		for _, k := range keys {
			obj = append(obj, Field{Name: k, Value: parquetValue(nil, x[k])})
		}
		return obj
	default:
		return fmt.Sprint(x)
	}
}

// listElement finds the schema node of a list's elements: the LIST logical
// type's group/repeated-group/element nesting, or a bare repeated field.
func listElement(node parquet.Node) parquet.Node {
	if node == nil {
		return nil
	}
	if lt := node.Type().LogicalType(); lt != nil && isLogical[*format.ListType](lt) && !node.Leaf() && len(node.Fields()) == 1 {
		repeated := node.Fields()[0]
		if !repeated.Leaf() && len(repeated.Fields()) == 1 {
			return repeated.Fields()[0]
		}
		return repeated
	}
	return node
}

func isParquetMap(node parquet.Node) bool {
	lt := node.Type().LogicalType()
	return lt != nil && isLogical[*format.MapType](lt)
}

func isLogical[T format.LogicalTypeValue](lt *format.LogicalType) bool {
	_, ok := lt.Value.(T)
	return ok
}
