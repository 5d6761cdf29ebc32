package chattemplate

import (
	"errors"
	"strings"
	"testing"

	"github.com/eftml/eft/shared/chattemplate/jinja"
)

func msg(kv ...string) *jinja.Dict {
	d := jinja.NewDict()
	for i := 0; i < len(kv); i += 2 {
		d.Set(kv[i], kv[i+1])
	}
	return d
}

func TestDiffSpanFollowsAxolotl(t *testing.T) {
	for _, c := range []struct {
		dummy, full []int
		start, end  int
		ok          bool
	}{
		{[]int{1, 2, 9, 9, 5}, []int{1, 2, 3, 4, 4, 5}, 2, 5, true}, // content replaced in the middle
		{[]int{1, 2, 9}, []int{1, 2, 3, 4}, 2, 4, true},             // content at the end
		{[]int{1, 2, 3}, []int{1, 2, 3}, -1, -1, false},             // identical: no content
		{[]int{1, 2}, []int{1, 2, 3}, -1, -1, false},                // prefix: no first difference
		{[]int{7, 1, 2}, []int{8, 1, 2}, 0, 1, true},
		{[]int{1, 9, 2, 3}, []int{1, 2, 3}, -1, -1, false}, // the back diff ends before the front diff
	} {
		s, e, ok := DiffSpan(c.dummy, c.full)
		if s != c.start || e != c.end || ok != c.ok {
			t.Errorf("DiffSpan(%v, %v) = %d, %d, %v; want %d, %d, %v", c.dummy, c.full, s, e, ok, c.start, c.end, c.ok)
		}
	}
}

// TestMessageSpansLocateContent checks on real templates that each
// message's span is exactly its content as the template writes it (llama3
// trims content; the system message of mistral_v1 is folded into the
// first user turn).
func TestMessageSpansLocateContent(t *testing.T) {
	conv := []any{
		msg("role", "system", "content", "You are terse."),
		msg("role", "user", "content", "Name a color."),
		msg("role", "assistant", "content", " Blue. "),
		msg("role", "user", "content", "Another? é"),
		msg("role", "assistant", "content", "Red 🎉"),
	}
	for _, c := range []struct {
		name string
		want []string
	}{
		{"chatml", []string{"You are terse.", "Name a color.", " Blue. ", "Another? é", "Red 🎉"}},
		{"llama3", []string{"You are terse.", "Name a color.", "Blue.", "Another? é", "Red 🎉"}},
		{"qwen3", []string{"You are terse.", "Name a color.", " Blue. ", "Another? é", "Red 🎉"}},
	} {
		src, _ := Named(c.name)
		tpl, err := Compile(c.name, src)
		if err != nil {
			t.Fatal(err)
		}
		req := Request{Messages: conv, SpecialTokens: map[string]any{"bos_token": "<s>", "eos_token": "</s>"}}
		spans, err := tpl.MessageSpans(req, TurnOptions{})
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		whole, err := tpl.Render(req)
		if err != nil {
			t.Fatal(err)
		}
		for i, s := range spans {
			if s.Start < 0 {
				t.Errorf("%s: message %d not found", c.name, i)
				continue
			}
			if got := whole[s.Start:s.End]; got != c.want[i] {
				t.Errorf("%s: message %d span %v = %q, want %q", c.name, i, s, got, c.want[i])
			}
		}
	}
}

