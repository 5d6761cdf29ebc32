package jinja

import (
	"math"
	"sort"
	"strconv"
	"strings"
	"unicode"
)

type builtinFilter func(r *renderer, v any, args []any, kwargs []KeywordArg) (any, error)

type builtinTest func(r *renderer, v any, args []any) (any, error)

var (
	builtinFilters map[string]builtinFilter
	builtinTests   map[string]builtinTest
	builtinGlobals map[string]any
)

// maxRange is the Jinja2 sandbox's limit on range().
const maxRange = 100000

func init() {
	builtinGlobals = map[string]any{
		"range":     &Callable{Name: "range", Fn: globalRange},
		"dict":      &Callable{Name: "dict", Fn: globalDict},
		"namespace": &Callable{Name: "namespace", Fn: globalNamespace},
		"joiner":    &Callable{Name: "joiner", Fn: globalJoiner},
		"cycler":    &Callable{Name: "cycler", Fn: globalCycler},
	}
	builtinFilters = map[string]builtinFilter{
		"abs":         filterAbs,
		"attr":        filterAttr,
		"batch":       lazy("do_batch", filterBatch),
		"capitalize":  strFilter(pyCapitalize),
		"center":      filterCenter,
		"count":       filterLength,
		"d":           filterDefault,
		"default":     filterDefault,
		"dictsort":    filterDictsort,
		"e":           filterEscape,
		"escape":      filterEscape,
		"first":       filterFirst,
		"float":       filterFloat,
		"forceescape": filterEscape,
		"format":      filterFormat,
		"indent":      filterIndent,
		"int":         filterInt,
		"items":       lazy("do_items", filterItems),
		"join":        filterJoin,
		"last":        filterLast,
		"length":      filterLength,
		"list":        filterList,
		"lower":       strFilter(pyLower),
		"map":         lazy("sync_do_map", filterMap),
		"max":         filterMinMax(1),
		"min":         filterMinMax(-1),
		"reject":      lazy("select_or_reject", filterSelect(false, false)),
		"rejectattr":  lazy("select_or_reject", filterSelect(false, true)),
		"replace":     filterReplace,
		"reverse":     filterReverse,
		"round":       filterRound,
		"safe":        filterString,
		"select":      lazy("select_or_reject", filterSelect(true, false)),
		"selectattr":  lazy("select_or_reject", filterSelect(true, true)),
		"sort":        filterSort,
		"string":      filterString,
		"striptags":   filterStriptags,
		"sum":         filterSum,
		"title":       strFilter(pyTitleFilter),
		"tojson":      filterTojsonJinja,
		"trim":        filterTrim,
		"truncate":    filterTruncate,
		"unique":      lazy("sync_do_unique", filterUnique),
		"upper":       strFilter(pyUpper),
		"wordcount":   filterWordcount,
	}
	builtinTests = map[string]builtinTest{
		"odd":         parityTest(1),
		"even":        parityTest(0),
		"divisibleby": testDivisibleBy,
		"defined":     func(_ *renderer, v any, _ []any) (any, error) { _, u := v.(Undefined); return !u, nil },
		"undefined":   func(_ *renderer, v any, _ []any) (any, error) { _, u := v.(Undefined); return u, nil },
		"none":        func(_ *renderer, v any, _ []any) (any, error) { return v == nil, nil },
		"boolean":     func(_ *renderer, v any, _ []any) (any, error) { _, ok := v.(bool); return ok, nil },
		"false":       func(_ *renderer, v any, _ []any) (any, error) { b, ok := v.(bool); return ok && !b, nil },
		"true":        func(_ *renderer, v any, _ []any) (any, error) { b, ok := v.(bool); return ok && b, nil },
		"integer":     func(_ *renderer, v any, _ []any) (any, error) { _, ok := v.(int64); return ok, nil },
		"float":       func(_ *renderer, v any, _ []any) (any, error) { _, ok := v.(float64); return ok, nil },
		"number": func(_ *renderer, v any, _ []any) (any, error) {
			_, _, _, ok := number(v)
			return ok, nil
		},
		"string":   func(_ *renderer, v any, _ []any) (any, error) { _, ok := v.(string); return ok, nil },
		"mapping":  func(_ *renderer, v any, _ []any) (any, error) { _, ok := v.(*Dict); return ok, nil },
		"sequence": testSequence,
		"iterable": testIterable,
		"callable": testCallable,
		"sameas":   testSameAs,
		"escaped":  func(_ *renderer, v any, _ []any) (any, error) { return false, nil },
		"lower": func(_ *renderer, v any, _ []any) (any, error) {
			return pyIsCased(pyStr(v), unicode.IsLower), nil
		},
		"upper": func(_ *renderer, v any, _ []any) (any, error) {
			return pyIsCased(pyStr(v), unicode.IsUpper), nil
		},
		"in": func(_ *renderer, v any, args []any) (any, error) {
			if len(args) != 1 {
				return nil, errorf(TypeError, "test_in() missing 1 required positional argument: 'seq'")
			}
			return contains(args[0], v)
		},
		"filter": func(r *renderer, v any, _ []any) (any, error) {
			s, _ := v.(string)
			_, ok := builtinFilters[s]
			if !ok {
				_, ok = r.env.Filters[s]
			}
			return ok, nil
		},
		"test": func(_ *renderer, v any, _ []any) (any, error) {
			s, _ := v.(string)
			_, ok := builtinTests[s]
			return ok, nil
		},
	}
	for _, op := range []struct {
		names []string
		op    string
	}{
		{[]string{"==", "eq", "equalto"}, "=="},
		{[]string{"!=", "ne"}, "!="},
		{[]string{">", "gt", "greaterthan"}, ">"},
		{[]string{">=", "ge"}, ">="},
		{[]string{"<", "lt", "lessthan"}, "<"},
		{[]string{"<=", "le"}, "<="},
	} {
		cmpOp := op.op
		t := func(_ *renderer, v any, args []any) (any, error) {
			if len(args) != 1 {
				return nil, errorf(TypeError, "comparison test takes exactly one argument")
			}
			return compare(cmpOp, v, args[0])
		}
		for _, n := range op.names {
			builtinTests[n] = t
		}
	}
}

