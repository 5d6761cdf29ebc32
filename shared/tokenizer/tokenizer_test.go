package tokenizer

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/eftml/eft/shared/testfixtures"
)

// trickyRunes are the characters the split regexes treat differently.
var trickyRunes = []rune("  \t\n\r\v\f\u00a0\u3000\u2009\u0085'sStTrReEvVmMlLdDſKk aZ09٣²½Ⅻ.,!?-_\"()<>|éü\u0301\u0323中日한🙂😀\u200d#$%")

func randomTricky(r *rand.Rand, n int) string {
	var sb strings.Builder
	for range n {
		sb.WriteRune(trickyRunes[r.IntN(len(trickyRunes))])
	}
	return sb.String()
}

// TestSplittersMatchRegexEngine holds the hand-written GPT-2, Llama-3 and
// Qwen split scanners against the general backtracking engine.
func TestSplittersMatchRegexEngine(t *testing.T) {
	corpus := readJSONLines[string](t, filepath.Join(testfixtures.Path(t, "tokenizers", "expected"), "strings.jsonl.gz"))
	r := rand.New(rand.NewPCG(1, 2))
	for range 3000 {
		corpus = append(corpus, randomTricky(r, 1+r.IntN(24)))
	}
	for _, expr := range []string{gpt2Pattern, llama3Pattern, qwenPattern} {
		fast, err := compileRegex(expr)
		if err != nil {
			t.Fatal(err)
		}
		slow, err := compileRegexGeneral(expr)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := fast.(regexPattern); ok {
			t.Fatalf("%s: no fast path", expr)
		}
		for _, s := range corpus {
			got := fast.findAll(nil, []byte(s))
			want := slow.findAll(nil, []byte(s))
			if !slices.Equal(got, want) {
				t.Fatalf("pattern %s on %+q:\n fast %v\n engine %v", expr, s, got, want)
			}
		}
	}
}

func FuzzSplitters(f *testing.F) {
	for _, s := range []string{"Hello world", "  x\n\n y", "I'll 'S 'ſ", "123456 7", "a\u00a0 b\t\t", "'", " ", "日本 🙂 ok"} {
		f.Add(s)
	}
	type pair struct{ fast, slow pattern }
	var pats []pair
	for _, expr := range []string{gpt2Pattern, llama3Pattern, qwenPattern} {
		fast, _ := compileRegex(expr)
		slow, _ := compileRegexGeneral(expr)
		pats = append(pats, pair{fast, slow})
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !utf8.ValidString(s) {
			return
		}
		for _, p := range pats {
			got := p.fast.findAll(nil, []byte(s))
			want := p.slow.findAll(nil, []byte(s))
			if !slices.Equal(got, want) {
				t.Fatalf("on %+q:\n fast %v\n engine %v", s, got, want)
			}
		}
	})
}

// FuzzEncodeDecode: byte-level tokenizers are lossless, so decoding the ids
// of any text gives the text back; the other entry points agree with
// Encode; offsets stay inside the text.
func FuzzEncodeDecode(f *testing.F) {
	for _, s := range []string{"", "Hello, world!", " <|begin_of_text|>x<|im_end|>", "日本語 🙂\n\n\t x", "don't 'S", "\u00a0\u3000", "a\u0301"} {
		f.Add(s)
	}
	lossless := []*Tokenizer{loadTestTokenizer(f, "llama3"), loadTestTokenizer(f, "gpt2_reconstructed"), loadTestTokenizer(f, "tok-bytelevel")}
	all := append(lossless, loadTestTokenizer(f, "tok-sentencepiece"), loadTestTokenizer(f, "feat-metaspace"), loadTestTokenizer(f, "feat-whitespace"))
	f.Fuzz(func(t *testing.T, s string) {
		for _, tok := range all {
			ids := tok.Encode(s, true)
			enc := tok.EncodeOffsets(s, true)
			if !slices.Equal(ids, enc.IDs) {
				t.Fatalf("%q: Encode %v, EncodeOffsets %v", s, ids, enc.IDs)
			}
			if batch := tok.EncodeBatch([]string{s, s}, true); !slices.Equal(batch[1], ids) {
				t.Fatalf("%q: EncodeBatch %v, Encode %v", s, batch[1], ids)
			}
			valid := validUTF8(s)
			for _, o := range enc.Offsets {
				if o.Start < 0 || o.End < o.Start || o.End > len(valid) {
					t.Fatalf("%q: offset %v outside the text", s, o)
				}
			}
			_ = tok.Decode(ids, true)
		}
		if !utf8.ValidString(s) {
			return
		}
		for _, tok := range lossless {
			if got := tok.Decode(tok.Encode(s, false), false); got != s {
				t.Fatalf("round trip of %+q gave %+q", s, got)
			}
		}
	})
}

