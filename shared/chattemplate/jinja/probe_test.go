package jinja

import (
	"strings"
	"testing"
)

// probeVars is a two-message conversation whose contents are placeholders.
func probeVars() (map[string]any, *Probe) {
	msg := func(role, content string) *Dict {
		d := NewDict()
		d.Set("role", role)
		d.Set("content", content)
		return d
	}
	p := &Probe{Marker: "[[ph", Trimmed: map[string]string{}}
	for _, ph := range []string{"[[ph0]]", "[[ph1]]"} {
		p.Trimmed[ph] = ph[:len(ph)-2] + "|trim]]"
		p.Trimmed[p.Trimmed[ph]] = p.Trimmed[ph]
	}
	return map[string]any{"messages": []any{msg("user", "[[ph0]]"), msg("assistant", "[[ph1]]")}, "bos_token": "<s>"}, p
}

// TestProbeTellsCopyingFromLooking: templates that only copy the contents
// into the output (concatenated, assigned, trimmed, passed to macros) are
// told apart from templates that look into them in any way.
func TestProbeTellsCopyingFromLooking(t *testing.T) {
	loop := func(body string) string { return "{% for message in messages %}" + body + "{% endfor %}" }
	for _, c := range []struct {
		name, src, looked, text string
	}{
		{name: "llama3", src: "{% set loop_messages = messages %}" + loop("{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}"),
			text: "<s><|start_header_id|>user<|end_header_id|>\n\n[[ph0|trim]]<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n[[ph1|trim]]<|eot_id|>"},
		{name: "chatml", src: loop("{{'<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>' + '\n'}}"),
			text: "<|im_start|>user\n[[ph0]]<|im_end|>\n<|im_start|>assistant\n[[ph1]]<|im_end|>\n"},
		{name: "namespace, macro, tilde, type tests, dict membership, truthiness",
			src: "{% set ns = namespace(last='') %}{% macro show(x) %}[{{ x }}]{% endmacro %}" +
				loop("{% if message.content is string and 'content' in message and message.content %}{% set ns.last = message.content %}{{ show(message.content) ~ '|' }}{% endif %}") +
				"{{ ns.last }}{{ messages | length }}{{ (messages | last).content | trim }}{{ messages[1:][0]['content'] }}",
			text: "[[[ph0]]]|[[[ph1]]]|[[ph1]]2[[ph1|trim]][[ph1]]"},
		{name: "set block", src: "{% set x %}{{ messages[0].content }}!{% endset %}{{ x }}", text: "[[ph0]]!"},

		{name: "in", src: loop("{% if '<think>' in message.content %}x{% endif %}"), looked: "operator in"},
		{name: "equality", src: loop("{{ message.content == 'a' }}"), looked: "operator =="},
		{name: "length", src: loop("{{ message.content | length }}"), looked: "filter length"},
		{name: "method", src: loop("{{ message.content.split('a')[0] }}"), looked: "attribute split of a string"},
		{name: "index", src: loop("{{ message.content[0] }}"), looked: "indexing a string"},
		{name: "slice", src: loop("{{ message.content[1:] }}"), looked: "indexing a string"},
		{name: "tojson", src: "{{ messages | tojson }}", looked: "filter tojson"},
		{name: "printing a dict", src: loop("{{ message }}"), looked: "printing a list or dict"},
		{name: "trim of a concatenation", src: loop("{{ ('a' + message.content) | trim }}"), looked: "filter trim"},
		{name: "strip method", src: loop("{{ message.content.strip() }}"), looked: "attribute strip of a string"},
		{name: "other filter", src: loop("{{ message.content | upper }}"), looked: "filter upper"},
		{name: "filter argument", src: loop("{{ 'x' | replace('x', message.content) }}"), looked: "the arguments of filter replace"},
		{name: "selectattr", src: "{{ messages | selectattr('role', 'equalto', 'user') | list | length }}", looked: "filter selectattr"},
		{name: "value test", src: loop("{{ message.content is lower }}"), looked: "test lower"},
		{name: "test argument", src: loop("{{ 'a' is in(message.content) }}"), looked: "the arguments of test in"},
		{name: "iteration", src: loop("{% for ch in message.content %}{{ ch }}{% endfor %}"), looked: "iterating over a string"},
		{name: "unpacking", src: loop("{% set a, b = message.content %}"), looked: "unpacking a string"},
		{name: "format", src: loop("{{ '%s' % message.content }}"), looked: "operator %"},
		{name: "repeat", src: loop("{{ message.content * 2 }}"), looked: "operator *"},
		{name: "join method", src: "{{ ''.join([messages[0].content]) }}", looked: "calling join"},
		{name: "loop.changed", src: loop("{{ loop.changed(message.content) }}"), looked: "calling changed"},
		{name: "dict key", src: loop("{{ {message.content: 1} }}"), looked: "a dict key"},
		{name: "lookup by content", src: "{{ {'a': 1}[messages[0].content] }}", looked: "a key"},
		{name: "string plus number", src: loop("{{ (message.content ~ '') + 1 if false else '' }}")},
		{name: "sum with a list", src: "{{ ([messages[0].content] + ['x']) | length }}"},
		{name: "reversed then joined", src: "{{ messages | reverse | map(attribute='content') | join }}", looked: "filter map"},
		{name: "dict view joined", src: "{{ messages[0].values() | join }}", looked: "filter join"},
		{name: "reversed and looped", src: "{% for m in messages | reverse %}{{ m.content }}{% endfor %}", text: "[[ph1]][[ph0]]"},
		{name: "namespace holding content printed", src: "{% set ns = namespace(c=messages[0].content) %}{{ ns }}", looked: "calling namespace"},
	} {
		tpl, err := Compile(c.src)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		vars, p := probeVars()
		res, err := tpl.ProbeRender(vars, nil, p)
		if p.Looked != c.looked {
			t.Errorf("%s: looked %q, want %q", c.name, p.Looked, c.looked)
		}
		if err != nil {
			if c.looked == "" {
				t.Errorf("%s: %v", c.name, err)
			}
			continue
		}
		if c.text != "" && res.Text != c.text {
			t.Errorf("%s: text %q, want %q", c.name, res.Text, c.text)
		}
		// The same template without a probe renders the placeholders as
		// they are (trim has nothing to strip from them).
		plain, err := tpl.Render(vars, nil)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if c.looked == "" && plain.Text != strings.ReplaceAll(res.Text, "|trim]]", "]]") {
			t.Errorf("%s: plain render %q differs from the probe's %q beyond the trimmed forms", c.name, plain.Text, res.Text)
		}
	}
}