// argument binds Python-style parameters: the i-th positional argument or
// the keyword of that name, or def.
func argument(args []any, kwargs []KeywordArg, i int, name string, def any) any {
	for _, k := range kwargs {
		if k.Name == name {
			return k.Value
		}
	}
	if i >= 0 && i < len(args) {
		return args[i]
	}
	return def
}

func checkArgs(fn string, args []any, kwargs []KeywordArg, names ...string) error {
	if len(args) > len(names) {
		return errorf(TypeError, "%s() takes at most %d arguments (%d given)", fn, len(names), len(args))
	}
	for _, k := range kwargs {
		found := false
		for _, n := range names {
			if n == k.Name {
				found = true
			}
		}
		if !found {
			return errorf(TypeError, "%s() got an unexpected keyword argument '%s'", fn, k.Name)
		}
	}
	return nil
}

// ---- globals

func globalRange(args []any, kwargs []KeywordArg) (any, error) {
	var ints [3]int64
	if len(args) == 0 || len(args) > 3 {
		return nil, errorf(TypeError, "range expected at most 3 arguments, got %d", len(args))
	}
	for i, a := range args {
		n, _, isInt, ok := number(a)
		if !ok || !isInt {
			if u, isU := a.(Undefined); isU {
				return nil, u.fail()
			}
			return nil, errorf(TypeError, "'%s' object cannot be interpreted as an integer", pyTypeName(a))
		}
		ints[i] = n
	}
	start, stop, step := int64(0), ints[0], int64(1)
	if len(args) >= 2 {
		start, stop = ints[0], ints[1]
	}
	if len(args) == 3 {
		step = ints[2]
	}
	if step == 0 {
		return nil, errorf(ValueError, "range() arg 3 must not be zero")
	}
	var n int64
	if step > 0 && stop > start {
		n = (stop - start + step - 1) / step
	} else if step < 0 && stop < start {
		n = (start - stop - step - 1) / -step
	}
	if n > maxRange {
		return nil, errorf(OverflowError, "Range too big. The sandbox blocks ranges larger than MAX_RANGE (%d).", maxRange)
	}
	out := make([]any, n)
	for i := range out {
		out[i] = start + int64(i)*step
	}
	return out, nil
}

func globalDict(args []any, kwargs []KeywordArg) (any, error) {
	d := NewDict()
	if len(args) > 1 {
		return nil, errorf(TypeError, "dict expected at most 1 argument, got %d", len(args))
	}
	if len(args) == 1 {
		if err := dictUpdate(d, args[0]); err != nil {
			return nil, err
		}
	}
	for _, k := range kwargs {
		d.Set(k.Name, k.Value)
	}
	return d, nil
}

func dictUpdate(d *Dict, src any) error {
	switch s := src.(type) {
	case *Dict:
		for i := range s.keys {
			d.Set(s.keys[i], s.vals[i])
		}
		return nil
	case Undefined:
		return s.fail()
	}
	items, err := iterate(src)
	if err != nil {
		return err
	}
	for _, it := range items {
		kv, err := unpack(it, 2)
		if err != nil {
			return errorf(ValueError, "dictionary update sequence element has wrong length")
		}
		if err := checkHashable(kv[0]); err != nil {
			return err
		}
		d.Set(kv[0], kv[1])
	}
	return nil
}

func globalNamespace(args []any, kwargs []KeywordArg) (any, error) {
	d, err := globalDict(args, kwargs)
	if err != nil {
		return nil, err
	}
	return &Namespace{attrs: d.(*Dict)}, nil
}

func globalJoiner(args []any, kwargs []KeywordArg) (any, error) {
	sep := pyStr(argument(args, kwargs, 0, "sep", ", "))
	used := false
	return &Callable{Name: "joiner", Fn: func([]any, []KeywordArg) (any, error) {
		if !used {
			used = true
			return "", nil
		}
		return sep, nil
	}}, nil
}