// FuzzLoad: any tokenizer.json either loads or fails with an error, and a
// loaded tokenizer encodes and decodes without panicking.
func FuzzLoad(f *testing.F) {
	// Small seeds keep the fuzzer fast; together they use every model type
	// and most pipeline parts.
	for _, s := range miniTokenizers {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		tok, err := New(data, "fuzz.json", nil, "")
		if err != nil {
			return
		}
		ids := tok.Encode("Hello wörld  12 <s>\n", true)
		tok.Decode(ids, false)
		tok.Decode([]int32{-1, 0, 1 << 30}, true)
	})
}

// miniTokenizers are small tokenizer.json files, one per model type.
var miniTokenizers = []string{
	`{"version":"1.0","added_tokens":[{"id":0,"content":"[UNK]","special":true},{"id":1,"content":"[CLS]","special":true},{"id":2,"content":"[SEP]","special":true}],"normalizer":{"type":"BertNormalizer","lowercase":true},"pre_tokenizer":{"type":"BertPreTokenizer"},"post_processor":{"type":"BertProcessing","sep":["[SEP]",2],"cls":["[CLS]",1]},"decoder":{"type":"WordPiece","prefix":"##"},"model":{"type":"WordPiece","unk_token":"[UNK]","continuing_subword_prefix":"##","max_input_chars_per_word":100,"vocab":{"[UNK]":0,"[CLS]":1,"[SEP]":2,"hello":3,"w":4,"##or":5,"##ld":6,"##ö":7,"1":8,"##2":9}}}`,
	`{"version":"1.0","pre_tokenizer":{"type":"WhitespaceSplit"},"model":{"type":"WordLevel","unk_token":"<unk>","vocab":{"<unk>":0,"Hello":1}}}`,
	`{"version":"1.0","normalizer":{"type":"Nmt"},"pre_tokenizer":{"type":"Metaspace","replacement":"▁","prepend_scheme":"always","split":true},"decoder":{"type":"Metaspace","replacement":"▁","prepend_scheme":"always"},"model":{"type":"Unigram","unk_id":0,"byte_fallback":false,"vocab":[["<unk>",0],["▁Hello",-1.5],["▁",-2],["H",-3],["e",-3],["l",-3],["o",-3]]}}`,
	`{"version":"1.0","pre_tokenizer":{"type":"ByteLevel","add_prefix_space":true,"use_regex":true},"decoder":{"type":"ByteLevel"},"model":{"type":"BPE","vocab":{"H":0,"e":1,"l":2,"o":3,"Ġ":4,"He":5},"merges":[["H","e"]]}}`,
}

