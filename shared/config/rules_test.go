package config

import (
	"bufio"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/eftml/eft/shared/chattemplate"
)

func TestDefaultsAreAxolotls(t *testing.T) {
	c, warns := mustParse(t, base)
	if len(warns) != 0 {
		t.Fatalf("unexpected warnings: %v", warns)
	}
	want := Config{
		BaseModel: "./models/tiny-llama", BaseModelConfig: "./models/tiny-llama", TokenizerConfig: "./models/tiny-llama",
		Datasets:              []Dataset{{Path: "./data/train.jsonl", Type: DatasetType{Name: "alpaca"}}},
		ShuffleMergedDatasets: true, SequenceLen: 512, ExcessLengthStrategy: "drop",
		MicroBatchSize: 2, GradientAccumulationSteps: 1, EvalBatchSize: 2, NumEpochs: 1,
		Optimizer: "adamw_torch_fused", LearningRate: 0.0002, LRScheduler: "cosine",
		AdamBeta1: 0.9, AdamBeta2: 0.999, AdamEpsilon: 1e-8, MaxGradNorm: 1,
		BF16: Auto, TF32: Auto, SaveTotalLimit: 4, OutputDir: "./model-out", Seed: 42, WorldSize: 1,
	}
	if got := public(c); !reflect.DeepEqual(got, want) {
		diffConfigs(t, got, want)
	}
	if c.OptimizerKind() != OptimizerAdamW {
		t.Errorf("OptimizerKind = %s, want adamw", c.OptimizerKind())
	}
	if c.IsSet("sample_packing") || !c.IsSet("learning_rate") || !c.IsSet("datasets[0].type") {
		t.Errorf("IsSet does not track the keys given: sample_packing=%v learning_rate=%v datasets[0].type=%v",
			c.IsSet("sample_packing"), c.IsSet("learning_rate"), c.IsSet("datasets[0].type"))
	}
}

func TestDerivedDefaults(t *testing.T) {
	c, _ := mustParse(t, base+`
base_model_config: ./models/config-only
sample_packing: true
chat_template_jinja: "{{ messages }}"
`)
	if c.TokenizerConfig != "./models/config-only" {
		t.Errorf("tokenizer_config = %q, want base_model_config", c.TokenizerConfig)
	}
	if !c.EvalSamplePacking || !c.PadToSequenceLen {
		t.Errorf("sample_packing should turn on eval_sample_packing and pad_to_sequence_len, got %v %v", c.EvalSamplePacking, c.PadToSequenceLen)
	}
	if c.ChatTemplate != "jinja" {
		t.Errorf("chat_template = %q, want jinja when only chat_template_jinja is given", c.ChatTemplate)
	}

	c, _ = mustParse(t, base+"save_total_limit: 0\nwarmup_steps: 0\n")
	if c.SaveTotalLimit != 4 {
		t.Errorf("save_total_limit 0 = %d, want Axolotl's 4", c.SaveTotalLimit)
	}
	if c.WarmupSteps == nil || *c.WarmupSteps != 0 {
		t.Errorf("warmup_steps: 0 must stay an explicit 0 (no warmup), got %v", c.WarmupSteps)
	}
}

func TestBatchSizeFoldsIntoGradientAccumulation(t *testing.T) {
	c, warns := mustParse(t, `base_model: m
datasets: [{path: d, type: alpaca}]
micro_batch_size: 4
batch_size: 18
learning_rate: 1e-4
`)
	if c.GradientAccumulationSteps != 4 {
		t.Errorf("gradient_accumulation_steps = %d, want 18 // 4 = 4", c.GradientAccumulationSteps)
	}
	requireIssue(t, warns, "batch_size", "not a multiple of micro_batch_size")
	issues := mustFail(t, `base_model: m
datasets: [{path: d, type: alpaca}]
micro_batch_size: 4
gradient_accumulation_steps: 2
batch_size: 16
learning_rate: 1e-4
`)
	is := requireIssue(t, issues, "batch_size", "only one of gradient_accumulation_steps and batch_size")
	if is.Line != 5 || is.Column != 1 {
		t.Errorf("batch_size issue at %d:%d, want 5:1", is.Line, is.Column)
	}
}

