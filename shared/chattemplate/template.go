package chattemplate

import (
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/eftml/eft/shared/chattemplate/jinja"
)

// Template is a compiled chat template. It is safe for concurrent use.
type Template struct {
	// Name says where the template came from ("chatml", "tokenizer_config.json",
	// "chat_template_jinja", ...); errors name it.
	Name string
	// Source is the template text.
	Source string
	tpl    *jinja.Template
}

// Compile parses a chat template. name only labels errors.
func Compile(name, source string) (*Template, error) {
	tpl, err := jinja.Compile(source)
	if err != nil {
		return nil, fmt.Errorf("chat template %s: %w", name, err)
	}
	return &Template{Name: name, Source: source, tpl: tpl}, nil
}

// Request is one apply_chat_template call.
type Request struct {
	// Messages are the conversation: each message an object — a
	// jinja.ObjectLike (such as a dataset row's object, key order kept), a
	// *jinja.Dict, or a map[string]any (keys sorted, Go maps having no
	// order). Values are nil, bool, ints, floats, strings, slices and
	// objects.
	Messages []any
	// Tools are the tool schemas; nil renders with tools=None, as
	// transformers does when none are given.
	Tools []any
	// Documents are RAG documents; nil renders with documents=None.
	Documents []any
	// AddGenerationPrompt asks the template to open an assistant turn.
	AddGenerationPrompt bool
	// SpecialTokens are the tokenizer's special tokens as the template
	// sees them (bos_token, eos_token, ...): usually
	// TokenizerConfig.SpecialTokens, after any overrides of the run config.
	SpecialTokens map[string]any
	// Kwargs are extra template variables (Axolotl's chat_template_kwargs,
	// such as enable_thinking); they override special tokens of the same
	// name, as in transformers.
	Kwargs map[string]any
	// Now is strftime_now's clock; nil means time.Now.
	Now func() time.Time
}

// Rendered is a rendered conversation.
type Rendered struct {
	Text string
	// Generation are the byte spans of Text that {% generation %} blocks
	// wrote (transformers' assistant masks), in order; empty for templates
	// without such blocks.
	Generation []Span
}

// Span is a byte range [Start, End) of rendered text.
type Span struct{ Start, End int }

// Error is a template that raised while rendering: Kind is the Python
// exception class Jinja2 would raise (TemplateError for raise_exception,
// UndefinedError, TypeError, ...) and Message its text, as transformers
// would show it.
type Error struct {
	Template string
	Kind     string
	Message  string
}

func (e *Error) Error() string {
	return fmt.Sprintf("chat template %s: %s", e.Template, e.Message)
}

// Render renders the conversation to text.
func (t *Template) Render(req Request) (string, error) {
	r, err := t.RenderTracked(req)
	return r.Text, err
}

// RenderTracked renders the conversation and reports where its
// {% generation %} blocks landed.
func (t *Template) RenderTracked(req Request) (Rendered, error) {
	res, err := t.tpl.Render(t.vars(req), envFor(req.Now))
	if err != nil {
		return Rendered{}, t.renderError(err)
	}
	out := Rendered{Text: res.Text}
	for _, s := range res.Generation {
		out.Generation = append(out.Generation, Span(s))
	}
	return out, nil
}

// AppendRender renders the conversation like Render, appending the text to
// dst: a caller rendering many conversations reuses one buffer.
func (t *Template) AppendRender(dst []byte, req Request) ([]byte, error) {
	out, _, err := t.tpl.AppendRender(dst, t.vars(req), envFor(req.Now))
	if err != nil {
		return dst, t.renderError(err)
	}
	return out, nil
}

// Probe watches what a render does with placeholder strings (jinja.Probe).
type Probe = jinja.Probe

// ProbeRender renders the conversation like Render while p watches it.
func (t *Template) ProbeRender(req Request, p *Probe) (string, error) {
	res, err := t.tpl.ProbeRender(t.vars(req), envFor(req.Now), p)
	if err != nil {
		return "", t.renderError(err)
	}
	return res.Text, nil
}

// Trim is what the trim filter makes of a string (Python's str.strip()).
func Trim(s string) string { return jinja.Trim(s) }

// vars are the variables a render sees, as transformers passes them.
func (t *Template) vars(req Request) map[string]any {
	vars := make(map[string]any, len(req.SpecialTokens)+len(req.Kwargs)+4)
	for k, v := range req.SpecialTokens {
		vars[k] = v
	}
	for k, v := range req.Kwargs {
		vars[k] = v
	}
	vars["messages"] = messagesValue(req.Messages)
	vars["tools"] = nil
	if req.Tools != nil {
		vars["tools"] = req.Tools
	}
	vars["documents"] = nil
	if req.Documents != nil {
		vars["documents"] = req.Documents
	}
	vars["add_generation_prompt"] = req.AddGenerationPrompt
	return vars
}

func (t *Template) renderError(err error) error {
	var je *jinja.Error
	if errors.As(err, &je) {
		return &Error{Template: t.Name, Kind: string(je.Kind), Message: je.Error()}
	}
	return fmt.Errorf("chat template %s: %w", t.Name, err)
}