func globalCycler(args []any, kwargs []KeywordArg) (any, error) {
	if len(args) == 0 {
		return nil, errorf(RuntimeError, "at least one item has to be provided")
	}
	items := append([]any(nil), args...)
	pos := 0
	ns := &Namespace{attrs: NewDict()}
	update := func() { ns.attrs.Set("current", items[pos]) }
	update()
	ns.attrs.Set("next", &Callable{Name: "next", Fn: func([]any, []KeywordArg) (any, error) {
		v := items[pos]
		pos = (pos + 1) % len(items)
		update()
		return v, nil
	}})
	ns.attrs.Set("reset", &Callable{Name: "reset", Fn: func([]any, []KeywordArg) (any, error) {
		pos = 0
		update()
		return nil, nil
	}})
	return ns, nil
}

// ---- filters

// lazy makes a filter a Python generator: it runs when the result is
// first consumed, as Jinja2's generator filters do.
func lazy(label string, f builtinFilter) builtinFilter {
	return func(r *renderer, v any, args []any, kwargs []KeywordArg) (any, error) {
		return newGenerator(label, func() ([]any, error) {
			out, err := f(r, v, args, kwargs)
			if err != nil {
				return nil, err
			}
			return iterate(out)
		}), nil
	}
}

func strFilter(fn func(string) string) builtinFilter {
	return func(_ *renderer, v any, args []any, kwargs []KeywordArg) (any, error) {
		return fn(pyStr(v)), nil
	}
}

func filterAbs(_ *renderer, v any, _ []any, _ []KeywordArg) (any, error) {
	switch x := v.(type) {
	case int64:
		if x < 0 {
			return -x, nil
		}
		return x, nil
	case bool:
		return toInt(x), nil
	case float64:
		return math.Abs(x), nil
	}
	return nil, errorf(TypeError, "bad operand type for abs(): '%s'", pyTypeName(v))
}

func filterAttr(_ *renderer, v any, args []any, _ []KeywordArg) (any, error) {
	if len(args) != 1 {
		return nil, errorf(TypeError, "do_attr() missing 1 required positional argument: 'name'")
	}
	name, ok := args[0].(string)
	if !ok {
		return nil, errorf(TypeError, "attribute name must be string")
	}
	if u, isU := v.(Undefined); isU {
		return u, nil
	}
	// Only a Python attribute: a dict's keys are not attributes.
	if d, isDict := v.(*Dict); isDict {
		if m, ok := dictMethod(d, name); ok {
			return m, nil
		}
		return Undefined{Obj: v, HasObj: true, Name: name}, nil
	}
	return getattr(v, name)
}

func filterBatch(_ *renderer, v any, args []any, kwargs []KeywordArg) (any, error) {
	items, err := iterate(v)
	if err != nil {
		return nil, err
	}
	n, _, isInt, ok := number(argument(args, kwargs, 0, "linecount", nil))
	if !ok || !isInt || n <= 0 {
		return nil, errorf(ValueError, "batch size must be a positive integer")
	}
	fill := argument(args, kwargs, 1, "fill_with", nil)
	hasFill := fill != nil
	var out []any
	for i := 0; i < len(items); i += int(n) {
		end := min(i+int(n), len(items))
		row := append([]any{}, items[i:end]...)
		for hasFill && len(row) < int(n) {
			row = append(row, fill)
		}
		out = append(out, row)
	}
	return out, nil
}

func filterCenter(_ *renderer, v any, args []any, kwargs []KeywordArg) (any, error) {
	w, _, _, _ := number(argument(args, kwargs, 0, "width", int64(80)))
	return pyCenter(pyStr(v), int(w), " "), nil
}

func filterDefault(_ *renderer, v any, args []any, kwargs []KeywordArg) (any, error) {
	def := argument(args, kwargs, 0, "default_value", "")
	boolean := truthy(argument(args, kwargs, 1, "boolean", false))
	if _, u := v.(Undefined); u || boolean && !truthy(v) {
		return def, nil
	}
	return v, nil
}

func sortKey(v any, caseSensitive bool) any {
	if s, ok := v.(string); ok && !caseSensitive {
		return pyLower(s)
	}
	return v
}

func sortValues(items []any, key func(any) (any, error), reverse bool) error {
	keys := make([]any, len(items))
	for i, it := range items {
		k, err := key(it)
		if err != nil {
			return err
		}
		keys[i] = k
	}
	idx := make([]int, len(items))
	for i := range idx {
		idx[i] = i
	}
	var err error
	sort.SliceStable(idx, func(a, b int) bool {
		ka, kb := keys[idx[a]], keys[idx[b]]
		if reverse {
			ka, kb = kb, ka
		}
		c, cerr := pyCompare("<", ka, kb)
		if cerr != nil && err == nil {
			err = cerr
		}
		return c < 0
	})
	if err != nil {
		return err
	}
	sorted := make([]any, len(items))
	for i, j := range idx {
		sorted[i] = items[j]
	}
	copy(items, sorted)
	return nil
}

