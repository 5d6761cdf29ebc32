package jinja

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"unsafe"
)

// Template is a compiled template. It is safe for concurrent renders (only
// its output size hint changes).
type Template struct {
	body []node
	// sizeHint is about how long recent renders were, so that the next
	// one sizes its output buffer once instead of doubling it a dozen times.
	sizeHint atomic.Int64
}

// maxSizeHint bounds the buffer a render reserves ahead.
const maxSizeHint = 1 << 20

// Compile parses a template with the settings transformers uses:
// trim_blocks, lstrip_blocks, loop controls, and the {% generation %} tag.
func Compile(src string) (*Template, error) {
	body, err := parse(src)
	if err != nil {
		return nil, err
	}
	if err := checkNames(body); err != nil {
		return nil, err
	}
	return &Template{body: body}, nil
}

// Filter is a filter function: value | name(args, kwargs).
type Filter func(v any, args []any, kwargs []KeywordArg) (any, error)

// Env is what a render sees besides its variables: extra globals (values
// or *Callable functions) and extra or replacing filters. The zero value
// gives Jinja2's own globals and filters.
type Env struct {
	Globals map[string]any
	Filters map[string]Filter
	// MaxOutput bounds the rendered text, and any string built on the
	// way, in bytes (0: 64 MiB), so a hostile template cannot exhaust
	// memory.
	MaxOutput int
	// MaxSteps bounds loop iterations plus macro calls (0: 10 million), so
	// nested loops cannot run for hours.
	MaxSteps int
}

// Span is a byte range [Start, End) of rendered text.
type Span struct{ Start, End int }

// Result is a rendered template: its text and, for templates with
// {% generation %} blocks, where each block's output landed in the text.
type Result struct {
	Text       string
	Generation []Span
}

// Render renders the template with vars (converted with FromGo).
func (t *Template) Render(vars map[string]any, env *Env) (Result, error) {
	hint := t.sizeHint.Load()
	text, gen, err := t.AppendRender(make([]byte, 0, hint), vars, env)
	if err != nil {
		return Result{}, err
	}
	if n := int64(len(text)); n > hint || n < hint/2 {
		t.sizeHint.Store(min(n+n/8, maxSizeHint))
	}
	// text is this render's own buffer, never written again (what
	// strings.Builder.String does too).
	return Result{Text: unsafe.String(unsafe.SliceData(text), len(text)), Generation: gen}, nil
}

// AppendRender renders the template with vars (converted with FromGo),
// appending the text to dst, and returns the extended buffer and where the
// {% generation %} blocks landed, as offsets from the start of the appended
// text. A caller that renders many times reuses one buffer, so a render
// allocates no output of its own.
func (t *Template) AppendRender(dst []byte, vars map[string]any, env *Env) ([]byte, []Span, error) {
	if env == nil {
		env = &Env{}
	}
	return t.render(dst, vars, env, nil)
}

func (t *Template) render(dst []byte, vars map[string]any, env *Env, probe *Probe) ([]byte, []Span, error) {
	top := &frame{vars: make(map[string]any, len(vars))}
	for k, v := range vars {
		top.vars[k] = FromGo(v)
	}
	r := &renderer{env: env, maxOut: env.MaxOutput, maxSteps: env.MaxSteps, probe: probe}
	if r.maxOut <= 0 {
		r.maxOut = 64 << 20
	}
	if r.maxSteps <= 0 {
		r.maxSteps = 10_000_000
	}
	r.top = output{b: dst, base: len(dst)}
	r.out = &r.top
	err := r.execBody(t.body, top)
	if err != nil {
		if errors.Is(err, errBreak) || errors.Is(err, errContinue) {
			err = errorf(SyntaxError, "'break' or 'continue' outside a loop")
		}
		return dst, nil, err
	}
	return r.top.b, r.gen, nil
}

// frame is one scope. Its first few names live inline: a loop iteration or
// a macro call gets a fresh scope, and most bind two or three names, so a
// map per scope would be most of a render's allocations.
type frame struct {
	names  [frameInline]string
	vals   [frameInline]any
	n      int
	vars   map[string]any // the names past the inline ones
	parent *frame
}

const frameInline = 4

func (f *frame) lookup(name string) (any, bool) {
	for ; f != nil; f = f.parent {
		if v, ok := f.get(name); ok {
			return v, true
		}
	}
	return nil, false
}

