package prompt

import (
	"slices"
	"strings"
	"testing"

	"github.com/eftml/eft/shared/config"
	"github.com/eftml/eft/shared/datasets"
	"github.com/eftml/eft/shared/packing"
)

// parseConfig reads a config whose datasets section is given; the rest is
// the minimum a config needs.
func parseConfig(t testing.TB, yaml string) *config.Config {
	t.Helper()
	base := "base_model: m\nlearning_rate: 1e-4\nmicro_batch_size: 1\ngradient_accumulation_steps: 1\n"
	cfg, _, err := config.Parse("t.yml", []byte(base+yaml), nil)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// obj builds a row from name, value pairs.
func obj(kv ...any) datasets.Object {
	o := make(datasets.Object, 0, len(kv)/2)
	for i := 0; i < len(kv); i += 2 {
		o = append(o, datasets.Field{Name: kv[i].(string), Value: kv[i+1]})
	}
	return o
}

func tokenizeOne(t *testing.T, s Strategy, row datasets.Object) packing.Sample {
	t.Helper()
	out, err := s.Tokenize(nil, row)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 1 {
		t.Fatalf("%d samples, want 1", len(out))
	}
	return out[0]
}

func strategyFor(t *testing.T, o *oracle, yaml string) Strategy {
	t.Helper()
	cfg := parseConfig(t, yaml)
	s, err := New(cfg, &cfg.Datasets[0], o.tok)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// instructExpect is what Axolotl's InstructionPromptTokenizingStrategy makes
// of a prompt text and a response: the prompt with special tokens, masked
// unless trainOnInputs; the response with special tokens, its leading BOS
// removed and EOS appended, trained.
func instructExpect(t *testing.T, o *oracle, prompt, response string, trainOnInputs bool) packing.Sample {
	t.Helper()
	sp := o.tok.Special()
	ids := slices.Clone(o.encode(t, prompt, true))
	labels := make([]int32, len(ids))
	for i := range labels {
		labels[i] = IgnoreIndex
		if trainOnInputs {
			labels[i] = ids[i]
		}
	}
	resp := slices.Clone(o.encode(t, response, true))
	if resp[len(resp)-1] != sp.EOSID {
		resp = append(resp, sp.EOSID)
	}
	if sp.BOSID >= 0 && resp[0] == sp.BOSID {
		resp = resp[1:]
	}
	return packing.Sample{InputIDs: append(ids, resp...), Labels: append(labels, resp...)}
}

func sameSample(t *testing.T, got, want packing.Sample) {
	t.Helper()
	if !slices.Equal(got.InputIDs, want.InputIDs) {
		t.Fatalf("input_ids\n got %v\nwant %v", got.InputIDs, want.InputIDs)
	}
	if !slices.Equal(got.AppendLabels(nil), want.AppendLabels(nil)) {
		t.Fatalf("labels\n got %v\nwant %v", got.AppendLabels(nil), want.AppendLabels(nil))
	}
}

const healthy = "Give three tips for staying healthy."

func TestAlpacaWithInputOnMistral(t *testing.T) {
	o := loadOracle(t, "mistral_v01")
	s := strategyFor(t, o, "datasets:\n  - path: d.jsonl\n    type: alpaca\n")
	got := tokenizeOne(t, s, obj("instruction", healthy, "input", "Be brief.", "output", "Eat well, sleep, move."))
	prompt := "Below is an instruction that describes a task, paired with an input that provides further context. " +
		"Write a response that appropriately completes the request.\n\n" +
		"### Instruction:\nGive three tips for staying healthy.\n\n### Input:\nBe brief.\n\n### Response:\n"
	sameSample(t, got, instructExpect(t, o, prompt, "Eat well, sleep, move.", false))
	// By hand: BOS opens the prompt, the response has no BOS of its own and ends in EOS.
	if got.InputIDs[0] != 1 || got.InputIDs[len(got.InputIDs)-1] != 2 || slices.Contains(got.InputIDs[1:], 1) {
		t.Fatalf("BOS/EOS placement: %v", got.InputIDs)
	}
	if got.CountTrained() != len(o.encode(t, "Eat well, sleep, move.", false))+1 {
		t.Fatalf("trained %d tokens: only the response and EOS should be", got.CountTrained())
	}
}

func TestAlpacaWithoutInputOnLlama3(t *testing.T) {
	o := loadOracle(t, "llama3")
	s := strategyFor(t, o, "datasets:\n  - path: d.jsonl\n    type: alpaca\n")
	for _, row := range []datasets.Object{
		obj("instruction", healthy, "output", "Sleep."),
		obj("instruction", healthy, "input", nil, "output", "Sleep."),
		obj("instruction", healthy, "input", "", "output", "Sleep."),
	} {
		got := tokenizeOne(t, s, row)
		prompt := "Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n" +
			"### Instruction:\nGive three tips for staying healthy.\n\n### Response:\n"
		sameSample(t, got, instructExpect(t, o, prompt, "Sleep.", false))
		if got.InputIDs[len(got.InputIDs)-1] != 128001 {
			t.Fatalf("no <|end_of_text|> at the end: %v", got.InputIDs)
		}
	}
}

func TestAlpacaStylesAndVariants(t *testing.T) {
	row := obj("instruction", healthy, "input", "Be brief.", "output", "Eat well.", "system", "You are terse.",
		"question", "What is 2+2?", "answer", "4")
	cases := []struct {
		typ, extra, prompt, response string
	}{
		{"alpaca:chat", "", "SYSTEM: Below is an instruction that describes a task, paired with an input that provides further context. " +
			"Write a response that appropriately completes the request.\nUSER: Give three tips for staying healthy.\nBe brief.\nASSISTANT:", "Eat well."},
		{"alpaca:chatml", "", "<|im_start|>system\nBelow is an instruction that describes a task, paired with an input that provides further context. " +
			"Write a response that appropriately completes the request.<|im_end|>\n<|im_start|>user\nGive three tips for staying healthy.\nBe brief.<|im_end|>\n<|im_start|>assistant\n", "Eat well."},
		{"alpaca_chat", "", "SYSTEM: Below is an instruction that describes a task, paired with an input that provides further context. " +
			"Write a response that appropriately completes the request.\nUSER: Give three tips for staying healthy.\nBe brief.\nASSISTANT:", "Eat well."},
		{"alpaca_chat", "    conversation: instruct\n", "Below is an instruction that describes a task, paired with an input that provides further context. " +
			"Write a response that appropriately completes the request.\n\n### Instruction:\nGive three tips for staying healthy.\n\n### Input:\nBe brief.\n\n### Response:\n", "Eat well."},
		{"alpaca_chat.load_qa", "", "SYSTEM: Below is an instruction from a USER that describes a task. The ASSISTANT writes a response that " +
			"appropriately and concisely completes the request.\n\n\nUSER: What is 2+2?\nASSISTANT:", "4"},
		{"alpaca_chat.load_no_prompt", "", "USER: Give three tips for staying healthy.\nBe brief.\nASSISTANT:", "Eat well."},
		{"alpaca_instruct.load_no_prompt", "", "### Instruction:\nGive three tips for staying healthy.\n\n### Input:\nBe brief.\n\n### Response:\n", "Eat well."},
		{"alpaca_w_system.load_instruct", "", "You are terse.\n\n### Instruction:\nGive three tips for staying healthy.\n\n### Input:\nBe brief.\n\n### Response:\n", "Eat well."},
		{"alpaca_w_system", "", "SYSTEM: You are terse.\nUSER: Give three tips for staying healthy.\nBe brief.\nASSISTANT:", "Eat well."},
	}
	o := loadOracle(t, "qwen3")
	for _, c := range cases {
		t.Run(c.typ, func(t *testing.T) {
			s := strategyFor(t, o, "datasets:\n  - path: d.jsonl\n    type: "+c.typ+"\n"+c.extra)
			sameSample(t, tokenizeOne(t, s, row), instructExpect(t, o, c.prompt, c.response, false))
		})
	}
}

func TestTrainOnInputs(t *testing.T) {
	o := loadOracle(t, "mistral_v01")
	s := strategyFor(t, o, "train_on_inputs: true\ndatasets:\n  - path: d.jsonl\n    type: alpaca_instruct.load_no_prompt\n")
	got := tokenizeOne(t, s, obj("instruction", healthy, "output", "Sleep."))
	sameSample(t, got, instructExpect(t, o, "### Instruction:\nGive three tips for staying healthy.\n\n### Response:\n", "Sleep.", true))
	if got.CountTrained() != len(got.InputIDs) {
		t.Fatalf("train_on_inputs: %d of %d tokens trained", got.CountTrained(), len(got.InputIDs))
	}
}

func TestUserDefinedFormat(t *testing.T) {
	o := loadOracle(t, "mistral_v01")
	yaml := `datasets:
  - path: d.jsonl
    type:
      field_instruction: q
      field_input: ctx
      field_output: a
      system_prompt: Answer in one word.
      system_format: "<<SYS>>{system}<</SYS>>\n"
      format: "[Q] {instruction} [CTX] {input} [A] "
      no_input_format: "[Q] {instruction} [A] "
`
	s := strategyFor(t, o, yaml)
	got := tokenizeOne(t, s, obj("q", "Capital of France?", "ctx", "Europe", "a", "Paris"))
	sameSample(t, got, instructExpect(t, o, "<<SYS>>Answer in one word.<</SYS>>\n[Q] Capital of France? [CTX] Europe [A] ", "Paris", false))
	got = tokenizeOne(t, s, obj("q", "Capital of France?", "a", "Paris", "system", "Be polite."))
	sameSample(t, got, instructExpect(t, o, "<<SYS>>Be polite.<</SYS>>\n[Q] Capital of France? [A] ", "Paris", false))
	// Defaults: "{instruction} {input} " with no system.
	s = strategyFor(t, o, "datasets:\n  - path: d.jsonl\n    type:\n      field_instruction: q\n")
	got = tokenizeOne(t, s, obj("q", "Capital of France?", "output", "Paris"))
	sameSample(t, got, instructExpect(t, o, "Capital of France? ", "Paris", false))

	cfg := parseConfig(t, "datasets:\n  - path: d.jsonl\n    type:\n      format: \"{instruction} {answer}\"\n")
	if _, err := New(cfg, &cfg.Datasets[0], o.tok); err == nil || !strings.Contains(err.Error(), "{answer}") {
		t.Fatalf("unknown format field: %v", err)
	}
}

func TestCompletionSplitsIntoSequenceLenPieces(t *testing.T) {
	o := loadOracle(t, "mistral_v01")
	text := "It was the best of times, it was the worst of times, it was the age of wisdom, it was the age of foolishness."
	s := strategyFor(t, o, "sequence_len: 8\ndatasets:\n  - path: d.jsonl\n    type: completion\n    field: body\n")
	got, err := s.Tokenize(nil, obj("body", text))
	if err != nil {
		t.Fatal(err)
	}
	want := append(slices.Clone(o.encode(t, text, true)), 2) // BOS ... EOS
	var joined []int32
	for i, g := range got {
		if len(g.InputIDs) > 8 || (i < len(got)-1 && len(g.InputIDs) != 8) {
			t.Fatalf("piece %d has %d tokens", i, len(g.InputIDs))
		}
		if !slices.Equal(g.InputIDs, g.AppendLabels(nil)) {
			t.Fatalf("piece %d: completion trains every token", i)
		}
		joined = append(joined, g.InputIDs...)
	}
	if !slices.Equal(joined, want) || len(got) != (len(want)+7)/8 {
		t.Fatalf("pieces %v\nwant %v", got, want)
	}
	if out, err := s.Tokenize(nil, obj("body", "")); err != nil || len(out) != 0 {
		t.Fatalf("empty text: %v %v", out, err)
	}
}

func TestInputOutputSegments(t *testing.T) {
	o := loadOracle(t, "llama3")
	row := obj("segments", []any{
		obj("label", false, "text", "<|begin_of_text|>Question: why is the sky blue?\n"),
		obj("label", true, "text", "Rayleigh scattering.<|end_of_text|>"),
		obj("label", false, "text", " (ignored)"),
	})
	s := strategyFor(t, o, "datasets:\n  - path: d.jsonl\n    type: input_output\n")
	got := tokenizeOne(t, s, row)
	a := o.encode(t, "<|begin_of_text|>Question: why is the sky blue?\n", false)
	b := o.encode(t, "Rayleigh scattering.<|end_of_text|>", false)
	c := o.encode(t, " (ignored)", false)
	var want packing.Sample
	for _, part := range []struct {
		ids   []int32
		train bool
	}{{a, false}, {b, true}, {c, false}} {
		for _, id := range part.ids {
			want.InputIDs = append(want.InputIDs, id)
			if part.train {
				want.Labels = append(want.Labels, id)
			} else {
				want.Labels = append(want.Labels, IgnoreIndex)
			}
		}
	}
	sameSample(t, got, want)
	if got.InputIDs[0] != 128000 || b[len(b)-1] != 128001 {
		t.Fatalf("the special tokens written in the text are single tokens: %v", got.InputIDs)
	}

	for _, bad := range []struct {
		row  datasets.Object
		want string
	}{
		{obj("segments", []any{obj("text", "x")}), "segments[0]: label"},
		{obj("segments", []any{"x"}), "segments[0] is string"},
		{obj("segments", "x"), `"segments" is string`},
		{obj("segments", []any{obj("label", true, "text", 3.0)}), `"text" is float`},
	} {
		if _, err := s.Tokenize(nil, bad.row); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%v: error %v, want %q", bad.row, err, bad.want)
		}
	}
}

func TestPretokenizedRows(t *testing.T) {
	o := loadOracle(t, "llama3")
	// No type: the rows must be tokenized already.
	s := strategyFor(t, o, "datasets:\n  - path: d.jsonl\n")
	got := tokenizeOne(t, s, obj("input_ids", []any{int64(10), int64(11), int64(12), int64(0)},
		"labels", []any{int64(-100), int64(11), int64(12), int64(-100)}, "attention_mask", []any{int64(1), int64(1), int64(1), int64(0)}))
	sameSample(t, got, packing.Sample{InputIDs: []int32{10, 11, 12}, Labels: []int32{-100, 11, 12}})
	got = tokenizeOne(t, s, obj("input_ids", []any{int64(5), int64(6)}))
	sameSample(t, got, packing.Sample{InputIDs: []int32{5, 6}, Labels: []int32{5, 6}})
	// A typed dataset whose rows carry all three columns passes them through too.
	s = strategyFor(t, o, "datasets:\n  - path: d.jsonl\n    type: alpaca\n")
	got = tokenizeOne(t, s, obj("input_ids", []any{int64(7), int64(8)}, "labels", []any{int64(7), int64(8)}, "attention_mask", []any{int64(1), int64(1)}))
	sameSample(t, got, packing.Sample{InputIDs: []int32{7, 8}, Labels: []int32{7, 8}})

	s = strategyFor(t, o, "datasets:\n  - path: d.jsonl\n")
	for _, bad := range []struct {
		row  datasets.Object
		want string
	}{
		{obj("input_ids", []any{int64(1), "x"}), "input_ids[1] is string"},
		{obj("input_ids", []any{int64(1 << 40)}), "outside [0, "},
		{obj("input_ids", []any{int64(1)}, "labels", []any{int64(1), int64(2)}), "labels has 2 values"},
		{obj("text", "hello"), `"input_ids" is missing`},
	} {
		if _, err := s.Tokenize(nil, bad.row); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%v: error %v, want %q", bad.row, err, bad.want)
		}
	}
}

