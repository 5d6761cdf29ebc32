package config

// AutoBool is a setting that is true, false or "auto" (bf16, tf32). The
// zero value is unset; defaults turn it into Auto.
type AutoBool string

const (
	Auto  AutoBool = "auto"
	True  AutoBool = "true"
	False AutoBool = "false"
)

// Resolve returns the setting as a bool, with auto meaning autoValue
// (for bf16: whether the device supports bf16).
func (a AutoBool) Resolve(autoValue bool) bool {
	switch a {
	case True:
		return true
	case False:
		return false
	}
	return autoValue
}

// MarshalYAML writes auto as a string and true/false as booleans.
func (a AutoBool) MarshalYAML() (any, error) {
	switch a {
	case True:
		return true, nil
	case False:
		return false, nil
	}
	return string(Auto), nil
}

func (a *AutoBool) decodeNode(d *decoder, n *node, path string) {
	if n.kind == kindScalar && n.scalar == scalarString && n.text == "auto" {
		*a = Auto
		return
	}
	var b bool
	if !d.decodeBool(n, path, &b, `true, false or "auto"`) {
		return
	}
	if b {
		*a = True
	} else {
		*a = False
	}
}

// TargetModules is lora_target_modules: a list of module names, or a single
// string, which PEFT treats as a regular expression matched against the
// full module name (model.layers.0.self_attn.q_proj).
type TargetModules struct {
	Names   []string
	Pattern string
}

// IsZero reports whether no target is given (for omitempty).
func (t TargetModules) IsZero() bool { return len(t.Names) == 0 && t.Pattern == "" }

// MarshalYAML writes the list, or the pattern string.
func (t TargetModules) MarshalYAML() (any, error) {
	if t.Pattern != "" {
		return t.Pattern, nil
	}
	return t.Names, nil
}

func (t *TargetModules) decodeNode(d *decoder, n *node, path string) {
	if n.kind == kindScalar {
		if n.scalar != scalarString {
			d.errorf(n.pos, path, "expected a list of module names or a regular expression string, got %s", n.describe())
			return
		}
		*t = TargetModules{Pattern: n.text}
		return
	}
	var names []string
	d.decodeStringList(n, path, &names)
	*t = TargetModules{Names: names}
}

// DatasetType is a dataset's `type:`: a strategy name such as "alpaca",
// "chat_template" or "alpaca:chat", or a user-defined format mapping.
type DatasetType struct {
	Name   string
	Format *UserDefinedFormat
}

// IsZero reports whether no type is given (for omitempty).
func (t DatasetType) IsZero() bool { return t.Name == "" && t.Format == nil }

// MarshalYAML writes the name, or the format mapping.
func (t DatasetType) MarshalYAML() (any, error) {
	if t.Format != nil {
		return t.Format, nil
	}
	return t.Name, nil
}

func (t *DatasetType) decodeNode(d *decoder, n *node, path string) {
	switch {
	case n.kind == kindMap:
		f := &UserDefinedFormat{}
		d.decodeStruct(n, path, f)
		*t = DatasetType{Format: f}
	case n.kind == kindScalar && n.scalar == scalarString:
		*t = DatasetType{Name: n.text}
	default:
		d.errorf(n.pos, path, "expected a strategy name (alpaca, chat_template, ...) or a user-defined format mapping, got %s", n.describe())
	}
}
