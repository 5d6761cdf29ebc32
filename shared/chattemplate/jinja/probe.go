package jinja

import (
	"fmt"
	"strings"
)

// Probe watches what a render does with some of the strings it is given.
// A caller that substitutes placeholders for values it will later vary (a
// chat conversation's message contents) renders once with a Probe to learn
// whether the template only copies those placeholders into its output —
// concatenated, assigned, passed to macros, trimmed — or also looks into them
// (compares, tests, measures, slices, escapes, serializes them, or calls
// functions with them). A template that only copies them writes, for any
// other values, the same text with each placeholder replaced (trimmed where
// the probe render trimmed it), so the caller can skip rendering altogether.
//
// The decision is default-deny: every operation on a watched string other
// than those listed counts as looking into it. Container values (message
// lists and dicts) may be iterated, indexed by plain keys, measured and
// tested for type without looking into the strings they hold.
type Probe struct {
	// Marker is a substring every placeholder holds: a string holding it
	// is watched, and so is a list or dict holding such a string.
	Marker string
	// Trimmed maps each placeholder (and each trimmed form to itself) to
	// what the trim filter returns for it during the probe: a distinct
	// string, so the output shows which occurrence was trimmed.
	Trimmed map[string]string
	// Looked is set by the render: the first operation that looked into a
	// watched string ("" when none did).
	Looked string
}

// maxProbeDepth bounds the search for the marker inside nested containers.
const maxProbeDepth = 32

// ProbeRender renders like Render while p watches the render.
func (t *Template) ProbeRender(vars map[string]any, env *Env, p *Probe) (Result, error) {
	if env == nil {
		env = &Env{}
	}
	p.Looked = ""
	text, gen, err := t.render(nil, vars, env, p)
	if err != nil {
		return Result{}, err
	}
	return Result{Text: string(text), Generation: gen}, nil
}

// watched says whether v is or holds a string with the marker.
func (p *Probe) watched(v any, depth int) bool {
	if depth > maxProbeDepth {
		return true
	}
	switch x := v.(type) {
	case string:
		return strings.Contains(x, p.Marker)
	case []any:
		for _, e := range x {
			if p.watched(e, depth+1) {
				return true
			}
		}
	case Tuple:
		for _, e := range x {
			if p.watched(e, depth+1) {
				return true
			}
		}
	case *Dict:
		for i := range x.keys {
			if p.watched(x.keys[i], depth+1) || p.watched(x.vals[i], depth+1) {
				return true
			}
		}
	case *Namespace:
		return p.watched(x.attrs, depth+1)
	case *Iterator:
		if !x.made {
			return true // a lazy generator: what it yields is not known yet
		}
		for _, e := range x.items {
			if p.watched(e, depth+1) {
				return true
			}
		}
	case *loopContext:
		return true // its items are the loop's
	case *Macro, *Callable:
		// What they do with watched values is watched when they are called.
	}
	return false
}

// look records that operation what looked into v when v is watched.
func (r *renderer) look(what string, vals ...any) {
	p := r.probe
	if p == nil || p.Looked != "" {
		return
	}
	for _, v := range vals {
		if p.watched(v, 0) {
			p.Looked = what
			return
		}
	}
}

// lookString is look for operations that are harmless on containers (they
// do not read the strings inside) but not on a watched string itself.
func (r *renderer) lookString(what string, v any) {
	if _, isStr := v.(string); isStr {
		r.look(what, v)
	}
}

// lookArgs is look over call arguments.
func (r *renderer) lookArgs(what string, args []any, kwargs []KeywordArg) {
	if r.probe == nil {
		return
	}
	r.look(what, args...)
	for _, k := range kwargs {
		r.look(what, k.Value)
	}
}

// typeTests only look at a value's type (and undefinedness), never at what
// a string holds.
var typeTests = map[string]bool{"defined": true, "undefined": true, "none": true, "boolean": true, "false": true,
	"true": true, "integer": true, "float": true, "number": true, "string": true, "mapping": true, "sequence": true,
	"iterable": true, "callable": true}

// containerFilters do not read the strings inside a list or dict (on a
// watched string itself they do: its length, first character...).
var containerFilters = map[string]bool{"length": true, "count": true, "first": true, "last": true, "list": true,
	"reverse": true}

// probeFilter is the probe's view of a filter: it returns the result and
// true when the probe decides it (trim on a placeholder), and records a look
// for every other filter that reads a watched string.
func (r *renderer) probeFilter(name string, v any, args []any, kwargs []KeywordArg) (any, bool) {
	r.lookArgs(fmt.Sprintf("the arguments of filter %s", name), args, kwargs)
	switch {
	case name == "trim" && len(args) == 0 && len(kwargs) == 0:
		if s, isStr := v.(string); isStr {
			if t, ok := r.probe.Trimmed[s]; ok {
				return t, true
			}
		}
	case name == "default" || name == "d" || name == "string":
		// The value itself comes back when it is a defined string.
		if _, isStr := v.(string); isStr {
			return nil, false
		}
	case containerFilters[name]:
		r.lookString("filter "+name, v)
		return nil, false
	}
	r.look("filter "+name, v)
	return nil, false
}

// nonString is v unless v is a string (whose printing copies it as it is).
func nonString(v any) any {
	if _, isStr := v.(string); isStr {
		return nil
	}
	return v
}

// probeCompare records a comparison that reads a watched string. "in" and
// "not in" on a dict only read its keys.
func (r *renderer) probeCompare(op string, l, rv any) {
	if op == "in" || op == "not in" {
		if d, isDict := rv.(*Dict); isDict {
			r.look("operator "+op, l)
			for _, k := range d.keys {
				r.look("operator "+op, k)
			}
			return
		}
	}
	r.look("operator "+op, l, rv)
}

// probeSum records a + that is not string concatenation (list + list copies
// the lists' items without reading them).
func (r *renderer) probeSum(a, b any) {
	_, aList := a.([]any)
	_, bList := b.([]any)
	if aList && bList {
		return
	}
	r.look("operator +", a, b)
}

// Trim is what the trim filter makes of a string: Python's str.strip().
func Trim(s string) string {
	// Most texts begin and end with a visible ASCII character: nothing to
	// trim, and no rune to decode at either end.
	if len(s) > 0 && visibleASCII(s[0]) && visibleASCII(s[len(s)-1]) {
		return s
	}
	return strings.TrimFunc(s, isPySpace)
}

// visibleASCII: a byte of an ASCII character that is neither whitespace
// nor a control character (not one Python's strip removes).
func visibleASCII(c byte) bool { return c > ' ' && c < 0x7f }