func TestChatTemplateDatasetDefaults(t *testing.T) {
	c, _ := mustParse(t, base+`test_datasets:
  - path: ./data/chat.jsonl
    type: chat_template
    chat_template_jinja: ./templates/chat.jinja
`)
	ds := c.TestDatasets[0]
	want := Dataset{
		Path: "./data/chat.jsonl", Type: DatasetType{Name: "chat_template"}, ChatTemplate: "jinja",
		ChatTemplateJinja: "./templates/chat.jinja", FieldMessages: "messages",
		MessagePropertyMappings: map[string]string{"role": "role", "content": "content"},
		Roles:                   defaultRoles(), RolesToTrain: []string{"assistant"}, TrainOnEOS: "turn", TrainOnEOT: "turn",
	}
	if !reflect.DeepEqual(ds, want) {
		t.Errorf("chat_template dataset defaults:\n got %+v\nwant %+v", ds, want)
	}
	// roles_to_train: [] means train on no role, not the default.
	c, _ = mustParse(t, base+"test_datasets: [{path: x, type: chat_template, roles_to_train: []}]\n")
	if got := c.TestDatasets[0].RolesToTrain; len(got) != 0 {
		t.Errorf("explicit empty roles_to_train became %v", got)
	}
}

func TestChatTemplateFor(t *testing.T) {
	c, _ := mustParse(t, base+"chat_template: llama3\n")
	for _, tc := range []struct {
		ds          Dataset
		name, jinja string
	}{
		{Dataset{ChatTemplate: "tokenizer_default"}, "llama3", ""},
		{Dataset{ChatTemplate: "chatml"}, "chatml", ""},
		{Dataset{ChatTemplate: "jinja", ChatTemplateJinja: "{{x}}"}, "jinja", "{{x}}"},
		{Dataset{}, "llama3", ""},
	} {
		if name, jinja := c.ChatTemplateFor(&tc.ds); name != tc.name || jinja != tc.jinja {
			t.Errorf("ChatTemplateFor(%+v) = %q, %q; want %q, %q", tc.ds, name, jinja, tc.name, tc.jinja)
		}
	}
	c, _ = mustParse(t, base)
	if name, _ := c.ChatTemplateFor(&Dataset{ChatTemplate: "tokenizer_default"}); name != "tokenizer_default" {
		t.Errorf("without a top-level template, got %q", name)
	}
}

// Every template shared/chattemplate ships is a valid chat_template, alone
// and as tokenizer_default_fallback_<name> (phi_4 was once missing from
// config's own copy of the list).
func TestEveryShippedChatTemplateIsAccepted(t *testing.T) {
	names := chattemplate.Names()
	if len(names) < 36 || !slices.Contains(names, "phi_4") {
		t.Fatalf("chattemplate.Names() = %v", names)
	}
	for _, name := range names {
		for _, value := range []string{name, "tokenizer_default_fallback_" + name} {
			if _, warns := mustParse(t, base+"chat_template: "+value+"\n"); len(warns) != 0 {
				t.Errorf("chat_template: %s warned: %v", value, warns)
			}
		}
	}
}

