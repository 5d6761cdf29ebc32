package config

import (
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"sync"
)

// decoder turns nodes into Go values through the yaml tags of the target
// structs, collecting every problem instead of stopping at the first.
type decoder struct {
	file     string
	errors   []Issue
	warnings []Issue
	set      map[string]bool
	pos      map[string]position
	strict   bool
	// rules classify keys that are not fields of the struct being decoded,
	// per struct type (Config, Dataset).
	rules map[reflect.Type]map[string]keyRule
	// extra holds the deferred keys (see deferred) by path.
	extra map[string]entry
	// gasFromBatchSize is set when gradient_accumulation_steps was
	// derived from batch_size.
	gasFromBatchSize bool
}

// nodeDecoder is implemented by types with their own YAML forms.
type nodeDecoder interface {
	decodeNode(d *decoder, n *node, path string)
}

func newDecoder(file string) *decoder {
	return &decoder{
		file: file,
		set:  map[string]bool{},
		pos:  map[string]position{},
		rules: map[reflect.Type]map[string]keyRule{
			reflect.TypeFor[Config]():  topLevelRules,
			reflect.TypeFor[Dataset](): datasetRules,
		},
	}
}

func (d *decoder) issue(p position, path, format string, args ...any) Issue {
	is := Issue{File: p.file, Line: p.line, Column: p.column, Key: path, Message: fmt.Sprintf(format, args...)}
	if p.flag != "" {
		is.File, is.Line, is.Column = p.flag, 0, 0
	}
	return is
}

func (d *decoder) errorf(p position, path, format string, args ...any) {
	d.errors = append(d.errors, d.issue(p, path, format, args...))
}

func (d *decoder) warnf(p position, path, format string, args ...any) {
	d.warnings = append(d.warnings, d.issue(p, path, format, args...))
}

// keyPos is where a key path was given, or the file with no line when it
// was not given at all (a missing required key, a defaulted value).
func (d *decoder) keyPos(path string) position {
	if p, ok := d.pos[path]; ok {
		return p
	}
	return position{file: d.file}
}

func joinPath(parent, key string) string {
	if parent == "" {
		return key
	}
	return parent + "." + key
}

// structField is one yaml-tagged field of a struct.
type structField struct {
	index int
	name  string
}

var fieldCache sync.Map // reflect.Type -> map[string]structField

func fieldsOf(t reflect.Type) map[string]structField {
	if f, ok := fieldCache.Load(t); ok {
		return f.(map[string]structField)
	}
	fields := map[string]structField{}
	for i := range t.NumField() {
		sf := t.Field(i)
		tag := sf.Tag.Get("yaml")
		if !sf.IsExported() || tag == "" || tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		fields[name] = structField{index: i, name: name}
	}
	fieldCache.Store(t, fields)
	return fields
}

// decodeStruct decodes a mapping into the struct out points to. Keys that
// are not fields go through the struct type's key rules, if any, else they
// are unknown.
func (d *decoder) decodeStruct(n *node, path string, out any) {
	rv := reflect.ValueOf(out).Elem()
	if n.kind != kindMap {
		d.errorf(n.pos, path, "expected a mapping, got %s", n.describe())
		return
	}
	fields := fieldsOf(rv.Type())
	rules := d.rules[rv.Type()]
	for _, e := range n.entries {
		p := joinPath(path, e.key)
		if rule, ok := rules[e.key]; ok {
			if rule.alias == "" {
				rule.check(d, e, p)
				continue
			}
			// An alias decodes into its target field, unless the target
			// is given too.
			if n.lookup(rule.alias) != nil {
				d.errorf(e.keyPos, p, "%s and %s are the same setting; give only %s", e.key, rule.alias, rule.alias)
				continue
			}
			if rule.reason != "" {
				d.warnf(e.keyPos, p, "%s", rule.reason)
			}
			e.key = rule.alias
			p = joinPath(path, rule.alias)
		}
		f, ok := fields[e.key]
		if !ok {
			d.unknownKey(e, p)
			continue
		}
		d.pos[p] = e.keyPos
		if hook, ok := valueHooks[p]; ok && !hook(d, e.value, p) {
			continue
		}
		d.decodeValue(e.value, p, rv.Field(f.index))
	}
}