// get looks name up in this scope only.
func (f *frame) get(name string) (any, bool) {
	for i := range f.n {
		if f.names[i] == name {
			return f.vals[i], true
		}
	}
	v, ok := f.vars[name]
	return v, ok
}

// set binds name in this scope.
func (f *frame) set(name string, v any) {
	for i := range f.n {
		if f.names[i] == name {
			f.vals[i] = v
			return
		}
	}
	if _, ok := f.vars[name]; ok || f.n == frameInline {
		if f.vars == nil {
			f.vars = map[string]any{}
		}
		f.vars[name] = v
		return
	}
	f.names[f.n], f.vals[f.n] = name, v
	f.n++
}

func (f *frame) child() *frame { return &frame{parent: f} }

var (
	errBreak    = errors.New("break")
	errContinue = errors.New("continue")
)

const maxCallDepth = 200

type renderer struct {
	env      *Env
	top      output
	out      *output
	captures int // > 0 while output goes to a macro or {% set %} buffer
	gen      []Span
	depth    int
	maxOut   int
	steps    int
	maxSteps int
	probe    *Probe // nil unless ProbeRender
}

func (r *renderer) step() error {
	r.steps++
	if r.steps > r.maxSteps {
		return errorf(RuntimeError, "template took more than %d loop iterations and macro calls", r.maxSteps)
	}
	return nil
}

func (r *renderer) write(s string) error {
	if r.out.Len()+len(s) > r.maxOut {
		return errorf(RuntimeError, "rendered output exceeds %d bytes", r.maxOut)
	}
	r.out.WriteString(s)
	return nil
}

// output is where a render writes: the text after base in b.
type output struct {
	b    []byte
	base int
}

func (o *output) Len() int             { return len(o.b) - o.base }
func (o *output) WriteString(s string) { o.b = append(o.b, s...) }
func (o *output) String() string       { return string(o.b[o.base:]) }

// capture runs fn with output going to a fresh buffer and returns it.
func (r *renderer) capture(fn func() error) (string, error) {
	saved := r.out
	var b output
	r.out = &b
	r.captures++
	err := fn()
	r.captures--
	r.out = saved
	// b is this capture's own buffer, dropped here: no copy needed.
	return unsafe.String(unsafe.SliceData(b.b), len(b.b)), err
}

func (r *renderer) execBody(body []node, f *frame) error {
	for _, n := range body {
		if err := r.exec(n, f); err != nil {
			return err
		}
	}
	return nil
}

func (r *renderer) exec(n node, f *frame) error {
	switch n := n.(type) {
	case *textNode:
		return r.write(n.text)
	case *printNode:
		v, err := r.eval(n.x, f)
		if err != nil {
			return err
		}
		if r.probe != nil {
			r.look("printing a list or dict", nonString(v))
		}
		return r.write(pyStr(v))
	case *ifNode:
		for i, test := range n.tests {
			v, err := r.eval(test, f)
			if err != nil {
				return err
			}
			if truthy(v) {
				return r.execBody(n.bodies[i], f)
			}
		}
		return r.execBody(n.els, f)
	case *forNode:
		return r.execFor(n, f)
	case *setNode:
		v, err := r.eval(n.x, f)
		if err != nil {
			return err
		}
		return r.assign(n.target, v, f)
	case *setBlockNode:
		text, err := r.capture(func() error { return r.execBody(n.body, f.child()) })
		if err != nil {
			return err
		}
		var v any = text
		if n.filter != nil {
			if v, err = r.applyFilter(n.filter, v, f); err != nil {
				return err
			}
		}
		return r.assign(n.target, v, f)
	case *macroNode:
		f.set(n.m.name, &Macro{name: n.m.name, def: n.m, closure: f, r: r})
		return nil
	case *callBlockNode:
		caller := &Macro{name: "caller", def: n.caller, closure: f, r: r}
		call := *n.call
		call.kwargs = append(append([]kwargExpr(nil), call.kwargs...), kwargExpr{name: "caller", x: &constExpr{v: caller}})
		v, err := r.eval(&call, f)
		if err != nil {
			return err
		}
		if r.probe != nil {
			r.look("printing a list or dict", nonString(v))
		}
		return r.write(pyStr(v))
	case *filterBlockNode:
		text, err := r.capture(func() error { return r.execBody(n.body, f.child()) })
		if err != nil {
			return err
		}
		v, err := r.applyFilter(n.filter, text, f)
		if err != nil {
			return err
		}
		return r.write(pyStr(v))
	case *withNode:
		inner := f.child()
		for i, t := range n.targets {
			v, err := r.eval(n.values[i], f)
			if err != nil {
				return err
			}
			if err := r.assign(t, v, inner); err != nil {
				return err
			}
		}
		return r.execBody(n.body, inner)
	case *generationNode:
		start := r.out.Len()
		// transformers renders the block as a call block: its own scope.
		if err := r.execBody(n.body, f.child()); err != nil {
			return err
		}
		if r.captures == 0 {
			r.gen = append(r.gen, Span{Start: start, End: r.out.Len()})
		}
		return nil
	case *breakNode:
		return errBreak
	case *continueNode:
		return errContinue
	}
	return errorf(RuntimeError, "unknown node %T", n)
}

