package peft

import (
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
)

// appendPyJSON writes v as Python's json.dumps(v, indent=2, sort_keys=True)
// does at the given nesting depth. v holds decoded JSON (json.Number for
// numbers read from a file, so their spelling survives) or Go values we set:
// bool, int, float64, string, []string, []int, []any, map[string]any, nil.
func appendPyJSON(b []byte, v any, depth int) ([]byte, error) {
	indent := func(d int) []byte { return append([]byte{'\n'}, strings.Repeat("  ", d)...) }
	switch x := v.(type) {
	case nil:
		return append(b, "null"...), nil
	case bool:
		return strconv.AppendBool(b, x), nil
	case int:
		return strconv.AppendInt(b, int64(x), 10), nil
	case float64:
		return append(b, pyFloat(x)...), nil
	case json.Number:
		return append(b, x...), nil
	case string:
		return appendPyString(b, x), nil
	case []string:
		list := make([]any, len(x))
		for i, s := range x {
			list[i] = s
		}
		return appendPyJSON(b, list, depth)
	case []int:
		list := make([]any, len(x))
		for i, n := range x {
			list[i] = n
		}
		return appendPyJSON(b, list, depth)
	case []any:
		if len(x) == 0 {
			return append(b, "[]"...), nil
		}
		b = append(b, '[')
		for i, e := range x {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, indent(depth+1)...)
			var err error
			if b, err = appendPyJSON(b, e, depth+1); err != nil {
				return nil, err
			}
		}
		return append(append(b, indent(depth)...), ']'), nil
	case map[string]any:
		if len(x) == 0 {
			return append(b, "{}"...), nil
		}
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		b = append(b, '{')
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, indent(depth+1)...)
			b = appendPyString(b, k)
			b = append(b, ": "...)
			var err error
			if b, err = appendPyJSON(b, x[k], depth+1); err != nil {
				return nil, err
			}
		}
		return append(append(b, indent(depth)...), '}'), nil
	case map[string]int:
		m := make(map[string]any, len(x))
		for k, n := range x {
			m[k] = n
		}
		return appendPyJSON(b, m, depth)
	case map[string]float64:
		m := make(map[string]any, len(x))
		for k, f := range x {
			m[k] = f
		}
		return appendPyJSON(b, m, depth)
	}
	return nil, fmt.Errorf("peft: cannot write %T as JSON", v)
}

// pyFloat spells a float as Python's repr does: shortest round-trip digits,
// always a decimal point or exponent, exponent form below 1e-4 and from 1e16.
func pyFloat(f float64) string {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	}
	abs := math.Abs(f)
	if abs != 0 && (abs < 1e-4 || abs >= 1e16) {
		s := strconv.FormatFloat(f, 'e', -1, 64) // 1e-05, 1.5e+16: Python's spelling
		return s
	}
	s := strconv.FormatFloat(f, 'f', -1, 64)
	if !strings.ContainsAny(s, ".") {
		s += ".0"
	}
	return s
}

// appendPyString escapes as Python's json with ensure_ascii=True.
func appendPyString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	u4 := func(b []byte, r rune) []byte {
		return append(b, '\\', 'u', hex[r>>12&0xf], hex[r>>8&0xf], hex[r>>4&0xf], hex[r&0xf])
	}
	b = append(b, '"')
	for _, r := range s {
		switch {
		case r == '"':
			b = append(b, '\\', '"')
		case r == '\\':
			b = append(b, '\\', '\\')
		case r == '\n':
			b = append(b, '\\', 'n')
		case r == '\r':
			b = append(b, '\\', 'r')
		case r == '\t':
			b = append(b, '\\', 't')
		case r == '\b':
			b = append(b, '\\', 'b')
		case r == '\f':
			b = append(b, '\\', 'f')
		case r >= 0x20 && r <= 0x7e:
			b = append(b, byte(r))
		case r > 0xffff:
			r -= 0x10000
			b = u4(b, 0xd800+(r>>10))
			b = u4(b, 0xdc00+(r&0x3ff))
		default:
			b = u4(b, r)
		}
	}
	return append(b, '"')
}
