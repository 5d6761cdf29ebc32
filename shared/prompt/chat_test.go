package prompt

import (
	"bufio"
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/eftml/eft/shared/datasets"
	"github.com/eftml/eft/shared/testfixtures"
)

type chatCase struct {
	Name      string            `json:"name"`
	Tokenizer string            `json:"tokenizer"`
	YAML      string            `json:"yaml"`
	Rows      []json.RawMessage `json:"rows"`
}

type chatExpected struct {
	Case     string  `json:"case"`
	Row      int     `json:"row"`
	Text     string  `json:"text"`
	InputIDs []int32 `json:"input_ids"`
	Labels   []int32 `json:"labels"`
}

func loadChatCases(t *testing.T) ([]chatCase, map[string][]chatExpected) {
	t.Helper()
	data, err := os.ReadFile(testfixtures.Path(t, "prompt", "chat", "cases.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cases []chatCase
	if err := json.Unmarshal(data, &cases); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(testfixtures.Path(t, "prompt", "chat", "expected.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	exp := map[string][]chatExpected{}
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<24)
	for sc.Scan() {
		var e chatExpected
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatal(err)
		}
		exp[e.Case] = append(exp[e.Case], e)
	}
	return cases, exp
}

// rowObject decodes a conversation row keeping key order.
func rowObject(t *testing.T, raw json.RawMessage) datasets.Object {
	t.Helper()
	v, err := parseJSONOrdered(string(raw))
	if err != nil {
		t.Fatal(err)
	}
	return v.(datasets.Object)
}

// renderFunc lets a test stand in for the Jinja engine with a template
// written in Go.
type renderFunc func(messages []any, kwargs map[string]any) (string, error)

func (f renderFunc) Render(messages []any, kwargs map[string]any) (string, error) {
	return f(messages, kwargs)
}

func prop(m any, k string) string {
	v, _ := m.(datasets.Object).Get(k)
	s, _ := v.(string)
	return s
}

// goTemplates are Go renderings of some case templates (the same text the
// Jinja sources in cases.json write), to check the labelling on its own.
var goTemplates = map[string]renderFunc{
	"chatml": func(msgs []any, _ map[string]any) (string, error) {
		var b strings.Builder
		for _, m := range msgs {
			b.WriteString("<|im_start|>" + prop(m, "role") + "\n" + prop(m, "content") + "<|im_end|>\n")
		}
		return b.String(), nil
	},
	"llama3": func(msgs []any, _ map[string]any) (string, error) {
		var b strings.Builder
		for i, m := range msgs {
			if i == 0 {
				b.WriteString("<|begin_of_text|>")
			}
			b.WriteString("<|start_header_id|>" + prop(m, "role") + "<|end_header_id|>\n\n" + strings.TrimSpace(prop(m, "content")) + "<|eot_id|>")
		}
		// The fixture's template always ends with the generation prompt.
		return b.String() + "<|start_header_id|>assistant<|end_header_id|>\n\n", nil
	},
	"brackets": func(msgs []any, _ map[string]any) (string, error) {
		var b strings.Builder
		for _, m := range msgs {
			b.WriteString("[" + prop(m, "role") + "] " + prop(m, "content") + "<|end_of_text|>\n")
		}
		return b.String(), nil
	},
}

func TestChatLabellingMatchesAxolotl(t *testing.T) {
	cases, expected := loadChatCases(t)
	withGo := map[string]string{"llama3-default": "llama3", "llama3-eot": "llama3", "llama3-eot-last-inputs": "llama3",
		"chatml-sharegpt-training": "chatml", "jinja-drop-system-eos-none": "brackets"}
	for _, c := range cases {
		goName, ok := withGo[c.Name]
		if !ok {
			continue
		}
		t.Run(c.Name, func(t *testing.T) {
			o := loadOracle(t, c.Tokenizer)
			cfg := parseConfig(t, c.YAML)
			tpl := goTemplates[goName]
			s, err := newChatWith(cfg, &cfg.Datasets[0], newEncoder(o.tok), tpl, templateSourceFor(t, c))
			if err != nil {
				t.Fatal(err)
			}
			for i, raw := range c.Rows {
				want := expected[c.Name][i]
				got := tokenizeOne(t, s, rowObject(t, raw))
				if !slices.Equal(got.InputIDs, want.InputIDs) {
					t.Fatalf("row %d: ids\n got %v\nwant %v", i, got.InputIDs, want.InputIDs)
				}
				if !slices.Equal(got.Labels, want.Labels) {
					t.Fatalf("row %d: labels\n got %v\nwant %v\n%s", i, got.Labels, want.Labels, Explain(o.tok, got, false))
				}
			}
		})
	}
}

// templateSourceFor is the Jinja text of a case's template, for the EOT
// checks (which look for the EOT tokens in it).
func templateSourceFor(t *testing.T, c chatCase) string {
	switch {
	case strings.Contains(c.YAML, "chat_template: chatml"):
		return "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
	case strings.Contains(c.YAML, "chat_template_jinja"):
		return "{{ eos_token }}"
	}
	data, err := os.ReadFile(testfixtures.Path(t, "tokenizers", c.Tokenizer, "tokenizer_config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		ChatTemplate string `json:"chat_template"`
	}
	if err := json.Unmarshal(data, &cfg); err != nil {
		t.Fatal(err)
	}
	return cfg.ChatTemplate
}