// TestProbeCountsAClockAsLooking: a template that calls a volatile function
// (strftime_now) writes text that changes between renders.
func TestProbeCountsAClockAsLooking(t *testing.T) {
	tpl, err := Compile("{{ now() }}{% for m in messages %}{{ m.content }}{% endfor %}")
	if err != nil {
		t.Fatal(err)
	}
	vars, p := probeVars()
	env := &Env{Globals: map[string]any{"now": &Callable{Name: "now", Volatile: true, Fn: func([]any, []KeywordArg) (any, error) { return "today", nil }}}}
	if _, err := tpl.ProbeRender(vars, env, p); err != nil || !strings.Contains(p.Looked, "calling now") {
		t.Fatalf("looked %q, %v", p.Looked, err)
	}
}

// TestTrimIsPythonStrip: Trim removes what Python's str.strip() removes
// (ASCII whitespace, the separators 0x1c-0x1f, NEL, Unicode spaces) and
// nothing else, its shortcut for visible ASCII ends included.
func TestTrimIsPythonStrip(t *testing.T) {
	for in, want := range map[string]string{
		"":                      "",
		"word":                  "word",
		"a b":                   "a b",
		" \t\n\v\f\r x y \r\n":  "x y",
		"\x1c\x1d\x1e\x1fz\x1f": "z",
		"\u0085é\u00a0":         "é",
		"\u3000日本\u2003":        "日本",
		"\x00keep\x7f":          "\x00keep\x7f", // control characters are not whitespace
		"x\u00a0":               "x",
		"\u00a0x":               "x",
		"~ ":                    "~",
		" !":                    "!",
		"   ":                   "",
	} {
		if got := Trim(in); got != want {
			t.Errorf("Trim(%q) = %q, want %q", in, got, want)
		}
	}
}
