package prompt

import (
	"fmt"
	"strings"

	"github.com/eftml/eft/shared/config"
	"github.com/eftml/eft/shared/datasets"
	"github.com/eftml/eft/shared/packing"
)

// The system prompts of Axolotl's prompters (prompters.py, alpaca_chat.py).
const (
	alpacaSystem            = "Below is an instruction that describes a task, paired with an input that provides further context. Write a response that appropriately completes the request."
	alpacaSystemNoInput     = "Below is an instruction that describes a task. Write a response that appropriately completes the request."
	alpacaChatSystem        = "Below is an instruction from a USER that describes a task, paired with an input that provides further context. The ASSISTANT writes a response that concisely and appropriately completes the request.\n\n"
	alpacaChatSystemNoInput = "Below is an instruction from a USER that describes a task. The ASSISTANT writes a response that appropriately and concisely completes the request.\n\n"
	explainChoiceSystem     = "Choose the answer that best answers the question. Explain your reasoning.\n"
	conciseChoiceSystem     = "Choose the answer that best answers the question. Be concise in your response.\n\n"
)

// prompter holds the text around an instruction, as Axolotl's AlpacaPrompter
// and its subclasses do: a system prompt (one for rows with an input, one for
// rows without; "" for none), its format, and the turn formats.
type prompter struct {
	system, systemNoInput string
	systemFormat          string
	turn, turnNoInput     string
}

// styled is AlpacaPrompter.match_prompt_style: the formats of a prompt style.
func styled(style string) (prompter, error) {
	switch style {
	case "", "instruct":
		return prompter{
			turn:         "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n",
			turnNoInput:  "### Instruction:\n{instruction}\n\n### Response:\n",
			systemFormat: "{system}\n\n",
		}, nil
	case "chat":
		return prompter{
			turn:         "USER: {instruction}\n{input}\nASSISTANT:",
			turnNoInput:  "USER: {instruction}\nASSISTANT:",
			systemFormat: "SYSTEM: {system}\n",
		}, nil
	case "chatml":
		return prompter{
			turn:         "<|im_start|>user\n{instruction}\n{input}<|im_end|>\n<|im_start|>assistant\n",
			turnNoInput:  "<|im_start|>user\n{instruction}<|im_end|>\n<|im_start|>assistant\n",
			systemFormat: "<|im_start|>system\n{system}<|im_end|>\n",
		}, nil
	case "phi":
		return prompter{
			turn:         "<|user|>\n{instruction}<|end|>{input}<|assistant|>",
			turnNoInput:  "<|user|>\n{instruction}<|end|>\n<|assistant|>\n",
			systemFormat: "<|system|>\n{system}<|end|>\n",
		}, nil
	}
	return prompter{}, fmt.Errorf("unknown prompt style %q (instruct, chat, chatml, phi)", style)
}

func withSystem(p prompter, system, noInput string) prompter {
	p.system, p.systemNoInput = system, noInput
	return p
}

// instructRow is what an instruction strategy reads from a row. hasSystem
// says the row holds a system prompt of its own.
type instructRow struct {
	instruction, input, output, system string
	hasSystem                          bool
}

// instructFields says which row fields hold the instruction, input, output
// and system text. required are the fields a row must have.
type instructFields struct {
	required []string
	read     func(row datasets.Object) (instructRow, error)
}

// plainFields reads instruction, input (optional) and output fields by name.
func plainFields(instruction, input, output string) instructFields {
	req := []string{instruction, output}
	return instructFields{required: req, read: func(row datasets.Object) (r instructRow, err error) {
		if r.instruction, err = field(row, instruction, false); err != nil {
			return r, err
		}
		if input != "" {
			if r.input, err = field(row, input, true); err != nil {
				return r, err
			}
		}
		r.output, err = field(row, output, false)
		return r, err
	}}
}

// instructSpec is one instruction-style strategy: its fields, its prompter
// for a prompt style, and whether the system prompt comes from the row.
type instructSpec struct {
	fields     instructFields
	prompter   func(style string) (prompter, error)
	rowSystem  bool
	styleAfter bool // the name takes ":style" (Axolotl's DATASET_HANDLERS)
}

// withRowSystem adds the row's system field to f (null or absent: no
// system prompt, as `if system` skips None in Python).
func withRowSystem(f instructFields, system string) instructFields {
	return instructFields{required: f.required, read: func(row datasets.Object) (instructRow, error) {
		r, err := f.read(row)
		if err != nil {
			return r, err
		}
		r.system, err = field(row, system, true)
		r.hasSystem = true
		return r, err
	}}
}

