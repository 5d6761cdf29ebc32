package chattemplate

import (
	"bufio"
	"bytes"
	"errors"
	"os"
	"sort"
	"testing"
	"unicode/utf8"

	"github.com/eftml/eft/shared/chattemplate/jinja"
	"github.com/eftml/eft/shared/testfixtures"
)

// genericSpecials are generate.py's GENERIC: the special tokens of
// templates that come without a tokenizer.
var genericSpecials = map[string]any{"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>"}

type corpusTemplate struct {
	tpl      *Template
	err      error
	specials map[string]any
	own      *jinja.Dict // the template's own example data (hfjs)
}

// loadCorpus compiles every template generate.py rendered, through the
// same paths users' templates take: Named for Axolotl's, the tokenizer
// config loader for real tokenizers.
func loadCorpus(t *testing.T) map[string]*corpusTemplate {
	t.Helper()
	corpus := map[string]*corpusTemplate{}
	for _, name := range Names() {
		src, _ := Named(name)
		tpl, err := Compile(name, src)
		corpus["axolotl/"+name] = &corpusTemplate{tpl: tpl, err: err, specials: genericSpecials}
	}
	dirs, err := os.ReadDir(testfixtures.Path(t, "chattemplates", "configs"))
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range dirs {
		cfg, err := LoadTokenizerConfig(testfixtures.Path(t, "chattemplates", "configs", d.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if !cfg.HasTemplate() {
			continue
		}
		tpl, err := cfg.Template("", false)
		corpus["config/"+d.Name()] = &corpusTemplate{tpl: tpl, err: err, specials: cfg.SpecialTokens}
	}
	for _, e := range readGzipJSON(t, "chattemplates", "extra_templates.json.gz").([]any) {
		name := field(e, "name").(string)
		tpl, err := Compile(name, field(e, "template").(string))
		ct := &corpusTemplate{tpl: tpl, err: err, specials: genericSpecials}
		ct.own, _ = field(e, "data").(*jinja.Dict)
		corpus[name] = ct
	}
	return corpus
}

func readGzipJSON(t *testing.T, parts ...string) any {
	t.Helper()
	v, err := jinja.DecodeJSON(testfixtures.ReadGzip(t, testfixtures.Path(t, parts...)))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func readExpected(t *testing.T) []*jinja.Dict {
	return readJSONLines(t, "chattemplates", "expected.jsonl.gz")
}

// readJSONLines reads a gzipped JSON-lines fixture.
func readJSONLines(t *testing.T, parts ...string) []*jinja.Dict {
	t.Helper()
	var out []*jinja.Dict
	sc := bufio.NewScanner(bytes.NewReader(testfixtures.ReadGzip(t, testfixtures.Path(t, parts...))))
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		v, err := jinja.DecodeJSON(sc.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, v.(*jinja.Dict))
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// requestFor builds the Request generate.py rendered for one line.
func requestFor(ct *corpusTemplate, conv *jinja.Dict, agp bool) Request {
	req := Request{SpecialTokens: ct.specials, AddGenerationPrompt: agp, Now: fixtureClock}
	msgs, _ := field(conv, "messages").([]any)
	req.Messages = msgs
	req.Tools, _ = field(conv, "tools").([]any)
	req.Documents, _ = field(conv, "documents").([]any)
	if kw, ok := field(conv, "kwargs").(*jinja.Dict); ok {
		req.Kwargs = map[string]any{}
		for _, k := range kw.Keys() {
			req.Kwargs[k.(string)], _ = kw.Get(k)
		}
	}
	return req
}

// ownRequest is a huggingface.js case's own data: every key a variable.
func ownRequest(data *jinja.Dict) Request {
	req := Request{Kwargs: map[string]any{}, Now: fixtureClock}
	for _, k := range data.Keys() {
		v, _ := data.Get(k)
		switch k {
		case "messages":
			req.Messages, _ = v.([]any)
		case "add_generation_prompt":
			req.AddGenerationPrompt = jinja.Truthy(v)
		case "tools":
			req.Tools, _ = v.([]any)
		case "documents":
			req.Documents, _ = v.([]any)
		default:
			req.Kwargs[k.(string)] = v
		}
	}
	return req
}

// TestTemplatesMatchTransformers renders every template of the corpus
// (Axolotl's named templates, real tokenizer configs, the real templates
// of huggingface.js' and ardanlabs/jinja's tests) on every conversation
// and holds the result to Python jinja2 in transformers' environment: the
// same text and {% generation %} spans, or the same exception and message.
func TestTemplatesMatchTransformers(t *testing.T) {
	corpus := loadCorpus(t)
	convs := map[string]*jinja.Dict{}
	for _, c := range field(readJSONFixture(t, "chattemplates", "convs.json"), "convs").([]any) {
		convs[field(c, "name").(string)] = c.(*jinja.Dict)
	}
	type tally struct{ ok, total int }
	per := map[string]*tally{}
	for _, line := range readExpected(t) {
		name := field(line, "template").(string)
		ct := corpus[name]
		if ct == nil {
			t.Fatalf("expected.jsonl.gz names template %q, which the corpus lacks", name)
		}
		if per[name] == nil {
			per[name] = &tally{}
		}
		per[name].total++
		convName, _ := field(line, "conv").(string)
		label := name + " / " + convName
		if ct.err != nil {
			if field(line, "error") == nil {
				t.Errorf("%s: compile: %v", label, ct.err)
				continue
			}
			per[name].ok++
			continue
		}
		var req Request
		if convName == "#own" {
			req = ownRequest(ct.own)
		} else {
			agp := jinja.Truthy(field(line, "add_generation_prompt"))
			if agp {
				label += " +gen"
			}
			req = requestFor(ct, convs[convName], agp)
		}
		got, err := ct.tpl.RenderTracked(req)
		if wantErr, isErr := field(line, "error").(string); isErr {
			var te *Error
			switch {
			case err == nil:
				t.Errorf("%s: rendered %q, want %s: %s", label, trunc(got.Text), field(line, "error_type"), wantErr)
			case !errors.As(err, &te) || te.Kind != field(line, "error_type") || te.Message != wantErr:
				t.Errorf("%s:\n got error %v\nwant %s: %s", label, err, field(line, "error_type"), wantErr)
			default:
				per[name].ok++
			}
			continue
		}
		want := field(line, "text").(string)
		if err != nil {
			t.Errorf("%s: %v\nwant %q", label, err, trunc(want))
			continue
		}
		if got.Text != want {
			t.Errorf("%s:\n got %q\nwant %q", label, trunc(got.Text), trunc(want))
			continue
		}
		wantGen, _ := field(line, "generation").([]any)
		if len(wantGen) != len(got.Generation) {
			t.Errorf("%s: %d generation spans, want %d", label, len(got.Generation), len(wantGen))
			continue
		}
		spansOK := true
		for i, g := range got.Generation {
			w := wantGen[i].([]any)
			if int64(byteToCharOffset(got.Text, g.Start)) != w[0].(int64) || int64(byteToCharOffset(got.Text, g.End)) != w[1].(int64) {
				t.Errorf("%s: generation span %d = bytes %v, want characters %v", label, i, g, w)
				spansOK = false
			}
		}
		if spansOK {
			per[name].ok++
		}
	}
	names := make([]string, 0, len(per))
	passed := 0
	for n := range per {
		names = append(names, n)
	}
	sort.Strings(names)
	var failing []string
	for _, n := range names {
		if per[n].ok == per[n].total {
			passed++
		} else {
			failing = append(failing, n)
		}
	}
	t.Logf("%d/%d templates identical on every case; failing: %v", passed, len(names), failing)
}

// byteToCharOffset converts a byte offset of s to a character offset, as
// Python's indexes count.
func byteToCharOffset(s string, off int) int {
	return utf8.RuneCountInString(s[:off])
}

func trunc(s string) string {
	if len(s) > 600 {
		return s[:300] + " ... " + s[len(s)-300:]
	}
	return s
}
