package jinja

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

// JSONOptions are the arguments of Python's json.dumps that templates
// pass through tojson.
type JSONOptions struct {
	EnsureASCII bool
	// Indent is nil for a single line; otherwise the string each level is
	// indented with (json.dumps turns an int n into n spaces).
	Indent *string
	// ItemSep and KeySep default to ", " and ": " ("," and ": " with Indent).
	ItemSep, KeySep *string
	SortKeys        bool
}

// DumpJSON writes v exactly as Python's json.dumps(v, **opts) would.
func DumpJSON(v any, opts JSONOptions) (string, error) {
	itemSep, keySep := ", ", ": "
	if opts.Indent != nil {
		itemSep = ","
	}
	if opts.ItemSep != nil {
		itemSep = *opts.ItemSep
	}
	if opts.KeySep != nil {
		keySep = *opts.KeySep
	}
	e := jsonEncoder{opts: opts, itemSep: itemSep, keySep: keySep}
	if err := e.encode(v, 0); err != nil {
		return "", err
	}
	return e.b.String(), nil
}

type jsonEncoder struct {
	b               strings.Builder
	opts            JSONOptions
	itemSep, keySep string
	depth           int
}

func (e *jsonEncoder) newline(level int) {
	if e.opts.Indent == nil {
		return
	}
	e.b.WriteByte('\n')
	for range level {
		e.b.WriteString(*e.opts.Indent)
	}
}

func (e *jsonEncoder) encode(v any, level int) error {
	if e.b.Len() > 64<<20 {
		return errorf(RuntimeError, "JSON output too large")
	}
	switch x := v.(type) {
	case nil:
		e.b.WriteString("null")
	case bool:
		if x {
			e.b.WriteString("true")
		} else {
			e.b.WriteString("false")
		}
	case int64:
		e.b.WriteString(strconv.FormatInt(x, 10))
	case float64:
		e.b.WriteString(jsonFloat(x))
	case string:
		writeJSONString(&e.b, x, e.opts.EnsureASCII)
	case []any:
		return e.encodeSeq(x, level)
	case Tuple:
		return e.encodeSeq(x, level)
	case *Dict:
		return e.encodeDict(x, level)
	default:
		return errorf(TypeError, "Object of type %s is not JSON serializable", pyTypeName(v))
	}
	return nil
}

func (e *jsonEncoder) enter() error {
	e.depth++
	if e.depth > 500 {
		return errorf(RecursionError, "maximum recursion depth exceeded while encoding a JSON object")
	}
	return nil
}

// RecursionError is Python's RecursionError.
const RecursionError ErrorKind = "RecursionError"

func (e *jsonEncoder) encodeSeq(items []any, level int) error {
	if len(items) == 0 {
		e.b.WriteString("[]")
		return nil
	}
	if err := e.enter(); err != nil {
		return err
	}
	e.b.WriteByte('[')
	for i, it := range items {
		if i > 0 {
			e.b.WriteString(e.itemSep)
		}
		e.newline(level + 1)
		if err := e.encode(it, level+1); err != nil {
			return err
		}
	}
	e.newline(level)
	e.b.WriteByte(']')
	e.depth--
	return nil
}

func (e *jsonEncoder) encodeDict(d *Dict, level int) error {
	if d.Len() == 0 {
		e.b.WriteString("{}")
		return nil
	}
	if err := e.enter(); err != nil {
		return err
	}
	order := make([]int, d.Len())
	for i := range order {
		order[i] = i
	}
	if e.opts.SortKeys {
		var err error
		sort.SliceStable(order, func(a, b int) bool {
			c, cerr := pyCompare("<", d.keys[order[a]], d.keys[order[b]])
			if cerr != nil && err == nil {
				err = cerr
			}
			return c < 0
		})
		if err != nil {
			return err
		}
	}
	e.b.WriteByte('{')
	for n, i := range order {
		if n > 0 {
			e.b.WriteString(e.itemSep)
		}
		e.newline(level + 1)
		var key string
		switch k := d.keys[i].(type) {
		case string:
			key = k
		case nil:
			key = "null"
		case bool:
			key = map[bool]string{true: "true", false: "false"}[k]
		case int64:
			key = strconv.FormatInt(k, 10)
		case float64:
			key = jsonFloat(k)
		default:
			return errorf(TypeError, "keys must be str, int, float, bool or None, not %s", pyTypeName(k))
		}
		writeJSONString(&e.b, key, e.opts.EnsureASCII)
		e.b.WriteString(e.keySep)
		if err := e.encode(d.vals[i], level+1); err != nil {
			return err
		}
	}
	e.newline(level)
	e.b.WriteByte('}')
	e.depth--
	return nil
}

func jsonFloat(f float64) string {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	}
	return pyFloatRepr(f)
}

// writeJSONString quotes s as Python's json module does: short escapes for
// \" \\ \n \r \t \b \f, \u00XX for other control characters, and with
// ensureASCII every non-ASCII character as \uXXXX (surrogate pairs above
// U+FFFF).
func writeJSONString(b *strings.Builder, s string, ensureASCII bool) {
	b.WriteByte('"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			i++
			switch c {
			case '"':
				b.WriteString(`\"`)
			case '\\':
				b.WriteString(`\\`)
			case '\n':
				b.WriteString(`\n`)
			case '\r':
				b.WriteString(`\r`)
			case '\t':
				b.WriteString(`\t`)
			case '\b':
				b.WriteString(`\b`)
			case '\f':
				b.WriteString(`\f`)
			default:
				if c < 0x20 || ensureASCII && c == 0x7f {
					fmt.Fprintf(b, `\u%04x`, c)
				} else {
					b.WriteByte(c)
				}
			}
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		i += size
		if !ensureASCII {
			b.WriteRune(r)
			continue
		}
		if r >= 0x10000 {
			r -= 0x10000
			fmt.Fprintf(b, `\u%04x\u%04x`, 0xd800+(r>>10), 0xdc00+(r&0x3ff))
		} else {
			fmt.Fprintf(b, `\u%04x`, r)
		}
	}
	b.WriteByte('"')
}
