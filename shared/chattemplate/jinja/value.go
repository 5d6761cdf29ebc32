package jinja

import (
	"fmt"
	"maps"
	"math"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Template values are Go values standing for Python objects:
//
//	nil        None
//	bool       bool
//	int64      int
//	float64    float
//	string     str
//	[]any      list
//	Tuple      tuple
//	*Dict      dict (insertion-ordered, as Python's)
//	*Namespace jinja2's namespace()
//	*Callable  a function, filter-less global or bound method
//	*Macro     a template macro
//	*loopContext, Undefined
//
// Values from the caller are converted with FromGo.

// Tuple is a Python tuple.
type Tuple []any

// Undefined is Jinja2's default Undefined: printing it gives "", iterating
// it gives nothing, it is false, and most other uses fail with a message
// naming what was missing.
type Undefined struct {
	Name   string // missing variable, attribute, or printed key
	Obj    any    // the object that lacked it, when HasObj
	HasObj bool
	Hint   string // overrides the message when set
	Err    ErrorKind
}

func (u Undefined) message() string {
	if u.Hint != "" {
		return u.Hint
	}
	if !u.HasObj {
		return fmt.Sprintf("'%s' is undefined", u.Name)
	}
	return fmt.Sprintf("%s has no attribute %s", pyRepr(objectTypeRepr(u.Obj)), pyRepr(u.Name))
}

func (u Undefined) fail() error {
	kind := u.Err
	if kind == "" {
		kind = UndefinedError
	}
	return &Error{Kind: kind, Msg: u.message()}
}

// missingElement is the Undefined of an index a sequence does not have.
func missingElement(obj, key any) Undefined {
	return Undefined{HasObj: true, Obj: obj, Hint: fmt.Sprintf("%s has no element %s", objectTypeRepr(obj), pyReprValue(key))}
}

// Namespace is what namespace() returns: attributes that can be assigned
// with {% set ns.attr = ... %} from inside loops.
type Namespace struct{ attrs *Dict }

// KeywordArg is one name=value argument of a call.
type KeywordArg struct {
	Name  string
	Value any
}

// Callable is a function value: a global such as range or
// raise_exception, or a bound method such as "text".strip.
type Callable struct {
	Name string
	Fn   func(args []any, kwargs []KeywordArg) (any, error)
	// Volatile marks a function whose result changes from one render to
	// the next (a clock): a Probe counts calling it as looking.
	Volatile bool
}

// Dict is a Python dict: keys in insertion order.
type Dict struct {
	keys  []any
	vals  []any
	hkeys []any       // hashKey of each key
	index map[any]int // hashKey → position, once the dict outgrows a scan
}

// dictScan is the size up to which a dict finds keys by scanning hkeys:
// messages have a handful of keys, and a map each would dominate a render.
const dictScan = 8

// NewDict returns an empty dict.
func NewDict() *Dict { return &Dict{} }

// newDictCap returns an empty dict with room for n entries in one allocation.
func newDictCap(n int) *Dict {
	room := make([]any, 3*n)
	return &Dict{keys: room[:0:n], vals: room[n : n : 2*n], hkeys: room[2*n : 2*n : 3*n]}
}

// Len is the number of entries.
func (d *Dict) Len() int { return len(d.keys) }

// Keys returns the keys in order.
func (d *Dict) Keys() []any { return d.keys }

func (d *Dict) find(h any) (int, bool) {
	if d.index != nil {
		i, ok := d.index[h]
		return i, ok
	}
	for i, k := range d.hkeys {
		if k == h {
			return i, true
		}
	}
	return 0, false
}

// Set inserts or replaces key; a new key goes last.
func (d *Dict) Set(key, val any) {
	h := hashKey(key)
	if i, ok := d.find(h); ok {
		d.vals[i] = val
		return
	}
	d.keys = append(d.keys, key)
	d.vals = append(d.vals, val)
	d.hkeys = append(d.hkeys, h)
	if d.index != nil {
		d.index[h] = len(d.keys) - 1
	} else if len(d.keys) > dictScan {
		d.index = make(map[any]int, 2*len(d.keys))
		for i, k := range d.hkeys {
			d.index[k] = i
		}
	}
}

// Get returns the value of key.
func (d *Dict) Get(key any) (any, bool) {
	if d == nil {
		return nil, false
	}
	i, ok := d.find(hashKey(key))
	if !ok {
		return nil, false
	}
	return d.vals[i], true
}

// At returns the i-th entry.
func (d *Dict) At(i int) (any, any) { return d.keys[i], d.vals[i] }

func (d *Dict) copy() *Dict {
	c := &Dict{keys: slices.Clone(d.keys), vals: slices.Clone(d.vals), hkeys: slices.Clone(d.hkeys)}
	if d.index != nil {
		c.index = maps.Clone(d.index)
	}
	return c
}

type noneKey struct{}

type undefinedKey struct{}

type tupleKey string

// hashKey maps a value to a Go map key with Python's equality for dict
// keys: True == 1 == 1.0.
func hashKey(v any) any {
	switch x := v.(type) {
	case nil:
		return noneKey{}
	case bool:
		if x {
			return int64(1)
		}
		return int64(0)
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1<<62 {
			return int64(x)
		}
		return x
	case int64, string:
		return x
	case Tuple:
		return tupleKey(pyReprValue(x))
	case Undefined:
		return undefinedKey{} // every Undefined hashes and compares alike
	}
	return fmt.Sprintf("%p", v)
}

// ObjectLike is an ordered JSON object supplied by the caller, such as a
// dataset row: FromGo keeps its key order.
type ObjectLike interface {
	Keys() []string
	Get(name string) (any, bool)
}

// FromGo converts a caller's value into a template value: nil, bool, ints,
// floats, strings, slices, ObjectLike values (key order kept),
// map[string]any (keys sorted, since Go maps have no order), *Dict and the
// other template types as they are.
func FromGo(v any) any {
	switch x := v.(type) {
	case nil, bool, int64, float64, string, *Dict, Tuple, *Namespace, *Callable, *Macro, Undefined, *Iterator:
		return x
	case int:
		return int64(x)
	case int32:
		return int64(x)
	case float32:
		return float64(x)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = FromGo(e)
		}
		return out
	case []string:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = e
		}
		return out
	case ObjectLike:
		keys := x.Keys()
		d := newDictCap(len(keys))
		for _, k := range keys {
			e, _ := x.Get(k)
			d.Set(k, FromGo(e))
		}
		return d
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		d := NewDict()
		for _, k := range keys {
			d.Set(k, FromGo(x[k]))
		}
		return d
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Slice, reflect.Array:
		out := make([]any, rv.Len())
		for i := range out {
			out[i] = FromGo(rv.Index(i).Interface())
		}
		return out
	case reflect.Map:
		if rv.Type().Key().Kind() == reflect.String {
			keys := rv.MapKeys()
			sort.Slice(keys, func(i, j int) bool { return keys[i].String() < keys[j].String() })
			d := NewDict()
			for _, k := range keys {
				d.Set(k.String(), FromGo(rv.MapIndex(k).Interface()))
			}
			return d
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return rv.Int()
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return int64(rv.Uint())
	case reflect.Float32, reflect.Float64:
		return rv.Float()
	case reflect.String:
		return rv.String()
	case reflect.Bool:
		return rv.Bool()
	}
	return Undefined{Hint: fmt.Sprintf("unsupported value of Go type %T", v)}
}