func TestLoadErrorsNameTheProblem(t *testing.T) {
	cases := []struct {
		name, json, want string
	}{
		{"syntax", "{\n  \"model\": {\"type\": \"BPE\",\n  \"vocab\": {\"a\": 0,}}}", "x.json:3:"},
		{"merge token", `{"model":{"type":"BPE","vocab":{"a":0},"merges":["a b"]}}`, `model.merges[0]: token "b" is not in the vocabulary`},
		{"merge shape", `{"model":{"type":"BPE","vocab":{"a":0},"merges":["a"]}}`, `model.merges[0]`},
		{"unknown normalizer", `{"normalizer":{"type":"Frobnicate"},"model":{"type":"WordLevel","vocab":{"a":0}}}`, `normalizer.type: unknown normalizer "Frobnicate"`},
		{"nested pre-tokenizer", `{"pre_tokenizer":{"type":"Sequence","pretokenizers":[{"type":"Split","pattern":{"Regex":"(("},"behavior":"Isolated","invert":false}]},"model":{"type":"WordLevel","vocab":{"a":0}}}`, `pre_tokenizer.pretokenizers[0].pattern`},
		{"unk missing", `{"model":{"type":"BPE","unk_token":"<unk>","vocab":{"a":0},"merges":[]}}`, `model.unk_token`},
		{"no model", `{"version":"1.0"}`, `no model`},
		{"version", `{"version":"2.0","model":{"type":"WordLevel","vocab":{"a":0}}}`, `version`},
		{"template", `{"post_processor":{"type":"TemplateProcessing","single":[{"SpecialToken":{"id":"<s>","type_id":0}}],"special_tokens":{}},"model":{"type":"WordLevel","vocab":{"a":0}}}`, `post_processor.single[0]`},
		{"dropout", `{"model":{"type":"BPE","dropout":0.1,"vocab":{"a":0},"merges":[]}}`, `model.dropout`},
	}
	for _, c := range cases {
		_, err := New([]byte(c.json), "x.json", nil, "")
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want it to mention %q", c.name, err, c.want)
		}
	}
	_, err := New([]byte(`{"model":{"type":"WordLevel","vocab":{"a":0}}}`), "x.json", []byte(`{"added_tokens_decoder": {"x": {}}}`), "cfg.json")
	if err == nil || !strings.Contains(err.Error(), "cfg.json: added_tokens_decoder") {
		t.Errorf("bad config: %v", err)
	}
}

func TestMiniTokenizers(t *testing.T) {
	cases := []struct {
		json   int
		text   string
		ids    []int32
		decode string
	}{
		{0, "Hello Wörld 12", []int32{1, 3, 4, 5, 6, 8, 9, 2}, "hello world 12"},
		{1, "Hello  there Hello", []int32{1, 0, 1}, "Hello <unk> Hello"},
		{2, "Hello Hx", []int32{1, 2, 3, 0}, "Hello H<unk>"},
		{3, "Hello", []int32{4, 5, 2, 2, 3}, " Hello"},
	}
	for _, c := range cases {
		tok, err := New([]byte(miniTokenizers[c.json]), "mini.json", nil, "")
		if err != nil {
			t.Fatalf("mini %d: %v", c.json, err)
		}
		ids := tok.Encode(c.text, true)
		if !slices.Equal(ids, c.ids) {
			t.Errorf("mini %d %q: ids %v, want %v", c.json, c.text, ids, c.ids)
		}
		if got := tok.Decode(ids, true); got != c.decode {
			t.Errorf("mini %d: decode %q, want %q", c.json, got, c.decode)
		}
	}
}

