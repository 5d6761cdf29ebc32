package jinja

import (
	"fmt"
	"math"
	"strings"
	"unicode/utf8"
)

// maxRepeat bounds "text" * n and [x] * n, so a template cannot ask for
// gigabytes; real chat templates repeat a few characters.
const maxRepeat = 1 << 24

// getattr is Jinja2's sandboxed environment.getattr: a Python attribute
// (string and dict methods) first, then the item of that name.
func getattr(obj any, name string) (any, error) {
	if u, ok := obj.(Undefined); ok {
		return nil, u.fail()
	}
	if strings.HasPrefix(name, "_") {
		return unsafeAttr(obj, name), nil
	}
	switch x := obj.(type) {
	case string:
		if m, ok := stringMethod(x, name); ok {
			return m, nil
		}
	case *Dict:
		if m, ok := dictMethod(x, name); ok {
			return m, nil
		}
		if v, ok := x.Get(name); ok {
			return v, nil
		}
	case []any:
		if m, ok := listMethod(x, name); ok {
			return m, nil
		}
	case Tuple:
		if m, ok := tupleMethod(x, name); ok {
			return m, nil
		}
	case *Namespace:
		if v, ok := x.attrs.Get(name); ok {
			return v, nil
		}
	case *loopContext:
		if v, ok := x.attr(name); ok {
			return v, nil
		}
	case *Macro:
		switch name {
		case "name":
			return x.name, nil
		case "arguments":
			args := make(Tuple, len(x.def.params))
			for i, p := range x.def.params {
				args[i] = p
			}
			return args, nil
		}
	case int64, bool:
		switch name {
		case "real", "numerator":
			return toInt(x), nil
		case "imag":
			return int64(0), nil
		case "denominator":
			return int64(1), nil
		}
	case float64:
		switch name {
		case "real":
			return x, nil
		case "imag":
			return 0.0, nil
		}
	}
	return Undefined{Obj: obj, HasObj: true, Name: name}, nil
}

func unsafeAttr(obj any, name string) any {
	return Undefined{Obj: obj, HasObj: true, Name: name, Err: SecurityError,
		Hint: fmt.Sprintf("access to attribute %s of %s object is unsafe.", pyRepr(name), pyRepr(pyTypeName(obj)))}
}

// getitem is Jinja2's environment.getitem: the item first, then (for a
// string key) the attribute of that name.
func getitem(obj any, key any) (any, error) {
	if u, ok := obj.(Undefined); ok {
		return nil, u.fail()
	}
	switch x := obj.(type) {
	case *Dict:
		if v, ok := x.Get(key); ok {
			return v, nil
		}
	case []any:
		if i, ok := seqIndex(key, len(x)); ok {
			return x[i], nil
		}
	case Tuple:
		if i, ok := seqIndex(key, len(x)); ok {
			return x[i], nil
		}
	case string:
		if _, isInt := key.(int64); isInt || isBool(key) {
			runes := []rune(x)
			if i, ok := seqIndex(key, len(runes)); ok {
				return string(runes[i]), nil
			}
		}
	case *loopContext, *Namespace:
		// Not subscriptable: fall through to the attribute.
	}
	if s, ok := key.(string); ok {
		return getattr(obj, s)
	}
	return missingElement(obj, key), nil
}

func isBool(v any) bool { _, ok := v.(bool); return ok }

// seqIndex resolves a Python index (negative counts from the end).
func seqIndex(key any, n int) (int, bool) {
	var i int64
	switch k := key.(type) {
	case int64:
		i = k
	case bool:
		i = toInt(k)
	default:
		return 0, false
	}
	if i < 0 {
		i += int64(n)
	}
	if i < 0 || i >= int64(n) {
		return 0, false
	}
	return int(i), true
}

func toInt(v any) int64 {
	switch x := v.(type) {
	case int64:
		return x
	case bool:
		if x {
			return 1
		}
	case float64:
		return int64(x)
	}
	return 0
}

