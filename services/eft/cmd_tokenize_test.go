package main

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/eftml/eft/shared/testfixtures"
)

// oracleFixture is testdata/tokenizers/oracle/oracle_NAME.json.gz: what
// Hugging Face gives for the trained tokenizers.
type oracleFixture struct {
	Encode []struct {
		Text           string  `json:"text"`
		IDs            []int32 `json:"ids"`
		IDsWithSpecial []int32 `json:"ids_with_special"`
	} `json:"encode"`
	Chat []struct {
		Messages            json.RawMessage `json:"messages"`
		AddGenerationPrompt bool            `json:"add_generation_prompt"`
		Text                string          `json:"text"`
		IDs                 []int32         `json:"ids"`
	} `json:"chat"`
}

func readOracle(t *testing.T, name string) oracleFixture {
	t.Helper()
	var o oracleFixture
	if err := json.Unmarshal(testfixtures.ReadGzip(t, testfixtures.Path(t, "tokenizers", "oracle", "oracle_"+name+".json.gz")), &o); err != nil {
		t.Fatal(err)
	}
	return o
}

type tokenizeLine struct {
	Text  *string `json:"text"`
	IDs   []int32 `json:"ids"`
	Error string  `json:"error"`
}

func runTokenize(t *testing.T, stdin string, args ...string) []tokenizeLine {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(append([]string{"tokenize"}, args...), strings.NewReader(stdin), &out, &errOut)
	if code != 0 {
		t.Fatalf("eft tokenize %v: exit %d: %s", args, code, errOut.String())
	}
	var lines []tokenizeLine
	for _, l := range strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n") {
		var tl tokenizeLine
		if err := json.Unmarshal([]byte(l), &tl); err != nil {
			t.Fatalf("output line %q: %v", l, err)
		}
		lines = append(lines, tl)
	}
	return lines
}

// TestTokenizeCommandMatchesOracle: text lines (with and without special
// tokens) and chats give Hugging Face's ids and apply_chat_template's text.
func TestTokenizeCommandMatchesOracle(t *testing.T) {
	for _, name := range []string{"tok-bytelevel", "tok-sentencepiece"} {
		dir := testfixtures.Path(t, "tokenizers", name)
		o := readOracle(t, name)

		var in strings.Builder
		for _, c := range o.Encode {
			line, _ := json.Marshal(map[string]string{"text": c.Text})
			in.Write(append(line, '\n'))
		}
		withSpecial := runTokenize(t, in.String(), "--tokenizer", dir)
		plain := runTokenize(t, in.String(), "--tokenizer", dir, "--no-special")
		if len(withSpecial) != len(o.Encode) || len(plain) != len(o.Encode) {
			t.Fatalf("%s: %d and %d output lines for %d inputs", name, len(withSpecial), len(plain), len(o.Encode))
		}
		for i, c := range o.Encode {
			if !slices.Equal(withSpecial[i].IDs, c.IDsWithSpecial) || !slices.Equal(plain[i].IDs, c.IDs) {
				t.Errorf("%s %q: ids %v / %v, want %v / %v", name, c.Text, withSpecial[i].IDs, plain[i].IDs, c.IDsWithSpecial, c.IDs)
			}
		}

		in.Reset()
		for _, c := range o.Chat {
			line, _ := json.Marshal(map[string]any{"messages": c.Messages, "add_generation_prompt": c.AddGenerationPrompt})
			in.Write(append(line, '\n'))
		}
		chats := runTokenize(t, in.String(), "--tokenizer", dir, "--chat")
		if len(chats) != len(o.Chat) {
			t.Fatalf("%s: %d chat lines for %d", name, len(chats), len(o.Chat))
		}
		for i, c := range o.Chat {
			if chats[i].Text == nil || *chats[i].Text != c.Text || !slices.Equal(chats[i].IDs, c.IDs) {
				t.Errorf("%s chat %d: got %+v, want %q %v", name, i, chats[i], c.Text, c.IDs)
			}
		}
	}
}

func TestTokenizeCommandBadLines(t *testing.T) {
	dir := testfixtures.Path(t, "tokenizers", "tok-sentencepiece")
	in := `{"messages": [{"role": "assistant", "content": "first"}]}
{"messages": "not a list"}
{"text": "hi"}
{broken
{"messages": [{"role": "user", "content": "ok"}]}
`
	got := runTokenize(t, in, "--tokenizer", dir, "--chat")
	if len(got) != 5 {
		t.Fatalf("%d output lines, want 5: %+v", len(got), got)
	}
	for i, want := range []string{"line 1: chat template", "line 2: \"messages\" must be a list", `line 3: missing "messages"`, "line 4: not a JSON object"} {
		if !strings.HasPrefix(got[i].Error, want) {
			t.Errorf("line %d: error %q, want it to start with %q", i+1, got[i].Error, want)
		}
	}
	if got[4].Error != "" || got[4].Text == nil || *got[4].Text != "<s>[INST] ok [/INST]" {
		t.Errorf("line 5: %+v", got[4])
	}

	var out, errOut bytes.Buffer
	if code := run([]string{"tokenize", "--chat"}, strings.NewReader(""), &out, &errOut); code == 0 || !strings.Contains(errOut.String(), "--tokenizer DIR is required") {
		t.Errorf("missing --tokenizer: exit %d, %q", code, errOut.String())
	}
}