func filterDictsort(_ *renderer, v any, args []any, kwargs []KeywordArg) (any, error) {
	d, ok := v.(*Dict)
	if !ok {
		if u, isU := v.(Undefined); isU {
			return nil, u.fail()
		}
		return nil, errorf(AttributeErrorKind, "'%s' object has no attribute 'items'", pyTypeName(v))
	}
	cs := truthy(argument(args, kwargs, 0, "case_sensitive", false))
	by := pyStr(argument(args, kwargs, 1, "by", "key"))
	rev := truthy(argument(args, kwargs, 2, "reverse", false))
	pos := 0
	switch by {
	case "key":
	case "value":
		pos = 1
	default:
		return nil, errorf(FilterError, "You can only sort by either \"key\" or \"value\"")
	}
	items := make([]any, d.Len())
	for i := range d.keys {
		items[i] = Tuple{d.keys[i], d.vals[i]}
	}
	err := sortValues(items, func(it any) (any, error) { return sortKey(it.(Tuple)[pos], cs), nil }, rev)
	return items, err
}

// AttributeErrorKind is Python's AttributeError.
const AttributeErrorKind ErrorKind = "AttributeError"

func htmlEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&#34;", "'", "&#39;").Replace(s)
}

func filterEscape(_ *renderer, v any, _ []any, _ []KeywordArg) (any, error) {
	return htmlEscape(pyStr(v)), nil
}

func filterFirst(_ *renderer, v any, _ []any, _ []KeywordArg) (any, error) {
	if it, ok := v.(*Iterator); ok {
		x, ok, err := it.next()
		if err != nil || ok {
			return x, err
		}
		return Undefined{Hint: "No first item, sequence was empty."}, nil
	}
	items, err := iterate(v)
	if err != nil {
		return nil, err
	}
	if len(items) == 0 {
		return Undefined{Hint: "No first item, sequence was empty."}, nil
	}
	return items[0], nil
}

func filterLast(_ *renderer, v any, _ []any, _ []KeywordArg) (any, error) {
	switch x := v.(type) {
	case string, []any, Tuple, *Dict, Undefined:
	case *Iterator:
		if !x.view {
			return nil, errorf(TypeError, "'%s' object is not reversible", x.typeName)
		}
	default:
		return nil, errorf(TypeError, "'%s' object is not reversible", pyTypeName(v))
	}
	items, err := iterate(v)
	if err != nil {
		return nil, err
	}
	if len(items) == 0 {
		return Undefined{Hint: "No last item, sequence was empty."}, nil
	}
	return items[len(items)-1], nil
}

func filterFloat(_ *renderer, v any, args []any, kwargs []KeywordArg) (any, error) {
	def := argument(args, kwargs, 0, "default", 0.0)
	switch x := v.(type) {
	case Undefined: // Undefined.__float__ raises
		return nil, x.fail()
	case float64:
		return x, nil
	case int64, bool:
		return float64(toInt(x)), nil
	case string:
		if f, ok := parsePyFloat(x); ok {
			return f, nil
		}
	}
	return def, nil
}

func parsePyFloat(s string) (float64, bool) {
	t := strings.TrimFunc(s, isPySpace)
	switch strings.ToLower(strings.TrimLeft(t, "+-")) {
	case "inf", "infinity", "nan":
		f, err := strconv.ParseFloat(t, 64)
		return f, err == nil
	}
	if t == "" || strings.HasPrefix(t, "_") || strings.HasSuffix(t, "_") || strings.Contains(t, "__") ||
		strings.ContainsAny(t, "xXpP") {
		return 0, false
	}
	f, err := strconv.ParseFloat(strings.ReplaceAll(t, "_", ""), 64)
	if err != nil {
		if ne, ok := err.(*strconv.NumError); ok && ne.Err == strconv.ErrRange {
			return f, true
		}
		return 0, false
	}
	return f, true
}

func filterFormat(_ *renderer, v any, args []any, kwargs []KeywordArg) (any, error) {
	if len(args) > 0 && len(kwargs) > 0 {
		return nil, errorf(FilterError, "can't handle positional and keyword arguments at the same time")
	}
	var operand any = Tuple(args)
	if len(kwargs) > 0 {
		d := NewDict()
		for _, k := range kwargs {
			d.Set(k.Name, k.Value)
		}
		operand = d
	}
	return percentFormat(pyStr(v), operand)
}

func filterIndent(_ *renderer, v any, args []any, kwargs []KeywordArg) (any, error) {
	width := argument(args, kwargs, 0, "width", int64(4))
	first := truthy(argument(args, kwargs, 1, "first", false))
	blank := truthy(argument(args, kwargs, 2, "blank", false))
	switch x := v.(type) {
	case string:
	case Undefined:
		return nil, x.fail()
	case []any:
		return nil, errorf(AttributeErrorKind, "'list' object has no attribute 'splitlines'")
	case Tuple:
		return nil, errorf(TypeError, "can only concatenate tuple (not \"str\") to tuple")
	default:
		return nil, errorf(TypeError, "unsupported operand type(s) for +=: '%s' and 'str'", pyTypeName(v))
	}
	var indention string
	if s, ok := width.(string); ok {
		indention = s
	} else {
		n, _, _, _ := number(width)
		indention = strings.Repeat(" ", int(max(n, 0)))
	}
	s := pyStr(v) + "\n"
	lines := pySplitlines(s, false)
	var rv string
	if blank {
		rv = strings.Join(lines, "\n"+indention)
	} else {
		rv = lines[0]
		if len(lines) > 1 {
			var b strings.Builder
			for i, l := range lines[1:] {
				if i > 0 {
					b.WriteByte('\n')
				}
				if l != "" {
					b.WriteString(indention)
				}
				b.WriteString(l)
			}
			rv += "\n" + b.String()
		}
	}
	if first {
		rv = indention + rv
	}
	return rv, nil
}