// assign binds a set/for target in frame f.
func (r *renderer) assign(t target, v any, f *frame) error {
	switch {
	case t.attr != "":
		obj, ok := f.lookup(t.name)
		if !ok {
			obj, ok = r.env.Globals[t.name]
		}
		ns, isNS := obj.(*Namespace)
		if !ok || !isNS {
			return errorf(TemplateRuntimeError, "cannot assign attribute on non-namespace object")
		}
		ns.attrs.Set(t.attr, v)
		return nil
	case t.tuple != nil:
		if r.probe != nil {
			r.lookString("unpacking a string", v)
		}
		items, err := unpack(v, len(t.tuple))
		if err != nil {
			return err
		}
		for i, sub := range t.tuple {
			if err := r.assign(sub, items[i], f); err != nil {
				return err
			}
		}
		return nil
	}
	f.set(t.name, v)
	return nil
}

func unpack(v any, n int) ([]any, error) {
	items, err := iterate(v)
	if err != nil {
		return nil, errorf(TypeError, "cannot unpack non-iterable %s object", pyTypeName(v))
	}
	if len(items) < n {
		return nil, errorf(ValueError, "not enough values to unpack (expected %d, got %d)", n, len(items))
	}
	if len(items) > n {
		return nil, errorf(ValueError, "too many values to unpack (expected %d)", n)
	}
	return items, nil
}

// iterate lists the items of an iterable value as Python's iter() would.
func iterate(v any) ([]any, error) {
	switch x := v.(type) {
	case []any:
		return x, nil
	case Tuple:
		return x, nil
	case string:
		out := make([]any, 0, len(x))
		for _, c := range x {
			out = append(out, string(c))
		}
		return out, nil
	case *Dict:
		return append([]any(nil), x.keys...), nil
	case *Namespace:
		return nil, errorf(TypeError, "'Namespace' object is not iterable")
	case Undefined:
		return nil, nil
	case *loopContext:
		return x.items, nil
	case *Iterator:
		return x.rest()
	}
	return nil, errorf(TypeError, "'%s' object is not iterable", pyTypeName(v))
}

type loopContext struct {
	items    []any
	index    int
	depth0   int
	loopNode *forNode
	frame    *frame
	lastSeen any
	hasSeen  bool
}

func (r *renderer) execFor(n *forNode, f *frame) error {
	iv, err := r.eval(n.iter, f)
	if err != nil {
		return err
	}
	return r.runLoop(n, iv, f, 0)
}

func (r *renderer) runLoop(n *forNode, iv any, f *frame, depth0 int) error {
	if r.probe != nil {
		r.lookString("iterating over a string", iv)
	}
	items, err := iterate(iv)
	if err != nil {
		return err
	}
	if n.cond != nil {
		kept := make([]any, 0, len(items))
		for _, it := range items {
			if err := r.step(); err != nil {
				return err
			}
			scope := f.child()
			if err := r.assign(n.target, it, scope); err != nil {
				return err
			}
			ok, err := r.eval(n.cond, scope)
			if err != nil {
				return err
			}
			if truthy(ok) {
				kept = append(kept, it)
			}
		}
		items = kept
	}
	if len(items) == 0 {
		return r.execBody(n.els, f.child())
	}
	loop := &loopContext{items: items, depth0: depth0, loopNode: n, frame: f}
	for i, it := range items {
		if err := r.step(); err != nil {
			return err
		}
		loop.index = i
		scope := f.child()
		scope.set("loop", loop)
		if err := r.assign(n.target, it, scope); err != nil {
			return err
		}
		err := r.execBody(n.body, scope)
		if errors.Is(err, errBreak) {
			break
		}
		if err != nil && !errors.Is(err, errContinue) {
			return err
		}
	}
	return nil
}