func messagesValue(msgs []any) any {
	if msgs == nil {
		return []any{}
	}
	return msgs
}

// renderLimits bound every render (see jinja.Env); the fuzz test lowers them.
var renderLimits = struct{ maxOutput, maxSteps int }{64 << 20, 10_000_000}

// clockEnv is transformersEnv(nil), kept: building it (maps, closures) cost
// as much as rendering a short conversation. It is rebuilt when the limits
// change (the fuzz test lowers them).
var clockEnv atomic.Pointer[jinja.Env]

func envFor(now func() time.Time) *jinja.Env {
	if now != nil {
		return transformersEnv(now)
	}
	env := clockEnv.Load()
	if env == nil || env.MaxOutput != renderLimits.maxOutput || env.MaxSteps != renderLimits.maxSteps {
		env = transformersEnv(nil)
		clockEnv.Store(env)
	}
	return env
}

// transformersEnv is the environment transformers' _compile_jinja_template
// sets up on top of Jinja2's: its own tojson, raise_exception and
// strftime_now.
func transformersEnv(now func() time.Time) *jinja.Env {
	if now == nil {
		now = time.Now
	}
	return &jinja.Env{
		MaxOutput: renderLimits.maxOutput,
		MaxSteps:  renderLimits.maxSteps,
		Filters:   map[string]jinja.Filter{"tojson": hfToJSON},
		Globals: map[string]any{
			"raise_exception": raiseException,
			"strftime_now": &jinja.Callable{Name: "strftime_now", Volatile: true, Fn: func(args []any, kwargs []jinja.KeywordArg) (any, error) {
				if len(args) != 1 || len(kwargs) > 0 {
					return nil, &jinja.Error{Kind: jinja.TypeError, Msg: fmt.Sprintf("strftime_now() takes 1 positional argument but %d were given", len(args))}
				}
				f, ok := args[0].(string)
				if !ok {
					return nil, &jinja.Error{Kind: jinja.TypeError, Msg: "strftime() argument 1 must be str"}
				}
				return strftime(f, now()), nil
			}},
		},
	}
}

var raiseException = &jinja.Callable{Name: "raise_exception", Fn: func(args []any, kwargs []jinja.KeywordArg) (any, error) {
	if len(args) != 1 {
		return nil, &jinja.Error{Kind: jinja.TypeError, Msg: fmt.Sprintf("raise_exception() takes 1 positional argument but %d were given", len(args))}
	}
	msg, ok := args[0].(string)
	if !ok {
		msg = jinja.Str(args[0])
	}
	return nil, &jinja.Error{Kind: jinja.TemplateError, Msg: msg}
}}

// hfToJSON is transformers' tojson: json.dumps(x, ensure_ascii=False,
// indent=None, separators=None, sort_keys=False).
func hfToJSON(v any, args []any, kwargs []jinja.KeywordArg) (any, error) {
	names := []string{"ensure_ascii", "indent", "separators", "sort_keys"}
	vals := map[string]any{}
	if len(args) > len(names) {
		return nil, &jinja.Error{Kind: jinja.TypeError, Msg: fmt.Sprintf("tojson() takes from 1 to 5 positional arguments but %d were given", len(args)+1)}
	}
	for i, a := range args {
		vals[names[i]] = a
	}
	for _, k := range kwargs {
		known := false
		for _, n := range names {
			known = known || n == k.Name
		}
		if !known {
			return nil, &jinja.Error{Kind: jinja.TypeError, Msg: fmt.Sprintf("tojson() got an unexpected keyword argument '%s'", k.Name)}
		}
		vals[k.Name] = k.Value
	}
	opts := jinja.JSONOptions{EnsureASCII: jinja.Truthy(vals["ensure_ascii"]), SortKeys: jinja.Truthy(vals["sort_keys"])}
	if ind, ok := vals["indent"]; ok && ind != nil {
		s, err := jinja.IndentString(ind)
		if err != nil {
			return nil, err
		}
		opts.Indent = &s
	}
	if sep, ok := vals["separators"]; ok && sep != nil {
		items, ok := jinja.Sequence(sep)
		if !ok || len(items) != 2 {
			return nil, &jinja.Error{Kind: jinja.ValueError, Msg: "not enough values to unpack (expected 2)"}
		}
		a, ok1 := items[0].(string)
		b, ok2 := items[1].(string)
		if !ok1 || !ok2 {
			return nil, &jinja.Error{Kind: jinja.TypeError, Msg: "make_encoder() argument 5 must be str"}
		}
		opts.ItemSep, opts.KeySep = &a, &b
	}
	return jinja.DumpJSON(v, opts)
}

// DecodeJSONList parses a JSON array of messages, tools or documents the
// way json.loads does (object key order kept, ints and floats apart),
// ready for a Request. what names the value in errors.
func DecodeJSONList(data []byte, what string) ([]any, error) {
	v, err := jinja.DecodeJSON(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	list, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("%s must be a JSON array, not %s", what, jsonKind(v))
	}
	return list, nil
}

func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case int64, float64:
		return "a number"
	case string:
		return "a string"
	}
	return "an object"
}