func TestTruncationKeepsSpecialTokens(t *testing.T) {
	o := loadOracle(t, "mistral_v01")
	long := "one two three four five six seven eight nine ten eleven twelve"
	s := strategyFor(t, o, "sequence_len: 6\ndatasets:\n  - path: d.jsonl\n    type: alpaca_instruct.load_no_prompt\n")
	got := tokenizeOne(t, s, obj("instruction", long, "output", long))
	prompt := o.encode(t, "### Instruction:\n"+long+"\n\n### Response:\n", false)
	resp := o.encode(t, long, false)
	// HF truncation keeps BOS and the first max_length-1 tokens of the text;
	// a response cut to max_length gets no EOS, then loses its BOS.
	want := append(append([]int32{1}, prompt[:5]...), resp[:5]...)
	if !slices.Equal(got.InputIDs, want) {
		t.Fatalf("got %v\nwant %v", got.InputIDs, want)
	}
	if got.CountTrained() != 5 {
		t.Fatalf("trained %d", got.CountTrained())
	}
}

func TestUnknownStrategies(t *testing.T) {
	o := loadOracle(t, "llama3")
	for _, typ := range []string{"alpacca", "alpaca:shouting", "alpaca_chat:chat", "completion.load_x"} {
		cfg := parseConfig(t, "datasets:\n  - path: d.jsonl\n    type: "+typ+"\n")
		if _, err := New(cfg, &cfg.Datasets[0], o.tok); err == nil || !strings.Contains(err.Error(), "d.jsonl: type "+typ) {
			t.Errorf("%s: %v", typ, err)
		}
	}
}

