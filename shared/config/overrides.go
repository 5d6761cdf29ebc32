package config

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"unicode/utf8"
)

// Command-line overrides follow Axolotl's CLI: every config key is a flag
// in kebab-case (`--learning-rate 2e-4`, `--lora-r=8`), booleans are
// switches (`--sample-packing`, `--no-sample-packing`,
// `--sample-packing=false`, `--sample-packing false`), and a dot reaches
// into a mapping (`--special-tokens.pad-token "<|eot_id|>"`). Values are
// typed by the schema: strings are taken as written, anything else is
// read as YAML (so lists work: `--lora-target-modules "[q_proj, v_proj]"`).
// An override replaces the file's value and is reported, when wrong, under
// the flag's name.

type override struct {
	flag  string   // as given, without the value: "--learning-rate"
	path  []string // config key path: ["learning_rate"]
	value *node
}

// parseOverrides turns the argument list into overrides.
func parseOverrides(args []string) ([]override, []Issue) {
	var out []override
	var issues []Issue
	bad := func(flag, format string, a ...any) {
		issues = append(issues, Issue{File: flag, Message: fmt.Sprintf(format, a...)})
	}
	for i := 0; i < len(args); i++ {
		arg := args[i]
		name, ok := strings.CutPrefix(arg, "--")
		if !ok || name == "" {
			bad(arg, "expected a --key value override (a config key in kebab-case), got %q", arg)
			continue
		}
		name, value, hasValue := strings.Cut(name, "=")
		flag := "--" + name
		path := strings.Split(strings.ReplaceAll(name, "-", "_"), ".")
		t, known := overrideType(path)
		negated := false
		if !known && strings.HasPrefix(path[0], "no_") {
			// --no-sample-packing
			p := append([]string{strings.TrimPrefix(path[0], "no_")}, path[1:]...)
			if pt, ok := overrideType(p); ok && isBoolType(pt) {
				path, t, known, negated = p, pt, true, true
			}
		}
		if !known {
			bad(flag, "unknown flag: no config key %s", strings.Join(path, "."))
			if !hasValue && i+1 < len(args) && !strings.HasPrefix(args[i+1], "--") {
				i++ // skip its value
			}
			continue
		}
		pos := position{flag: flag}
		switch {
		case negated:
			if hasValue {
				bad(flag, "a --no- switch takes no value")
				continue
			}
			out = append(out, override{flag: flag, path: path, value: &node{kind: kindScalar, scalar: scalarBool, text: "false", pos: pos}})
			continue
		case isBoolType(t) && !hasValue:
			value = "true"
			if i+1 < len(args) && isBoolLiteral(args[i+1]) {
				value = args[i+1]
				i++
			}
		case !hasValue:
			if i+1 >= len(args) || (strings.HasPrefix(args[i+1], "--") && len(args[i+1]) > 2) {
				bad(flag, "needs a value")
				continue
			}
			value = args[i+1]
			i++
		}
		n, err := overrideNode(t, value, pos)
		if err != nil {
			bad(flag, "%s", err)
			continue
		}
		out = append(out, override{flag: flag, path: path, value: n})
	}
	return out, issues
}

func isBoolLiteral(s string) bool {
	switch strings.ToLower(s) {
	case "true", "false", "yes", "no", "on", "off":
		return true
	}
	return false
}

func isBoolType(t reflect.Type) bool {
	return t != nil && (t.Kind() == reflect.Bool || t == reflect.TypeFor[AutoBool]())
}

// overrideType finds the Go type a key path decodes into. Keys handled by
// rules (ignored, refused, aliases, folded keys) have no field type; they
// are known, and their value is read as YAML.
func overrideType(path []string) (reflect.Type, bool) {
	t := reflect.TypeFor[Config]()
	for i, key := range path {
		if t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		switch t.Kind() {
		case reflect.Map:
			t = t.Elem()
			continue
		case reflect.Struct:
		default:
			return nil, false
		}
		if f, ok := fieldsOf(t)[key]; ok {
			t = t.Field(f.index).Type
			continue
		}
		if i == 0 {
			if rule, ok := topLevelRules[key]; ok {
				if rule.alias != "" {
					f := fieldsOf(t)[rule.alias]
					t = t.Field(f.index).Type
					continue
				}
				if _, folded := legacyFlagSet[key]; folded {
					return reflect.TypeFor[bool](), true
				}
				return nil, len(path) == 1
			}
		}
		return nil, false
	}
	return t, true
}

// legacyFlagSet are the deferred boolean keys, so --flash-attention works
// as a switch.
var legacyFlagSet = func() map[string]bool {
	m := map[string]bool{}
	for _, lf := range legacyAttentionFlags {
		m[lf.flag] = true
	}
	return m
}()

// overrideNode turns a flag's value into a node: as written for string
// fields, read as YAML for everything else.
func overrideNode(t reflect.Type, value string, pos position) (*node, error) {
	if !utf8.ValidString(value) {
		return nil, errors.New("the value is not valid UTF-8")
	}
	if t != nil && t.Kind() == reflect.String && t != reflect.TypeFor[AutoBool]() {
		return &node{kind: kindScalar, scalar: scalarString, text: value, pos: pos}, nil
	}
	n, err := parseYAML("", []byte(value))
	if err != nil {
		var e *Error
		if errors.As(err, &e) && len(e.Issues) > 0 {
			return nil, errors.New(e.Issues[0].Message)
		}
		return nil, err
	}
	setPos(n, pos)
	return n, nil
}

func setPos(n *node, pos position) {
	n.pos = pos
	for _, item := range n.items {
		setPos(item, pos)
	}
	for i := range n.entries {
		n.entries[i].keyPos = pos
		setPos(n.entries[i].value, pos)
	}
}

// apply splices the override into the root mapping, replacing what the
// file has at that path.
func (o override) apply(root *node) {
	m := root
	for i, key := range o.path {
		last := i == len(o.path)-1
		idx := -1
		for j, e := range m.entries {
			if e.key == key {
				idx = j
				break
			}
		}
		if last {
			e := entry{key: key, keyPos: position{flag: o.flag}, value: o.value}
			if idx >= 0 {
				m.entries[idx] = e
			} else {
				m.entries = append(m.entries, e)
			}
			return
		}
		if idx < 0 || m.entries[idx].value.kind != kindMap {
			child := &node{kind: kindMap, pos: position{flag: o.flag}}
			e := entry{key: key, keyPos: position{flag: o.flag}, value: child}
			if idx >= 0 {
				m.entries[idx] = e
			} else {
				m.entries = append(m.entries, e)
			}
			m = child
			continue
		}
		m = m.entries[idx].value
	}
}

// OverrideTakesValue reports whether the override flag arg ("--lora-r",
// "--sample-packing") consumes the next argument as its value, so a CLI
// that mixes overrides with positional arguments can split them: false
// for boolean switches and their --no- forms, for "--key=value", and for
// unknown flags (which Parse rejects anyway). A boolean switch may still be
// followed by an explicit true/false, which Parse reads.
func OverrideTakesValue(arg string) bool {
	name, ok := strings.CutPrefix(arg, "--")
	if !ok || name == "" || strings.Contains(name, "=") {
		return false
	}
	path := strings.Split(strings.ReplaceAll(name, "-", "_"), ".")
	t, known := overrideType(path)
	if !known {
		return false
	}
	return !isBoolType(t)
}
