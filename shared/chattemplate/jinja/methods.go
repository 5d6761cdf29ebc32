package jinja

import (
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Python's str, dict and list methods as the immutable sandbox allows them.

func method(name string, fn func(args []any, kwargs []KeywordArg) (any, error)) *Callable {
	return &Callable{Name: name, Fn: fn}
}

func stringMethod(s, name string) (any, bool) {
	switch name {
	case "strip", "lstrip", "rstrip":
		return method(name, func(args []any, kwargs []KeywordArg) (any, error) {
			if err := checkArgs(name, args, kwargs, "chars"); err != nil {
				return nil, err
			}
			return pyStrip(s, argument(args, nil, 0, "", nil), name != "rstrip", name != "lstrip")
		}), true
	case "upper":
		return method(name, noArgs(name, func() any { return pyUpper(s) })), true
	case "lower":
		return method(name, noArgs(name, func() any { return pyLower(s) })), true
	case "casefold":
		return method(name, noArgs(name, func() any { return pyLower(s) })), true
	case "title":
		return method(name, noArgs(name, func() any { return pyTitle(s) })), true
	case "capitalize":
		return method(name, noArgs(name, func() any { return pyCapitalize(s) })), true
	case "swapcase":
		return method(name, noArgs(name, func() any {
			return strings.Map(func(r rune) rune {
				if unicode.IsUpper(r) {
					return unicode.ToLower(r)
				}
				return unicode.ToUpper(r)
			}, s)
		})), true
	case "split", "rsplit":
		return method(name, func(args []any, kwargs []KeywordArg) (any, error) {
			if err := checkArgs(name, args, kwargs, "sep", "maxsplit"); err != nil {
				return nil, err
			}
			sep := argument(args, kwargs, 0, "sep", nil)
			maxsplit, _, _, _ := number(argument(args, kwargs, 1, "maxsplit", int64(-1)))
			return pySplit(s, sep, int(maxsplit), name == "rsplit")
		}), true
	case "splitlines":
		return method(name, func(args []any, kwargs []KeywordArg) (any, error) {
			keep := truthy(argument(args, kwargs, 0, "keepends", false))
			lines := pySplitlines(s, keep)
			out := make([]any, len(lines))
			for i, l := range lines {
				out[i] = l
			}
			return out, nil
		}), true
	case "startswith", "endswith":
		return method(name, func(args []any, kwargs []KeywordArg) (any, error) {
			if len(args) == 0 {
				return nil, errorf(TypeError, "%s() takes at least 1 argument (0 given)", name)
			}
			sub, err := substrRange(s, args[1:])
			if err != nil {
				return nil, err
			}
			var cands []any
			switch p := args[0].(type) {
			case string:
				cands = []any{p}
			case Tuple:
				cands = p
			default:
				return nil, errorf(TypeError, "%s first arg must be str or a tuple of str, not %s", name, pyTypeName(args[0]))
			}
			for _, c := range cands {
				cs, ok := c.(string)
				if !ok {
					return nil, errorf(TypeError, "tuple for %s must only contain str, not %s", name, pyTypeName(c))
				}
				if name == "startswith" && strings.HasPrefix(sub, cs) || name == "endswith" && strings.HasSuffix(sub, cs) {
					return true, nil
				}
			}
			return false, nil
		}), true
	case "replace":
		return method(name, func(args []any, kwargs []KeywordArg) (any, error) {
			if len(args) < 2 {
				return nil, errorf(TypeError, "replace expected at least 2 arguments, got %d", len(args))
			}
			old, ok1 := args[0].(string)
			nw, ok2 := args[1].(string)
			if !ok1 || !ok2 {
				return nil, errorf(TypeError, "replace() argument 1 must be str, not %s", pyTypeName(args[0]))
			}
			count := int64(-1)
			if c := argument(args, kwargs, 2, "count", nil); c != nil {
				count, _, _, _ = number(c)
			}
			if old == "" {
				return pyReplaceEmpty(s, nw, int(count)), nil
			}
			return strings.Replace(s, old, nw, int(count)), nil
		}), true
	case "find", "rfind", "index", "rindex", "count":
		return method(name, func(args []any, kwargs []KeywordArg) (any, error) {
			if len(args) == 0 {
				return nil, errorf(TypeError, "%s() takes at least 1 argument (0 given)", name)
			}
			sub, ok := args[0].(string)
			if !ok {
				return nil, errorf(TypeError, "must be str, not %s", pyTypeName(args[0]))
			}
			runes := []rune(s)
			start, end := 0, len(runes)
			if len(args) > 1 && args[1] != nil {
				a, b, _, err := sliceBounds(args[1], nil, nil, len(runes))
				if err != nil {
					return nil, err
				}
				start, _ = a, b
			}
			if len(args) > 2 && args[2] != nil {
				_, b, _, err := sliceBounds(nil, args[2], nil, len(runes))
				if err != nil {
					return nil, err
				}
				end = b
			}
			if end < start {
				end = start
			}
			hay := string(runes[start:end])
			if name == "count" {
				if sub == "" {
					return int64(runeCount(hay) + 1), nil
				}
				return int64(strings.Count(hay, sub)), nil
			}
			var i int
			if name == "find" || name == "index" {
				i = strings.Index(hay, sub)
			} else {
				i = strings.LastIndex(hay, sub)
			}
			if i < 0 {
				if name == "index" || name == "rindex" {
					return nil, errorf(ValueError, "substring not found")
				}
				return int64(-1), nil
			}
			return int64(start + runeCount(hay[:i])), nil
		}), true
	case "join":
		return method(name, func(args []any, kwargs []KeywordArg) (any, error) {
			if len(args) != 1 {
				return nil, errorf(TypeError, "str.join() takes exactly one argument (%d given)", len(args))
			}
			items, err := iterate(args[0])
			if err != nil {
				return nil, errorf(TypeError, "can only join an iterable")
			}
			parts := make([]string, len(items))
			for i, it := range items {
				p, ok := it.(string)
				if !ok {
					return nil, errorf(TypeError, "sequence item %d: expected str instance, %s found", i, pyTypeName(it))
				}
				parts[i] = p
			}
			return strings.Join(parts, s), nil
		}), true
	case "center", "ljust", "rjust":
		return method(name, func(args []any, kwargs []KeywordArg) (any, error) {
			if len(args) == 0 {
				return nil, errorf(TypeError, "%s expected at least 1 argument, got 0", name)
			}
			w, _, isInt, ok := number(args[0])
			if !ok || !isInt {
				return nil, errorf(TypeError, "'%s' object cannot be interpreted as an integer", pyTypeName(args[0]))
			}
			fill := " "
			if len(args) > 1 {
				fill, _ = args[1].(string)
				if runeCount(fill) != 1 {
					return nil, errorf(TypeError, "The fill character must be exactly one character long")
				}
			}
			pad := int(w) - runeCount(s)
			if pad <= 0 {
				return s, nil
			}
			switch name {
			case "ljust":
				return s + strings.Repeat(fill, pad), nil
			case "rjust":
				return strings.Repeat(fill, pad) + s, nil
			}
			return pyCenter(s, int(w), fill), nil
		}), true
	case "zfill":
		return method(name, func(args []any, kwargs []KeywordArg) (any, error) {
			if len(args) != 1 {
				return nil, errorf(TypeError, "str.zfill() takes exactly one argument (%d given)", len(args))
			}
			w, _, _, _ := number(args[0])
			pad := int(w) - runeCount(s)
			if pad <= 0 {
				return s, nil
			}
			if s != "" && (s[0] == '+' || s[0] == '-') {
				return s[:1] + strings.Repeat("0", pad) + s[1:], nil
			}
			return strings.Repeat("0", pad) + s, nil
		}), true
	case "partition", "rpartition":
		return method(name, func(args []any, kwargs []KeywordArg) (any, error) {
			if len(args) != 1 {
				return nil, errorf(TypeError, "%s() takes exactly one argument (%d given)", name, len(args))
			}
			sep, ok := args[0].(string)
			if !ok {
				return nil, errorf(TypeError, "must be str, not %s", pyTypeName(args[0]))
			}
			if sep == "" {
				return nil, errorf(ValueError, "empty separator")
			}
			var i int
			if name == "partition" {
				i = strings.Index(s, sep)
				if i < 0 {
					return Tuple{s, "", ""}, nil
				}
			} else {
				i = strings.LastIndex(s, sep)
				if i < 0 {
					return Tuple{"", "", s}, nil
				}
			}
			return Tuple{s[:i], sep, s[i+len(sep):]}, nil
		}), true
	case "removeprefix", "removesuffix":
		return method(name, func(args []any, kwargs []KeywordArg) (any, error) {
			if len(args) != 1 {
				return nil, errorf(TypeError, "%s() takes exactly one argument (%d given)", name, len(args))
			}
			a, ok := args[0].(string)
			if !ok {
				return nil, errorf(TypeError, "%s() argument must be str, not %s", name, pyTypeName(args[0]))
			}
			if name == "removeprefix" {
				return strings.TrimPrefix(s, a), nil
			}
			return strings.TrimSuffix(s, a), nil
		}), true
	case "isdigit", "isdecimal", "isnumeric", "isalpha", "isalnum", "isspace", "islower", "isupper", "istitle", "isascii", "isidentifier", "isprintable":
		return method(name, noArgs(name, func() any { return strPredicate(name, s) })), true
	case "format":
		return method(name, func(args []any, kwargs []KeywordArg) (any, error) {
			return strFormat(s, args, kwargs)
		}), true
	case "expandtabs":
		return method(name, func(args []any, kwargs []KeywordArg) (any, error) {
			size, _, _, _ := number(argument(args, kwargs, 0, "tabsize", int64(8)))
			var b strings.Builder
			col := 0
			for _, r := range s {
				switch r {
				case '\t':
					if size > 0 {
						n := int(size) - col%int(size)
						b.WriteString(strings.Repeat(" ", n))
						col += n
					}
				case '\n', '\r':
					b.WriteRune(r)
					col = 0
				default:
					b.WriteRune(r)
					col++
				}
			}
			return b.String(), nil
		}), true
	}
	return nil, false
}

func noArgs(name string, fn func() any) func([]any, []KeywordArg) (any, error) {
	return func(args []any, kwargs []KeywordArg) (any, error) {
		if len(args) > 0 || len(kwargs) > 0 {
			return nil, errorf(TypeError, "str.%s() takes no arguments (%d given)", name, len(args)+len(kwargs))
		}
		return fn(), nil
	}
}

// substrRange applies the optional start/end arguments of startswith.
func substrRange(s string, bounds []any) (string, error) {
	if len(bounds) == 0 {
		return s, nil
	}
	runes := []rune(s)
	var start, end any
	start = bounds[0]
	if len(bounds) > 1 {
		end = bounds[1]
	}
	a, b, _, err := sliceBounds(start, end, nil, len(runes))
	if err != nil {
		return "", err
	}
	if b < a {
		return "", nil
	}
	return string(runes[a:b]), nil
}

func strPredicate(name, s string) bool {
	if s == "" {
		return name == "isascii" || name == "isprintable"
	}
	all := func(fn func(rune) bool) bool {
		for _, r := range s {
			if !fn(r) {
				return false
			}
		}
		return true
	}
	switch name {
	case "isdigit", "isdecimal":
		return all(unicode.IsDigit)
	case "isnumeric":
		return all(unicode.IsNumber)
	case "isalpha":
		return all(unicode.IsLetter)
	case "isalnum":
		return all(func(r rune) bool { return unicode.IsLetter(r) || unicode.IsNumber(r) })
	case "isspace":
		return all(isPySpace)
	case "islower":
		return pyIsCased(s, unicode.IsLower)
	case "isupper":
		return pyIsCased(s, unicode.IsUpper)
	case "istitle":
		return s == pyTitle(s) && strings.IndexFunc(s, func(r rune) bool { return unicode.IsUpper(r) || unicode.IsTitle(r) }) >= 0
	case "isascii":
		return isASCII(s)
	case "isidentifier":
		for i, r := range s {
			if !(isIdentStart(r) || i > 0 && (unicode.IsDigit(r) || unicode.Is(unicode.Mn, r))) {
				return false
			}
		}
		return true
	case "isprintable":
		return all(func(r rune) bool { return r == ' ' || unicode.IsPrint(r) })
	}
	return false
}

// pyIsCased is str.islower/isupper: at least one cased character and every
// cased character in the wanted case.
func pyIsCased(s string, want func(rune) bool) bool {
	cased := false
	for _, r := range s {
		if unicode.IsUpper(r) || unicode.IsLower(r) || unicode.IsTitle(r) {
			if !want(r) {
				return false
			}
			cased = true
		}
	}
	return cased
}

func dictMethod(d *Dict, name string) (any, bool) {
	switch name {
	case "items":
		return method(name, func(args []any, _ []KeywordArg) (any, error) {
			out := make([]any, d.Len())
			for i := range d.keys {
				out[i] = Tuple{d.keys[i], d.vals[i]}
			}
			return newView("dict_items", out), nil
		}), true
	case "keys":
		return method(name, func([]any, []KeywordArg) (any, error) {
			return newView("dict_keys", append([]any{}, d.keys...)), nil
		}), true
	case "values":
		return method(name, func([]any, []KeywordArg) (any, error) {
			return newView("dict_values", append([]any{}, d.vals...)), nil
		}), true
	case "get":
		return method(name, func(args []any, kwargs []KeywordArg) (any, error) {
			if len(kwargs) > 0 {
				return nil, errorf(TypeError, "dict.get() takes no keyword arguments")
			}
			if len(args) == 0 || len(args) > 2 {
				return nil, errorf(TypeError, "get expected at least 1 argument, got %d", len(args))
			}
			if err := checkHashable(args[0]); err != nil {
				return nil, err
			}
			if v, ok := d.Get(args[0]); ok {
				return v, nil
			}
			if len(args) == 2 {
				return args[1], nil
			}
			return nil, nil
		}), true
	case "copy":
		return method(name, func([]any, []KeywordArg) (any, error) { return d.copy(), nil }), true
	case "clear", "pop", "popitem", "setdefault", "update", "fromkeys":
		if name == "fromkeys" {
			return nil, false
		}
		return unsafeAttr(d, name), true
	}
	return nil, false
}

func listMethod(l []any, name string) (any, bool) {
	switch name {
	case "index", "count":
		return seqMethod(l, name, "list"), true
	case "copy":
		return method(name, func([]any, []KeywordArg) (any, error) { return append([]any{}, l...), nil }), true
	case "append", "clear", "extend", "insert", "pop", "remove", "reverse", "sort":
		return unsafeAttr(l, name), true
	}
	return nil, false
}

func tupleMethod(t Tuple, name string) (any, bool) {
	switch name {
	case "index", "count":
		return seqMethod(t, name, "tuple"), true
	}
	return nil, false
}

func seqMethod(items []any, name, typ string) *Callable {
	return method(name, func(args []any, _ []KeywordArg) (any, error) {
		if len(args) < 1 {
			return nil, errorf(TypeError, "%s expected at least 1 argument, got 0", name)
		}
		n := 0
		for i, it := range items {
			if pyEqual(it, args[0]) {
				if name == "index" {
					return int64(i), nil
				}
				n++
			}
		}
		if name == "index" {
			return nil, errorf(ValueError, "%s is not in %s", pyReprValue(args[0]), typ)
		}
		return int64(n), nil
	})
}

// ---- Python string helpers

func pyUpper(s string) string {
	if isASCII(s) {
		return strings.ToUpper(s)
	}
	var b strings.Builder
	for _, r := range s {
		switch r {
		case 'ß':
			b.WriteString("SS")
		default:
			b.WriteRune(unicode.ToUpper(r))
		}
	}
	return b.String()
}

func pyLower(s string) string {
	if isASCII(s) {
		return strings.ToLower(s)
	}
	var b strings.Builder
	for _, r := range s {
		if r == 'İ' {
			b.WriteString("i̇")
			continue
		}
		b.WriteRune(unicode.ToLower(r))
	}
	return b.String()
}

// pyCapitalize is str.capitalize: first character title-cased, the rest
// lower-cased.
func pyCapitalize(s string) string {
	if s == "" {
		return s
	}
	r, size := utf8.DecodeRuneInString(s)
	return string(unicode.ToTitle(r)) + pyLower(s[size:])
}

// pyTitle is str.title: a cased character after an uncased one starts a
// word.
func pyTitle(s string) string {
	var b strings.Builder
	prevCased := false
	for _, r := range s {
		cased := unicode.IsUpper(r) || unicode.IsLower(r) || unicode.IsTitle(r)
		switch {
		case cased && !prevCased:
			b.WriteRune(unicode.ToTitle(r))
		case cased:
			b.WriteRune(unicode.ToLower(r))
		default:
			b.WriteRune(r)
		}
		prevCased = cased
	}
	return b.String()
}

// pyTitleFilter is Jinja2's title filter: words start after runs of
// whitespace, "-", "(", "{", "[" or "<"; each word's first character is
// upper-cased and the rest lower-cased.
func pyTitleFilter(s string) string {
	var b strings.Builder
	start := true
	for _, r := range s {
		sep := isPySpace(r) || strings.ContainsRune("-({[<", r)
		switch {
		case sep:
			b.WriteRune(r)
			start = true
		case start:
			b.WriteString(pyUpper(string(r)))
			start = false
		default:
			b.WriteString(pyLower(string(r)))
		}
	}
	return b.String()
}

func pyCenter(s string, width int, fill string) string {
	n := runeCount(s)
	if width <= n {
		return s
	}
	marg := width - n
	left := marg/2 + (marg & width & 1)
	return strings.Repeat(fill, left) + s + strings.Repeat(fill, marg-left)
}

func pyStrip(s string, chars any, left, right bool) (any, error) {
	var pred func(rune) bool
	switch c := chars.(type) {
	case nil:
		pred = isPySpace
	case string:
		pred = func(r rune) bool { return strings.ContainsRune(c, r) }
	default:
		return nil, errorf(TypeError, "strip arg must be None or str")
	}
	if left {
		s = strings.TrimLeftFunc(s, pred)
	}
	if right {
		s = strings.TrimRightFunc(s, pred)
	}
	return s, nil
}

func pyReplaceEmpty(s, nw string, count int) string {
	var b strings.Builder
	n := 0
	for _, r := range s {
		if count < 0 || n < count {
			b.WriteString(nw)
			n++
		}
		b.WriteRune(r)
	}
	if count < 0 || n < count {
		b.WriteString(nw)
	}
	return b.String()
}

// pySplit is str.split / str.rsplit.
func pySplit(s string, sep any, maxsplit int, fromRight bool) (any, error) {
	var parts []string
	switch sp := sep.(type) {
	case nil:
		fields := strings.FieldsFunc(s, isPySpace)
		if maxsplit < 0 || maxsplit >= len(fields) {
			parts = fields
		} else if !fromRight {
			rest := trimLeftPySpace(s)
			for range maxsplit {
				i := strings.IndexFunc(rest, isPySpace)
				parts = append(parts, rest[:i])
				rest = trimLeftPySpace(rest[i:])
			}
			parts = append(parts, rest)
		} else {
			rest := trimRightPySpace(s)
			var tail []string
			for range maxsplit {
				i := strings.LastIndexFunc(rest, isPySpace)
				_, size := utf8.DecodeRuneInString(rest[i:])
				tail = append([]string{rest[i+size:]}, tail...)
				rest = trimRightPySpace(rest[:i])
			}
			parts = append([]string{rest}, tail...)
		}
	case string:
		if sp == "" {
			return nil, errorf(ValueError, "empty separator")
		}
		if !fromRight || maxsplit < 0 {
			parts = strings.SplitN(s, sp, maxsplit+1)
			if maxsplit < 0 {
				parts = strings.Split(s, sp)
			}
		} else {
			rest := s
			var tail []string
			for range maxsplit {
				i := strings.LastIndex(rest, sp)
				if i < 0 {
					break
				}
				tail = append([]string{rest[i+len(sp):]}, tail...)
				rest = rest[:i]
			}
			parts = append([]string{rest}, tail...)
		}
	default:
		return nil, errorf(TypeError, "must be str or None, not %s", pyTypeName(sep))
	}
	out := make([]any, len(parts))
	for i, p := range parts {
		out[i] = p
	}
	return out, nil
}

// pySplitlines is str.splitlines: every Unicode line boundary.
func pySplitlines(s string, keepends bool) []string {
	var lines []string
	start := 0
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		end := i + size
		switch r {
		case '\n', '\v', '\f', 0x1c, 0x1d, 0x1e, 0x85, 0x2028, 0x2029:
		case '\r':
			if end < len(s) && s[end] == '\n' {
				end++
			}
		default:
			i = end
			continue
		}
		if keepends {
			lines = append(lines, s[start:end])
		} else {
			lines = append(lines, s[start:i])
		}
		start, i = end, end
	}
	if start < len(s) {
		lines = append(lines, s[start:])
	}
	return lines
}