// Each validation rule: the config, the key the error must name, its line,
// and a fragment of the message.
func TestValidationRules(t *testing.T) {
	for _, tc := range []struct {
		name, src, key string
		line           int
		want           string
	}{
		{"missing base_model", "datasets: [{path: d}]\nmicro_batch_size: 1\ngradient_accumulation_steps: 1\nlearning_rate: 1e-4\n", "base_model", 0, "required"},
		{"missing learning_rate", "base_model: m\ndatasets: [{path: d}]\nmicro_batch_size: 1\ngradient_accumulation_steps: 1\n", "learning_rate", 0, "required"},
		{"missing datasets", "base_model: m\nmicro_batch_size: 1\ngradient_accumulation_steps: 1\nlearning_rate: 1e-4\n", "datasets", 0, "at least one dataset"},
		{"dataset without path", base + "test_datasets:\n  - type: alpaca\n", "test_datasets[0].path", 0, "required"},
		{"batch fields", "base_model: m\ndatasets: [{path: d}]\nmicro_batch_size: 2\nlearning_rate: 1e-4\n", "micro_batch_size", 3, "at least two of"},
		{"qlora needs 4bit", base + "adapter: qlora\nlora_r: 8\nlora_alpha: 16\nlora_target_linear: true\n", "adapter", 8, "requires load_in_4bit: true"},
		{"4bit needs adapter", base + "load_in_4bit: true\n", "load_in_4bit", 8, "needs an adapter"},
		{"8bit needs adapter", base + "load_in_8bit: true\n", "load_in_8bit", 8, "needs an adapter"},
		{"8bit and 4bit", base + "adapter: qlora\nload_in_8bit: true\nload_in_4bit: true\nlora_r: 8\nlora_alpha: 8\nlora_target_linear: true\n", "load_in_8bit", 9, "both set"},
		{"unknown adapter", base + "adapter: ia3\n", "adapter", 8, "unknown adapter"},
		{"lora needs r", base + "adapter: lora\nlora_alpha: 16\nlora_target_linear: true\n", "lora_r", 0, "lora_r"},
		{"lora needs targets", base + "adapter: lora\nlora_r: 8\nlora_alpha: 16\n", "lora_target_modules", 0, "lora_target_linear"},
		{"lora dropout range", base + "adapter: lora\nlora_r: 8\nlora_alpha: 16\nlora_target_linear: true\nlora_dropout: 1.5\n", "lora_dropout", 12, "[0, 1)"},
		{"bad target regex", base + "adapter: lora\nlora_r: 8\nlora_alpha: 16\nlora_target_modules: 'q_proj('\n", "lora_target_modules", 11, "regular expression"},
		{"merge without adapter", base + "merge_lora: true\n", "merge_lora", 8, "needs an adapter"},
		{"warmup exclusive", base + "warmup_steps: 10\nwarmup_ratio: 0.1\n", "warmup_ratio", 9, "mutually exclusive"},
		{"warmup ratio range", base + "warmup_ratio: 1.5\n", "warmup_ratio", 8, "[0, 1]"},
		{"saves exclusive", base + "save_steps: 100\nsaves_per_epoch: 2\n", "saves_per_epoch", 9, "mutually exclusive"},
		{"save strategy mismatch", base + "save_steps: 100\nsave_strategy: epoch\n", "save_steps", 8, "mismatch"},
		{"save strategy best", base + "save_strategy: best\n", "save_strategy", 8, "best"},
		{"evals exclusive", base + "val_set_size: 0.1\neval_steps: 100\nevals_per_epoch: 2\n", "evals_per_epoch", 10, "mutually exclusive"},
		{"eval without data", base + "eval_steps: 50\n", "eval_steps", 8, "set val_set_size or test_datasets"},
		{"eval strategy mismatch", base + "val_set_size: 0.1\neval_steps: 50\neval_strategy: epoch\n", "eval_steps", 9, "mismatch"},
		{"evals_per_epoch strategy", base + "val_set_size: 0.1\nevals_per_epoch: 2\neval_strategy: epoch\n", "eval_strategy", 10, "empty or steps"},
		{"val and test", base + "val_set_size: 0.1\ntest_datasets: [{path: t}]\n", "val_set_size", 8, "test_datasets"},
		{"val set size fraction", base + "val_set_size: 2.5\n", "val_set_size", 8, "neither a fraction"},
		{"sequence_len", base + "sequence_len: 0\n", "sequence_len", 8, "at least 1"},
		{"packing needs room", base + "sample_packing: true\nsequence_len: 1\n", "sample_packing", 8, "leaves no room"},
		{"excess length", base + "excess_length_strategy: split\n", "excess_length_strategy", 8, "drop, truncate, raise"},
		{"jinja needs template", base + "chat_template: jinja\n", "chat_template", 8, "requires chat_template_jinja"},
		{"unknown chat template", base + "chat_template: llama9\n", "chat_template", 8, "unknown chat template"},
		{"dataset jinja", base + "test_datasets: [{path: t, type: chat_template, chat_template: jinja}]\n", "test_datasets[0].chat_template", 8, "requires chat_template_jinja"},
		{"train_on_eos", base + "test_datasets:\n  - path: t\n    type: chat_template\n    train_on_eos: always\n", "test_datasets[0].train_on_eos", 11, "all, turn, last, none"},
		{"role mapping conflict", base + "test_datasets:\n  - path: t\n    type: chat_template\n    message_property_mappings: {role: from}\n    message_field_role: speaker\n", "test_datasets[0].message_field_role", 12, "conflicts"},
		{"no_input_format with input", base + "test_datasets:\n  - path: t\n    type:\n      format: '{instruction} {input}'\n      no_input_format: '{instruction} {input}'\n", "test_datasets[0].type.no_input_format", 12, "must not contain {input}"},
		{"http dataset", base + "test_datasets: [{path: 'http://example.com/d.jsonl'}]\n", "test_datasets[0].path", 8, "plain http is refused"},
		{"s3 dataset", base + "test_datasets: [{path: 's3://bucket/d.jsonl'}]\n", "test_datasets[0].path", 8, "s3:// is not supported"},
		{"model url", strings.Replace(base, "./models/tiny-llama", "https://example.com/m", 1), "base_model", 1, "is a URL"},
		{"ds_type", base + "test_datasets: [{path: t, ds_type: xml}]\n", "test_datasets[0].ds_type", 8, "not one of"},
		{"optimizer", base + "optimizer: lion_8bit\n", "optimizer", 8, "not supported"},
		{"scheduler", base + "lr_scheduler: one_cycle\n", "lr_scheduler", 8, "not supported"},
		{"negative lr", noLR + "learning_rate: -1\n", "learning_rate", 7, "negative"},
		{"beta range", base + "adam_beta2: 1.0\n", "adam_beta2", 8, "[0, 1)"},
		{"epsilon", base + "adam_epsilon: 0\n", "adam_epsilon", 8, "above 0"},
		{"max_grad_norm", base + "max_grad_norm: -1\n", "max_grad_norm", 8, "negative"},
		{"epochs", base + "num_epochs: 0\n", "num_epochs", 8, "above 0"},
		{"fp16", base + "fp16: true\n", "fp16", 8, "fp16 mixed precision"},
		{"model_type", base + "model_type: AutoModelForSequenceClassification\n", "model_type", 8, "causal language models"},
		{"world_size", base + "world_size: 0\n", "world_size", 8, "at least 1"},
		{"trainer_pool", base + "trainer_pool: gpu.h100\n", "trainer_pool", 8, "not a pool name"},
		{"legacy attention with new", base + "attn_implementation: sdpa\nflash_attention: true\n", "flash_attention", 9, "cannot be combined"},
		{"unknown plugin", base + "plugins:\n  - axolotl.integrations.kd.KDPlugin\n", "plugins[0]", 9, "not supported by eft: the plugin"},
		{"sharegpt conversation", base + "test_datasets: [{path: t, type: sharegpt, conversation: vicuna_v1.1}]\n", "test_datasets[0].conversation", 8, "has no chat_template"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			issues := mustFail(t, tc.src)
			is := requireIssue(t, issues, tc.key, tc.want)
			if is.File != "cfg.yml" {
				t.Errorf("issue file = %q, want cfg.yml", is.File)
			}
			if tc.line != 0 && is.Line != tc.line {
				t.Errorf("issue %s at line %d, want %d", is, is.Line, tc.line)
			}
			if tc.line == 0 && is.Line != 0 {
				t.Errorf("issue %s has a line, but the key was not given", is)
			}
			if want := "cfg.yml"; !strings.HasPrefix(is.String(), want) || !strings.Contains(is.String(), tc.key+": ") {
				t.Errorf("Issue.String() = %q, want it to start with the file and name the key", is.String())
			}
		})
	}
}