func TestMissingFieldsAreErrors(t *testing.T) {
	o := loadOracle(t, "llama3")
	s := strategyFor(t, o, "datasets:\n  - path: d.jsonl\n    type: alpaca\n")
	for _, c := range []struct {
		row  datasets.Object
		want string
	}{
		{obj("output", "x"), `field "instruction" is missing`},
		{obj("instruction", "x", "output", int64(3)), `field "output" is int, want string`},
		{obj("instruction", "x", "input", []any{}, "output", "y"), `field "input" is list`},
	} {
		if _, err := s.Tokenize(nil, c.row); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v, want %q", c.row, err, c.want)
		}
	}
	cfg := parseConfig(t, "datasets:\n  - path: d.jsonl\n    type: alpaca\n  - path: e.jsonl\n    type: completion\n    field: body\n  - path: f.jsonl\n")
	for i, want := range []string{"instruction,output", "body", "input_ids"} {
		var names []string
		for _, r := range Requirements(&cfg.Datasets[i]) {
			names = append(names, r.Field)
		}
		if strings.Join(names, ",") != want {
			t.Errorf("dataset %d requires %v, want %s", i, names, want)
		}
	}
}

func TestLengthPolicy(t *testing.T) {
	s := func(n int) packing.Sample {
		ids := make([]int32, n)
		return packing.Sample{InputIDs: ids, Labels: slices.Clone(ids)}
	}
	for _, c := range []struct {
		strategy string
		n        int
		fit      Fit
		len      int
		err      bool
	}{
		{"drop", 1, DroppedShort, 1, false},
		{"drop", 2, Kept, 2, false},
		{"drop", 8, Kept, 8, false},
		{"drop", 9, DroppedLong, 9, false},
		{"", 9, DroppedLong, 9, false},
		{"truncate", 9, Truncated, 8, false},
		{"truncate", 1, DroppedShort, 1, false},
		{"raise", 9, Kept, 9, true},
		{"raise", 8, Kept, 8, false},
	} {
		out, fit, err := LengthPolicy{SequenceLen: 8, Strategy: c.strategy}.Apply(s(c.n))
		if fit != c.fit || len(out.InputIDs) != c.len || len(out.AppendLabels(nil)) != c.len || (err != nil) != c.err {
			t.Errorf("%s %d: fit %v len %d err %v", c.strategy, c.n, fit, len(out.InputIDs), err)
		}
	}
}