// sliceBounds is Python's slice.indices(n).
func sliceBounds(start, stop, step any, n int) (int, int, int, error) {
	st := 1
	if step != nil {
		s, ok := asIndex(step)
		if !ok {
			return 0, 0, 0, errorf(TypeError, "slice indices must be integers or None or have an __index__ method")
		}
		if s == 0 {
			return 0, 0, 0, errorf(ValueError, "slice step cannot be zero")
		}
		st = s
	}
	lo, hi := 0, n
	if st < 0 {
		lo, hi = n-1, -1
	}
	clamp := func(v any, def int) (int, error) {
		if v == nil {
			return def, nil
		}
		i, ok := asIndex(v)
		if !ok {
			return 0, errorf(TypeError, "slice indices must be integers or None or have an __index__ method")
		}
		if i < 0 {
			i += n
			if i < 0 {
				if st < 0 {
					return -1, nil
				}
				return 0, nil
			}
		}
		if i >= n {
			if st < 0 {
				return n - 1, nil
			}
			return n, nil
		}
		return i, nil
	}
	a, err := clamp(start, lo)
	if err != nil {
		return 0, 0, 0, err
	}
	b, err := clamp(stop, hi)
	if err != nil {
		return 0, 0, 0, err
	}
	return a, b, st, nil
}

func asIndex(v any) (int, bool) {
	switch x := v.(type) {
	case int64:
		if x > math.MaxInt32 {
			return math.MaxInt32, true
		}
		if x < math.MinInt32 {
			return math.MinInt32, true
		}
		return int(x), true
	case bool:
		return int(toInt(x)), true
	}
	return 0, false
}

func sliceIndices(a, b, st int) []int {
	var idx []int
	if st > 0 {
		for i := a; i < b; i += st {
			idx = append(idx, i)
		}
	} else {
		for i := a; i > b; i += st {
			idx = append(idx, i)
		}
	}
	return idx
}