func TestSingleTargetModuleStringIsARegex(t *testing.T) {
	// Activation offloading checkpoints in device memory, saying so.
	cOff, warnsOff := mustParse(t, base+"gradient_checkpointing: offload\nactivation_offloading: true\n")
	if is := requireIssue(t, warnsOff, "gradient_checkpointing", "read as true"); is.Line != 8 || !cOff.GradientCheckpointing {
		t.Errorf("gradient_checkpointing: offload: warning at line %d, checkpointing %v", is.Line, cOff.GradientCheckpointing)
	}
	requireIssue(t, warnsOff, "activation_offloading", "device memory")
	// 8-bit LoRA trains on the unquantized base, saying so at the key.
	_, warns8 := mustParse(t, base+"adapter: lora\nload_in_8bit: true\nlora_r: 8\nlora_alpha: 8\nlora_target_linear: true\n")
	if is := requireIssue(t, warns8, "load_in_8bit", "unquantized"); is.Line != 9 {
		t.Errorf("load_in_8bit warning at line %d, want 9", is.Line)
	}
	c, warns := mustParse(t, base+"adapter: lora\nlora_r: 8\nlora_alpha: 8\nlora_target_modules: q_proj\n")
	if c.LoraTargetModules.Pattern != "q_proj" || c.LoraTargetModules.Names != nil {
		t.Errorf("lora_target_modules: %+v", c.LoraTargetModules)
	}
	requireIssue(t, warns, "lora_target_modules", "write a list: [q_proj]")
}