func alpacaPrompter(style string) (prompter, error) {
	p, err := styled(style)
	return withSystem(p, alpacaSystem, alpacaSystemNoInput), err
}

func unprompted(style string) func(string) (prompter, error) {
	return func(string) (prompter, error) { return styled(style) }
}

func fixedStyle(style string, f func(string) (prompter, error)) func(string) (prompter, error) {
	return func(string) (prompter, error) { return f(style) }
}

func alpacaChatPrompter(string) (prompter, error) {
	p, err := styled("chat")
	return withSystem(p, alpacaChatSystem, alpacaChatSystemNoInput), err
}

var (
	alpacaFields   = plainFields("instruction", "input", "output")
	systemFields   = withRowSystem(alpacaFields, "system")
	openOrcaFields = withRowSystem(plainFields("question", "", "response"), "system_prompt")
	choiceFields   = instructFields{required: []string{"question", "choices"}, read: func(row datasets.Object) (r instructRow, err error) {
		if r.instruction, err = field(row, "question", false); err != nil {
			return r, err
		}
		v, _ := row.Get("choices")
		list, ok := v.([]any)
		if !ok {
			return r, fmt.Errorf("field \"choices\" is %s, want list", datasets.Kind(v))
		}
		lines := make([]string, len(list))
		for i, c := range list {
			s, ok := c.(string)
			if !ok {
				return r, fmt.Errorf("choices[%d] is %s, want string", i, datasets.Kind(c))
			}
			lines[i] = `- "` + s + `"`
		}
		r.input = strings.Join(lines, "\n")
		answer := "solution"
		if v, ok := row.Get("solution"); !ok || v == nil {
			answer = "explanation"
		}
		r.output, err = field(row, answer, false)
		return r, err
	}}
	jeopardyFields = instructFields{required: []string{"question", "category", "answer"}, read: func(row datasets.Object) (instructRow, error) {
		r, err := plainFields("question", "category", "answer").read(row)
		r.output = "what is " + r.output
		return r, err
	}}
)

// instructSpecs are the instruction strategies by the name before ":" or
// ".load_...": Axolotl's DATASET_HANDLERS (which take ":style") and its
// alpaca_* prompt-strategy modules.
var instructSpecs = map[string]instructSpec{
	"alpaca":    {fields: alpacaFields, prompter: alpacaPrompter, styleAfter: true},
	"gpteacher": {fields: plainFields("instruction", "input", "response"), prompter: alpacaPrompter, styleAfter: true},
	"jeopardy":  {fields: jeopardyFields, prompter: alpacaPrompter, styleAfter: true},
	"oasst":     {fields: plainFields("INSTRUCTION", "", "RESPONSE"), prompter: alpacaPrompter, styleAfter: true},
	"explainchoice": {fields: choiceFields, styleAfter: true, prompter: func(style string) (prompter, error) {
		p, err := styled(style)
		return withSystem(p, explainChoiceSystem, explainChoiceSystem), err
	}},
	"concisechoice": {fields: choiceFields, styleAfter: true, prompter: func(string) (prompter, error) {
		return prompter{system: conciseChoiceSystem, systemNoInput: conciseChoiceSystem, systemFormat: "{system}",
			turn: "USER: {instruction}\n{input}\nASSISTANT:", turnNoInput: "USER: {instruction}\nASSISTANT:"}, nil
	}},
	"summarizetldr": {fields: plainFields("article", "", "summary"), styleAfter: true, prompter: func(string) (prompter, error) {
		return prompter{systemFormat: "{system}",
			turn:        "USER: Summarize the following article as a TL;DR.\n{instruction}\n{input}\nASSISTANT:",
			turnNoInput: "USER: Summarize the following article as a TL;DR.\n{instruction}\nASSISTANT:"}, nil
	}},
	"alpaca_chat":                           {fields: alpacaFields, prompter: alpacaPrompter},
	"alpaca_chat.load_qa":                   {fields: plainFields("question", "", "answer"), prompter: alpacaChatPrompter},
	"alpaca_chat.load_concise":              {fields: alpacaFields, prompter: alpacaChatPrompter},
	"alpaca_chat.load_camel_ai":             {fields: plainFields("message_1", "", "message_2"), prompter: alpacaChatPrompter},
	"alpaca_chat.load_no_prompt":            {fields: alpacaFields, prompter: unprompted("chat")},
	"alpaca_instruct":                       {fields: alpacaFields, prompter: fixedStyle("instruct", alpacaPrompter)},
	"alpaca_instruct.load_no_prompt":        {fields: alpacaFields, prompter: unprompted("instruct")},
	"alpaca_w_system":                       {fields: systemFields, prompter: unprompted("chat"), rowSystem: true},
	"alpaca_w_system.load_chat":             {fields: systemFields, prompter: unprompted("chat"), rowSystem: true},
	"alpaca_w_system.load_instruct":         {fields: systemFields, prompter: unprompted("instruct"), rowSystem: true},
	"alpaca_w_system.load_open_orca":        {fields: openOrcaFields, prompter: fixedStyle("instruct", openOrcaPrompter), rowSystem: true},
	"alpaca_w_system.load_open_orca_chatml": {fields: openOrcaFields, prompter: fixedStyle("chatml", openOrcaPrompter), rowSystem: true},
}

