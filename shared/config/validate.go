package config

import (
	"fmt"
	"math"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/eftml/eft/shared/chattemplate"
)

// namedChatTemplates are the chat_template names Axolotl ships (its
// ChatTemplate enum, less tokenizer_default and jinja): the templates
// shared/chattemplate embeds.
var namedChatTemplates = chattemplate.Names()

func isNamedChatTemplate(name string) bool { return slices.Contains(namedChatTemplates, name) }

// validChatTemplate reports whether name is a chat_template value Axolotl
// accepts: a named template, tokenizer_default, jinja, or
// tokenizer_default_fallback_<named template>.
func validChatTemplate(name string) bool {
	if name == chattemplate.TokenizerDefault || name == chattemplate.JinjaChoice || isNamedChatTemplate(name) {
		return true
	}
	fallback, ok := strings.CutPrefix(name, chattemplate.TokenizerDefaultFallback)
	return ok && isNamedChatTemplate(fallback)
}

// OptimizerKind is what eft runs for an optimizer name.
type OptimizerKind string

const (
	OptimizerAdamW OptimizerKind = "adamw"
	OptimizerSGD   OptimizerKind = "sgd"
)

// adamwOptimizers are the transformers/Axolotl optimizer names that are
// AdamW with fp32 state (torch semantics): eft runs them exactly.
var adamwOptimizers = []string{
	"adamw_torch", "adamw_torch_fused", "adamw_hf", "adamw_apex_fused", "adamw_torch_xla",
	"adamw_torch_npu_fused", "adamw_anyprecision", "paged_adamw_32bit", "optimi_adamw",
}

// quantizedAdamwOptimizers keep AdamW's moments in 8 or 4 bits to save
// memory; the update is AdamW's. eft runs AdamW with fp32 moments for
// them, with a warning: the result matches what the quantized state
// approximates, at more memory.
var quantizedAdamwOptimizers = []string{
	"adamw_8bit", "adamw_bnb_8bit", "paged_adamw_8bit", "adamw_torch_8bit", "adamw_torch_4bit",
	"ao_adamw_8bit", "ao_adamw_4bit", "ao_adamw_fp8",
}

// OptimizerKind says which optimizer eft runs for c.Optimizer (after
// validation, always AdamW or SGD).
func (c *Config) OptimizerKind() OptimizerKind {
	if c.Optimizer == "sgd" {
		return OptimizerSGD
	}
	return OptimizerAdamW
}

// lrSchedulers are the transformers schedules trainer/schedule implements
// that need no lr_scheduler_kwargs (eft refuses those kwargs).
var lrSchedulers = []string{"linear", "cosine", "constant", "constant_with_warmup", "cosine_with_restarts", "polynomial", "inverse_sqrt"}