func TestAllErrorsAreReportedTogether(t *testing.T) {
	issues := mustFail(t, `base_model: m
datasets: [{path: d}]
micro_batch_size: 0
gradient_accumulation_steps: 1
learning_rate: 1e-4
deepspeed: zero3.json
lr_scheduler: rex
`)
	for _, key := range []string{"micro_batch_size", "deepspeed", "lr_scheduler"} {
		requireIssue(t, issues, key, "")
	}
	for i := 1; i < len(issues); i++ {
		if issues[i].Line > 0 && issues[i-1].Line > issues[i].Line {
			t.Errorf("issues are not in file order: %v before %v", issues[i-1], issues[i])
		}
	}
	err := &Error{Issues: issues}
	if lines := strings.Split(err.Error(), "\n"); len(lines) != len(issues) || !strings.HasPrefix(lines[0], "cfg.yml:3:1: micro_batch_size: ") {
		t.Errorf("Error() = %q", err.Error())
	}
}

func TestUnknownKeysWarnOrFailUnderStrict(t *testing.T) {
	src := base + "learning_rat: 3e-4\ntest_datasets:\n  - path: t\n    typo_field: x\n"
	_, warns := mustParse(t, src)
	is := requireIssue(t, warns, "learning_rat", "unknown key")
	if is.Line != 8 || is.Column != 1 {
		t.Errorf("unknown key at %d:%d, want 8:1", is.Line, is.Column)
	}
	is = requireIssue(t, warns, "test_datasets[0].typo_field", "unknown key")
	if is.Line != 11 || is.Column != 5 {
		t.Errorf("unknown dataset key at %d:%d, want 11:5", is.Line, is.Column)
	}
	issues := mustFail(t, "strict: true\n"+src)
	requireIssue(t, issues, "learning_rat", "strict: true")
	requireIssue(t, issues, "test_datasets[0].typo_field", "strict: true")
	// strict given on the command line counts too.
	issues = mustFail(t, src, "--strict")
	requireIssue(t, issues, "learning_rat", "strict")
}

func TestUnsupportedKeysFailOnlyWhenOn(t *testing.T) {
	for _, tc := range []struct{ src, key string }{
		{"deepspeed: deepspeed_configs/zero3.json\n", "deepspeed"},
		{"fsdp_config:\n  fsdp_offload_params: true\n", "fsdp_config"},
		{"rl: dpo\n", "rl"},
		{"dpo_beta: 0.1\n", "dpo_beta"},
		{"peft_use_dora: true\n", "peft_use_dora"},
		{"context_parallel_size: 2\n", "context_parallel_size"},
		{"unsloth_lora_mlp: true\n", "unsloth_lora_mlp"},
		{"save_safetensors: false\n", "save_safetensors"},
		{"neftune_noise_alpha: 5\n", "neftune_noise_alpha"},
		{"test_datasets: [{path: t, shards: 4}]\n", "test_datasets[0].shards"},
	} {
		issues := mustFail(t, base+tc.src)
		is := requireIssue(t, issues, tc.key, "not supported by eft")
		if is.Line != 8 {
			t.Errorf("%s: issue at line %d, want 8", tc.key, is.Line)
		}
	}
	// The same keys switched off, as Axolotl's examples list them, are fine.
	_, warns := mustParse(t, base+`deepspeed:
fsdp:
fsdp_config:
rl:
peft_use_dora: false
context_parallel_size: 1
save_safetensors: true
load_in_8bit: false
neftune_noise_alpha:
`)
	if len(warns) != 0 {
		t.Errorf("switched-off keys gave warnings: %v", warns)
	}
}