func sliceValue(obj, start, stop, step any) (any, error) {
	if u, ok := obj.(Undefined); ok {
		return nil, u.fail()
	}
	for _, b := range []any{start, stop, step} {
		if u, ok := b.(Undefined); ok {
			_ = u
			return missingElement(obj, "slice"), nil
		}
	}
	switch x := obj.(type) {
	case []any, Tuple:
		items, _ := iterate(x)
		a, b, st, err := sliceBounds(start, stop, step, len(items))
		if err != nil {
			return missingElement(obj, "slice"), nil
		}
		out := []any{}
		for _, i := range sliceIndices(a, b, st) {
			out = append(out, items[i])
		}
		if _, ok := x.(Tuple); ok {
			return Tuple(out), nil
		}
		return out, nil
	case string:
		if st, ok := step.(int64); (step == nil || ok && st == 1) && isASCII(x) {
			a, b, _, err := sliceBounds(start, stop, step, len(x))
			if err != nil {
				return missingElement(obj, "slice"), nil
			}
			if b < a {
				return "", nil
			}
			return x[a:b], nil
		}
		runes := []rune(x)
		a, b, st, err := sliceBounds(start, stop, step, len(runes))
		if err != nil {
			return missingElement(obj, "slice"), nil
		}
		var sb strings.Builder
		for _, i := range sliceIndices(a, b, st) {
			sb.WriteRune(runes[i])
		}
		return sb.String(), nil
	}
	return missingElement(obj, "slice"), nil
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

func negate(v any) (any, error) {
	switch x := v.(type) {
	case int64:
		return -x, nil
	case bool:
		return -toInt(x), nil
	case float64:
		return -x, nil
	case Undefined:
		return nil, x.fail()
	}
	return nil, errorf(TypeError, "bad operand type for unary -: '%s'", pyTypeName(v))
}

func positive(v any) (any, error) {
	switch x := v.(type) {
	case int64, float64:
		return x, nil
	case bool:
		return toInt(x), nil
	case Undefined:
		return nil, x.fail()
	}
	return nil, errorf(TypeError, "bad operand type for unary +: '%s'", pyTypeName(v))
}

// number classifies v as a Python int (bool included) or float.
func number(v any) (i int64, f float64, isInt, ok bool) {
	switch x := v.(type) {
	case int64:
		return x, float64(x), true, true
	case bool:
		n := toInt(x)
		return n, float64(n), true, true
	case float64:
		return 0, x, false, true
	}
	return 0, 0, false, false
}

func binaryOp(op string, l, r any) (any, error) {
	if s, ok := l.(string); ok && op == "%" {
		// str.__mod__ runs before the right operand is looked at.
		return percentFormat(s, r)
	}
	if u, ok := l.(Undefined); ok {
		return nil, u.fail()
	}
	if u, ok := r.(Undefined); ok {
		return nil, u.fail()
	}
	li, lf, lInt, lNum := number(l)
	ri, rf, rInt, rNum := number(r)
	if lNum && rNum {
		return arith(op, li, lf, lInt, ri, rf, rInt)
	}
	switch op {
	case "+":
		switch x := l.(type) {
		case string:
			if y, ok := r.(string); ok {
				return x + y, nil
			}
			return nil, errorf(TypeError, "can only concatenate str (not \"%s\") to str", pyTypeName(r))
		case []any:
			if y, ok := r.([]any); ok {
				return append(append(make([]any, 0, len(x)+len(y)), x...), y...), nil
			}
			return nil, errorf(TypeError, "can only concatenate list (not \"%s\") to list", pyTypeName(r))
		case Tuple:
			if y, ok := r.(Tuple); ok {
				return append(append(make(Tuple, 0, len(x)+len(y)), x...), y...), nil
			}
			return nil, errorf(TypeError, "can only concatenate tuple (not \"%s\") to tuple", pyTypeName(r))
		}
	case "*":
		seq, count := l, r
		if lInt {
			seq, count = r, l
		}
		if _, _, isInt, ok := number(count); ok && isInt {
			n := max(toInt(count), 0)
			switch x := seq.(type) {
			case string:
				if int64(len(x))*n > maxRepeat {
					return nil, errorf(OverflowError, "repeated string too long")
				}
				return strings.Repeat(x, int(n)), nil
			case []any:
				if int64(len(x))*n > maxRepeat {
					return nil, errorf(OverflowError, "repeated list too long")
				}
				out := make([]any, 0, len(x)*int(n))
				for range n {
					out = append(out, x...)
				}
				return out, nil
			case Tuple:
				if int64(len(x))*n > maxRepeat {
					return nil, errorf(OverflowError, "repeated tuple too long")
				}
				out := make(Tuple, 0, len(x)*int(n))
				for range n {
					out = append(out, x...)
				}
				return out, nil
			}
		}
		if isSequence(seq) {
			return nil, errorf(TypeError, "can't multiply sequence by non-int of type '%s'", pyTypeName(count))
		}
		if isSequence(count) {
			return nil, errorf(TypeError, "can't multiply sequence by non-int of type '%s'", pyTypeName(seq))
		}
	}
	return nil, errorf(TypeError, "unsupported operand type(s) for %s: '%s' and '%s'", opSymbol(op), pyTypeName(l), pyTypeName(r))
}

func isSequence(v any) bool {
	switch v.(type) {
	case string, []any, Tuple:
		return true
	}
	return false
}

func opSymbol(op string) string {
	if op == "**" {
		return "** or pow()"
	}
	return op
}

func arith(op string, li int64, lf float64, lInt bool, ri int64, rf float64, rInt bool) (any, error) {
	both := lInt && rInt
	switch op {
	case "+":
		if both {
			return li + ri, nil
		}
		return lf + rf, nil
	case "-":
		if both {
			return li - ri, nil
		}
		return lf - rf, nil
	case "*":
		if both {
			return li * ri, nil
		}
		return lf * rf, nil
	case "/":
		if rf == 0 {
			if both {
				return nil, errorf(ZeroDivision, "division by zero")
			}
			return nil, errorf(ZeroDivision, "float division by zero")
		}
		return lf / rf, nil
	case "//":
		if both {
			if ri == 0 {
				return nil, errorf(ZeroDivision, "integer division or modulo by zero")
			}
			q := li / ri
			if (li%ri != 0) && ((li < 0) != (ri < 0)) {
				q--
			}
			return q, nil
		}
		if rf == 0 {
			return nil, errorf(ZeroDivision, "float floor division by zero")
		}
		return math.Floor(lf / rf), nil
	case "%":
		if both {
			if ri == 0 {
				return nil, errorf(ZeroDivision, "integer modulo by zero")
			}
			m := li % ri
			if m != 0 && (m < 0) != (ri < 0) {
				m += ri
			}
			return m, nil
		}
		if rf == 0 {
			return nil, errorf(ZeroDivision, "float modulo")
		}
		m := math.Mod(lf, rf)
		if m != 0 && (m < 0) != (rf < 0) {
			m += rf
		}
		return m, nil
	case "**":
		if both && ri >= 0 {
			result := int64(1)
			base := li
			for e := ri; e > 0; e >>= 1 {
				if e&1 == 1 {
					result *= base
				}
				base *= base
			}
			return result, nil
		}
		if lf == 0 && rf < 0 {
			return nil, errorf(ZeroDivision, "0.0 cannot be raised to a negative power")
		}
		return math.Pow(lf, rf), nil
	}
	return nil, errorf(TypeError, "unsupported operator %s", op)
}

// pyEqual is Python's ==.
func pyEqual(a, b any) bool {
	ai, af, aInt, aNum := number(a)
	bi, bf, bInt, bNum := number(b)
	if aNum && bNum {
		if aInt && bInt {
			return ai == bi
		}
		return af == bf
	}
	switch x := a.(type) {
	case nil:
		return b == nil
	case string:
		y, ok := b.(string)
		return ok && x == y
	case []any:
		y, ok := b.([]any)
		return ok && seqEqual(x, y)
	case Tuple:
		y, ok := b.(Tuple)
		return ok && seqEqual(x, y)
	case *Dict:
		y, ok := b.(*Dict)
		if !ok || x.Len() != y.Len() {
			return false
		}
		for i := range x.keys {
			v, ok := y.Get(x.keys[i])
			if !ok || !pyEqual(x.vals[i], v) {
				return false
			}
		}
		return true
	case Undefined:
		_, ok := b.(Undefined)
		return ok
	}
	return a == b
}

func seqEqual(a, b []any) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !pyEqual(a[i], b[i]) {
			return false
		}
	}
	return true
}