func (l *loopContext) attr(name string) (any, bool) {
	n := len(l.items)
	switch name {
	case "index":
		return int64(l.index + 1), true
	case "index0":
		return int64(l.index), true
	case "revindex":
		return int64(n - l.index), true
	case "revindex0":
		return int64(n - l.index - 1), true
	case "first":
		return l.index == 0, true
	case "last":
		return l.index == n-1, true
	case "length":
		return int64(n), true
	case "depth":
		return int64(l.depth0 + 1), true
	case "depth0":
		return int64(l.depth0), true
	case "previtem":
		if l.index == 0 {
			return Undefined{Hint: "there is no previous item"}, true
		}
		return l.items[l.index-1], true
	case "nextitem":
		if l.index == n-1 {
			return Undefined{Hint: "there is no next item"}, true
		}
		return l.items[l.index+1], true
	case "cycle":
		return &Callable{Name: "cycle", Fn: func(args []any, _ []KeywordArg) (any, error) {
			if len(args) == 0 {
				return nil, errorf(TypeError, "no items for cycling given")
			}
			return args[l.index%len(args)], nil
		}}, true
	case "changed":
		return &Callable{Name: "changed", Fn: func(args []any, _ []KeywordArg) (any, error) {
			cur := Tuple(args)
			if l.hasSeen && pyEqual(l.lastSeen, cur) {
				return false, nil
			}
			l.lastSeen, l.hasSeen = cur, true
			return true, nil
		}}, true
	}
	return nil, false
}

// Macro is a {% macro %} bound to the scope it was defined in.
type Macro struct {
	name    string
	def     *macroDef
	closure *frame
	r       *renderer
}

func (r *renderer) callMacro(m *Macro, args []any, kwargs []KeywordArg) (any, error) {
	if r.depth >= maxCallDepth {
		return nil, errorf(RuntimeError, "maximum recursion depth exceeded")
	}
	if err := r.step(); err != nil {
		return nil, err
	}
	d := m.def
	scope := m.closure.child()
	nDefault := len(d.defaults)
	firstDefault := len(d.params) - nDefault
	var varargs []any
	if len(args) > len(d.params) {
		if !d.usesVarargs {
			return nil, errorf(TypeError, "macro '%s' takes not more than %d argument(s)", d.name, len(d.params))
		}
		varargs = args[len(d.params):]
		args = args[:len(d.params)]
	}
	extra := NewDict()
	bound := make([]bool, len(d.params))
	for i, a := range args {
		scope.set(d.params[i], a)
		bound[i] = true
	}
	var caller any
	for _, kw := range kwargs {
		found := false
		for i, p := range d.params {
			if p == kw.Name {
				if bound[i] {
					return nil, errorf(TypeError, "macro '%s' got multiple values for argument '%s'", d.name, p)
				}
				scope.set(p, kw.Value)
				bound[i] = true
				found = true
				break
			}
		}
		if found {
			continue
		}
		if kw.Name == "caller" {
			caller = kw.Value
			continue
		}
		if !d.usesKwargs {
			return nil, errorf(TypeError, "macro '%s' takes no keyword argument '%s'", d.name, kw.Name)
		}
		extra.Set(kw.Name, kw.Value)
	}
	for i, p := range d.params {
		if bound[i] {
			continue
		}
		if i >= firstDefault {
			v, err := r.eval(d.defaults[i-firstDefault], scope)
			if err != nil {
				return nil, err
			}
			scope.set(p, v)
		} else {
			scope.set(p, Undefined{Name: p, Hint: fmt.Sprintf("parameter '%s' was not provided", p)})
		}
	}
	if d.usesVarargs {
		scope.set("varargs", Tuple(append([]any{}, varargs...)))
	}
	if d.usesKwargs {
		scope.set("kwargs", extra)
	}
	if caller != nil {
		scope.set("caller", caller)
	} else if d.usesCaller {
		scope.set("caller", Undefined{Name: "caller", Hint: "No caller defined"})
	}
	r.depth++
	out, err := r.capture(func() error { return r.execBody(d.body, scope) })
	r.depth--
	if errors.Is(err, errBreak) || errors.Is(err, errContinue) {
		err = errorf(SyntaxError, "'break' or 'continue' outside a loop")
	}
	return out, err
}