func TestIgnoredKeysWarnWhenSet(t *testing.T) {
	_, warns := mustParse(t, base+`wandb_project: my-project
wandb_entity:
hub_model_id: me/model
torch_compile: true
lora_mlp_kernel: false
plugins:
  - axolotl.integrations.liger.LigerPlugin
liger_rms_norm: true
`)
	for _, key := range []string{"wandb_project", "hub_model_id", "torch_compile", "plugins[0]", "liger_rms_norm"} {
		is := requireIssue(t, warns, key, "ignored")
		if is.Line == 0 {
			t.Errorf("%s: warning without a line", key)
		}
	}
	for _, key := range []string{"wandb_entity", "lora_mlp_kernel"} {
		if is, ok := findIssue(warns, key, ""); ok {
			t.Errorf("an empty or false %s should not warn: %s", key, is)
		}
	}
}

// trust_remote_code (set by Axolotl's Phi-3 examples) is accepted with a
// warning that no repository code runs, for the model and for a dataset.
func TestTrustRemoteCodeWarns(t *testing.T) {
	_, warns := mustParse(t, base+"trust_remote_code: true\ntest_datasets: [{path: t, trust_remote_code: true}]\n")
	for _, key := range []string{"trust_remote_code", "test_datasets[0].trust_remote_code"} {
		requireIssue(t, warns, key, "never runs Python code")
	}
}

// bfloat16 (Axolotl: load in bf16, no AMP), as Phi-3.5's LoRA example sets
// it beside bf16, is accepted with a warning saying what eft keeps in fp32;
// bfloat16: false says nothing.
func TestBfloat16WarnsWhatStaysFP32(t *testing.T) {
	_, warns := mustParse(t, base+"bfloat16: true\nbf16: true\n")
	if is := requireIssue(t, warns, "bfloat16", "keeps trainable weights"); is.Line != 8 {
		t.Errorf("warning at line %d, want 8", is.Line)
	}
	if _, warns := mustParse(t, base+"bfloat16: false\n"); len(warns) != 0 {
		t.Errorf("bfloat16: false warned: %v", warns)
	}
}

// As in Axolotl, load_in_4bit quantizes only with adapter: qlora; with
// adapter: lora it is accepted but does nothing, and the user is told at
// its line.
func TestLoadIn4bitWithLoRAWarns(t *testing.T) {
	adapter := "lora_r: 8\nlora_alpha: 16\nlora_target_linear: true\n"
	_, warns := mustParse(t, base+"load_in_4bit: true\nadapter: lora\n"+adapter)
	is := requireIssue(t, warns, "load_in_4bit", "only adapter: qlora")
	if is.Line != 8 {
		t.Errorf("warning at line %d, want 8: %s", is.Line, is)
	}
	_, warns = mustParse(t, base+"load_in_4bit: true\nadapter: qlora\n"+adapter)
	if is, ok := findIssue(warns, "load_in_4bit", ""); ok {
		t.Errorf("qlora with load_in_4bit warned: %s", is)
	}
}

func TestAliases(t *testing.T) {
	c, warns := mustParse(t, base+"model_revision: v2\ntype_of_model: MistralForCausalLM\nevaluation_strategy: 'no'\n")
	if c.RevisionOfModel != "v2" || c.ModelType != "MistralForCausalLM" || c.EvalStrategy != "no" {
		t.Errorf("aliases: revision_of_model=%q model_type=%q eval_strategy=%q", c.RevisionOfModel, c.ModelType, c.EvalStrategy)
	}
	requireIssue(t, warns, "evaluation_strategy", "read as eval_strategy")
	issues := mustFail(t, base+"model_revision: v2\nrevision_of_model: v3\n")
	requireIssue(t, issues, "model_revision", "same setting")
}

