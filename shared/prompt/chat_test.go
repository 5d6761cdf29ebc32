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