// lookup resolves a variable: template scopes, then the render's globals,
// then Jinja2's builtin globals.
func (r *renderer) lookup(name string, f *frame) any {
	if v, ok := f.lookup(name); ok {
		return v
	}
	if v, ok := r.env.Globals[name]; ok {
		return FromGo(v)
	}
	if fn, ok := builtinGlobals[name]; ok {
		return fn
	}
	return Undefined{Name: name}
}

func (r *renderer) eval(x expr, f *frame) (any, error) {
	switch n := x.(type) {
	case *constExpr:
		return n.v, nil
	case *nameExpr:
		return r.lookup(n.name, f), nil
	case *getattrExpr:
		obj, err := r.eval(n.obj, f)
		if err != nil {
			return nil, err
		}
		if r.probe != nil {
			r.lookString("attribute "+n.attr+" of a string", obj)
		}
		return getattr(obj, n.attr)
	case *getitemExpr:
		obj, err := r.eval(n.obj, f)
		if err != nil {
			return nil, err
		}
		if r.probe != nil {
			r.lookString("indexing a string", obj)
		}
		if s, ok := n.key.(*sliceExpr); ok {
			return r.evalSlice(obj, s, f)
		}
		key, err := r.eval(n.key, f)
		if err != nil {
			return nil, err
		}
		if r.probe != nil {
			r.look("a key", key)
		}
		return getitem(obj, key)
	case *callExpr:
		fn, err := r.eval(n.fn, f)
		if err != nil {
			return nil, err
		}
		args, kwargs, err := r.evalArgs(n, f)
		if err != nil {
			return nil, err
		}
		if c, isFunc := fn.(*Callable); isFunc && r.probe != nil {
			r.lookArgs("calling "+c.Name, args, kwargs)
			if c.Volatile && r.probe.Looked == "" {
				r.probe.Looked = "calling " + c.Name + " (its result changes between renders)"
			}
		}
		return r.call(fn, args, kwargs)
	case *filterExpr:
		v, err := r.eval(n.x, f)
		if err != nil {
			return nil, err
		}
		return r.applyFilter(n, v, f)
	case *testExpr:
		return r.evalTest(n, f)
	case *unaryExpr:
		v, err := r.eval(n.x, f)
		if err != nil {
			return nil, err
		}
		switch n.op {
		case "not":
			return !truthy(v), nil
		case "-":
			r.look("negating", v)
			return negate(v)
		}
		r.look("unary +", v)
		return positive(v)
	case *binExpr:
		if n.op == "+" {
			return r.evalSum(n, f)
		}
		l, err := r.eval(n.l, f)
		if err != nil {
			return nil, err
		}
		switch n.op {
		case "and":
			if !truthy(l) {
				return l, nil
			}
			return r.eval(n.r, f)
		case "or":
			if truthy(l) {
				return l, nil
			}
			return r.eval(n.r, f)
		}
		rv, err := r.eval(n.r, f)
		if err != nil {
			return nil, err
		}
		if r.probe != nil {
			r.look("operator "+n.op, l, rv)
		}
		if n.op == "*" && repeatSize(l, rv) > int64(r.maxOut) {
			return nil, errorf(RuntimeError, "repetition exceeds %d items", r.maxOut)
		}
		v, err := binaryOp(n.op, l, rv)
		if s, ok := v.(string); ok && len(s) > r.maxOut {
			return nil, errorf(RuntimeError, "string exceeds %d bytes", r.maxOut)
		}
		return v, err
	case *concatExpr:
		var b strings.Builder
		for _, p := range n.parts {
			v, err := r.eval(p, f)
			if err != nil {
				return nil, err
			}
			if r.probe != nil {
				r.look("~ on a list or dict", nonString(v))
			}
			b.WriteString(pyStr(v))
			if b.Len() > r.maxOut {
				return nil, errorf(RuntimeError, "string exceeds %d bytes", r.maxOut)
			}
		}
		return b.String(), nil
	case *compareExpr:
		l, err := r.eval(n.first, f)
		if err != nil {
			return nil, err
		}
		for i, op := range n.ops {
			rv, err := r.eval(n.rest[i], f)
			if err != nil {
				return nil, err
			}
			if r.probe != nil {
				r.probeCompare(op, l, rv)
			}
			ok, err := compare(op, l, rv)
			if err != nil {
				return nil, err
			}
			if !ok {
				return false, nil
			}
			l = rv
		}
		return true, nil
	case *condExpr:
		t, err := r.eval(n.test, f)
		if err != nil {
			return nil, err
		}
		if truthy(t) {
			return r.eval(n.then, f)
		}
		if n.els == nil {
			return Undefined{Hint: fmt.Sprintf("the inline if-expression on line %d evaluated to false and no else section was defined.", n.line)}, nil
		}
		return r.eval(n.els, f)
	case *listExpr:
		out := make([]any, len(n.items))
		for i, it := range n.items {
			v, err := r.eval(it, f)
			if err != nil {
				return nil, err
			}
			out[i] = v
		}
		return out, nil
	case *tupleExpr:
		out := make(Tuple, len(n.items))
		for i, it := range n.items {
			v, err := r.eval(it, f)
			if err != nil {
				return nil, err
			}
			out[i] = v
		}
		return out, nil
	case *dictExpr:
		d := NewDict()
		for i := range n.keys {
			k, err := r.eval(n.keys[i], f)
			if err != nil {
				return nil, err
			}
			if r.probe != nil {
				r.look("a dict key", k)
			}
			if err := checkHashable(k); err != nil {
				return nil, err
			}
			v, err := r.eval(n.vals[i], f)
			if err != nil {
				return nil, err
			}
			d.Set(k, v)
		}
		return d, nil
	}
	return nil, errorf(RuntimeError, "cannot evaluate %T", x)
}

