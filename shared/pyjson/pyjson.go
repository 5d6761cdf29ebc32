// Package pyjson writes JSON byte for byte as Python's json module does, so
// files eft writes for Hugging Face tools (adapter_config.json, a sharded
// model's index, trainer_state.json) match what transformers and PEFT write,
// and templates' tojson matches Jinja's. It owns the spelling only: Python's
// repr of floats (shortest round-trip digits, positional for decimal
// exponents in [-4, 16), else e±XX), json.dumps' string escapes
// (ensure_ascii), its separators and indentation. Reading JSON is not here.
package pyjson

import (
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strconv"
	"unicode/utf8"
)

// Options are the json.dumps arguments eft's files use. Map keys are always
// written sorted (sort_keys=True): a Go map has no insertion order to keep.
type Options struct {
	// Indent is what one level of nesting adds (json.dumps' indent=2 is
	// "  "). "" writes one line (indent=None), with ", " between items; with
	// an indent items are separated by "," and a newline.
	Indent string
	// KeepNonASCII writes characters beyond ASCII as UTF-8
	// (ensure_ascii=False); by default they are \u escapes, as in Python.
	KeepNonASCII bool
}

// Marshal returns v as json.dumps(v, indent=..., sort_keys=True) writes it,
// with no trailing newline. v is built from nil, bool, int, int64, float64,
// json.Number (written as it is spelled, so numbers read from a file keep
// their form), string, []any, []string, []int, []int64, []float64 and maps
// from string to any of those scalars or to any.
func Marshal(v any, opts Options) ([]byte, error) {
	return Append(nil, v, opts)
}

// Append appends Marshal's encoding of v to b.
func Append(b []byte, v any, opts Options) ([]byte, error) {
	return appendValue(b, v, opts, 0)
}

func appendValue(b []byte, v any, o Options, depth int) ([]byte, error) {
	switch x := v.(type) {
	case nil:
		return append(b, "null"...), nil
	case bool:
		return strconv.AppendBool(b, x), nil
	case int:
		return strconv.AppendInt(b, int64(x), 10), nil
	case int64:
		return strconv.AppendInt(b, x, 10), nil
	case float64:
		return AppendFloat(b, x), nil
	case json.Number:
		return append(b, x...), nil
	case string:
		return AppendString(b, x, !o.KeepNonASCII), nil
	case []any:
		return appendArray(b, x, o, depth)
	case []string:
		return appendArray(b, x, o, depth)
	case []int:
		return appendArray(b, x, o, depth)
	case []int64:
		return appendArray(b, x, o, depth)
	case []float64:
		return appendArray(b, x, o, depth)
	case map[string]any:
		return appendObject(b, x, o, depth)
	case map[string]string:
		return appendObject(b, x, o, depth)
	case map[string]int:
		return appendObject(b, x, o, depth)
	case map[string]int64:
		return appendObject(b, x, o, depth)
	case map[string]float64:
		return appendObject(b, x, o, depth)
	}
	return b, fmt.Errorf("pyjson: cannot write %T as JSON", v)
}

// newline starts an item or a closing bracket at the given depth; on one
// line it writes nothing.
func newline(b []byte, o Options, depth int) []byte {
	if o.Indent == "" {
		return b
	}
	b = append(b, '\n')
	for range depth {
		b = append(b, o.Indent...)
	}
	return b
}

func itemSeparator(o Options) string {
	if o.Indent == "" {
		return ", "
	}
	return ","
}

func appendArray[E any](b []byte, items []E, o Options, depth int) ([]byte, error) {
	if len(items) == 0 {
		return append(b, "[]"...), nil
	}
	b = append(b, '[')
	for i, e := range items {
		if i > 0 {
			b = append(b, itemSeparator(o)...)
		}
		b = newline(b, o, depth+1)
		var err error
		if b, err = appendValue(b, e, o, depth+1); err != nil {
			return b, err
		}
	}
	return append(newline(b, o, depth), ']'), nil
}

func appendObject[V any](b []byte, m map[string]V, o Options, depth int) ([]byte, error) {
	if len(m) == 0 {
		return append(b, "{}"...), nil
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	// Byte order of UTF-8 is code point order, which is how Python sorts str.
	sort.Strings(keys)
	b = append(b, '{')
	for i, k := range keys {
		if i > 0 {
			b = append(b, itemSeparator(o)...)
		}
		b = newline(b, o, depth+1)
		b = AppendString(b, k, !o.KeepNonASCII)
		b = append(b, ": "...)
		var err error
		if b, err = appendValue(b, m[k], o, depth+1); err != nil {
			return b, err
		}
	}
	return append(newline(b, o, depth), '}'), nil
}

// AppendFloat appends f as json.dumps spells a float: repr's digits, and
// NaN, Infinity, -Infinity for the values JSON lacks.
func AppendFloat(b []byte, f float64) []byte {
	switch {
	case math.IsNaN(f):
		return append(b, "NaN"...)
	case math.IsInf(f, 1):
		return append(b, "Infinity"...)
	case math.IsInf(f, -1):
		return append(b, "-Infinity"...)
	}
	return AppendFloatRepr(b, f)
}

// AppendFloatRepr appends Python's repr(f): the shortest digits that read
// back as f, positional when the decimal exponent is in [-4, 16) and always
// with a fraction part there ("3.0"), else scientific with an exponent of at
// least two digits ("1e-05", "1e+16"); nan, inf and -inf.
func AppendFloatRepr(b []byte, f float64) []byte {
	switch {
	case math.IsNaN(f):
		return append(b, "nan"...)
	case math.IsInf(f, 1):
		return append(b, "inf"...)
	case math.IsInf(f, -1):
		return append(b, "-inf"...)
	}
	// Go's 'e' format already writes Python's exponent: a sign and at
	// least two digits.
	if abs := math.Abs(f); abs != 0 && (abs < 1e-4 || abs >= 1e16) {
		return strconv.AppendFloat(b, f, 'e', -1, 64)
	}
	start := len(b)
	b = strconv.AppendFloat(b, f, 'f', -1, 64)
	for _, c := range b[start:] {
		if c == '.' {
			return b
		}
	}
	return append(b, ".0"...)
}

// AppendString appends s quoted as Python's json module quotes it: \" \\ \n
// \r \t \b \f, \u00XX for the other control characters, and with
// ensureASCII DEL and every character beyond ASCII as \uXXXX (a surrogate
// pair above U+FFFF). Bytes that are not UTF-8 become U+FFFD.
func AppendString(b []byte, s string, ensureASCII bool) []byte {
	const hex = "0123456789abcdef"
	u4 := func(b []byte, r rune) []byte {
		return append(b, '\\', 'u', hex[r>>12&0xf], hex[r>>8&0xf], hex[r>>4&0xf], hex[r&0xf])
	}
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			i++
			switch {
			case c == '"':
				b = append(b, '\\', '"')
			case c == '\\':
				b = append(b, '\\', '\\')
			case c == '\n':
				b = append(b, '\\', 'n')
			case c == '\r':
				b = append(b, '\\', 'r')
			case c == '\t':
				b = append(b, '\\', 't')
			case c == '\b':
				b = append(b, '\\', 'b')
			case c == '\f':
				b = append(b, '\\', 'f')
			case c < 0x20 || c == 0x7f && ensureASCII:
				b = u4(b, rune(c))
			default:
				b = append(b, c)
			}
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		i += size
		switch {
		case !ensureASCII:
			b = utf8.AppendRune(b, r)
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
