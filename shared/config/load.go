package config

import (
	"fmt"
	"os"
	"sort"

	"github.com/goccy/go-yaml"
)

// Load reads the config file at path, applies the command-line overrides
// (Axolotl-style flags such as "--learning-rate", "2e-4"), fills in the
// defaults and validates the result. It returns the warnings even when it
// fails; the error is an *Error listing every problem found.
func Load(path string, overrides []string) (*Config, []Issue, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, &Error{Issues: []Issue{{File: path, Message: fmt.Sprintf("cannot read the config: %v", err)}}}
	}
	return Parse(path, data, overrides)
}

// Parse is Load for a config already in memory; filename only labels the
// issues.
func Parse(filename string, data []byte, overrides []string) (*Config, []Issue, error) {
	root, err := parseYAML(filename, data)
	if err != nil {
		return nil, nil, err
	}
	switch root.kind {
	case kindNull:
		root = &node{kind: kindMap, pos: position{file: filename, line: 1, column: 1}}
	case kindMap:
	default:
		return nil, nil, &Error{Issues: []Issue{{File: filename, Line: root.pos.line, Column: root.pos.column,
			Message: fmt.Sprintf("a config is a mapping of keys to values, got %s", root.describe())}}}
	}

	ovs, flagIssues := parseOverrides(overrides)
	for _, o := range ovs {
		o.apply(root)
	}

	d := newDecoder(filename)
	d.errors = append(d.errors, flagIssues...)
	if n := root.lookup("strict"); n != nil && n.kind == kindScalar {
		var strict bool
		quiet := &decoder{}
		if quiet.decodeBool(n, "strict", &strict, "") {
			d.strict = strict
		}
	}
	c := &Config{}
	d.decodeStruct(root, "", c)
	d.normalize(c)
	d.validate(c)

	sortIssues(d.warnings)
	if len(d.errors) > 0 {
		sortIssues(d.errors)
		return nil, d.warnings, &Error{Issues: dedupe(d.errors)}
	}
	c.file, c.set, c.pos = filename, d.set, d.pos
	return c, dedupe(d.warnings), nil
}

// sortIssues orders issues as a reader meets them: file positions first,
// in order, then command-line flags, then issues without a position.
func sortIssues(issues []Issue) {
	rank := func(is Issue) int {
		switch {
		case is.Line > 0:
			return 0
		case is.File != "" && len(is.File) > 2 && is.File[:2] == "--":
			return 1
		}
		return 2
	}
	sort.SliceStable(issues, func(i, j int) bool {
		a, b := issues[i], issues[j]
		if ra, rb := rank(a), rank(b); ra != rb {
			return ra < rb
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		if a.Column != b.Column {
			return a.Column < b.Column
		}
		if a.Key != b.Key {
			return a.Key < b.Key
		}
		return a.Message < b.Message
	})
}

func dedupe(issues []Issue) []Issue {
	out := issues[:0]
	for i, is := range issues {
		if i > 0 && is == issues[i-1] {
			continue
		}
		out = append(out, is)
	}
	return out
}

// YAML writes the resolved config: every key eft uses, defaults filled in,
// in the order of Config's fields. Keys eft ignores or folds into others
// (batch_size, flash_attention, ...) are not written. Parsing the output
// gives back the same Config.
func (c *Config) YAML() ([]byte, error) {
	return yaml.Marshal(c)
}
