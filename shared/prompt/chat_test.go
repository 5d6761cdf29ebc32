package prompt

import (
	"bufio"
	"encoding/json"
	"os"
	"slices"
	"strconv"
	"testing"

	"github.com/eftml/eft/shared/datasets"
	"github.com/eftml/eft/shared/testfixtures"
)

type chatCase struct {
	Name      string            `json:"name"`
	Tokenizer string            `json:"tokenizer"`
	YAML      string            `json:"yaml"`
	Rows      []json.RawMessage `json:"rows"`
	// AxolotlShifted lists rows where Axolotl's prefix render differs from
	// the whole conversation's, so its labels are off; the test checks the
	// text of the trained tokens instead.
	AxolotlShifted map[string]string `json:"axolotl_shifted"`
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

func TestChatTemplateMatchesTheOracle(t *testing.T) {
	cases, expected := loadChatCases(t)
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			o := loadOracle(t, c.Tokenizer)
			cfg := parseConfig(t, c.YAML)
			s, err := NewWith(cfg, &cfg.Datasets[0], o.tok, Env{TokenizerDir: testfixtures.Path(t, "tokenizers", c.Tokenizer)})
			if err != nil {
				t.Fatal(err)
			}
			for i, raw := range c.Rows {
				want := expected[c.Name][i]
				got := tokenizeOne(t, s, rowObject(t, raw))
				if !slices.Equal(got.InputIDs, want.InputIDs) {
					t.Fatalf("row %d: ids\n got %v\nwant %v", i, got.InputIDs, want.InputIDs)
				}
				if text, shifted := c.AxolotlShifted[strconv.Itoa(i)]; shifted {
					var trained []int32
					for k, l := range got.Labels {
						if l != IgnoreIndex {
							trained = append(trained, got.InputIDs[k])
						}
					}
					if o.tok.Decode(trained, false) != text {
						t.Errorf("row %d: trained %q, want %q\n%s", i, o.tok.Decode(trained, false), text, Explain(o.tok, got, false))
					}
					continue
				}
				if !slices.Equal(got.Labels, want.Labels) {
					t.Errorf("row %d: labels\n got %v\nwant %v\n%s", i, got.Labels, want.Labels, Explain(o.tok, got, false))
				}
			}
		})
	}
}

// The offsets the chat strategy maps spans with are the tokenizer's own
// (up to tokens that split a character, which HF widens to it), whether
// they come from adding up byte-level token lengths (Llama-3, Qwen3) or
// from EncodeOffsets (Mistral's SentencePiece).
func TestEncodeOffsetsAgreesWithTheTokenizer(t *testing.T) {
	texts := []string{
		"<|im_start|>user\nHi there!<|im_end|>\n",
		"  leading and trailing  ",
		"Ünïcödé — 日本語 🐳 and \t tabs\r\n",
		"<|begin_of_text|><|start_header_id|>assistant<|end_header_id|>\n\nAye.<|eot_id|>",
		"",
	}
	for _, name := range []string{"llama3", "qwen3", "mistral_v01"} {
		tok, err := loadFresh(t, name)
		if err != nil {
			t.Fatal(err)
		}
		enc := newEncoder(tok)
		for _, text := range texts {
			ids, offsets := enc.encodeOffsets(text, nil)
			for i := range offsets {
				offsets[i] = widen(text, offsets[i])
			}
			want := tok.EncodeOffsets(text, false)
			if !slices.Equal(ids, want.IDs) || !slices.Equal(offsets, want.Offsets) {
				t.Errorf("%s %q:\n got %v %v\nwant %v %v", name, text, ids, offsets, want.IDs, want.Offsets)
			}
		}
		if fast := enc.byteLens != nil; fast != (name != "mistral_v01") {
			t.Errorf("%s: byte-length offsets %v", name, fast)
		}
	}
}

// The spans found through a conversation's cached shape are the turns
// found one by one (Axolotl's dummy diff on the whole conversation), on
// templates that render turns plainly (ChatML), trim them (Llama-3), or
// write around the last turn (Qwen3).
func TestShapeSpansEqualTurnByTurn(t *testing.T) {
	convs := [][]string{
		{"user", "Hi", "assistant", "Hello!"},
		{"system", "Be brief.", "user", "2+2?", "assistant", "4"},
		{"user", "Call me Ishmael.", "assistant", "Aye.", "user", "How long?", "assistant", "Never mind how long precisely."},
		{"user", "Tell me", "assistant", " padded  ", "user", "<tool_response>x</tool_response>", "assistant", "ok"},
		{"user", "x", "assistant", "[[almost a dummy]]"},
	}
	for _, c := range []struct{ tokenizer, yaml string }{
		{"qwen3", "chat_template: chatml\n"},
		{"llama3", ""},
		{"qwen3", ""},
	} {
		tok, err := loadFresh(t, c.tokenizer)
		if err != nil {
			t.Fatal(err)
		}
		cfg := parseConfig(t, c.yaml+"datasets:\n  - path: d.jsonl\n    type: chat_template\n    roles_to_train: [assistant, user]\n")
		st, err := NewWith(cfg, &cfg.Datasets[0], tok, Env{TokenizerDir: testfixtures.Path(t, "tokenizers", c.tokenizer)})
		if err != nil {
			t.Fatal(err)
		}
		s := st.(passThrough).Strategy.(*chatTemplate)
		fast := 0
		for round := range 2 { // the second round finds every shape cached
			for _, conv := range convs {
				var msgs []any
				var need []int
				for i := 0; i < len(conv); i += 2 {
					msgs = append(msgs, obj("role", conv[i], "content", conv[i+1]))
					need = append(need, i/2)
				}
				text, err := s.tpl.Render(msgs, nil)
				if err != nil {
					t.Fatal(err)
				}
				_, offsets := s.enc.encodeOffsets(text, nil)
				spans, ok, err := s.contentSpans(msgs, need, text)
				if err != nil {
					t.Fatal(err)
				}
				if !ok {
					continue
				}
				fast++
				for k, i := range need {
					a, b := tokenRange(spans[k], offsets)
					c, d, err := s.findTurn(msgs, i, text, offsets)
					if err != nil {
						t.Fatal(err)
					}
					if a != c || b != d {
						t.Errorf("%s %q round %d turn %d: shape tokens [%d,%d), turn by turn [%d,%d)\n%q", tok.Special().EOS, conv, round, i, a, b, c, d, text)
					}
				}
			}
		}
		if fast == 0 {
			t.Errorf("%s %q: no conversation went through its shape", c.tokenizer, c.yaml)
		}
	}
}