// poolName is the trainer_pool syntax: it becomes part of a NATS subject.
var poolName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$`)

// fail reports an error at the key path's position.
func (d *decoder) fail(path, format string, args ...any) {
	d.errorf(d.keyPos(path), path, format, args...)
}

func (d *decoder) warn(path, format string, args ...any) {
	d.warnf(d.keyPos(path), path, format, args...)
}

// validate checks the rules Axolotl's schema enforces (and a few it leaves
// to a crash at run time), each reported at the key it concerns.
func (d *decoder) validate(c *Config) {
	if strings.TrimSpace(c.BaseModel) == "" {
		d.fail("base_model", "required: a Hugging Face model repo id or a local model directory")
	}
	for _, k := range []struct{ key, value string }{{"base_model", c.BaseModel}, {"base_model_config", c.BaseModelConfig}, {"tokenizer_config", c.TokenizerConfig}} {
		if strings.Contains(k.value, "://") {
			d.fail(k.key, "%q is a URL: give a Hugging Face repo id (org/name) or a local directory", k.value)
		}
	}
	if c.TrustRemoteCode {
		// Axolotl's examples set it for models transformers now implements
		// (Phi-3): the config works; the repository's code is never run.
		d.warn("trust_remote_code", "eft never runs Python code from a model repository: "+
			"it reads config.json, safetensors and tokenizer.json and trains the architecture config.json names, which must be one eft implements")
	}
	if c.ModelType != "" && !strings.HasSuffix(c.ModelType, "ForCausalLM") {
		d.fail("model_type", "not supported by eft: %s; eft trains causal language models (AutoModelForCausalLM, LlamaForCausalLM, ...)", c.ModelType)
	}
	d.validateAdapter(c)
	d.validateData(c)
	d.validateBatches(c)
	d.validateOptimizer(c)
	d.validateIntervals(c)

	if c.FP16 {
		d.fail("fp16", "not supported by eft: fp16 mixed precision (with loss scaling) is not implemented; use bf16: true or auto")
	}
	if c.WorldSize < 1 {
		d.fail("world_size", "must be at least 1, got %d", c.WorldSize)
	}
	if c.TrainerPool != "" && !poolName.MatchString(c.TrainerPool) {
		d.fail("trainer_pool", "%q is not a pool name: use letters, digits, '-' and '_' (at most 64, starting with a letter or digit)", c.TrainerPool)
	}
	if c.Seed < 0 {
		d.fail("seed", "must not be negative, got %d", c.Seed)
	}
	if c.ResumeFromCheckpoint != "" && c.AutoResumeFromCheckpoints {
		d.warn("auto_resume_from_checkpoints", "resume_from_checkpoint is set, so it is used and auto_resume_from_checkpoints does nothing")
	}
}

func (d *decoder) validateAdapter(c *Config) {
	// Axolotl's 8-bit LoRA (bitsandbytes' LLM.int8 base weights) trains
	// here on the unquantized base: the config works as written, with
	// more memory and without int8's rounding.
	switch {
	case c.LoadIn8bit && c.LoadIn4bit:
		d.fail("load_in_8bit", "load_in_8bit and load_in_4bit are both set: choose one")
	case c.LoadIn8bit && c.Adapter == "":
		d.fail("load_in_8bit", "load_in_8bit needs an adapter (adapter: lora); a full fine-tune cannot train quantized weights")
	case c.LoadIn8bit:
		d.warn("load_in_8bit", "eft has no 8-bit (LLM.int8) base weights: the base stays unquantized (bf16 on a GPU, float32 on the CPU), twice its 8-bit memory and none of its rounding; for less memory use adapter: qlora with load_in_4bit: true")
	}
	switch c.Adapter {
	case "", "lora", "qlora":
	case "llama-adapter":
		d.fail("adapter", "not supported by eft: llama-adapter; use lora or qlora")
		return
	default:
		d.fail("adapter", "unknown adapter %q: use lora or qlora, or leave it empty for a full fine-tune", c.Adapter)
		return
	}
	if c.Adapter == "" {
		// Axolotl's validate_adapter.
		if c.LoadIn4bit {
			d.fail("load_in_4bit", "load_in_4bit needs an adapter (adapter: qlora); a full fine-tune cannot train quantized weights")
		}
		for _, k := range []string{"lora_r", "lora_alpha", "lora_target_modules", "lora_target_linear", "lora_modules_to_save", "lora_model_dir", "peft_use_rslora"} {
			if d.set[k] && !d.zeroValue(c, k) {
				d.warn(k, "ignored: no adapter is set, so this is a full fine-tune")
			}
		}
		if c.MergeLora && d.set["merge_lora"] {
			d.fail("merge_lora", "merge_lora needs an adapter (adapter: lora or qlora)")
		}
		return
	}
	// Axolotl's validate_qlora. Its rule that a qlora merge must not load
	// in 4 bit is about its merge-lora command re-reading the training
	// config; eft's merger always loads the base weights unquantized.
	if c.Adapter == "qlora" && !c.LoadIn4bit {
		d.fail("adapter", "adapter: qlora requires load_in_4bit: true")
	}
	if c.Adapter == "lora" && c.LoadIn4bit {
		d.warn("load_in_4bit", "does nothing with adapter: lora: as in Axolotl, only adapter: qlora loads the base in 4 bits; this run trains over unquantized weights (set adapter: qlora to quantize)")
	}
	if c.LoraR < 1 {
		d.fail("lora_r", "an adapter needs lora_r (the LoRA rank, at least 1)")
	}
	if c.LoraAlpha < 1 {
		d.fail("lora_alpha", "an adapter needs lora_alpha (at least 1; the LoRA scale is lora_alpha / lora_r)")
	}
	if c.LoraDropout < 0 || c.LoraDropout >= 1 {
		d.fail("lora_dropout", "must be in [0, 1), got %g", c.LoraDropout)
	}
	if c.LoraTargetModules.IsZero() && !c.LoraTargetLinear {
		d.fail("lora_target_modules", "an adapter needs lora_target_modules (for example [q_proj, k_proj, v_proj, o_proj]) or lora_target_linear: true")
	}
	if p := c.LoraTargetModules.Pattern; p != "" {
		if _, err := regexp.Compile(p); err != nil {
			d.fail("lora_target_modules", "a single string is a regular expression (as in PEFT), and %q is not one: %v", p, err)
		} else if regexp.QuoteMeta(p) == p {
			d.warn("lora_target_modules", "a single string is a regular expression matched against the full module name "+
				"(model.layers.0.self_attn.%s), as in PEFT, so %q alone matches no layer; write a list: [%s]", p, p, p)
		}
	}
	for i, name := range c.LoraTargetModules.Names {
		if strings.TrimSpace(name) == "" {
			d.fail(fmt.Sprintf("lora_target_modules[%d]", i), "empty module name")
		}
	}
}

// zeroValue reports whether a key that was given holds its zero value
// (`lora_r:` left empty decodes as unset; `lora_target_linear: false` is
// a zero too).
func (d *decoder) zeroValue(c *Config, key string) bool {
	switch key {
	case "lora_r":
		return c.LoraR == 0
	case "lora_alpha":
		return c.LoraAlpha == 0
	case "lora_target_modules":
		return c.LoraTargetModules.IsZero()
	case "lora_target_linear":
		return !c.LoraTargetLinear
	case "lora_modules_to_save":
		return len(c.LoraModulesToSave) == 0
	case "lora_model_dir":
		return c.LoraModelDir == ""
	case "peft_use_rslora":
		return !c.PeftUseRSLoRA
	}
	return false
}

func (d *decoder) validateData(c *Config) {
	if len(c.Datasets) == 0 {
		d.fail("datasets", "required: at least one dataset (path and type)")
	}
	for i := range c.Datasets {
		d.validateDataset(c, &c.Datasets[i], fmt.Sprintf("datasets[%d]", i))
	}
	for i := range c.TestDatasets {
		d.validateDataset(c, &c.TestDatasets[i], fmt.Sprintf("test_datasets[%d]", i))
	}
	if d.set["test_datasets"] && len(c.TestDatasets) == 0 {
		d.fail("test_datasets", "an empty list; remove the key or give at least one dataset")
	}
	if len(c.TestDatasets) > 0 && c.ValSetSize != 0 {
		d.fail("val_set_size", "a non-zero val_set_size cannot be used with test_datasets: evaluation uses one or the other")
	}
	switch v := c.ValSetSize; {
	case v < 0:
		d.fail("val_set_size", "must not be negative, got %g", v)
	case v >= 1 && v != math.Trunc(v):
		d.fail("val_set_size", "%g is neither a fraction below 1 nor a whole number of rows", v)
	}
	if c.SequenceLen < 1 {
		d.fail("sequence_len", "must be at least 1 token, got %d", c.SequenceLen)
	}
	if c.SamplePacking && c.SequenceLen < 2 {
		d.fail("sample_packing", "sample_packing packs samples into rows of sequence_len tokens; sequence_len %d leaves no room", c.SequenceLen)
	}
	switch c.ExcessLengthStrategy {
	case "drop", "truncate", "raise":
	default:
		d.fail("excess_length_strategy", "%q is not one of drop, truncate, raise", c.ExcessLengthStrategy)
	}
	d.validateChatTemplate("chat_template", c.ChatTemplate, c.ChatTemplateJinja)
	for k, v := range map[string]string{
		"special_tokens.bos_token": c.SpecialTokens.BOSToken, "special_tokens.eos_token": c.SpecialTokens.EOSToken,
		"special_tokens.pad_token": c.SpecialTokens.PadToken, "special_tokens.unk_token": c.SpecialTokens.UnkToken,
	} {
		if d.set[k] && v == "" {
			d.fail(k, "an empty token")
		}
	}
	for i, t := range c.Tokens {
		if t == "" {
			d.fail(fmt.Sprintf("tokens[%d]", i), "an empty token")
		}
	}
}

func (d *decoder) validateChatTemplate(path, name, jinja string) {
	switch {
	case name == "":
	case !validChatTemplate(name):
		d.fail(path, "unknown chat template %q: use tokenizer_default, jinja (with chat_template_jinja), tokenizer_default_fallback_<name>, or one of %s",
			name, strings.Join(namedChatTemplates, ", "))
	case name == "jinja" && jinja == "":
		d.fail(path, "chat_template: jinja requires chat_template_jinja (a Jinja template or a path to a .jinja file)")
	}
}

func (d *decoder) validateDataset(c *Config, ds *Dataset, path string) {
	if strings.TrimSpace(ds.Path) == "" {
		d.fail(path+".path", "required: a hub dataset repo id, a local file or directory, or an https URL")
	} else if scheme, _, ok := strings.Cut(ds.Path, "://"); ok && scheme != "https" {
		d.fail(path+".path", "%s:// is not supported: eft reads hub dataset repo ids, local files and directories, and https URLs (plain http is refused)", scheme)
	}
	if ds.TrustRemoteCode {
		d.warn(path+".trust_remote_code", "eft never runs Python code from a dataset repository (loading scripts): it reads the data files (json, jsonl, parquet, csv, arrow)")
	}
	switch ds.DsType {
	case "", "json", "jsonl", "csv", "parquet", "arrow", "text", "txt":
	default:
		d.fail(path+".ds_type", "%q is not one of json, csv, parquet, arrow, text", ds.DsType)
	}
	d.validateChatTemplate(path+".chat_template", ds.ChatTemplate, ds.ChatTemplateJinja)
	for _, k := range []struct{ key, value string }{{"train_on_eos", ds.TrainOnEOS}, {"train_on_eot", ds.TrainOnEOT}} {
		switch k.value {
		case "", "all", "turn", "last", "none":
		default:
			d.fail(path+"."+k.key, "%q is not one of all, turn, last, none", k.value)
		}
	}
	if f := ds.Type.Format; f != nil {
		if strings.Contains(f.NoInputFormat, "{input}") {
			d.fail(path+".type.no_input_format", "must not contain {input}: it is the prompt for rows without an input")
		}
		if !strings.Contains(f.Format, "{instruction}") && !strings.Contains(f.NoInputFormat, "{instruction}") {
			d.warn(path+".type.format", "neither format nor no_input_format contains {instruction}, so the instruction field is never used")
		}
	}
	if ds.Type.Name != "chat_template" {
		for _, k := range []string{"field_messages", "message_property_mappings", "message_field_training", "roles", "roles_to_train", "train_on_eos", "train_on_eot"} {
			if d.set[path+"."+k] {
				d.warn(path+"."+k, "ignored: used only with type: chat_template")
			}
		}
	}
	if ds.Type.IsZero() && d.set[path+".type"] {
		d.fail(path+".type", "an empty type")
	}
}

func (d *decoder) validateBatches(c *Config) {
	// Axolotl's check_batch_size_fields: the raw config must give at
	// least two of these (defaults do not count).
	given := 0
	for _, k := range []string{"micro_batch_size", "gradient_accumulation_steps", "batch_size"} {
		if d.set[k] {
			given++
		}
	}
	if d.set["batch_size"] && d.set["gradient_accumulation_steps"] {
		d.fail("batch_size", "give only one of gradient_accumulation_steps and batch_size (Axolotl derives one from the other)")
	}
	if given < 2 {
		d.fail("micro_batch_size", "at least two of micro_batch_size, gradient_accumulation_steps, batch_size must be set (as Axolotl requires)")
	}
	for k, v := range map[string]int{"micro_batch_size": c.MicroBatchSize, "gradient_accumulation_steps": c.GradientAccumulationSteps, "eval_batch_size": c.EvalBatchSize} {
		if v < 1 {
			d.fail(k, "must be at least 1, got %d", v)
		}
	}
	if d.set["eval_batch_size"] && c.EvalBatchSize != c.MicroBatchSize {
		d.warn("eval_batch_size", "eval_batch_size %d differs from micro_batch_size %d; evaluation batches use more or less memory than training", c.EvalBatchSize, c.MicroBatchSize)
	}
	if c.MaxSteps < 0 {
		d.fail("max_steps", "must not be negative, got %d", c.MaxSteps)
	}
	if c.NumEpochs <= 0 && c.MaxSteps == 0 {
		d.fail("num_epochs", "must be above 0 (or set max_steps), got %g", c.NumEpochs)
	}
	if c.NumEpochs < 0 {
		d.fail("num_epochs", "must not be negative, got %g", c.NumEpochs)
	}
}

func (d *decoder) validateOptimizer(c *Config) {
	if !d.set["learning_rate"] {
		d.fail("learning_rate", "required: the peak learning rate (for example 2e-4 for LoRA, 2e-5 for a full fine-tune)")
	} else if c.LearningRate < 0 {
		d.fail("learning_rate", "must not be negative, got %g", c.LearningRate)
	}
	switch {
	case slices.Contains(adamwOptimizers, c.Optimizer), c.Optimizer == "sgd":
	case slices.Contains(quantizedAdamwOptimizers, c.Optimizer):
		d.warn("optimizer", "%s keeps AdamW's state in 8 or 4 bits; eft runs AdamW with fp32 state instead (the same update, more memory)", c.Optimizer)
	default:
		d.fail("optimizer", "not supported by eft: %q; eft runs AdamW (adamw_torch, adamw_torch_fused, ...; the 8-bit AdamW variants run as AdamW) and sgd", c.Optimizer)
	}
	if !slices.Contains(lrSchedulers, c.LRScheduler) {
		d.fail("lr_scheduler", "not supported by eft: %q; use one of %s", c.LRScheduler, strings.Join(lrSchedulers, ", "))
	}
	if d.set["cosine_min_lr_ratio"] {
		if c.LRScheduler != "cosine" {
			d.warn("cosine_min_lr_ratio", "ignored: used only with lr_scheduler: cosine")
		}
		if c.CosineMinLRRatio < 0 || c.CosineMinLRRatio > 1 {
			d.fail("cosine_min_lr_ratio", "must be in [0, 1], got %g", c.CosineMinLRRatio)
		}
	}
	if c.WarmupSteps != nil && c.WarmupRatio != nil && *c.WarmupSteps != 0 && *c.WarmupRatio != 0 {
		d.fail("warmup_ratio", "warmup_steps and warmup_ratio are mutually exclusive")
	}
	if c.WarmupSteps != nil && *c.WarmupSteps < 0 {
		d.fail("warmup_steps", "must not be negative, got %d", *c.WarmupSteps)
	}
	if c.WarmupRatio != nil && (*c.WarmupRatio < 0 || *c.WarmupRatio > 1) {
		d.fail("warmup_ratio", "must be in [0, 1], got %g", *c.WarmupRatio)
	}
	if c.WeightDecay < 0 {
		d.fail("weight_decay", "must not be negative, got %g", c.WeightDecay)
	}
	if c.MaxGradNorm < 0 {
		d.fail("max_grad_norm", "must not be negative (0 turns clipping off), got %g", c.MaxGradNorm)
	}
	for k, v := range map[string]float64{"adam_beta1": c.AdamBeta1, "adam_beta2": c.AdamBeta2} {
		if v < 0 || v >= 1 {
			d.fail(k, "must be in [0, 1), got %g", v)
		}
	}
	if c.AdamEpsilon <= 0 {
		d.fail("adam_epsilon", "must be above 0, got %g", c.AdamEpsilon)
	}
	if c.OptimizerKind() != OptimizerAdamW {
		for k, v := range map[string][2]float64{
			"adam_beta1": {c.AdamBeta1, defaultAdamBeta1}, "adam_beta2": {c.AdamBeta2, defaultAdamBeta2},
			"adam_epsilon": {c.AdamEpsilon, defaultAdamEpsilon},
		} {
			if d.set[k] && v[0] != v[1] {
				d.warn(k, "ignored: an AdamW hyperparameter, but the optimizer is %s", c.Optimizer)
			}
		}
	}
}

func (d *decoder) validateIntervals(c *Config) {
	for k, v := range map[string]int{"logging_steps": c.LoggingSteps, "saves_per_epoch": c.SavesPerEpoch, "evals_per_epoch": c.EvalsPerEpoch, "save_total_limit": c.SaveTotalLimit} {
		if v < 0 {
			d.fail(k, "must not be negative, got %d", v)
		}
	}
	for k, v := range map[string]float64{"save_steps": c.SaveSteps, "eval_steps": c.EvalSteps} {
		if v < 0 || (v > 1 && v != math.Trunc(v)) {
			d.fail(k, "must be a whole number of steps, or a fraction of the total steps below 1; got %g", v)
		}
	}
	// Axolotl's check_saves.
	switch c.SaveStrategy {
	case "", "no", "steps", "epoch":
	case "best":
		d.fail("save_strategy", "not supported by eft: save_strategy: best (eft keeps the last save_total_limit checkpoints)")
	default:
		d.fail("save_strategy", "%q is not one of no, steps, epoch", c.SaveStrategy)
	}
	if c.SaveStrategy != "" && c.SaveSteps != 0 && c.SaveStrategy != "steps" {
		d.fail("save_steps", "save_strategy %s and save_steps mismatch; set save_strategy to steps or remove save_steps", c.SaveStrategy)
	}
	if c.SavesPerEpoch != 0 && c.SaveSteps != 0 {
		d.fail("saves_per_epoch", "save_steps and saves_per_epoch are mutually exclusive")
	}
	// Axolotl's check_evals.
	switch c.EvalStrategy {
	case "", "no", "steps", "epoch":
	default:
		d.fail("eval_strategy", "%q is not one of no, steps, epoch", c.EvalStrategy)
	}
	if c.EvalStrategy != "" && c.EvalSteps != 0 && c.EvalStrategy != "steps" {
		d.fail("eval_steps", "eval_strategy %s and eval_steps mismatch; set eval_strategy to steps or remove eval_steps", c.EvalStrategy)
	}
	if c.ValSetSize == 0 && len(c.TestDatasets) == 0 && (c.EvalSteps != 0 || c.EvalStrategy != "") && c.EvalStrategy != "no" {
		key := "eval_steps"
		if c.EvalSteps == 0 {
			key = "eval_strategy"
		}
		d.fail(key, "evaluation needs data: set val_set_size or test_datasets")
	}
	if c.EvalsPerEpoch != 0 && c.EvalSteps != 0 {
		d.fail("evals_per_epoch", "eval_steps and evals_per_epoch are mutually exclusive")
	}
	if c.EvalsPerEpoch != 0 && c.EvalStrategy != "" && c.EvalStrategy != "steps" {
		d.fail("eval_strategy", "eval_strategy must be empty or steps when used with evals_per_epoch")
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
