package chattemplate

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/eftml/eft/shared/chattemplate/jinja"
	"github.com/eftml/eft/shared/testfixtures"
)

// TestOracleChatEntries renders the chat entries of the two trained
// tokenizers' oracle files (shared/fixtures/tokenizers/oracle, copied to
// oracle_chat.json) through their tokenizer configs.
func TestOracleChatEntries(t *testing.T) {
	all := readJSONFixture(t, "chattemplates", "oracle_chat.json").(*jinja.Dict)
	for _, k := range all.Keys() {
		name := k.(string)
		cfg, err := LoadTokenizerConfig(testfixtures.Path(t, "chattemplates", "configs", name))
		if err != nil {
			t.Fatal(err)
		}
		tpl, err := cfg.Template("", false)
		if err != nil {
			t.Fatal(err)
		}
		cases, _ := all.Get(k)
		for i, c := range cases.([]any) {
			msgs, _ := field(c, "messages").([]any)
			got, err := tpl.Render(Request{Messages: msgs, AddGenerationPrompt: jinja.Truthy(field(c, "add_generation_prompt")), SpecialTokens: cfg.SpecialTokens})
			if wantErr, ok := field(c, "error").(string); ok {
				var te *Error
				if !errors.As(err, &te) || te.Message != wantErr {
					t.Errorf("%s case %d: got %q, %v; want error %q", name, i, got, err, wantErr)
				}
				continue
			}
			if err != nil || got != field(c, "text") {
				t.Errorf("%s case %d:\n got %q, %v\nwant %q", name, i, got, err, field(c, "text"))
			}
		}
	}
}

func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, text := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func renderSimple(t *testing.T, tpl *Template, err error, tools []any, specials ...map[string]any) string {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	req := Request{Messages: []any{msg("role", "user", "content", "hi")}, Tools: tools}
	if len(specials) > 0 {
		req.SpecialTokens = specials[0]
	}
	out, err := tpl.Render(req)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestTokenizerConfigForms(t *testing.T) {
	// A list of named templates: default unless tools are given and a
	// tool_use template exists (transformers' get_chat_template).
	dir := writeFiles(t, map[string]string{"tokenizer_config.json": `{
		"chat_template": [{"name": "default", "template": "D{{ messages[0].content }}"},
		                  {"name": "tool_use", "template": "T{{ tools | length }}"},
		                  {"name": "rag", "template": "R"}],
		"bos_token": {"__type": "AddedToken", "content": "<s>", "lstrip": false},
		"eos_token": "</s>", "pad_token": null,
		"additional_special_tokens": ["<a>", {"content": "<b>"}],
		"extra_special_tokens": {"image_token": "<img>"}}`})
	cfg, err := LoadTokenizerConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(cfg.TemplateNames(), ","); got != "default,rag,tool_use" {
		t.Errorf("template names %s", got)
	}
	tpl, err := cfg.Template("", false)
	if got := renderSimple(t, tpl, err, nil); got != "Dhi" {
		t.Errorf("default template rendered %q", got)
	}
	tpl, err = cfg.Template("", true)
	if got := renderSimple(t, tpl, err, []any{"x", "y"}); got != "T2" {
		t.Errorf("with tools rendered %q, want the tool_use template", got)
	}
	tpl, err = cfg.Template("rag", false)
	if got := renderSimple(t, tpl, err, nil); got != "R" {
		t.Errorf("named template rendered %q", got)
	}
	if _, err := cfg.Template("nope", false); err == nil || !strings.Contains(err.Error(), "default, rag, tool_use") {
		t.Errorf("unknown template name: %v", err)
	}
	want := map[string]any{"bos_token": "<s>", "eos_token": "</s>", "additional_special_tokens": []any{"<a>", "<b>"}, "image_token": "<img>"}
	if jinja.Repr(jinja.FromGo(cfg.SpecialTokens)) != jinja.Repr(jinja.FromGo(want)) {
		t.Errorf("special tokens %v, want %v", cfg.SpecialTokens, want)
	}

	// chat_template.jinja replaces the config's template;
	// additional_chat_templates/ adds named ones.
	dir = writeFiles(t, map[string]string{
		"tokenizer_config.json":                    `{"chat_template": "old", "eos_token": "</s>"}`,
		"chat_template.jinja":                      "new {{ eos_token }}\n",
		"additional_chat_templates/tool_use.jinja": "tools",
	})
	cfg, err = LoadTokenizerConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	tpl, err = cfg.Template("", false)
	if got := renderSimple(t, tpl, err, nil, cfg.SpecialTokens); got != "new </s>" {
		t.Errorf("chat_template.jinja rendered %q", got)
	}
	tpl, err = cfg.Template("", true)
	if got := renderSimple(t, tpl, err, []any{}); got != "tools" {
		t.Errorf("additional template rendered %q", got)
	}

	for _, c := range []struct{ config, want string }{
		{`{"chat_template": 3}`, "chat_template must be a string or a list"},
		{`{"chat_template": [{"name": "default"}]}`, `chat_template[0] must be an object with a string "name" and "template"`},
		{`{"eos_token": 5}`, "eos_token must be a string or an AddedToken"},
		{`{"chat_template": "x"`, "invalid JSON"},
	} {
		_, err := ParseTokenizerConfig([]byte(c.config), "cfg.json")
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "cfg.json: ") {
			t.Errorf("%s: error %v, want one naming cfg.json and %q", c.config, err, c.want)
		}
	}
	_, err = Compile("bad", "{% if %}")
	if err == nil || !strings.Contains(err.Error(), "chat template bad") || !strings.Contains(err.Error(), "line 1") {
		t.Errorf("syntax error %v should name the template and line", err)
	}
}