// openOrcaPrompter is OpenOrcaSystemDataPrompter's match_prompt_style.
func openOrcaPrompter(style string) (prompter, error) {
	if style == "instruct" {
		return prompter{
			turn:         "### Human:\n{instruction}\n### Additional Context:\n{input}\n### Assistant:\n",
			turnNoInput:  "### Human:\n{instruction}\n### Assistant:\n",
			systemFormat: "### System:\n{system}\n",
		}, nil
	}
	return styled(style)
}

// instruct is Axolotl's InstructionPromptTokenizingStrategy (and
// InstructionWSystemPromptTokenizingStrategy with a system from the row):
// the prompt is tokenized with special tokens and no EOS, masked unless
// train_on_inputs; the response is tokenized on its own, its BOS stripped
// and EOS appended, and always trained. Each part is cut to sequence_len.
type instruct struct {
	name          string
	fields        instructFields
	p             prompter
	rowSystem     bool
	systemPrompt  string // user-defined formats: the system when the row has none
	enc           *encoder
	trainOnInputs bool
	maxLen        int
}

func newInstruct(cfg *config.Config, ds *config.Dataset, name string, enc *encoder) (Strategy, error) {
	base, style := name, ""
	if b, s, ok := strings.Cut(name, ":"); ok {
		base, style = b, s
	}
	spec, ok := instructSpecs[base]
	if !ok || (style != "" && !spec.styleAfter) {
		return nil, fmt.Errorf("unknown prompt strategy %q (known: alpaca[:style], alpaca_chat, alpaca_instruct, alpaca_w_system, completion, input_output, chat_template, gpteacher, jeopardy, oasst, explainchoice, concisechoice, summarizetldr, a user-defined format)", name)
	}
	if base == "alpaca_chat" {
		// alpaca_chat's load reads the dataset's conversation: as the style.
		style = orDefault(ds.Conversation, "chat")
	}
	p, err := spec.prompter(style)
	if err != nil {
		return nil, err
	}
	return &instruct{name: name, fields: spec.fields, p: p, rowSystem: spec.rowSystem, enc: enc,
		trainOnInputs: cfg.TrainOnInputs, maxLen: cfg.SequenceLen}, nil
}

// newUserDefined is Axolotl's user_defined strategy: an instruction format
// from the config, the system from the row's field_system or system_prompt.
func newUserDefined(cfg *config.Config, f config.UserDefinedFormat, enc *encoder) (Strategy, error) {
	ins, in, out, sys := orDefault(f.FieldInstruction, "instruction"), orDefault(f.FieldInput, "input"),
		orDefault(f.FieldOutput, "output"), orDefault(f.FieldSystem, "system")
	p := prompter{
		systemFormat: orDefault(f.SystemFormat, "{system}"),
		turn:         orDefault(f.Format, "{instruction} {input} "),
		turnNoInput:  orDefault(f.NoInputFormat, "{instruction} "),
	}
	for _, check := range []struct {
		key, format string
		fields      map[string]string
	}{
		{"format", p.turn, map[string]string{"instruction": "", "input": ""}},
		{"no_input_format", p.turnNoInput, map[string]string{"instruction": ""}},
		{"system_format", p.systemFormat, map[string]string{"system": ""}},
	} {
		if _, err := pyFormat(check.format, check.fields); err != nil {
			return nil, fmt.Errorf("%s: %w", check.key, err)
		}
	}
	fields := instructFields{required: []string{ins}, read: func(row datasets.Object) (r instructRow, err error) {
		if r.instruction, err = field(row, ins, false); err != nil {
			return r, err
		}
		if r.input, err = field(row, in, true); err != nil {
			return r, err
		}
		if r.output, err = field(row, out, true); err != nil {
			return r, err
		}
		v, ok := row.Get(sys)
		r.hasSystem = ok && v != nil
		r.system, err = field(row, sys, true)
		return r, err
	}}
	return &instruct{name: "user_defined", fields: fields, p: p, rowSystem: true, systemPrompt: f.SystemPrompt,
		enc: enc, trainOnInputs: cfg.TrainOnInputs, maxLen: cfg.SequenceLen}, nil
}