func TestWrongTypesNameKeyAndPosition(t *testing.T) {
	for _, tc := range []struct {
		name, src, key string
		line, col      int
		want           string
	}{
		{"int", base + "sequence_len: long\n", "sequence_len", 8, 15, "expected an integer"},
		{"float int", base + "lora_r: 8.5\nadapter: lora\nlora_alpha: 8\nlora_target_linear: true\n", "lora_r", 8, 9, "expected an integer"},
		{"bool", base + "sample_packing: maybe\n", "sample_packing", 8, 17, "expected true or false"},
		{"float", base + "val_set_size: [0.1]\n", "val_set_size", 8, 15, "expected a number"},
		{"inf", base + "weight_decay: .inf\n", "weight_decay", 8, 15, "finite"},
		{"string", base + "output_dir: {a: b}\n", "output_dir", 8, 13, "expected a string"},
		{"list", base + "tokens: {a: b}\n", "tokens", 8, 9, "expected a list of strings"},
		{"datasets not a list", "base_model: m\ndatasets:\n  path: d\nmicro_batch_size: 1\ngradient_accumulation_steps: 1\nlearning_rate: 1e-4\n", "datasets", 3, 7, "expected a list"},
		{"dataset entry", base + "test_datasets:\n  - just-a-path\n", "test_datasets[0]", 9, 5, "expected a mapping"},
		{"dataset type", base + "test_datasets:\n  - path: t\n    type: [alpaca]\n", "test_datasets[0].type", 10, 11, "strategy name"},
		{"auto bool", base + "bf16: sometimes\n", "bf16", 8, 7, `"auto"`},
		{"roles", base + "test_datasets:\n  - path: t\n    type: chat_template\n    roles: [user]\n", "test_datasets[0].roles", 11, 12, "expected a mapping"},
		{"empty list entry", base + "tokens:\n  -\n  - b\n", "tokens[0]", 0, 0, "expected a string"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			issues := mustFail(t, tc.src)
			is := requireIssue(t, issues, tc.key, tc.want)
			if tc.line != 0 && (is.Line != tc.line || is.Column != tc.col) {
				t.Errorf("%s at %d:%d, want %d:%d", is, is.Line, is.Column, tc.line, tc.col)
			}
		})
	}
}

// Numbers written as strings are read as numbers, the way Axolotl (pydantic)
// reads them; PyYAML reads 2e-4 as a string, so real configs have them.
func TestLenientScalars(t *testing.T) {
	c, _ := mustParse(t, noLR+`learning_rate: 2e-4
lora_r: "16"
lora_alpha: 32.0
adapter: lora
lora_target_linear: "yes"
num_epochs: "3"
sample_packing: on
weight_decay: 1_0e-3
`)
	if c.LearningRate != 2e-4 || c.LoraR != 16 || c.LoraAlpha != 32 || !c.LoraTargetLinear || c.NumEpochs != 3 || !c.SamplePacking || c.WeightDecay != 0.01 {
		t.Errorf("lenient scalars: %+v", public(c))
	}
}

func TestBadYAML(t *testing.T) {
	for _, tc := range []struct {
		name, src string
		line      int
		want      string
	}{
		{"unclosed flow", "base_model: m\nlora_target_modules: [q_proj, v_proj\nlearning_rate: 1\n", 3, "YAML syntax error"},
		{"duplicate key", "base_model: m\nlearning_rate: 1\nlearning_rate: 2\n", 3, "already defined"},
		{"bad indentation", "base_model: m\ndatasets:\n  - path: a\n   type: alpaca\n", 4, "YAML syntax error"},
		{"two documents", "base_model: m\n---\nbase_model: n\n", 3, "more than one YAML document"},
		{"undefined alias", "base_model: *nothing\n", 1, "alias"},
		{"not a mapping", "- base_model: m\n", 1, "mapping of keys"},
		{"tab indentation", "datasets:\n\t- path: a\n", 2, "YAML syntax error"},
		{"invalid UTF-8", "base_model: m\noutput_dir: caf\xe9\n", 2, "not valid UTF-8"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			issues := mustFail(t, tc.src)
			if len(issues) == 0 || !strings.Contains(issues[0].Message, tc.want) || issues[0].Line != tc.line || issues[0].File != "cfg.yml" {
				t.Fatalf("got %v, want a %q issue at line %d", issues, tc.want, tc.line)
			}
		})
	}
}

func TestAnchorsAndMergeKeys(t *testing.T) {
	c, _ := mustParse(t, `base_model: m
x-lora: &lora
  lora_r: 8
  lora_alpha: 16
datasets:
  - &ds {path: a, type: alpaca}
  - *ds
micro_batch_size: 1
gradient_accumulation_steps: 1
learning_rate: 1e-4
special_tokens:
  <<: {pad_token: "<pad>", eos_token: "</s>"}
  eos_token: "<eos>"
`)
	if len(c.Datasets) != 2 || c.Datasets[1].Path != "a" {
		t.Errorf("alias not expanded: %+v", c.Datasets)
	}
	if c.SpecialTokens.PadToken != "<pad>" || c.SpecialTokens.EOSToken != "<eos>" {
		t.Errorf("merge key: %+v", c.SpecialTokens)
	}
}