// pyCompare orders two values as Python's < does (-1, 0, 1), or fails for
// types Python cannot order.
func pyCompare(op string, a, b any) (int, error) {
	if u, ok := a.(Undefined); ok {
		return 0, u.fail()
	}
	if u, ok := b.(Undefined); ok {
		return 0, u.fail()
	}
	ai, af, aInt, aNum := number(a)
	bi, bf, bInt, bNum := number(b)
	if aNum && bNum {
		if aInt && bInt {
			return cmp3(ai < bi, ai > bi), nil
		}
		return cmp3(af < bf, af > bf), nil
	}
	switch x := a.(type) {
	case string:
		if y, ok := b.(string); ok {
			return strings.Compare(x, y), nil
		}
	case []any:
		if y, ok := b.([]any); ok {
			return seqCompare(op, x, y)
		}
	case Tuple:
		if y, ok := b.(Tuple); ok {
			return seqCompare(op, x, y)
		}
	}
	return 0, errorf(TypeError, "'%s' not supported between instances of '%s' and '%s'", op, pyTypeName(a), pyTypeName(b))
}

func cmp3(lt, gt bool) int {
	switch {
	case lt:
		return -1
	case gt:
		return 1
	}
	return 0
}

func seqCompare(op string, a, b []any) (int, error) {
	for i := 0; i < len(a) && i < len(b); i++ {
		if pyEqual(a[i], b[i]) {
			continue
		}
		return pyCompare(op, a[i], b[i])
	}
	return cmp3(len(a) < len(b), len(a) > len(b)), nil
}

func compare(op string, l, r any) (bool, error) {
	switch op {
	case "==":
		return pyEqual(l, r), nil
	case "!=":
		return !pyEqual(l, r), nil
	case "in", "notin":
		in, err := contains(r, l)
		if err != nil {
			return false, err
		}
		return in == (op == "in"), nil
	}
	c, err := pyCompare(op, l, r)
	if err != nil {
		return false, err
	}
	switch op {
	case "<":
		return c < 0, nil
	case "<=":
		return c <= 0, nil
	case ">":
		return c > 0, nil
	}
	return c >= 0, nil
}

// contains is Python's "item in container".
func contains(container, item any) (bool, error) {
	switch c := container.(type) {
	case string:
		s, ok := item.(string)
		if !ok {
			return false, errorf(TypeError, "'in <string>' requires string as left operand, not %s", pyTypeName(item))
		}
		return strings.Contains(c, s), nil
	case []any:
		for _, e := range c {
			if pyEqual(e, item) {
				return true, nil
			}
		}
		return false, nil
	case Tuple:
		for _, e := range c {
			if pyEqual(e, item) {
				return true, nil
			}
		}
		return false, nil
	case *Dict:
		if err := checkHashable(item); err != nil {
			return false, err
		}
		_, ok := c.Get(item)
		return ok, nil
	case *Namespace:
		return false, errorf(TypeError, "argument of type 'Namespace' is not iterable")
	case Undefined:
		return false, nil
	case *loopContext:
		for _, e := range c.items {
			if pyEqual(e, item) {
				return true, nil
			}
		}
		return false, nil
	case *Iterator:
		items, err := c.rest()
		if err != nil {
			return false, err
		}
		for _, e := range items {
			if pyEqual(e, item) {
				return true, nil
			}
		}
		return false, nil
	}
	return false, errorf(TypeError, "argument of type '%s' is not iterable", pyTypeName(container))
}