func TestSpecialTokensAndAdding(t *testing.T) {
	data := testfixtures.ReadGzip(t, testfixtures.Path(t, "tokenizers", "mistral_v01", "tokenizer.json.gz"))
	cfg, err := os.ReadFile(testfixtures.Path(t, "tokenizers", "mistral_v01", "tokenizer_config.json"))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := New(data, "tokenizer.json", cfg, "tokenizer_config.json")
	if err != nil {
		t.Fatal(err)
	}
	sp := tok.Special()
	if sp.BOS != "<s>" || sp.BOSID != 1 || sp.EOS != "</s>" || sp.EOSID != 2 || sp.UNKID != 0 || sp.PADID != -1 {
		t.Fatalf("special tokens %+v", sp)
	}
	if got := tok.Encode("hi", true); got[0] != 1 || got[len(got)-1] == 2 {
		t.Fatalf("add_bos only: %v", got)
	}
	// Axolotl-style: eos appended, a pad token and new tokens added.
	if err := tok.SetAddBOSEOS(true, true); err != nil {
		t.Fatal(err)
	}
	if got := tok.Encode("hi", true); got[0] != 1 || got[len(got)-1] != 2 {
		t.Fatalf("add_bos+eos: %v", got)
	}
	if err := tok.SetSpecialToken("pad_token", "<pad>"); err != nil {
		t.Fatal(err)
	}
	if sp := tok.Special(); sp.PADID != 32000 || tok.VocabSize() != 32001 {
		t.Fatalf("pad %+v vocab %d", sp, tok.VocabSize())
	}
	// Re-adding a known token with other flags updates it (and counts), as
	// in Hugging Face; re-adding it unchanged does not.
	if n := tok.AddTokens(AddedToken{Content: "<|tool|>"}, AddedToken{Content: "<pad>", Special: true}); n != 1 {
		t.Fatalf("AddTokens added %d, want 1", n)
	}
	ids := tok.Encode("a<|tool|>b<pad>", false)
	if !slices.Contains(ids, 32001) || !slices.Contains(ids, 32000) {
		t.Fatalf("added tokens not matched: %v", ids)
	}
	if got := tok.Decode(ids, true); got != "a<|tool|> b" {
		t.Fatalf("decode skipping special: %q", got)
	}
	if !tok.IsSpecial(32000) || tok.IsSpecial(32001) {
		t.Fatal("special flags")
	}
	if id, ok := tok.TokenToID("▁Hello"); !ok || id != 22557 {
		t.Fatalf("TokenToID: %d %v", id, ok)
	}
	if s, ok := tok.IDToToken(22557); !ok || s != "▁Hello" {
		t.Fatalf("IDToToken: %q %v", s, ok)
	}
}

func TestEncodeBatchMatchesEncode(t *testing.T) {
	tok := loadTestTokenizer(t, "llama3")
	texts := readJSONLines[string](t, filepath.Join(testfixtures.Path(t, "tokenizers", "expected"), "strings.jsonl.gz"))
	batch := tok.EncodeBatch(texts, true)
	for i, s := range texts {
		if !slices.Equal(batch[i], tok.Encode(s, true)) {
			t.Fatalf("string %d differs between EncodeBatch and Encode", i)
		}
	}
}

func TestInvalidUTF8IsReplacedNotFatal(t *testing.T) {
	tok := loadTestTokenizer(t, "llama3")
	got := tok.Encode("a\xffb\xe2\x82", false)
	want := tok.Encode("a\uFFFDb\uFFFD", false)
	if !slices.Equal(got, want) {
		t.Fatalf("%v, want %v", got, want)
	}
}

// TestMetaspaceCutIsExact: cutting long SentencePiece words before "▁"
// gives the same tokens as merging the whole word.
func TestMetaspaceCutIsExact(t *testing.T) {
	texts := readJSONLines[string](t, filepath.Join(testfixtures.Path(t, "tokenizers", "expected"), "strings.jsonl.gz"))
	r := rand.New(rand.NewPCG(3, 4))
	for range 500 {
		texts = append(texts, strings.ReplaceAll(randomTricky(r, 40), "K", " ▁"))
	}
	for _, name := range []string{"mistral_v01", "tok-sentencepiece"} {
		m := loadTestTokenizer(t, name).model.(*bpeModel)
		if m.metaCut == nil {
			t.Fatalf("%s: no cut table", name)
		}
		var sc1, sc2 modelScratch
		for _, s := range texts {
			word := []byte("▁" + strings.ReplaceAll(validUTF8(s), " ", "▁"))
			cut := m.tokenize(&sc1, word, nil)
			whole := m.mergeAll(&sc2, m.initialSymbols(&sc2, word))
			if !slices.Equal(cut, appendSymbols(nil, whole)) {
				t.Fatalf("%s: %q cut differently", name, s)
			}
		}
	}
}

func TestVocabIncludesAddedTokens(t *testing.T) {
	tok := loadTestTokenizer(t, "llama3")
	v := tok.Vocab()
	if len(v) != tok.VocabSize() || len(v) != 128256 {
		t.Fatalf("vocab %d, VocabSize %d, want 128256", len(v), tok.VocabSize())
	}
	if v["<|begin_of_text|>"] != 128000 || v["Hello"] != 9906 {
		t.Fatalf("vocab entries: %d %d", v["<|begin_of_text|>"], v["Hello"])
	}
}