func filterInt(_ *renderer, v any, args []any, kwargs []KeywordArg) (any, error) {
	def := argument(args, kwargs, 0, "default", int64(0))
	base, _, _, _ := number(argument(args, kwargs, 1, "base", int64(10)))
	switch x := v.(type) {
	case Undefined: // Undefined.__int__ raises
		return nil, x.fail()
	case int64:
		return x, nil
	case bool:
		return toInt(x), nil
	case float64:
		if math.IsInf(x, 0) || math.IsNaN(x) {
			return def, nil
		}
		return int64(x), nil
	case string:
		t := strings.TrimFunc(x, isPySpace)
		clean := strings.ReplaceAll(t, "_", "")
		b := int(base)
		if b == 10 {
			if n, err := strconv.ParseInt(clean, 10, 64); err == nil && !strings.HasPrefix(t, "_") {
				return n, nil
			}
		} else if n, ok := parseIntBase(clean, b); ok {
			return n, nil
		}
		if f, ok := parsePyFloat(x); ok && !math.IsInf(f, 0) && !math.IsNaN(f) {
			return int64(f), nil
		}
	}
	return def, nil
}

func filterItems(_ *renderer, v any, _ []any, _ []KeywordArg) (any, error) {
	switch x := v.(type) {
	case Undefined:
		return []any{}, nil
	case *Dict:
		out := make([]any, x.Len())
		for i := range x.keys {
			out[i] = Tuple{x.keys[i], x.vals[i]}
		}
		return out, nil
	}
	return nil, errorf(TypeError, "Can only get item pairs from a mapping.")
}

func filterJoin(_ *renderer, v any, args []any, kwargs []KeywordArg) (any, error) {
	items, err := iterate(v)
	if err != nil {
		return nil, err
	}
	sep := pyStr(argument(args, kwargs, 0, "d", ""))
	if attr := argument(args, kwargs, 1, "attribute", nil); attr != nil {
		get := attrGetter(attr, nil)
		for i, it := range items {
			if items[i], err = get(it); err != nil {
				return nil, err
			}
		}
	}
	parts := make([]string, len(items))
	for i, it := range items {
		parts[i] = pyStr(it)
	}
	return strings.Join(parts, sep), nil
}

func filterLength(_ *renderer, v any, _ []any, _ []KeywordArg) (any, error) {
	n, err := pyLen(v)
	return int64(n), err
}

func pyLen(v any) (int, error) {
	switch x := v.(type) {
	case string:
		return runeCount(x), nil
	case []any:
		return len(x), nil
	case Tuple:
		return len(x), nil
	case *Dict:
		return x.Len(), nil
	case Undefined:
		return 0, nil
	case *loopContext:
		return len(x.items), nil
	case *Iterator:
		if x.view {
			return len(x.items), nil
		}
	}
	return 0, errorf(TypeError, "object of type '%s' has no len()", pyTypeName(v))
}

func runeCount(s string) int {
	n := 0
	for range s {
		n++
	}
	return n
}

func filterList(_ *renderer, v any, _ []any, _ []KeywordArg) (any, error) {
	items, err := iterate(v)
	if err != nil {
		return nil, err
	}
	return append([]any{}, items...), nil
}

// attrGetter is Jinja2's make_attrgetter: a dotted path of attributes or
// item indexes looked up with getitem, with an optional default for
// undefined results.
func attrGetter(attr any, def any) func(any) (any, error) {
	var parts []any
	if s, ok := attr.(string); ok {
		for _, p := range strings.Split(s, ".") {
			if n, err := strconv.ParseInt(p, 10, 64); err == nil && isAllDigits(p) {
				parts = append(parts, n)
			} else {
				parts = append(parts, p)
			}
		}
	} else {
		parts = []any{attr}
	}
	return func(item any) (any, error) {
		var err error
		for _, p := range parts {
			if item, err = getitem(item, p); err != nil {
				return nil, err
			}
		}
		if _, u := item.(Undefined); u && def != nil {
			return def, nil
		}
		return item, nil
	}
}

func isAllDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