func (d *decoder) unknownKey(e entry, path string) {
	d.pos[path] = e.keyPos
	if path == e.key {
		for _, prefix := range speedPlugins {
			if strings.HasPrefix(e.key, prefix) {
				if isActive(e.value) {
					d.warnf(e.keyPos, path, "ignored: a key of an Axolotl kernel plugin; eft's kernels are its own")
				}
				return
			}
		}
	}
	if d.strict {
		d.errorf(e.keyPos, path, "unknown key (strict: true makes unknown keys errors)")
		return
	}
	d.warnf(e.keyPos, path, "unknown key, ignored")
}

// decodeValue decodes n into v, a settable field.
func (d *decoder) decodeValue(n *node, path string, v reflect.Value) {
	if n.kind == kindNull {
		// null leaves the default in place, as in Axolotl where None
		// means "not set".
		if v.Kind() == reflect.Pointer {
			v.SetZero()
		}
		return
	}
	d.set[path] = true
	if v.CanAddr() {
		if nd, ok := v.Addr().Interface().(nodeDecoder); ok {
			nd.decodeNode(d, n, path)
			return
		}
	}
	switch v.Kind() {
	case reflect.String:
		var s string
		if d.decodeString(n, path, &s) {
			v.SetString(s)
		}
	case reflect.Bool:
		var b bool
		if d.decodeBool(n, path, &b, "true or false") {
			v.SetBool(b)
		}
	case reflect.Int:
		var i int
		if d.decodeInt(n, path, &i) {
			v.SetInt(int64(i))
		}
	case reflect.Float64:
		var f float64
		if d.decodeFloat(n, path, &f) {
			v.SetFloat(f)
		}
	case reflect.Pointer:
		elem := reflect.New(v.Type().Elem())
		before := len(d.errors)
		d.decodeValue(n, path, elem.Elem())
		if len(d.errors) == before {
			v.Set(elem)
		}
	case reflect.Struct:
		d.decodeStruct(n, path, v.Addr().Interface())
	case reflect.Slice:
		d.decodeSlice(n, path, v)
	case reflect.Map:
		d.decodeMap(n, path, v)
	default:
		panic(fmt.Sprintf("config: no decoder for %s (%s)", v.Type(), path))
	}
}

func (d *decoder) decodeSlice(n *node, path string, v reflect.Value) {
	if v.Type().Elem().Kind() == reflect.String {
		var list []string
		d.decodeStringList(n, path, &list)
		v.Set(reflect.ValueOf(list))
		return
	}
	if n.kind != kindSeq {
		d.errorf(n.pos, path, "expected a list, got %s", n.describe())
		return
	}
	out := reflect.MakeSlice(v.Type(), len(n.items), len(n.items))
	for i, item := range n.items {
		p := fmt.Sprintf("%s[%d]", path, i)
		d.pos[p] = item.pos
		if item.kind == kindNull {
			d.errorf(item.pos, p, "empty list entry")
			continue
		}
		d.set[p] = true
		d.decodeValue(item, p, out.Index(i))
	}
	v.Set(out)
}

func (d *decoder) decodeMap(n *node, path string, v reflect.Value) {
	if n.kind != kindMap {
		d.errorf(n.pos, path, "expected a mapping, got %s", n.describe())
		return
	}
	out := reflect.MakeMapWithSize(v.Type(), len(n.entries))
	elemType := v.Type().Elem()
	for _, e := range n.entries {
		p := joinPath(path, e.key)
		d.pos[p] = e.keyPos
		elem := reflect.New(elemType).Elem()
		switch {
		case elemType.Kind() == reflect.Interface:
			if v := plainValue(e.value); v != nil {
				elem.Set(reflect.ValueOf(v))
			}
		case e.value.kind == kindNull:
			d.errorf(e.value.pos, p, "missing value")
			continue
		default:
			d.decodeValue(e.value, p, elem)
		}
		out.SetMapIndex(reflect.ValueOf(e.key), elem)
	}
	v.Set(out)
}