// evalSum evaluates a chain a + b + c + ... (left-nested "+" nodes) the
// way Python does, left to right, but joins a run of strings once, at its
// end, instead of building every intermediate string: chat templates
// assemble each turn from half a dozen pieces.
func (r *renderer) evalSum(n *binExpr, f *frame) (any, error) {
	var spine [8]expr
	operands := spine[:0]
	var x expr = n
	for {
		b, ok := x.(*binExpr)
		if !ok || b.op != "+" {
			break
		}
		operands = append(operands, b.r)
		x = b.l
	}
	operands = append(operands, x)
	slices.Reverse(operands)
	acc, err := r.eval(operands[0], f)
	if err != nil {
		return nil, err
	}
	// run holds the strings not joined yet, acc's first when acc is a string.
	var runSpace [8]string
	run := runSpace[:0]
	runLen := 0
	for _, operand := range operands[1:] {
		v, err := r.eval(operand, f)
		if err != nil {
			return nil, err
		}
		if s, ok := v.(string); ok {
			if len(run) == 0 {
				if a, isStr := acc.(string); isStr {
					run, runLen = append(run, a), len(a)
				}
			}
			if len(run) > 0 {
				run, runLen = append(run, s), runLen+len(s)
				if runLen > r.maxOut {
					return nil, errorf(RuntimeError, "string exceeds %d bytes", r.maxOut)
				}
				continue
			}
		}
		if len(run) > 0 {
			acc, run = joinStrings(run, runLen), run[:0]
		}
		if r.probe != nil {
			r.probeSum(acc, v)
		}
		sum, err := binaryOp("+", acc, v)
		if err != nil {
			return sum, err
		}
		if s, ok := sum.(string); ok && len(s) > r.maxOut {
			return nil, errorf(RuntimeError, "string exceeds %d bytes", r.maxOut)
		}
		acc = sum
	}
	if len(run) > 0 {
		return joinStrings(run, runLen), nil
	}
	return acc, nil
}

func joinStrings(parts []string, n int) string {
	var b strings.Builder
	b.Grow(n)
	for _, p := range parts {
		b.WriteString(p)
	}
	return b.String()
}

func checkHashable(k any) error {
	switch k.(type) {
	case []any, *Dict, *Namespace:
		return errorf(TypeError, "unhashable type: '%s'", pyTypeName(k))
	}
	return nil
}

