package jinja

import (
	"errors"
	"strings"
	"testing"
)

// TestFastPathsKeepPythonSemantics covers what the render's fast paths
// change inside: dicts past the scan size (Python's key equality, order,
// replacement), scopes past the inline names, and "+" chains (strings
// joined once, other operands and errors where Python has them). The
// expected texts and errors are jinja2's (3.1, ImmutableSandboxedEnvironment
// with trim_blocks and lstrip_blocks, as transformers renders).
func TestFastPathsKeepPythonSemantics(t *testing.T) {
	for _, c := range []struct{ src, want, kind, msg string }{
		{src: "{% set d = {'a': 1, 'b': 2, 'c': 3, 'd': 4, 'e': 5, 'f': 6, 'g': 7, 'h': 8, 'i': 9, 1: 'one', 'k': 11, True: 'true', 'a': 'A', 1.0: 'float'} %}" +
			"{{ d }} {{ d[1] }} {{ d['i'] }} {{ d.k }} {{ d | length }} {{ d.get(true) }} {{ 'h' in d }} {{ d.missing is defined }}",
			want: "{'a': 'A', 'b': 2, 'c': 3, 'd': 4, 'e': 5, 'f': 6, 'g': 7, 'h': 8, 'i': 9, 1: 'float', 'k': 11} float 9 11 11 float True False"},
		{src: "{% for x in [1, 2] %}{% set a = x %}{% set b = a + 1 %}{% set c = b + 1 %}{% set e = c + 1 %}{% set f = e + 1 %}" +
			"{% set g = f + 1 %}{{ [a, b, c, e, f, g] }}{% endfor %}{{ a is defined }}",
			want: "[1, 2, 3, 4, 5, 6][2, 3, 4, 5, 6, 7]False"},
		{src: "{{ [1] + [2] + [3] }}|{{ 1 + 2 + 3.5 }}|{{ 'x' + 'y' + ('z' | upper) + '!' }}", want: "[1, 2, 3]|6.5|xyZ!"},
		{src: "{{ 'a' + 'b' + 'c' + 1 }}", kind: "TypeError", msg: `can only concatenate str (not "int") to str`},
		{src: "{{ 'a' + 'b' + undefined_name }}", kind: "UndefinedError", msg: "'undefined_name' is undefined"},
	} {
		tpl, err := Compile(c.src)
		if err != nil {
			t.Fatalf("%s: %v", c.src, err)
		}
		res, err := tpl.Render(nil, nil)
		if c.kind == "" {
			if err != nil || res.Text != c.want {
				t.Errorf("%s:\n got %q, %v\nwant %q", c.src, res.Text, err, c.want)
			}
			continue
		}
		var je *Error
		if !errors.As(err, &je) || string(je.Kind) != c.kind || !strings.Contains(je.Error(), c.msg) {
			t.Errorf("%s: got %v, want %s: %s", c.src, err, c.kind, c.msg)
		}
	}
}

// TestSumRespectsOutputLimit: a "+" chain that outgrows MaxOutput fails
// as the pairwise sums did.
func TestSumRespectsOutputLimit(t *testing.T) {
	tpl, err := Compile("{{ s + s + s + s }}")
	if err != nil {
		t.Fatal(err)
	}
	s := strings.Repeat("x", 300)
	if _, err := tpl.Render(map[string]any{"s": s}, &Env{MaxOutput: 1000}); err == nil || !strings.Contains(err.Error(), "string exceeds 1000 bytes") {
		t.Fatalf("4 × 300 bytes under a 1000-byte limit: %v", err)
	}
	res, err := tpl.Render(map[string]any{"s": s}, &Env{MaxOutput: 1200})
	if err != nil || res.Text != strings.Repeat("x", 1200) {
		t.Fatalf("at the limit: %d bytes, %v", len(res.Text), err)
	}
}