// plainValue converts a node to plain Go values (for free-form mappings
// such as chat_template_kwargs).
func plainValue(n *node) any {
	switch n.kind {
	case kindNull:
		return nil
	case kindSeq:
		out := make([]any, len(n.items))
		for i, item := range n.items {
			out[i] = plainValue(item)
		}
		return out
	case kindMap:
		out := make(map[string]any, len(n.entries))
		for _, e := range n.entries {
			out[e.key] = plainValue(e.value)
		}
		return out
	}
	switch n.scalar {
	case scalarBool:
		return n.text == "true"
	case scalarInt:
		if i, err := strconv.ParseInt(n.text, 0, 64); err == nil {
			return i
		}
	case scalarFloat:
		if f, err := strconv.ParseFloat(n.text, 64); err == nil {
			return f
		}
	}
	return n.text
}

func (d *decoder) decodeString(n *node, path string, out *string) bool {
	if n.kind != kindScalar || n.scalar == scalarBool {
		d.errorf(n.pos, path, "expected a string, got %s", n.describe())
		return false
	}
	*out = n.text
	return true
}

// decodeStringList accepts a list of strings, or a single string as a
// one-element list (Axolotl's `str | list[str]` keys such as data_files).
func (d *decoder) decodeStringList(n *node, path string, out *[]string) {
	if n.kind == kindScalar {
		var s string
		if d.decodeString(n, path, &s) {
			*out = []string{s}
		}
		return
	}
	if n.kind != kindSeq {
		d.errorf(n.pos, path, "expected a list of strings, got %s", n.describe())
		return
	}
	list := make([]string, 0, len(n.items))
	for i, item := range n.items {
		p := fmt.Sprintf("%s[%d]", path, i)
		if d.pos != nil {
			d.pos[p] = item.pos
		}
		var s string
		if d.decodeString(item, p, &s) {
			list = append(list, s)
		}
	}
	*out = list
}

// decodeBool accepts YAML booleans and, like pydantic, the strings
// true/false, yes/no, on/off, y/n, t/f, 1/0 and the integers 1 and 0.
func (d *decoder) decodeBool(n *node, path string, out *bool, want string) bool {
	if n.kind == kindScalar {
		switch strings.ToLower(n.text) {
		case "true", "yes", "on", "y", "t", "1":
			if n.scalar != scalarFloat {
				*out = true
				return true
			}
		case "false", "no", "off", "n", "f", "0":
			if n.scalar != scalarFloat {
				*out = false
				return true
			}
		}
	}
	d.errorf(n.pos, path, "expected %s, got %s", want, n.describe())
	return false
}

// decodeInt accepts integers, integral numbers (16.0) and strings holding
// an integer ("16"), as pydantic does.
func (d *decoder) decodeInt(n *node, path string, out *int) bool {
	if n.kind == kindScalar && n.scalar != scalarBool {
		if i, err := strconv.ParseInt(n.text, 0, 64); err == nil && i >= math.MinInt32 && i <= math.MaxInt32 {
			*out = int(i)
			return true
		}
		if f, err := strconv.ParseFloat(n.text, 64); err == nil && f == math.Trunc(f) && math.Abs(f) <= math.MaxInt32 {
			*out = int(f)
			return true
		}
	}
	d.errorf(n.pos, path, "expected an integer, got %s", n.describe())
	return false
}

// decodeFloat accepts numbers and strings holding one. The string form
// matters: YAML 1.1 readers such as PyYAML read 2e-4 (no dot) as a string,
// and Axolotl converts it; eft does the same for every number.
func (d *decoder) decodeFloat(n *node, path string, out *float64) bool {
	if n.kind == kindScalar && n.scalar != scalarBool {
		f, err := strconv.ParseFloat(strings.ReplaceAll(n.text, "_", ""), 64)
		if err == nil && !math.IsInf(f, 0) && !math.IsNaN(f) {
			*out = f
			return true
		}
		if i, err := strconv.ParseInt(n.text, 0, 64); err == nil {
			*out = float64(i)
			return true
		}
		if err == nil || strings.Contains(strings.ToLower(n.text), "inf") || strings.Contains(strings.ToLower(n.text), "nan") {
			d.errorf(n.pos, path, "expected a finite number, got %s", n.describe())
			return false
		}
	}
	d.errorf(n.pos, path, "expected a number, got %s", n.describe())
	return false
}