// strFormat is a subset of str.format: {}, {0}, {name}, {{ and }}, with
// an optional format spec handled like format().
func strFormat(s string, args []any, kwargs []KeywordArg) (any, error) {
	var b strings.Builder
	auto := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '}' {
			if i+1 < len(s) && s[i+1] == '}' {
				b.WriteByte('}')
				i++
				continue
			}
			return nil, errorf(ValueError, "Single '}' encountered in format string")
		}
		if c != '{' {
			b.WriteByte(c)
			continue
		}
		if i+1 < len(s) && s[i+1] == '{' {
			b.WriteByte('{')
			i++
			continue
		}
		j := strings.IndexByte(s[i:], '}')
		if j < 0 {
			return nil, errorf(ValueError, "expected '}' before end of string")
		}
		field := s[i+1 : i+j]
		i += j
		spec := ""
		if k := strings.IndexByte(field, ':'); k >= 0 {
			field, spec = field[:k], field[k+1:]
		}
		conv := ""
		if k := strings.IndexByte(field, '!'); k >= 0 {
			field, conv = field[:k], field[k+1:]
		}
		var v any
		switch {
		case field == "":
			if auto >= len(args) {
				return nil, errorf(IndexError, "Replacement index %d out of range for positional args tuple", auto)
			}
			v = args[auto]
			auto++
		case isAllDigits(field):
			n, _ := strconv.Atoi(field)
			if n >= len(args) {
				return nil, errorf(IndexError, "Replacement index %d out of range for positional args tuple", n)
			}
			v = args[n]
		default:
			found := false
			for _, k := range kwargs {
				if k.Name == field {
					v, found = k.Value, true
				}
			}
			if !found {
				return nil, errorf(KeyError, "%s", pyRepr(field))
			}
		}
		if conv == "r" {
			v = pyReprValue(v)
		}
		if spec == "" {
			b.WriteString(pyStr(v))
			continue
		}
		out, err := percentFormat("%"+spec+formatSpecType(spec, v), v)
		if err != nil {
			return nil, err
		}
		b.WriteString(out.(string))
	}
	return b.String(), nil
}