// TestTurnRendersPassAxolotlVariables checks the dummy turn (role and
// placeholder only, reasoning per the options) and real_last_index.
func TestTurnRendersPassAxolotlVariables(t *testing.T) {
	tpl, err := Compile("probe", "{% for m in messages %}[{{ m | tojson }}]{% endfor %}{{ real_last_index }}|{{ tools }}|{{ add_generation_prompt }}")
	if err != nil {
		t.Fatal(err)
	}
	turn := jinja.NewDict()
	turn.Set("role", "assistant")
	turn.Set("content", "Four.")
	turn.Set("reasoning_content", "2+2")
	turn.Set("tool_calls", []any{})
	conv := []any{msg("role", "user", "content", "2+2?"), turn, msg("role", "user", "content", "ok")}
	req := Request{Messages: conv, AddGenerationPrompt: true, Tools: []any{}}
	for _, c := range []struct {
		opts        TurnOptions
		dummy, full string
	}{
		{TurnOptions{},
			`[{"role": "user", "content": "2+2?"}][{"role": "assistant", "content": "[[dummy_message]]"}]2|None|False`,
			`[{"role": "user", "content": "2+2?"}][{"role": "assistant", "content": "Four.", "reasoning_content": "2+2", "tool_calls": []}]2|None|False`},
		{TurnOptions{ContentOnly: true},
			`[{"role": "user", "content": "2+2?"}][{"role": "assistant", "content": "[[dummy_message]]", "reasoning_content": "2+2"}]2|None|False`, ""},
		{TurnOptions{ReasoningOnly: true},
			`[{"role": "user", "content": "2+2?"}][{"role": "assistant", "content": "Four.", "reasoning_content": "[[dummy_reasoning]]"}]2|None|False`, ""},
	} {
		dummy, full, err := tpl.TurnRenders(req, 1, c.opts)
		if err != nil {
			t.Fatal(err)
		}
		if dummy != c.dummy {
			t.Errorf("%+v: dummy render\n got %s\nwant %s", c.opts, dummy, c.dummy)
		}
		if c.full != "" && full != c.full {
			t.Errorf("%+v: full render\n got %s\nwant %s", c.opts, full, c.full)
		}
	}
	// A one-message conversation: real_last_index is 0, which Axolotl
	// does not pass (it tests it for truth).
	_, full, err := tpl.TurnRenders(Request{Messages: conv[:1]}, 0, TurnOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(full, "]|None|False") {
		t.Errorf("single message render %q: real_last_index should be undefined", full)
	}
	if _, _, err := tpl.TurnRenders(req, 3, TurnOptions{}); err == nil {
		t.Error("turn index past the end: no error")
	}
}

// TestMessageSpansMatchAxolotl holds MessageSpans to generate.py's port of
// Axolotl's find_turn (on characters) over every Axolotl template and
// conversation of the corpus (turns.jsonl.gz), real_last_index included.
func TestMessageSpansMatchAxolotl(t *testing.T) {
	convs := map[string]*jinja.Dict{}
	for _, c := range field(readJSONFixture(t, "chattemplates", "convs.json"), "convs").([]any) {
		convs[field(c, "name").(string)] = c.(*jinja.Dict)
	}
	lines := readJSONLines(t, "chattemplates", "turns.jsonl.gz")
	if len(lines) < 36*30 {
		t.Fatalf("only %d find_turn cases", len(lines))
	}
	for _, line := range lines {
		name := strings.TrimPrefix(field(line, "template").(string), "axolotl/")
		src, _ := Named(name)
		tpl, err := Compile(name, src)
		if err != nil {
			t.Fatal(err)
		}
		convName := field(line, "conv").(string)
		req := requestFor(&corpusTemplate{specials: genericSpecials}, convs[convName], false)
		req.Documents = nil // Axolotl's build_prompt passes none
		spans, err := tpl.MessageSpans(req, TurnOptions{})
		if wantErr, ok := field(line, "error").(string); ok {
			var te *Error
			if !errors.As(err, &te) || te.Message != wantErr {
				t.Errorf("%s / %s: %v, want error %q", name, convName, err, wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s / %s: %v", name, convName, err)
			continue
		}
		for i, w := range field(line, "spans").([]any) {
			_, full, err := tpl.TurnRenders(req, i, TurnOptions{})
			if err != nil {
				t.Fatal(err)
			}
			got := spans[i]
			if w == nil {
				if got.Start != -1 {
					t.Errorf("%s / %s message %d: span %v, Axolotl finds none", name, convName, i, got)
				}
				continue
			}
			ws := w.([]any)
			if got.Start < 0 || int64(byteToCharOffset(full, got.Start)) != ws[0].(int64) || int64(byteToCharOffset(full, got.End)) != ws[1].(int64) {
				t.Errorf("%s / %s message %d: byte span %v, Axolotl's is characters %v", name, convName, i, got, ws)
			}
		}
	}
}