func TestResolveChoices(t *testing.T) {
	withTemplate, err := LoadTokenizerConfig(testfixtures.Path(t, "chattemplates", "configs", "llama3_1"))
	if err != nil {
		t.Fatal(err)
	}
	without, err := LoadTokenizerConfig(testfixtures.Path(t, "chattemplates", "configs", "mistral_v01"))
	if err != nil {
		t.Fatal(err)
	}
	chatml, _ := Named("chatml")
	for _, c := range []struct {
		choice, jinjaText string
		tok               *TokenizerConfig
		wantSource        string
		wantErr           string
	}{
		{"chatml", "", nil, chatml, ""},
		{"tokenizer_default", "", withTemplate, withTemplate.Templates["default"], ""},
		{"tokenizer_default", "", without, "", "has no chat_template"},
		{"tokenizer_default", "", nil, "", "needs the tokenizer"},
		{"tokenizer_default_fallback_chatml", "", without, chatml, ""},
		{"tokenizer_default_fallback_chatml", "", withTemplate, withTemplate.Templates["default"], ""},
		{"jinja", "{{ 'inline' }}", nil, "{{ 'inline' }}", ""},
		{"jinja", "", nil, "", "needs chat_template_jinja"},
		{"no_such_template", "", nil, "", `template "no_such_template" not found; the built-in ones are alpaca, aya, chatml`},
	} {
		tpl, err := Resolve(c.choice, c.jinjaText, c.tok)
		if c.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("%s: error %v, want %q", c.choice, err, c.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", c.choice, err)
			continue
		}
		if tpl.Source != c.wantSource {
			t.Errorf("%s: resolved to %.60q, want %.60q", c.choice, tpl.Source, c.wantSource)
		}
	}
	if _, err := Resolve("tokenizer_default", "", without); !errors.Is(err, ErrNoTemplate) {
		t.Errorf("missing tokenizer template error %v does not wrap ErrNoTemplate", err)
	}
	path := filepath.Join(t.TempDir(), "my.jinja")
	if err := os.WriteFile(path, []byte("from file"), 0o644); err != nil {
		t.Fatal(err)
	}
	tpl, err := Resolve("jinja", path, nil)
	if err != nil || tpl.Source != "from file" || tpl.Name != path {
		t.Errorf("jinja path: %v, %+v", err, tpl)
	}
}

// TestNamedTemplates checks the embedded set is Axolotl's: every name its
// configs use, text unchanged (spot-checked against known first lines).
func TestNamedTemplates(t *testing.T) {
	names := Names()
	if len(names) != 36 {
		t.Errorf("%d named templates, want Axolotl's 36: %v", len(names), names)
	}
	for _, n := range []string{"chatml", "llama3", "llama2", "mistral_v1", "gemma", "phi_3", "qwen_25", "qwen3"} {
		if _, ok := Named(n); !ok && n != "llama2" {
			t.Errorf("template %s missing", n)
		}
	}
	if _, ok := Named("../templates/chatml"); ok {
		t.Error("a path was accepted as a template name")
	}
	chatml, _ := Named("chatml")
	if !strings.HasPrefix(chatml, "{% if not add_generation_prompt is defined %}") {
		t.Errorf("chatml text changed: %.80q", chatml)
	}
}

func TestRenderRequestVariables(t *testing.T) {
	tpl, err := Compile("vars", "{{ bos_token }}|{{ eos_token }}|{{ enable_thinking }}|{{ tools }}|{{ documents }}|{{ messages | length }}|{{ add_generation_prompt }}")
	if err != nil {
		t.Fatal(err)
	}
	got, err := tpl.Render(Request{
		SpecialTokens: map[string]any{"bos_token": "<s>", "eos_token": "</s>"},
		Kwargs:        map[string]any{"eos_token": "<|eot|>", "enable_thinking": false},
		Documents:     []any{map[string]any{"title": "t", "text": "x"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := "<s>|<|eot|>|False|None|[{'text': 'x', 'title': 't'}]|0|False"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	// The role check of a real template raises with transformers' message.
	src, _ := Named("mistral_v1")
	tpl, err = Compile("mistral_v1", src)
	if err != nil {
		t.Fatal(err)
	}
	_, err = tpl.Render(Request{Messages: []any{msg("role", "assistant", "content", "first")}})
	var te *Error
	if !errors.As(err, &te) || te.Kind != "TemplateError" || !strings.HasSuffix(te.Message, "conversation roles must alternate user/assistant/user/assistant/...") {
		t.Errorf("role error: %#v", err)
	}
}

func TestDecodeJSONList(t *testing.T) {
	msgs, err := DecodeJSONList([]byte(`[{"role": "user", "content": "x", "a": 1.0}]`), "messages")
	if err != nil || jinja.Repr(msgs) != `[{'role': 'user', 'content': 'x', 'a': 1.0}]` {
		t.Errorf("got %v, %v", msgs, err)
	}
	for _, c := range []struct{ in, want string }{
		{`{"role": "user"}`, "messages must be a JSON array, not an object"},
		{`"x"`, "messages must be a JSON array, not a string"},
		{`[1,`, "messages: invalid JSON"},
	} {
		if _, err := DecodeJSONList([]byte(c.in), "messages"); err == nil || !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.in, err, c.want)
		}
	}
}