func (s *instruct) Name() string { return s.name }

// prompt is the text before the response: AlpacaPrompter._build_result
// without output, or SystemDataPrompter.build_prompt_w_system.
func (s *instruct) prompt(r instructRow) (string, error) {
	var head string
	if s.rowSystem {
		system := r.system
		if !r.hasSystem {
			system = s.systemPrompt
		}
		if system != "" && s.p.systemFormat != "" {
			h, err := pyFormat(s.p.systemFormat, map[string]string{"system": system})
			if err != nil {
				return "", err
			}
			head = h
		}
	} else {
		sys := s.p.systemNoInput
		if r.input != "" {
			sys = s.p.system
		}
		if sys != "" {
			h, err := pyFormat(s.p.systemFormat, map[string]string{"system": sys})
			if err != nil {
				return "", err
			}
			head = h
		}
	}
	var body string
	var err error
	if r.input != "" {
		body, err = pyFormat(s.p.turn, map[string]string{"instruction": r.instruction, "input": r.input})
	} else {
		body, err = pyFormat(s.p.turnNoInput, map[string]string{"instruction": r.instruction})
	}
	return head + body, err
}

func (s *instruct) Tokenize(dst []packing.Sample, row datasets.Object) ([]packing.Sample, error) {
	r, err := s.fields.read(row)
	if err != nil {
		return dst, err
	}
	text, err := s.prompt(r)
	if err != nil {
		return dst, err
	}
	// Byte-level vocabularies average about four bytes a token.
	ids := s.enc.tokenize(make([]int32, 0, (len(text)+len(r.output))/3+8), text, s.maxLen, false, false)
	promptLen := len(ids)
	ids = s.enc.tokenize(ids, r.output, s.maxLen, true, true)
	// The response is trained (and the prompt with train_on_inputs).
	trained := make([]uint64, packing.MaskWords(len(ids)))
	from := promptLen
	if s.trainOnInputs {
		from = 0
	}
	packing.MarkTrained(trained, from, len(ids))
	return append(dst, packing.Sample{InputIDs: ids, TrainedMask: trained}), nil
}

// pyFormat is Python's str.format for the named fields a prompt format uses:
// {name} is replaced, {{ and }} are literal braces, and a field the strategy
// does not supply is an error (Python raises KeyError).
func pyFormat(format string, values map[string]string) (string, error) {
	if !strings.ContainsAny(format, "{}") {
		return format, nil
	}
	var b strings.Builder
	for i := 0; i < len(format); i++ {
		c := format[i]
		switch {
		case c == '{' && i+1 < len(format) && format[i+1] == '{':
			b.WriteByte('{')
			i++
		case c == '}' && i+1 < len(format) && format[i+1] == '}':
			b.WriteByte('}')
			i++
		case c == '{':
			end := strings.IndexByte(format[i:], '}')
			if end < 0 {
				return "", fmt.Errorf("format %q: single '{' at byte %d", format, i)
			}
			name := format[i+1 : i+end]
			v, ok := values[name]
			if !ok {
				return "", fmt.Errorf("format %q: unknown field {%s} (this format may use %s)", format, name, fieldNames(values))
			}
			b.WriteString(v)
			i += end
		case c == '}':
			return "", fmt.Errorf("format %q: single '}' at byte %d", format, i)
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), nil
}

func fieldNames(values map[string]string) string {
	var names []string
	for _, n := range []string{"system", "instruction", "input"} {
		if _, ok := values[n]; ok {
			names = append(names, "{"+n+"}")
		}
	}
	return strings.Join(names, ", ")
}