func (r *renderer) evalArgs(c *callExpr, f *frame) ([]any, []KeywordArg, error) {
	args := make([]any, 0, len(c.args))
	for _, a := range c.args {
		v, err := r.eval(a, f)
		if err != nil {
			return nil, nil, err
		}
		args = append(args, v)
	}
	var kwargs []KeywordArg
	for _, k := range c.kwargs {
		v, err := r.eval(k.x, f)
		if err != nil {
			return nil, nil, err
		}
		kwargs = append(kwargs, KeywordArg{Name: k.name, Value: v})
	}
	if c.dynArgs != nil {
		v, err := r.eval(c.dynArgs, f)
		if err != nil {
			return nil, nil, err
		}
		items, err := iterate(v)
		if err != nil {
			return nil, nil, err
		}
		args = append(args, items...)
	}
	if c.dynKws != nil {
		v, err := r.eval(c.dynKws, f)
		if err != nil {
			return nil, nil, err
		}
		d, ok := v.(*Dict)
		if !ok {
			return nil, nil, errorf(TypeError, "argument after ** must be a mapping, not %s", pyTypeName(v))
		}
		for i := range d.keys {
			k, ok := d.keys[i].(string)
			if !ok {
				return nil, nil, errorf(TypeError, "keywords must be strings")
			}
			kwargs = append(kwargs, KeywordArg{Name: k, Value: d.vals[i]})
		}
	}
	return args, kwargs, nil
}

func (r *renderer) call(fn any, args []any, kwargs []KeywordArg) (any, error) {
	switch c := fn.(type) {
	case *Callable:
		return c.Fn(args, kwargs)
	case *Macro:
		return c.r.callMacro(c, args, kwargs)
	case *loopContext:
		if !c.loopNode.recursive {
			return nil, errorf(TypeError, "Tried to call non recursive loop.  Maybe you forgot the 'recursive' modifier.")
		}
		if len(args) != 1 {
			return nil, errorf(TypeError, "loop() takes exactly one argument")
		}
		if r.depth >= maxCallDepth {
			return nil, errorf(RuntimeError, "maximum recursion depth exceeded")
		}
		r.depth++
		defer func() { r.depth-- }()
		return r.capture(func() error { return r.runLoop(c.loopNode, args[0], c.frame, c.depth0+1) })
	case Undefined:
		return nil, c.fail()
	}
	return nil, errorf(TypeError, "'%s' object is not callable", pyTypeName(fn))
}

func (r *renderer) evalSlice(obj any, s *sliceExpr, f *frame) (any, error) {
	var bounds [3]any
	for i, x := range []expr{s.start, s.stop, s.step} {
		if x == nil {
			continue
		}
		v, err := r.eval(x, f)
		if err != nil {
			return nil, err
		}
		bounds[i] = v
	}
	if r.probe != nil {
		r.look("slice bounds", bounds[:]...)
	}
	return sliceValue(obj, bounds[0], bounds[1], bounds[2])
}

func (r *renderer) applyFilter(n *filterExpr, v any, f *frame) (any, error) {
	args, kwargs, err := r.evalArgs(&n.call, f)
	if err != nil {
		return nil, err
	}
	if r.probe != nil {
		if out, decided := r.probeFilter(n.name, v, args, kwargs); decided {
			return out, nil
		}
	}
	if fl, ok := r.env.Filters[n.name]; ok {
		return fl(v, args, kwargs)
	}
	fl, ok := builtinFilters[n.name]
	if !ok {
		return nil, &Error{Kind: TemplateRuntimeError, Line: n.line, Msg: fmt.Sprintf("No filter named '%s' found.", n.name)}
	}
	return fl(r, v, args, kwargs)
}

func (r *renderer) evalTest(n *testExpr, f *frame) (any, error) {
	v, err := r.eval(n.x, f)
	if err != nil {
		return nil, err
	}
	args, _, err := r.evalArgs(&n.call, f)
	if err != nil {
		return nil, err
	}
	if r.probe != nil {
		r.look("the arguments of test "+n.name, args...)
		if !typeTests[n.name] {
			r.look("test "+n.name, v)
		}
	}
	t, ok := builtinTests[n.name]
	if !ok {
		return nil, &Error{Kind: TemplateRuntimeError, Line: n.line, Msg: fmt.Sprintf("No test named '%s' found.", n.name)}
	}
	return t(r, v, args)
}

// repeatSize is the length "seq * n" would have (0 for other operands).
func repeatSize(a, b any) int64 {
	if _, _, isInt, ok := number(a); ok && isInt {
		a, b = b, a
	}
	n, _, isInt, ok := number(b)
	if !ok || !isInt || n <= 0 {
		return 0
	}
	switch x := a.(type) {
	case string:
		return int64(len(x)) * n
	case []any:
		return int64(len(x)) * n
	case Tuple:
		return int64(len(x)) * n
	}
	return 0
}
