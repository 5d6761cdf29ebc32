package chattemplate

import (
	"errors"
	"strings"
	"testing"

	"github.com/eftml/eft/shared/chattemplate/jinja"
)

const fuzzMessages = `[{"role": "system", "content": "S"}, {"role": "user", "content": "Hi é"}, {"role": "assistant", "content": "Yo", "tool_calls": [{"function": {"name": "f", "arguments": {"a": 1}}}]}]`

// FuzzRender compiles arbitrary template text and renders it on arbitrary
// JSON messages: it must never panic or hang, and every failure must be an
// error naming the template. Seeds: Axolotl's templates and the engine
// snippets, plus testdata/fuzz/FuzzRender.
func FuzzRender(f *testing.F) {
	for _, n := range Names() {
		src, _ := Named(n)
		f.Add(src, fuzzMessages)
	}
	for _, c := range readJSONFixture(f, "chattemplates", "engine.json").([]any) {
		f.Add(field(c, "src").(string), fuzzMessages)
	}
	saved := renderLimits
	renderLimits.maxOutput, renderLimits.maxSteps = 1<<20, 20000
	defer func() { renderLimits = saved }()
	f.Fuzz(func(t *testing.T, src, messages string) {
		tpl, err := Compile("fuzz", src)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "chat template fuzz: ") {
				t.Fatalf("compile error without the template's name: %v", err)
			}
			return
		}
		var msgs []any
		if v, err := jinja.DecodeJSON([]byte(messages)); err == nil {
			msgs, _ = v.([]any)
		}
		req := Request{Messages: msgs, SpecialTokens: genericSpecials, Now: fixtureClock, AddGenerationPrompt: len(src)%2 == 0}
		res, err := tpl.RenderTracked(req)
		if err != nil {
			var te *Error
			if !errors.As(err, &te) && !strings.HasPrefix(err.Error(), "chat template fuzz: ") {
				t.Fatalf("render error without the template's name: %v", err)
			}
			return
		}
		for _, s := range res.Generation {
			if s.Start < 0 || s.End < s.Start || s.End > len(res.Text) {
				t.Fatalf("generation span %v outside the %d-byte text", s, len(res.Text))
			}
		}
		if len(msgs) > 0 && len(msgs) <= 4 {
			spans, err := tpl.MessageSpans(req, TurnOptions{})
			if err != nil {
				return
			}
			for _, s := range spans {
				if s.Start != -1 && (s.Start < 0 || s.End <= s.Start) {
					t.Fatalf("bad message span %v", s)
				}
			}
		}
	})
}