// objectTypeRepr names a value's type the way Jinja2's error messages do.
func objectTypeRepr(v any) string {
	if v == nil {
		return "None"
	}
	switch v.(type) {
	case *Namespace:
		return "jinja2.utils.Namespace object"
	case *loopContext:
		return "jinja2.runtime.LoopContext object"
	case *Macro:
		return "jinja2.runtime.Macro object"
	case Undefined:
		return "jinja2.runtime.Undefined object"
	}
	return pyTypeName(v) + " object"
}

// pyTypeName is Python's type(v).__name__.
func pyTypeName(v any) string {
	switch x := v.(type) {
	case nil:
		return "NoneType"
	case bool:
		return "bool"
	case int64:
		return "int"
	case float64:
		return "float"
	case string:
		return "str"
	case []any:
		return "list"
	case Tuple:
		return "tuple"
	case *Dict:
		return "dict"
	case *Namespace:
		return "Namespace"
	case *Callable:
		return "builtin_function_or_method"
	case *Macro:
		return "Macro"
	case *loopContext:
		return "LoopContext"
	case Undefined:
		return "Undefined"
	case *Iterator:
		return x.typeName
	}
	return fmt.Sprintf("%T", v)
}

// truthy is Python's bool(v).
func truthy(v any) bool {
	switch x := v.(type) {
	case nil:
		return false
	case bool:
		return x
	case int64:
		return x != 0
	case float64:
		return x != 0
	case string:
		return x != ""
	case []any:
		return len(x) > 0
	case Tuple:
		return len(x) > 0
	case *Dict:
		return x.Len() > 0
	case Undefined:
		return false
	case *Iterator:
		return !x.view || len(x.items) > 0
	}
	return true
}

// pyStr is Python's str(v) as Jinja2 prints it.
func pyStr(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case Undefined:
		return ""
	}
	var b strings.Builder
	writeRepr(&b, v, false, 0)
	return b.String()
}

// pyReprValue is Python's repr(v).
func pyReprValue(v any) string {
	var b strings.Builder
	writeRepr(&b, v, true, 0)
	return b.String()
}

// maxReprDepth stops repr of a namespace that contains itself (Python
// would raise RecursionError; we print "..." rather than overflow the
// stack).
const maxReprDepth = 200