func filterMap(r *renderer, v any, args []any, kwargs []KeywordArg) (any, error) {
	if !truthy(v) { // Jinja2's map yields nothing for a false value
		return []any{}, nil
	}
	items, err := iterate(v)
	if err != nil {
		return nil, err
	}
	var fn func(any) (any, error)
	if len(args) == 0 {
		attr := argument(nil, kwargs, -1, "attribute", nil)
		if attr == nil {
			return nil, errorf(FilterError, "map requires a filter argument")
		}
		def := argument(nil, kwargs, -1, "default", nil)
		fn = attrGetter(attr, def)
	} else {
		name, ok := args[0].(string)
		if !ok {
			return nil, errorf(FilterError, "map requires a filter argument")
		}
		rest := args[1:]
		fn = func(it any) (any, error) { return r.callFilterByName(name, it, rest, kwargs) }
	}
	out := make([]any, len(items))
	for i, it := range items {
		if out[i], err = fn(it); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (r *renderer) callFilterByName(name string, v any, args []any, kwargs []KeywordArg) (any, error) {
	if f, ok := r.env.Filters[name]; ok {
		return f(v, args, kwargs)
	}
	f, ok := builtinFilters[name]
	if !ok {
		return nil, errorf(TemplateRuntimeError, "No filter named '%s'.", name)
	}
	return f(r, v, args, kwargs)
}

func filterMinMax(sign int) builtinFilter {
	return func(_ *renderer, v any, args []any, kwargs []KeywordArg) (any, error) {
		items, err := iterate(v)
		if err != nil {
			return nil, err
		}
		if len(items) == 0 {
			return Undefined{Hint: "No aggregated item, sequence was empty."}, nil
		}
		cs := truthy(argument(args, kwargs, 0, "case_sensitive", false))
		get := func(x any) (any, error) { return x, nil }
		if attr := argument(args, kwargs, 1, "attribute", nil); attr != nil {
			get = attrGetter(attr, nil)
		}
		best := items[0]
		bk, err := get(best)
		if err != nil {
			return nil, err
		}
		for _, it := range items[1:] {
			k, err := get(it)
			if err != nil {
				return nil, err
			}
			op := "<"
			if sign > 0 {
				op = ">"
			}
			c, err := pyCompare(op, sortKey(k, cs), sortKey(bk, cs))
			if err != nil {
				return nil, err
			}
			if c*sign > 0 {
				best, bk = it, k
			}
		}
		return best, nil
	}
}

func filterSelect(keep, byAttr bool) builtinFilter {
	return func(r *renderer, v any, args []any, kwargs []KeywordArg) (any, error) {
		if !truthy(v) { // Jinja2's select_or_reject yields nothing for a false value
			return []any{}, nil
		}
		items, err := iterate(v)
		if err != nil {
			return nil, err
		}
		get := func(x any) (any, error) { return x, nil }
		if byAttr {
			if len(args) == 0 {
				return nil, errorf(FilterError, "Missing parameter for attribute name")
			}
			get = attrGetter(args[0], nil)
			args = args[1:]
		}
		test := func(x any) (bool, error) { return truthy(x), nil }
		if len(args) > 0 {
			name, _ := args[0].(string)
			t, ok := builtinTests[name]
			if !ok {
				return nil, errorf(TemplateRuntimeError, "No test named '%s'.", name)
			}
			targs := args[1:]
			test = func(x any) (bool, error) {
				res, err := t(r, x, targs)
				return truthy(res), err
			}
		}
		out := []any{}
		for _, it := range items {
			x, err := get(it)
			if err != nil {
				return nil, err
			}
			ok, err := test(x)
			if err != nil {
				return nil, err
			}
			if ok == keep {
				out = append(out, it)
			}
		}
		return out, nil
	}
}

func filterReplace(_ *renderer, v any, args []any, kwargs []KeywordArg) (any, error) {
	if len(args) < 2 {
		return nil, errorf(TypeError, "do_replace() missing required arguments: 'old' and 'new'")
	}
	count := int64(-1)
	if c := argument(args, kwargs, 2, "count", nil); c != nil {
		count, _, _, _ = number(c)
	}
	return strings.Replace(pyStr(v), pyStr(args[0]), pyStr(args[1]), int(count)), nil
}

func filterReverse(_ *renderer, v any, _ []any, _ []KeywordArg) (any, error) {
	if s, ok := v.(string); ok {
		r := []rune(s)
		for i, j := 0, len(r)-1; i < j; i, j = i+1, j-1 {
			r[i], r[j] = r[j], r[i]
		}
		return string(r), nil
	}
	var kind string
	switch x := v.(type) {
	case []any:
		kind = "list_reverseiterator"
	case *Dict:
		kind = "dict_reversekeyiterator"
	case Tuple, Undefined:
		kind = "reversed"
	case *Iterator:
		if x.view {
			kind = map[string]string{"dict_keys": "dict_reversekeyiterator", "dict_values": "dict_reversevalueiterator", "dict_items": "dict_reverseitemiterator"}[x.typeName]
		}
	}
	items, err := iterate(v)
	if err != nil {
		return nil, errorf(FilterError, "argument must be iterable")
	}
	out := make([]any, len(items))
	for i, it := range items {
		out[len(items)-1-i] = it
	}
	if kind == "" { // reversed() failed: Jinja2 reverses a list copy
		return out, nil
	}
	return &Iterator{typeName: kind, items: out, made: true}, nil
}

func filterRound(_ *renderer, v any, args []any, kwargs []KeywordArg) (any, error) {
	prec, _, _, _ := number(argument(args, kwargs, 0, "precision", int64(0)))
	method := pyStr(argument(args, kwargs, 1, "method", "common"))
	_, f, _, ok := number(v)
	if !ok {
		return nil, errorf(TypeError, "type %s doesn't define __round__ method", pyTypeName(v))
	}
	switch method {
	case "common":
		if _, _, isInt, _ := number(v); isInt { // round(int) stays an int
			return toInt(v), nil
		}
		s := strconv.FormatFloat(f, 'f', int(max(prec, 0)), 64)
		r, _ := strconv.ParseFloat(s, 64)
		return r, nil
	case "ceil", "floor":
		p := math.Pow(10, float64(prec))
		if method == "ceil" {
			return math.Ceil(f*p) / p, nil
		}
		return math.Floor(f*p) / p, nil
	}
	return nil, errorf(FilterError, "method must be common, ceil or floor")
}

func filterSort(_ *renderer, v any, args []any, kwargs []KeywordArg) (any, error) {
	items, err := iterate(v)
	if err != nil {
		return nil, err
	}
	items = append([]any{}, items...)
	rev := truthy(argument(args, kwargs, 0, "reverse", false))
	cs := truthy(argument(args, kwargs, 1, "case_sensitive", false))
	get := func(x any) (any, error) { return x, nil }
	if attr := argument(args, kwargs, 2, "attribute", nil); attr != nil {
		get = attrGetter(attr, nil)
	}
	err = sortValues(items, func(x any) (any, error) {
		k, err := get(x)
		return sortKey(k, cs), err
	}, rev)
	return items, err
}

func filterString(_ *renderer, v any, _ []any, _ []KeywordArg) (any, error) {
	return pyStr(v), nil
}

func filterStriptags(_ *renderer, v any, _ []any, _ []KeywordArg) (any, error) {
	s := pyStr(v)
	var b strings.Builder
	for {
		i := strings.IndexAny(s, "<")
		if i < 0 {
			b.WriteString(s)
			break
		}
		b.WriteString(s[:i])
		j := strings.IndexByte(s[i:], '>')
		if j < 0 {
			b.WriteString(s[i:])
			break
		}
		s = s[i+j+1:]
	}
	return strings.Join(strings.Fields(b.String()), " "), nil
}

func filterSum(_ *renderer, v any, args []any, kwargs []KeywordArg) (any, error) {
	items, err := iterate(v)
	if err != nil {
		return nil, err
	}
	total := argument(args, kwargs, 1, "start", int64(0))
	get := func(x any) (any, error) { return x, nil }
	if attr := argument(args, kwargs, 0, "attribute", nil); attr != nil {
		get = attrGetter(attr, nil)
	}
	for _, it := range items {
		x, err := get(it)
		if err != nil {
			return nil, err
		}
		if total, err = binaryOp("+", total, x); err != nil {
			return nil, err
		}
	}
	return total, nil
}

func filterTrim(_ *renderer, v any, args []any, kwargs []KeywordArg) (any, error) {
	chars := argument(args, kwargs, 0, "chars", nil)
	out, err := pyStrip(pyStr(v), chars, true, true)
	if s, isStr := v.(string); isStr && err == nil && len(out.(string)) == len(s) {
		return v, nil // nothing stripped: the boxed string as it came
	}
	return out, err
}

func filterTruncate(_ *renderer, v any, args []any, kwargs []KeywordArg) (any, error) {
	length, _, _, _ := number(argument(args, kwargs, 0, "length", int64(255)))
	killwords := truthy(argument(args, kwargs, 1, "killwords", false))
	end := pyStr(argument(args, kwargs, 2, "end", "..."))
	leeway, _, _, _ := number(argument(args, kwargs, 3, "leeway", int64(5)))
	if length < int64(runeCount(end)) {
		return nil, errorf(AssertionErrorKind, "expected length >= %d, got %d", runeCount(end), length)
	}
	if leeway < 0 {
		return nil, errorf(AssertionErrorKind, "expected leeway >= 0, got %d", leeway)
	}
	n, err := pyLen(v)
	if err != nil {
		return nil, err
	}
	if int64(n) <= length+leeway {
		return v, nil
	}
	s, ok := v.(string)
	if !ok {
		if killwords {
			return nil, errorf(TypeError, "can only concatenate %s (not \"str\") to %s", pyTypeName(v), pyTypeName(v))
		}
		return nil, errorf(AttributeErrorKind, "'%s' object has no attribute 'rsplit'", pyTypeName(v))
	}
	runes := []rune(s)
	cut := int(length - int64(runeCount(end)))
	if killwords {
		return string(runes[:cut]) + end, nil
	}
	head := string(runes[:cut])
	if i := strings.LastIndexByte(head, ' '); i >= 0 {
		head = head[:i]
	}
	return head + end, nil
}

// AssertionErrorKind is Python's AssertionError.
const AssertionErrorKind ErrorKind = "AssertionError"

func filterUnique(_ *renderer, v any, args []any, kwargs []KeywordArg) (any, error) {
	items, err := iterate(v)
	if err != nil {
		return nil, err
	}
	cs := truthy(argument(args, kwargs, 0, "case_sensitive", false))
	get := func(x any) (any, error) { return x, nil }
	if attr := argument(args, kwargs, 1, "attribute", nil); attr != nil {
		get = attrGetter(attr, nil)
	}
	seen := map[any]bool{}
	out := []any{}
	for _, it := range items {
		k, err := get(it)
		if err != nil {
			return nil, err
		}
		k = sortKey(k, cs)
		if err := checkHashable(k); err != nil {
			return nil, err
		}
		h := hashKey(k)
		if !seen[h] {
			seen[h] = true
			out = append(out, it)
		}
	}
	return out, nil
}

func filterWordcount(_ *renderer, v any, _ []any, _ []KeywordArg) (any, error) {
	n := 0
	in := false
	for _, r := range pyStr(v) {
		w := r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.Is(unicode.Mn, r) || unicode.IsNumber(r)
		if w && !in {
			n++
		}
		in = w
	}
	return int64(n), nil
}

// filterTojsonJinja is Jinja2's own tojson (keys sorted, HTML-safe);
// transformers replaces it with a plain json.dumps.
func filterTojsonJinja(_ *renderer, v any, args []any, kwargs []KeywordArg) (any, error) {
	opts := JSONOptions{EnsureASCII: true, SortKeys: true}
	if ind := argument(args, kwargs, 0, "indent", nil); ind != nil {
		s, err := IndentString(ind)
		if err != nil {
			return nil, err
		}
		opts.Indent = &s
	}
	s, err := DumpJSON(v, opts)
	if err != nil {
		return nil, err
	}
	return strings.NewReplacer("<", `\u003c`, ">", `\u003e`, "&", `\u0026`, "'", `\u0027`).Replace(s), nil
}

// IndentString turns json.dumps' indent argument into the per-level text.
func IndentString(ind any) (string, error) {
	switch x := ind.(type) {
	case string:
		return x, nil
	case int64, bool:
		return strings.Repeat(" ", int(max(toInt(x), 0))), nil
	}
	return "", errorf(TypeError, "can't multiply sequence by non-int of type '%s'", pyTypeName(ind))
}

// ---- tests

// parityTest is Jinja2's odd/even: value % 2 == want.
func parityTest(want int64) builtinTest {
	return func(_ *renderer, v any, _ []any) (any, error) {
		m, err := binaryOp("%", v, int64(2))
		if err != nil {
			return nil, err
		}
		return pyEqual(m, want), nil
	}
}

func testDivisibleBy(_ *renderer, v any, args []any) (any, error) {
	if len(args) != 1 {
		return nil, errorf(TypeError, "test_divisibleby() missing 1 required positional argument: 'num'")
	}
	m, err := binaryOp("%", v, args[0])
	if err != nil {
		return nil, err
	}
	return pyEqual(m, int64(0)), nil
}

func testSequence(_ *renderer, v any, _ []any) (any, error) {
	switch v.(type) {
	case string, []any, Tuple, *Dict, Undefined, *loopContext:
		return true, nil
	}
	return false, nil
}

func testIterable(_ *renderer, v any, _ []any) (any, error) {
	switch v.(type) {
	case string, []any, Tuple, *Dict, Undefined, *loopContext, *Iterator:
		return true, nil
	}
	return false, nil
}

func testCallable(_ *renderer, v any, _ []any) (any, error) {
	switch v.(type) {
	case *Callable, *Macro, *loopContext, Undefined: // Undefined has __call__ (which raises)
		return true, nil
	}
	return false, nil
}

func testSameAs(_ *renderer, v any, args []any) (any, error) {
	if len(args) != 1 {
		return nil, errorf(TypeError, "test_sameas() missing 1 required positional argument: 'other'")
	}
	o := args[0]
	switch x := v.(type) {
	case nil:
		return o == nil, nil
	case bool:
		y, ok := o.(bool)
		return ok && x == y, nil
	case int64:
		y, ok := o.(int64)
		return ok && x == y && x >= -5 && x <= 256, nil
	case string:
		y, ok := o.(string)
		return ok && x == y, nil
	case []any:
		y, ok := o.([]any)
		return ok && len(x) == len(y) && (len(x) == 0 || &x[0] == &y[0]), nil
	case *Dict, *Namespace, *Callable, *Macro, *loopContext:
		return v == o, nil
	}
	return false, nil
}

// parseIntBase is Python's int(s, base) for bases other than 10: the
// base's 0x/0o/0b prefix is allowed, and base 0 reads it to pick the base.
func parseIntBase(s string, base int) (int64, bool) {
	sign := ""
	if s != "" && (s[0] == '-' || s[0] == '+') {
		sign, s = s[:1], s[1:]
	}
	low := strings.ToLower(s)
	prefixes := map[int]string{16: "0x", 8: "0o", 2: "0b"}
	if base == 0 {
		base = 10
		for b, p := range prefixes {
			if strings.HasPrefix(low, p) {
				base = b
			}
		}
		if base == 10 && len(s) > 1 && s[0] == '0' {
			return 0, false
		}
	}
	if p, ok := prefixes[base]; ok && strings.HasPrefix(low, p) {
		s = s[2:]
	}
	n, err := strconv.ParseInt(sign+s, base, 64)
	return n, err == nil
}
