package chattemplate

import (
	"fmt"
	"unicode/utf8"

	"github.com/eftml/eft/shared/chattemplate/jinja"
)

// Axolotl masks labels turn by turn (prompt_strategies/chat_template.py,
// find_turn): it renders the conversation up to turn i twice — once with
// that turn's content replaced by a placeholder, once as it is —
// tokenizes both, and takes the tokens where they differ as the turn's
// content. TurnRenders produces the two texts, DiffSpan the boundary
// search; run DiffSpan on the token ids of both texts (encoded without
// special tokens, as apply_chat_template(tokenize=True) does) to get
// exactly Axolotl's token span. MessageSpans does the same search on
// characters, for callers that map characters to tokens themselves.

// DummyContent and DummyReasoning are Axolotl's placeholders.
const (
	DummyContent   = "[[dummy_message]]"
	DummyReasoning = "[[dummy_reasoning]]"
)

// TurnOptions are find_turn's switches.
type TurnOptions struct {
	// ContentOnly keeps the turn's reasoning in the dummy turn, so that
	// the difference covers the content alone (Axolotl sets it when a turn
	// with reasoning has training_detail).
	ContentOnly bool
	// ReasoningOnly keeps the content and replaces the reasoning instead.
	ReasoningOnly bool
	// ThinkingKey is the message key of the reasoning; empty means
	// "reasoning_content", Axolotl's default.
	ThinkingKey string
}

// TurnRenders renders what find_turn compares for message i of
// req.Messages: the messages up to and including i, with message i
// replaced by the dummy turn ({role, content: DummyContent}, plus the
// reasoning as TurnOptions say), and as it is. Like Axolotl it renders
// without a generation prompt, passes tools only when there are some,
// and sets the template variable real_last_index to len(req.Messages)-1
// when that is not 0. (Axolotl passes no documents: leave
// req.Documents nil to match it.)
func (t *Template) TurnRenders(req Request, i int, opts TurnOptions) (dummy, full string, err error) {
	if i < 0 || i >= len(req.Messages) {
		return "", "", fmt.Errorf("turn index %d out of range (%d messages)", i, len(req.Messages))
	}
	msgs := make([]any, i+1)
	copy(msgs, req.Messages[:i+1])
	base := axolotlRequest(req, len(req.Messages)-1)
	base.Messages = msgs
	if full, err = t.Render(base); err != nil {
		return "", "", err
	}
	msgs[i] = dummyTurn(req.Messages[i], opts)
	if dummy, err = t.Render(base); err != nil {
		return "", "", err
	}
	return dummy, full, nil
}

// axolotlRequest is the request ChatTemplatePrompter.build_prompt makes.
func axolotlRequest(req Request, realLastIndex int) Request {
	out := req
	out.AddGenerationPrompt = false
	if len(out.Tools) == 0 {
		out.Tools = nil
	}
	if realLastIndex != 0 {
		kw := make(map[string]any, len(req.Kwargs)+1)
		for k, v := range req.Kwargs {
			kw[k] = v
		}
		kw["real_last_index"] = int64(realLastIndex)
		out.Kwargs = kw
	}
	return out
}

func dummyTurn(msg any, opts TurnOptions) *jinja.Dict {
	m, _ := jinja.FromGo(msg).(*jinja.Dict)
	get := func(k string) (any, bool) {
		if m == nil {
			return nil, false
		}
		return m.Get(k)
	}
	key := opts.ThinkingKey
	if key == "" {
		key = "reasoning_content"
	}
	d := jinja.NewDict()
	role, _ := get("role")
	d.Set("role", role)
	reasoning, hasReasoning := get(key)
	if opts.ReasoningOnly {
		content, ok := get("content")
		if !ok {
			content = ""
		}
		d.Set("content", content)
		if hasReasoning {
			d.Set(key, DummyReasoning)
		}
		return d
	}
	d.Set("content", DummyContent)
	if opts.ContentOnly && hasReasoning {
		d.Set(key, reasoning)
	}
	return d
}

// DiffSpan is find_turn's boundary search: start is the first position
// where dummy and full differ, end is one past the last position of full
// that differs when both are aligned at their ends. ok is false where
// Axolotl gives up (and masks the turn): no difference from the front or
// the back, or an empty or inverted span.
func DiffSpan[T comparable](dummy, full []T) (start, end int, ok bool) {
	n := min(len(dummy), len(full))
	start = -1
	for i := 0; i < n; i++ {
		if dummy[i] != full[i] {
			start = i
			break
		}
	}
	if start < 0 {
		return -1, -1, false
	}
	end = -1
	for i := 0; i < n; i++ {
		if dummy[len(dummy)-1-i] != full[len(full)-1-i] {
			end = len(full) - i
			break
		}
	}
	if end < 0 || end <= start {
		return -1, -1, false
	}
	return start, end, true
}

// MessageSpans finds each message in the rendering of the messages up to
// it, as find_turn does, but comparing characters instead of tokens:
// spans[i] is a byte span of the render of req.Messages[:i+1] (which, for
// templates that render conversations incrementally, is a prefix of the
// whole conversation's render). A message find_turn cannot locate gets
// Span{-1, -1}.
func (t *Template) MessageSpans(req Request, opts TurnOptions) ([]Span, error) {
	spans := make([]Span, len(req.Messages))
	for i := range req.Messages {
		dummy, full, err := t.TurnRenders(req, i, opts)
		if err != nil {
			return nil, err
		}
		start, end, ok := DiffSpan([]byte(dummy), []byte(full))
		if !ok {
			spans[i] = Span{-1, -1}
			continue
		}
		// Widen to whole characters: a byte difference can start or end
		// inside a multi-byte character.
		for start > 0 && !utf8.RuneStart(full[start]) {
			start--
		}
		for end < len(full) && !utf8.RuneStart(full[end]) {
			end++
		}
		spans[i] = Span{start, end}
	}
	return spans, nil
}