func formatSpecType(spec string, v any) string {
	if spec != "" && strings.ContainsRune("sdfeEgGxXo%", rune(spec[len(spec)-1])) {
		return ""
	}
	switch v.(type) {
	case int64:
		return "d"
	case float64:
		return "g"
	}
	return "s"
}

// percentFormat is Python's printf-style "format % values".
func percentFormat(format string, operand any) (any, error) {
	var args []any
	var mapping *Dict
	switch x := operand.(type) {
	case Tuple:
		args = x
	case *Dict:
		mapping = x
		args = []any{x}
	default:
		args = []any{x}
	}
	var b strings.Builder
	argi := 0
	next := func() (any, error) {
		if argi >= len(args) {
			return nil, errorf(TypeError, "not enough arguments for format string")
		}
		argi++
		return args[argi-1], nil
	}
	usedMapping := false
	for i := 0; i < len(format); i++ {
		c := format[i]
		if c != '%' {
			b.WriteByte(c)
			continue
		}
		i++
		if i >= len(format) {
			return nil, errorf(ValueError, "incomplete format")
		}
		var v any
		haveV := false
		if format[i] == '(' {
			j := strings.IndexByte(format[i:], ')')
			if j < 0 {
				return nil, errorf(ValueError, "incomplete format key")
			}
			key := format[i+1 : i+j]
			i += j + 1
			if mapping == nil {
				return nil, errorf(TypeError, "format requires a mapping")
			}
			val, ok := mapping.Get(key)
			if !ok {
				return nil, errorf(KeyError, "%s", pyRepr(key))
			}
			v, haveV, usedMapping = val, true, true
		}
		flags := ""
		for i < len(format) && strings.IndexByte("-+ #0", format[i]) >= 0 {
			flags += string(format[i])
			i++
		}
		width := ""
		if i < len(format) && format[i] == '*' {
			w, err := next()
			if err != nil {
				return nil, err
			}
			width = pyStr(w)
			i++
		}
		for i < len(format) && format[i] >= '0' && format[i] <= '9' {
			width += string(format[i])
			i++
		}
		prec := ""
		hasPrec := false
		if i < len(format) && format[i] == '.' {
			hasPrec = true
			i++
			for i < len(format) && format[i] >= '0' && format[i] <= '9' {
				prec += string(format[i])
				i++
			}
			if prec == "" {
				prec = "0"
			}
		}
		for i < len(format) && strings.IndexByte("hlL", format[i]) >= 0 {
			i++
		}
		if i >= len(format) {
			return nil, errorf(ValueError, "incomplete format")
		}
		conv := format[i]
		if conv == '%' {
			b.WriteByte('%')
			continue
		}
		if !haveV {
			var err error
			if v, err = next(); err != nil {
				return nil, err
			}
		}
		var body string
		switch conv {
		case 's':
			body = pyStr(v)
			if hasPrec {
				p, _ := strconv.Atoi(prec)
				if r := []rune(body); len(r) > p {
					body = string(r[:p])
				}
			}
		case 'r', 'a':
			body = pyReprValue(v)
		case 'd', 'i', 'u':
			n, f, isInt, ok := number(v)
			if !ok {
				return nil, errorf(TypeError, "%%%c format: a real number is required, not %s", conv, pyTypeName(v))
			}
			if !isInt {
				n = int64(f)
			}
			body = strconv.FormatInt(n, 10)
			if strings.Contains(flags, "+") && n >= 0 {
				body = "+" + body
			} else if strings.Contains(flags, " ") && n >= 0 {
				body = " " + body
			}
		case 'x', 'X', 'o':
			n, _, isInt, ok := number(v)
			if !ok || !isInt {
				return nil, errorf(TypeError, "%%%c format: an integer is required, not %s", conv, pyTypeName(v))
			}
			base := 16
			if conv == 'o' {
				base = 8
			}
			body = strconv.FormatInt(n, base)
			if conv == 'X' {
				body = strings.ToUpper(body)
			}
		case 'f', 'F', 'e', 'E', 'g', 'G':
			_, f, _, ok := number(v)
			if !ok {
				return nil, errorf(TypeError, "must be real number, not %s", pyTypeName(v))
			}
			p := 6
			if hasPrec {
				p, _ = strconv.Atoi(prec)
			}
			fc := conv
			if fc == 'F' {
				fc = 'f'
			}
			body = strconv.FormatFloat(f, fc, p, 64)
			if (fc == 'g' || fc == 'G') && strings.Contains(flags, "#") {
				body = strconv.FormatFloat(f, fc, p, 64)
			}
			if strings.Contains(flags, "+") && f >= 0 {
				body = "+" + body
			}
		case 'c':
			switch x := v.(type) {
			case int64:
				body = string(rune(x))
			case string:
				body = x
			}
		default:
			return nil, errorf(ValueError, "unsupported format character '%c' (0x%x) at index %d", conv, conv, i)
		}
		if w, err := strconv.Atoi(width); err == nil && runeCount(body) < w {
			pad := w - runeCount(body)
			switch {
			case strings.Contains(flags, "-"):
				body += strings.Repeat(" ", pad)
			case strings.Contains(flags, "0") && conv != 's' && conv != 'r':
				sign := ""
				if body != "" && (body[0] == '-' || body[0] == '+' || body[0] == ' ') {
					sign, body = body[:1], body[1:]
				}
				body = sign + strings.Repeat("0", pad) + body
			default:
				body = strings.Repeat(" ", pad) + body
			}
		}
		b.WriteString(body)
	}
	// Python skips this check when the operand has __getitem__ (a list,
	// a dict or an Undefined, not a string).
	_, isList := operand.([]any)
	_, isUndef := operand.(Undefined)
	if argi < len(args) && !usedMapping && mapping == nil && !isList && !isUndef {
		return nil, errorf(TypeError, "not all arguments converted during string formatting")
	}
	return b.String(), nil
}