func writeRepr(b *strings.Builder, v any, quote bool, depth int) {
	if depth > maxReprDepth {
		b.WriteString("...")
		return
	}
	switch x := v.(type) {
	case nil:
		b.WriteString("None")
	case bool:
		if x {
			b.WriteString("True")
		} else {
			b.WriteString("False")
		}
	case int64:
		b.WriteString(strconv.FormatInt(x, 10))
	case float64:
		b.WriteString(pyFloatRepr(x))
	case string:
		if quote {
			b.WriteString(pyRepr(x))
		} else {
			b.WriteString(x)
		}
	case []any:
		b.WriteByte('[')
		for i, e := range x {
			if i > 0 {
				b.WriteString(", ")
			}
			writeRepr(b, e, true, depth+1)
		}
		b.WriteByte(']')
	case Tuple:
		b.WriteByte('(')
		for i, e := range x {
			if i > 0 {
				b.WriteString(", ")
			}
			writeRepr(b, e, true, depth+1)
		}
		if len(x) == 1 {
			b.WriteByte(',')
		}
		b.WriteByte(')')
	case *Dict:
		b.WriteByte('{')
		for i := range x.keys {
			if i > 0 {
				b.WriteString(", ")
			}
			writeRepr(b, x.keys[i], true, depth+1)
			b.WriteString(": ")
			writeRepr(b, x.vals[i], true, depth+1)
		}
		b.WriteByte('}')
	case *Namespace:
		b.WriteString("<Namespace ")
		writeRepr(b, x.attrs, true, depth+1)
		b.WriteByte('>')
	case Undefined:
		if quote {
			b.WriteString("Undefined")
		}
	case *Callable:
		fmt.Fprintf(b, "<built-in function %s>", x.Name)
	case *Macro:
		fmt.Fprintf(b, "<Macro '%s'>", x.name)
	case *loopContext:
		fmt.Fprintf(b, "<LoopContext %d/%d>", x.index+1, len(x.items))
	case *Iterator:
		x.repr(b, depth)
	default:
		fmt.Fprintf(b, "%v", x)
	}
}

// pyFloatRepr is Python's repr(float): the shortest digits that read back
// exactly, fixed notation for exponents in [-4, 16), always a fraction part.
func pyFloatRepr(f float64) string {
	switch {
	case math.IsInf(f, 1):
		return "inf"
	case math.IsInf(f, -1):
		return "-inf"
	case math.IsNaN(f):
		return "nan"
	}
	e := strconv.FormatFloat(f, 'e', -1, 64)
	exp, _ := strconv.Atoi(e[strings.IndexByte(e, 'e')+1:])
	if exp < -4 || exp >= 16 {
		return e
	}
	s := strconv.FormatFloat(f, 'f', -1, 64)
	if !strings.ContainsAny(s, ".") {
		s += ".0"
	}
	return s
}

// pyRepr is Python's repr(str).
func pyRepr(s string) string {
	q := byte('\'')
	if strings.IndexByte(s, '\'') >= 0 && strings.IndexByte(s, '"') < 0 {
		q = '"'
	}
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte(q)
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		i += size
		switch {
		case r == '\\' || r == rune(q):
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, r)
		case r < 0x80 || unicode.IsPrint(r):
			b.WriteRune(r)
		case r <= 0xff:
			fmt.Fprintf(&b, `\x%02x`, r)
		case r <= 0xffff:
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			fmt.Fprintf(&b, `\U%08x`, r)
		}
	}
	b.WriteByte(q)
	return b.String()
}

// isPySpace is Python's str.isspace for one character.
func isPySpace(r rune) bool {
	switch r {
	case ' ', '\t', '\n', '\r', '\v', '\f', 0x1c, 0x1d, 0x1e, 0x1f, 0x85:
		return true
	}
	return r > 0x7f && unicode.IsSpace(r) || r > 0x7f && unicode.Is(unicode.Zs, r)
}

func isAllPySpace(s string) bool {
	for _, r := range s {
		if !isPySpace(r) {
			return false
		}
	}
	return true
}

func trimRightPySpace(s string) string { return strings.TrimRightFunc(s, isPySpace) }

func trimLeftPySpace(s string) string { return strings.TrimLeftFunc(s, isPySpace) }

func isIdentStart(r rune) bool { return r == '_' || unicode.IsLetter(r) }

// Str is Python's str(v) as Jinja2 prints it.
func Str(v any) string { return pyStr(v) }

// Repr is Python's repr(v).
func Repr(v any) string { return pyReprValue(v) }

// Truthy is Python's bool(v).
func Truthy(v any) bool { return truthy(v) }

// Sequence returns the items of a list or tuple.
func Sequence(v any) ([]any, bool) {
	switch x := v.(type) {
	case []any:
		return x, true
	case Tuple:
		return x, true
	}
	return nil, false
}

// TypeName is Python's type(v).__name__.
func TypeName(v any) string { return pyTypeName(v) }
