package prompt

import (
	"bufio"
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/eftml/eft/shared/chattemplate"
	"github.com/eftml/eft/shared/datasets"
	"github.com/eftml/eft/shared/testfixtures"
	"github.com/eftml/eft/shared/tokenizer"
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
				if err := got.Check(); err != nil || !got.Masked() {
					t.Fatalf("row %d: chat labels are not a trained mask (%v)", i, err)
				}
				if text, shifted := c.AxolotlShifted[strconv.Itoa(i)]; shifted {
					var trained []int32
					for k, l := range got.AppendLabels(nil) {
						if l != IgnoreIndex {
							trained = append(trained, got.InputIDs[k])
						}
					}
					if o.tok.Decode(trained, false) != text {
						t.Errorf("row %d: trained %q, want %q\n%s", i, o.tok.Decode(trained, false), text, Explain(o.tok, got, false))
					}
					continue
				}
				if !slices.Equal(got.AppendLabels(nil), want.Labels) {
					t.Errorf("row %d: labels\n got %v\nwant %v\n%s", i, got.AppendLabels(nil), want.Labels, Explain(o.tok, got, false))
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
				ids, offsets := s.enc.encodeOffsets(text, nil)
				sh, err := s.shapeOf(msgs)
				if err != nil {
					t.Fatal(err)
				}
				if sh == nil {
					continue
				}
				spans, ok := sh.locate([]byte(text), contentsOf(msgs, nil), nil)
				if !ok {
					continue
				}
				fast++
				ranges := s.enc.tokenRanges(ids, len(text), spans, sh.order, nil)
				if ranges == nil {
					t.Fatalf("%s %q: no token ranges from the byte lengths", c.tokenizer, conv)
				}
				for _, i := range need {
					a, b := tokenRange(spans[i], offsets)
					if r := ranges[i]; r.start != a || r.end != b {
						t.Errorf("%s %q turn %d: one walk gives tokens [%d,%d), offsets [%d,%d)", c.tokenizer, conv, i, r.start, r.end, a, b)
					}
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

// TestWrittenTextsEqualRendered: for every named template and the
// tokenizers' own, conversations tokenized from their shape's text
// (templates that only copy contents) give the same ids and labels as
// rendering each one, on contents that are padded, blank, empty, hold
// special tokens or look like the placeholders. At least the plain
// templates (ChatML, Llama-3) must take the written path.
func TestWrittenTextsEqualRendered(t *testing.T) {
	convs := [][]string{
		{"user", "Hi", "assistant", "Hello!"},
		{"system", "Be brief.", "user", "2+2?", "assistant", "4"},
		{"user", "Call me Ishmael.", "assistant", "Aye.", "user", "How long?", "assistant", "Never mind how long precisely."},
		{"user", "  padded\n", "assistant", "\n\tpadded too  "},
		{"user", "Hi", "assistant", "   "},
		{"user", "", "assistant", "empty question"},
		{"user", "<|eot_id|><|im_end|></s>", "assistant", "[[dummy_message_1]] [[dummy_message_0|trim]]"},
		{"system", " ", "user", "x", "assistant", "y", "user", "z", "assistant", "<think>\nhmm\n</think>\n\nw"},
	}
	direct := map[string]bool{}
	for _, tokName := range []string{"llama3", "qwen3"} {
		tok, err := loadFresh(t, tokName)
		if err != nil {
			t.Fatal(err)
		}
		choices := append([]string{"tokenizer_default"}, chattemplate.Names()...)
		for _, choice := range choices {
			strategies := [2]*chatTemplate{}
			for k := range strategies {
				cfg := parseConfig(t, "chat_template: "+choice+"\ndatasets:\n  - path: d.jsonl\n    type: chat_template\n    roles_to_train: [assistant]\n    train_on_eos: turn\n")
				st, err := NewWith(cfg, &cfg.Datasets[0], tok, Env{TokenizerDir: testfixtures.Path(t, "tokenizers", tokName)})
				if err != nil {
					t.Fatalf("%s %s: %v", tokName, choice, err)
				}
				strategies[k] = st.(passThrough).Strategy.(*chatTemplate)
			}
			strategies[1].alwaysRender = true
			for round := range 2 { // the second round finds every shape cached
				for _, conv := range convs {
					var msgs []any
					for i := 0; i < len(conv); i += 2 {
						msgs = append(msgs, obj("role", conv[i], "content", conv[i+1]))
					}
					row := obj("messages", msgs)
					written, werr := strategies[0].Tokenize(nil, row)
					rendered, rerr := strategies[1].Tokenize(nil, row)
					if fmt.Sprint(werr) != fmt.Sprint(rerr) {
						t.Errorf("%s %s %q: errors %v and %v", tokName, choice, conv, werr, rerr)
						continue
					}
					if len(written) != len(rendered) {
						t.Fatalf("%s %s %q: %d and %d samples", tokName, choice, conv, len(written), len(rendered))
					}
					for i := range written {
						if !slices.Equal(written[i].InputIDs, rendered[i].InputIDs) || !slices.Equal(written[i].AppendLabels(nil), rendered[i].AppendLabels(nil)) {
							t.Errorf("%s %s %q round %d: written\n%v %v\nrendered\n%v %v", tokName, choice, conv, round,
								written[i].InputIDs, written[i].AppendLabels(nil), rendered[i].InputIDs, rendered[i].AppendLabels(nil))
						}
					}
				}
			}
			for _, sh := range strategies[0].shapes.m {
				if sh != nil && sh.direct {
					direct[choice] = true
				}
			}
		}
	}
	for _, name := range []string{"chatml", "llama3", "tokenizer_default"} {
		if !direct[name] {
			t.Errorf("%s: no shape was written without a render", name)
		}
	}
	t.Logf("templates written without a render for some shape: %v", slices.Sorted(maps.Keys(direct)))
}

// TestWrittenTextsEqualRenderedRandom: random conversations (roles, turn
// counts, contents drawn from whitespace, quotes, braces, special tokens,
// non-ASCII and placeholder look-alikes) written from their shapes equal
// their renders, for every named template that writes any.
func TestWrittenTextsEqualRenderedRandom(t *testing.T) {
	tok, err := loadFresh(t, "qwen3")
	if err != nil {
		t.Fatal(err)
	}
	pieces := []string{"a", "Hello", " ", "  ", "\n", "\t", "'", "\"", "{{", "}}", "{%", "<|im_end|>", "<|eot_id|>", "</s>",
		"é", "日本", "🐳", "[[dummy_message_0]]", "[[dummy_message_1|trim]]", "<think>", "</think>", "\\", "%s"}
	roles := []string{"system", "user", "assistant", "tool"}
	rng := rand.New(rand.NewPCG(5, 7))
	content := func() string {
		var b strings.Builder
		for range 1 + rng.IntN(6) {
			b.WriteString(pieces[rng.IntN(len(pieces))])
		}
		return b.String()
	}
	// The named templates and the tokenizer's own, then the real templates
	// of the conformance corpus.
	var strategies []*chatTemplate
	var names []string
	for _, choice := range append([]string{"tokenizer_default"}, chattemplate.Names()...) {
		cfg := parseConfig(t, "chat_template: "+choice+"\ndatasets:\n  - path: d.jsonl\n    type: chat_template\n")
		st, err := NewWith(cfg, &cfg.Datasets[0], tok, Env{TokenizerDir: testfixtures.Path(t, "tokenizers", "qwen3")})
		if err != nil {
			t.Fatalf("%s: %v", choice, err)
		}
		strategies, names = append(strategies, st.(passThrough).Strategy.(*chatTemplate)), append(names, choice)
	}
	var corpus []struct{ Name, Template string }
	if err := json.Unmarshal(testfixtures.ReadGzip(t, testfixtures.Path(t, "chattemplates", "extra_templates.json.gz")), &corpus); err != nil {
		t.Fatal(err)
	}
	cfg := parseConfig(t, "datasets:\n  - path: d.jsonl\n    type: chat_template\n")
	specials := map[string]any{"bos_token": "<s>", "eos_token": "</s>"}
	for _, c := range corpus {
		tpl, err := chattemplate.Resolve(chattemplate.JinjaChoice, c.Template, nil)
		if err != nil {
			t.Fatalf("%s: %v", c.Name, err)
		}
		s, err := newChatWith(cfg, &cfg.Datasets[0], newEncoder(tok), templateRenderer{tpl: tpl, specials: specials}, c.Template)
		if err != nil {
			t.Fatalf("%s: %v", c.Name, err)
		}
		strategies, names = append(strategies, s), append(names, c.Name)
	}
	written, direct := 0, 0
	for n, s := range strategies {
		choice := names[n]
		wrote := false
		for range 150 {
			var msgs []any
			if rng.IntN(3) == 0 {
				msgs = append(msgs, obj("role", "system", "content", content()))
			}
			for range 1 + rng.IntN(3) {
				msgs = append(msgs, obj("role", "user", "content", content()), obj("role", roles[1+rng.IntN(3)], "content", content()))
			}
			sh, err := s.shapeOf(msgs)
			if err != nil || sh == nil || !sh.direct {
				continue
			}
			contents := contentsOf(msgs, nil)
			text, spans, ok := sh.write(nil, contents, nil)
			if !ok {
				continue
			}
			want, err := s.tpl.Render(msgs, s.kwargs)
			if err != nil {
				t.Fatalf("%s: the shape rendered but the conversation fails: %v", choice, err)
			}
			if string(text) != want {
				t.Fatalf("%s %q:\nwritten  %q\nrendered %q", choice, contents, text, want)
			}
			for i, sp := range spans {
				if sp.from >= 0 && want[sp.from:sp.to] != contents[i] && want[sp.from:sp.to] != chattemplate.Trim(contents[i]) {
					t.Fatalf("%s: span %d is %q, content %q", choice, i, want[sp.from:sp.to], contents[i])
				}
			}
			written++
			wrote = true
		}
		if wrote {
			direct++
		}
	}
	if written < 3000 {
		t.Fatalf("only %d conversations were written from their shapes", written)
	}
	t.Logf("%d conversations written from their shapes, by %d of %d templates", written, direct, len(strategies))
}

// FuzzWrittenEqualsRendered: for fuzzed contents and role sequences, a
// conversation written from its shape is its render, on every named
// template and the tokenizer's own (make fuzz runs it at length).
func FuzzWrittenEqualsRendered(f *testing.F) {
	f.Add(uint8(0), "Hi\x00Hello!")
	f.Add(uint8(5), "  padded\n\x00\t\x00<|im_end|>\x00[[dummy_message_0]]")
	f.Add(uint8(200), "a\x00 \x00é🐳\x00{{ x }}\x00%s")
	tok, err := loadFresh(f, "qwen3")
	if err != nil {
		f.Fatal(err)
	}
	var strategies []*chatTemplate
	for _, choice := range append([]string{"tokenizer_default"}, chattemplate.Names()...) {
		cfg := parseConfig(f, "chat_template: "+choice+"\ndatasets:\n  - path: d.jsonl\n    type: chat_template\n")
		st, err := NewWith(cfg, &cfg.Datasets[0], tok, Env{TokenizerDir: testfixtures.Path(f, "tokenizers", "qwen3")})
		if err != nil {
			f.Fatalf("%s: %v", choice, err)
		}
		strategies = append(strategies, st.(passThrough).Strategy.(*chatTemplate))
	}
	roles := []string{"system", "user", "assistant", "tool"}
	f.Fuzz(func(t *testing.T, pick uint8, contents string) {
		s := strategies[int(pick)%len(strategies)]
		var msgs []any
		for i, c := range strings.Split(contents, "\x00") {
			role := roles[1+i%2]
			if i == 0 && int(pick)/len(strategies)%2 == 1 {
				role = roles[0]
			} else if i > 2 && len(c)%5 == 0 {
				role = roles[3]
			}
			msgs = append(msgs, obj("role", role, "content", c))
		}
		sh, err := s.shapeOf(msgs)
		if err != nil || sh == nil || !sh.direct {
			return
		}
		text, _, ok := sh.write(nil, contentsOf(msgs, nil), nil)
		if !ok {
			return
		}
		want, err := s.tpl.Render(msgs, s.kwargs)
		if err != nil {
			t.Fatalf("the shape rendered but the conversation fails: %v", err)
		}
		if string(text) != want {
			t.Fatalf("written  %q\nrendered %q", text, want)
		}
	})
}

// TestTokenRangesEqualOffsetSearch: one walk over token byte lengths finds,
// for contents in any order of appearance, the tokens tokenRange finds by
// the offsets, including tokens that straddle a content's edge or two
// contents, empty contents, and contents absent from the text; it declines
// when the lengths do not spell the text or two contents come out of the
// text's order.
func TestTokenRangesEqualOffsetSearch(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 4))
	lens := []uint8{0, 1, 2, 3, 4, 5, 6, 7}
	enc := &encoder{byteLens: lens}
	enc.lensOnce.Do(func() {})
	for range 3000 {
		ids := make([]int32, 1+rng.IntN(30))
		var offsets []tokenizer.Offset
		at := 0
		for k := range ids {
			ids[k] = 1 + rng.Int32N(7)
			offsets = append(offsets, tokenizer.Offset{Start: at, End: at + int(lens[ids[k]])})
			at += int(lens[ids[k]])
		}
		// Contents in text order, some empty, some touching; then shuffled
		// among the messages, with messages the text does not show.
		var cuts []int
		for range 2 * (1 + rng.IntN(4)) {
			cuts = append(cuts, rng.IntN(at+1))
		}
		slices.Sort(cuts)
		messages := len(cuts)/2 + rng.IntN(3)
		spans := make([]span, messages)
		for i := range spans {
			spans[i] = span{-1, -1}
		}
		order := rng.Perm(messages)[:len(cuts)/2]
		for k, i := range order {
			spans[i] = span{cuts[2*k], cuts[2*k+1]}
		}
		ranges := enc.tokenRanges(ids, at, spans, order, nil)
		if ranges == nil {
			t.Fatalf("declined %v over %v", spans, ids)
		}
		for i, sp := range spans {
			a, b := -1, -1
			if sp.from >= 0 {
				a, b = tokenRange(sp, offsets)
			}
			if ranges[i] != (tokenSpan{a, b}) {
				t.Fatalf("span %v of %v over offsets %v: walk [%d,%d), search [%d,%d)", sp, spans, offsets, ranges[i].start, ranges[i].end, a, b)
			}
		}
		if enc.tokenRanges(ids, at+1, spans, order, nil) != nil {
			t.Fatal("lengths that do not spell the text were used")
		}
		if len(order) > 1 && spans[order[1]].from > spans[order[0]].from && spans[order[0]].to > spans[order[0]].from && spans[order[1]].to > spans[order[1]].from {
			swapped := append([]int{order[1], order[0]}, order[2:]...)
			if enc.tokenRanges(ids, at, spans, swapped, nil) != nil {
				t.Fatalf("contents out of text order %v were walked", swapped)
			}
		}
	}
	if enc.tokenRanges([]int32{0}, 0, nil, nil, nil) != nil {
		t.Fatal("a token of no known length was walked")
	}
}

// TestShapeKeysDifferOnlyByContents: two conversations share a shape key
// exactly when they differ in nothing but their string contents.
func TestShapeKeysDifferOnlyByContents(t *testing.T) {
	msg := func(fields ...any) datasets.Object {
		var o datasets.Object
		for i := 0; i < len(fields); i += 2 {
			o = append(o, datasets.Field{Name: fields[i].(string), Value: fields[i+1]})
		}
		return o
	}
	key := func(msgs ...datasets.Object) string {
		var k []byte
		for _, m := range msgs {
			k = appendShapeKey(k, m)
		}
		return string(k)
	}
	base := key(msg("role", "user", "content", "hello"), msg("role", "assistant", "content", "hi"))
	if same := key(msg("role", "user", "content", "other words"), msg("role", "assistant", "content", "")); same != base {
		t.Errorf("contents changed the key")
	}
	for name, other := range map[string]string{
		"a role":             key(msg("role", "system", "content", "hello"), msg("role", "assistant", "content", "hi")),
		"a number content":   key(msg("role", "user", "content", int64(5)), msg("role", "assistant", "content", "hi")),
		"a field more":       key(msg("role", "user", "content", "hello", "train", true), msg("role", "assistant", "content", "hi")),
		"a message less":     key(msg("role", "user", "content", "hello")),
		"names split anew":   key(msg("rol", "euser", "content", "hello"), msg("role", "assistant", "content", "hi")),
		"fields in messages": key(msg("role", "user", "content", "hello", "role", "assistant"), msg("content", "hi")),
	} {
		if other == base {
			t.Errorf("%s: same key", name)
		}
	}
}
