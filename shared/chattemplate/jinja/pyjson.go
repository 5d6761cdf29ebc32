package jinja

import (
	"sort"
	"strconv"
	"strings"

	"github.com/eftml/eft/shared/pyjson"
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
	scratch         []byte
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
		e.writeFloat(x)
	case string:
		e.writeString(x)
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
			key = string(pyjson.AppendFloat(nil, k))
		default:
			return errorf(TypeError, "keys must be str, int, float, bool or None, not %s", pyTypeName(k))
		}
		e.writeString(key)
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

// writeString and writeFloat spell through shared/pyjson, which every eft
// writer of Python's JSON shares; scratch is reused between calls.
func (e *jsonEncoder) writeString(s string) {
	e.scratch = pyjson.AppendString(e.scratch[:0], s, e.opts.EnsureASCII)
	e.b.Write(e.scratch)
}

func (e *jsonEncoder) writeFloat(f float64) {
	e.scratch = pyjson.AppendFloat(e.scratch[:0], f)
	e.b.Write(e.scratch)
}