func TestAliasBombIsAnError(t *testing.T) {
	var b strings.Builder
	b.WriteString("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n")
	for i := 1; i < 9; i++ {
		b.WriteString("a" + string(rune('0'+i)) + ": &a" + string(rune('0'+i)) + " [")
		for j := range 10 {
			if j > 0 {
				b.WriteString(", ")
			}
			b.WriteString("*a" + string(rune('0'+i-1)))
		}
		b.WriteString("]\n")
	}
	issues := mustFail(t, b.String())
	requireIssue(t, issues, "", "aliases")
}

func TestEveryAxolotlKeyIsClassified(t *testing.T) {
	f, err := os.Open(configPath(t, "axolotl-keys.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fields := fieldsOf(reflect.TypeFor[Config]())
	n := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		key := strings.TrimSpace(sc.Text())
		if key == "" || strings.HasPrefix(key, "#") {
			continue
		}
		n++
		_, typed := fields[key]
		_, ruled := topLevelRules[key]
		if !typed && !ruled {
			t.Errorf("Axolotl key %s is neither a Config field nor classified in topLevelRules", key)
		}
		if typed && ruled {
			t.Errorf("Axolotl key %s is both a Config field and a rule", key)
		}
	}
	if n < 380 {
		t.Fatalf("only %d keys read from axolotl-keys.txt", n)
	}
}

func TestIssueAtPointsAtTheKey(t *testing.T) {
	c, _ := mustParse(t, base+"adapter: lora\nlora_r: 8\nlora_alpha: 8\nlora_target_modules:\n  - q_proj\n  - qq_proj\n", "--lora-alpha", "16")
	is := c.IssueAt("lora_target_modules[1]", "the model has no module %q", "qq_proj")
	if is.String() != `cfg.yml:13:5: lora_target_modules[1]: the model has no module "qq_proj"` {
		t.Errorf("IssueAt = %s", is)
	}
	if is := c.IssueAt("lora_alpha", "too big"); is.String() != "--lora-alpha: lora_alpha: too big" {
		t.Errorf("IssueAt for an override = %s", is)
	}
	if is := c.IssueAt("max_steps", "not given"); is.String() != "cfg.yml: max_steps: not given" {
		t.Errorf("IssueAt for a default = %s", is)
	}
}

func TestConversationIsKeptForAlpacaChat(t *testing.T) {
	c, warns := mustParse(t, base+"test_datasets: [{path: t, type: alpaca_chat, conversation: instruct}]\n")
	if got := c.TestDatasets[0].Conversation; got != "instruct" {
		t.Errorf("conversation = %q, want instruct (alpaca_chat's prompt style)", got)
	}
	if len(warns) != 0 {
		t.Errorf("unexpected warnings: %v", warns)
	}
}

// A null inside a free-form mapping once panicked (found by FuzzParse), and
// multi-line strings once lost trailing spaces on the way out.
func TestFreeFormAndMultilineValuesRoundTrip(t *testing.T) {
	c, _ := mustParse(t, base+`chat_template_kwargs:
  enable_thinking: false
  unset:
  tools: [{name: search, max: 3}]
chat_template_jinja: |
  {% for m in messages %}{{ m.content }}  
  {% endfor %}
`)
	if want := map[string]any{"enable_thinking": false, "unset": nil, "tools": []any{map[string]any{"name": "search", "max": int64(3)}}}; !reflect.DeepEqual(c.ChatTemplateKwargs, want) {
		t.Errorf("chat_template_kwargs = %#v", c.ChatTemplateKwargs)
	}
	if !strings.HasSuffix(c.ChatTemplateJinja, "}}  \n{% endfor %}\n") {
		t.Errorf("chat_template_jinja lost its trailing spaces: %q", c.ChatTemplateJinja)
	}
	out, err := c.YAML()
	if err != nil {
		t.Fatal(err)
	}
	again, _ := mustParse(t, string(out))
	if !reflect.DeepEqual(public(again), public(c)) {
		diffConfigs(t, public(again), public(c))
	}
}