func TestConfigureTokenizer(t *testing.T) {
	o := loadOracle(t, "llama3")
	tok := o.tok
	cfg := parseConfig(t, "special_tokens:\n  pad_token: <|finetune_right_pad_id|>\n  additional_special_tokens: [\"<|tool|>\"]\ntokens: [\"<|note|>\"]\ndatasets:\n  - path: d.jsonl\n    type: alpaca\n")
	fresh, err := loadFresh(t, "llama3")
	if err != nil {
		t.Fatal(err)
	}
	if err := Configure(cfg, fresh); err != nil {
		t.Fatal(err)
	}
	if fresh.Special().PAD != "<|finetune_right_pad_id|>" || PadTokenID(fresh) != fresh.Special().PADID {
		t.Fatalf("pad token %+v", fresh.Special())
	}
	ids := fresh.Encode("a<|note|>b<|tool|>", false)
	note, _ := fresh.TokenToID("<|note|>")
	tool, _ := fresh.TokenToID("<|tool|>")
	if !slices.Contains(ids, note) || !slices.Contains(ids, tool) || !fresh.IsSpecial(tool) || fresh.IsSpecial(note) {
		t.Fatalf("added tokens: %v (note %d, tool %d)", ids, note, tool)
	}
	if PadTokenID(tok) != 128001 {
		t.Fatalf("llama3 without a pad token pads with EOS, got %d", PadTokenID(tok))
	}
}

func TestExplainMarksTrainedTokens(t *testing.T) {
	o := loadOracle(t, "llama3")
	s := packing.Sample{InputIDs: []int32{13347, 1070}, Labels: []int32{IgnoreIndex, 1070}}
	plain := Explain(o.tok, s, false)
	if !strings.HasPrefix(plain, "Hi(-100, 13347)  there(1070, 1070)\n") || !strings.Contains(plain, "Count of labels: 1") {
		t.Fatalf("%q", plain)
	}
	colored := Explain(o.tok, s, true)
	if !strings.Contains(colored, ansiRed+"Hi"+ansiReset) || !strings.Contains(colored, ansiGreen+" there"+ansiReset) {
		t.Fatalf("%q", colored)
	}
}
