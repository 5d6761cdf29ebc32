package config

// Config is a resolved Axolotl config: every key eft uses, with Axolotl's
// defaults filled in. Field tags are Axolotl's key names. Keys that Axolotl
// leaves unset until it knows the dataset size (warmup, logging, save and
// eval intervals) stay as written; Plan turns them into step counts.
type Config struct {
	// Model and tokenizer.

	// BaseModel is a Hugging Face repo id or a local model directory. Required.
	BaseModel string `yaml:"base_model"`
	// BaseModelConfig is where config.json is read from; default BaseModel.
	BaseModelConfig string `yaml:"base_model_config"`
	// RevisionOfModel is the hub revision (branch, tag or commit) of
	// BaseModel; Axolotl also accepts the alias model_revision.
	RevisionOfModel string `yaml:"revision_of_model,omitempty"`
	// ModelType is the transformers class to load (AutoModelForCausalLM,
	// LlamaForCausalLM, ...); Axolotl's field type_of_model. Only causal LMs.
	ModelType string `yaml:"model_type,omitempty"`
	// TokenizerType is the transformers tokenizer class; eft always reads
	// tokenizer.json, so this is informative only.
	TokenizerType string `yaml:"tokenizer_type,omitempty"`
	// TokenizerConfig is where the tokenizer is read from; default
	// BaseModelConfig (which defaults to BaseModel).
	TokenizerConfig string `yaml:"tokenizer_config"`
	// TrustRemoteCode must stay false: eft runs no code from model repos.
	TrustRemoteCode bool `yaml:"trust_remote_code"`

	// Adapters.

	// Adapter is "" (full fine-tune), "lora" or "qlora".
	Adapter string `yaml:"adapter,omitempty"`
	// LoadIn4bit quantizes the frozen base weights to NF4 (QLoRA).
	LoadIn4bit bool `yaml:"load_in_4bit"`
	// LoadIn8bit (Axolotl's 8-bit LoRA) is accepted with a warning: eft has
	// no 8-bit (LLM.int8) base weights and trains on the unquantized base.
	LoadIn8bit bool `yaml:"load_in_8bit"`
	// LoraModelDir is an existing adapter to start from (or to merge).
	LoraModelDir string `yaml:"lora_model_dir,omitempty"`
	// LoraR is the LoRA rank; required with an adapter.
	LoraR int `yaml:"lora_r,omitempty"`
	// LoraAlpha is the LoRA scaling numerator (alpha/r, or alpha/sqrt(r)
	// with PeftUseRSLoRA); required with an adapter.
	LoraAlpha int `yaml:"lora_alpha,omitempty"`
	// LoraDropout is the dropout on the LoRA input; default 0.
	LoraDropout float64 `yaml:"lora_dropout"`
	// LoraTargetModules names the modules that get adapters.
	LoraTargetModules TargetModules `yaml:"lora_target_modules,omitempty"`
	// LoraTargetLinear adds every linear layer except the output head.
	LoraTargetLinear bool `yaml:"lora_target_linear"`
	// LoraModulesToSave are modules trained in full and saved with the
	// adapter (embed_tokens, lm_head when tokens were added).
	LoraModulesToSave []string `yaml:"lora_modules_to_save,omitempty"`
	// PeftUseRSLoRA scales by alpha/sqrt(r) instead of alpha/r.
	PeftUseRSLoRA bool `yaml:"peft_use_rslora"`
	// PeftEnsureWeightTying keeps a tied model's head and embeddings one
	// trained weight when lora_modules_to_save lists either (PEFT's
	// ensure_weight_tying); otherwise each listed one trains its own copy.
	PeftEnsureWeightTying bool `yaml:"peft_ensure_weight_tying"`
	// MergeLora merges the trained adapter into the base weights after
	// training and writes a full Hugging Face model (eft's merger service).
	MergeLora bool `yaml:"merge_lora"`

	// Data.

	// Datasets are the training datasets, at least one. Required.
	Datasets []Dataset `yaml:"datasets"`
	// TestDatasets are evaluation datasets; exclusive with ValSetSize.
	TestDatasets []Dataset `yaml:"test_datasets,omitempty"`
	// ValSetSize holds out part of the training data for evaluation: a
	// fraction below 1, or a row count from 1 up. Default 0 (none).
	ValSetSize float64 `yaml:"val_set_size"`
	// DatasetPreparedPath is where the tokenized dataset is also written.
	DatasetPreparedPath string `yaml:"dataset_prepared_path,omitempty"`
	// ShuffleMergedDatasets shuffles the merged datasets; default true.
	ShuffleMergedDatasets bool `yaml:"shuffle_merged_datasets"`
	// DatasetExactDeduplication drops rows identical to an earlier row.
	DatasetExactDeduplication bool `yaml:"dataset_exact_deduplication"`
	// SequenceLen is the longest row in tokens; default 512.
	SequenceLen int `yaml:"sequence_len"`
	// SamplePacking packs several samples into each row of SequenceLen
	// tokens (attention never crosses samples; positions restart).
	SamplePacking bool `yaml:"sample_packing"`
	// EvalSamplePacking packs evaluation rows; default SamplePacking.
	EvalSamplePacking bool `yaml:"eval_sample_packing"`
	// PadToSequenceLen pads every row to SequenceLen; default SamplePacking.
	PadToSequenceLen bool `yaml:"pad_to_sequence_len"`
	// ExcessLengthStrategy is what happens to a sample longer than
	// SequenceLen: "drop" (default), "truncate" or "raise".
	ExcessLengthStrategy string `yaml:"excess_length_strategy"`
	// TrainOnInputs trains on prompt tokens too; default false.
	TrainOnInputs bool `yaml:"train_on_inputs"`
	// SpecialTokens sets or adds the tokenizer's special tokens.
	SpecialTokens SpecialTokens `yaml:"special_tokens,omitempty"`
	// Tokens are extra tokens added to the tokenizer.
	Tokens []string `yaml:"tokens,omitempty"`
	// ChatTemplate names the chat template: tokenizer_default, one of
	// Axolotl's named templates, tokenizer_default_fallback_<name>, or jinja.
	ChatTemplate string `yaml:"chat_template,omitempty"`
	// ChatTemplateJinja is a Jinja template, or a path to a .jinja file.
	ChatTemplateJinja string `yaml:"chat_template_jinja,omitempty"`
	// ChatTemplateKwargs are extra variables passed to the chat template
	// (for example enable_thinking: false).
	ChatTemplateKwargs map[string]any `yaml:"chat_template_kwargs,omitempty"`
	// EOTTokens are the end-of-turn tokens train_on_eot refers to; default
	// the tokenizer's EOS token.
	EOTTokens []string `yaml:"eot_tokens,omitempty"`

	// Batches and steps.

	// MicroBatchSize is the rows per forward/backward pass; default 1.
	MicroBatchSize int `yaml:"micro_batch_size"`
	// GradientAccumulationSteps is the micro-batches per optimizer step;
	// default 1, or batch_size / micro_batch_size when batch_size is given
	// (batch_size itself is folded into this field).
	GradientAccumulationSteps int `yaml:"gradient_accumulation_steps"`
	// EvalBatchSize is the rows per evaluation batch; default MicroBatchSize.
	EvalBatchSize int `yaml:"eval_batch_size"`
	// NumEpochs is the passes over the data; default 1. May be fractional.
	NumEpochs float64 `yaml:"num_epochs"`
	// MaxSteps, when above 0, stops training after that many optimizer
	// steps, whatever NumEpochs says.
	MaxSteps int `yaml:"max_steps,omitempty"`

	// Optimizer and schedule.

	// Optimizer is the optimizer name as transformers spells it; default
	// adamw_torch_fused. OptimizerKind says what eft runs for it.
	Optimizer string `yaml:"optimizer"`
	// LearningRate is the peak learning rate. Required.
	LearningRate float64 `yaml:"learning_rate"`
	// LRScheduler is a transformers schedule name: linear, cosine
	// (default), constant, constant_with_warmup, cosine_with_restarts,
	// polynomial or inverse_sqrt, with transformers' default arguments.
	LRScheduler string `yaml:"lr_scheduler"`
	// CosineMinLRRatio makes the cosine schedule end at this fraction of
	// the peak learning rate instead of 0 (Axolotl's cosine_min_lr_ratio).
	CosineMinLRRatio float64 `yaml:"cosine_min_lr_ratio,omitempty"`
	// WarmupSteps is the number of warmup steps; nil when not set.
	// Exclusive with WarmupRatio. With neither, Plan uses Axolotl's
	// default of 3% of the steps, at most 100.
	WarmupSteps *int `yaml:"warmup_steps,omitempty"`
	// WarmupRatio is warmup as a fraction of the total steps; nil when not set.
	WarmupRatio *float64 `yaml:"warmup_ratio,omitempty"`
	// WeightDecay is AdamW's decoupled weight decay; default 0.
	WeightDecay float64 `yaml:"weight_decay"`
	// AdamBeta1, AdamBeta2 and AdamEpsilon default to torch's and
	// transformers' 0.9, 0.999 and 1e-8.
	AdamBeta1   float64 `yaml:"adam_beta1"`
	AdamBeta2   float64 `yaml:"adam_beta2"`
	AdamEpsilon float64 `yaml:"adam_epsilon"`
	// MaxGradNorm clips the global gradient norm; default 1.0 (the
	// transformers default Axolotl keeps); 0 turns clipping off.
	MaxGradNorm float64 `yaml:"max_grad_norm"`

	// Precision and memory.

	// BF16 trains with bf16 matmuls on GPUs: auto (default) uses bf16 where
	// the GPU supports it. CPUs always compute in fp32.
	BF16 AutoBool `yaml:"bf16"`
	// FP16 must stay false: eft has no fp16 mixed precision.
	FP16 bool `yaml:"fp16"`
	// TF32 allows TF32 matmuls for fp32 work on GPUs; default auto.
	TF32 AutoBool `yaml:"tf32"`
	// GradientCheckpointing recomputes each layer's activations in the
	// backward pass instead of keeping them.
	GradientCheckpointing bool `yaml:"gradient_checkpointing"`
	// AttnImplementation is recorded as given (the legacy flags
	// flash_attention, sdp_attention, ... are folded into it); eft always
	// uses its own attention, which keeps packed samples apart.
	AttnImplementation string `yaml:"attn_implementation,omitempty"`

	// Logging, checkpoints and evaluation.

	// LoggingSteps logs metrics every N optimizer steps; 0 means Axolotl's
	// default (0.5% of the steps, between 1 and 10; see Plan).
	LoggingSteps int `yaml:"logging_steps,omitempty"`
	// SaveSteps saves a checkpoint every N steps (N >= 1) or every fraction
	// of the total steps (0 < N < 1). Exclusive with SavesPerEpoch.
	SaveSteps float64 `yaml:"save_steps,omitempty"`
	// SavesPerEpoch saves this many checkpoints per epoch.
	SavesPerEpoch int `yaml:"saves_per_epoch,omitempty"`
	// SaveStrategy is no, steps or epoch; when empty it follows from
	// SaveSteps/SavesPerEpoch, else "epoch" (see Plan).
	SaveStrategy string `yaml:"save_strategy,omitempty"`
	// SaveTotalLimit keeps at most this many checkpoints; default 4.
	SaveTotalLimit int `yaml:"save_total_limit"`
	// EvalSteps evaluates every N steps or every fraction of the total
	// steps, like SaveSteps. Exclusive with EvalsPerEpoch.
	EvalSteps float64 `yaml:"eval_steps,omitempty"`
	// EvalsPerEpoch evaluates this many times per epoch.
	EvalsPerEpoch int `yaml:"evals_per_epoch,omitempty"`
	// EvalStrategy is no, steps or epoch; when empty it follows from
	// EvalSteps/EvalsPerEpoch, else "no" (see Plan).
	EvalStrategy string `yaml:"eval_strategy,omitempty"`

	// Outputs and resuming.

	// OutputDir receives the adapter or model, checkpoints and
	// trainer_state.json; default ./model-out.
	OutputDir string `yaml:"output_dir"`
	// ResumeFromCheckpoint is a checkpoint directory to resume from.
	ResumeFromCheckpoint string `yaml:"resume_from_checkpoint,omitempty"`
	// AutoResumeFromCheckpoints resumes from the newest checkpoint in
	// OutputDir when ResumeFromCheckpoint is empty.
	AutoResumeFromCheckpoints bool `yaml:"auto_resume_from_checkpoints"`
	// Seed seeds data order, dropout and initialisation; default 42.
	Seed int `yaml:"seed"`
	// Strict turns unknown keys from warnings into errors.
	Strict bool `yaml:"strict"`

	// eft's own keys.

	// TrainerPool asks for a trainer from this pool (eft serve trainer
	// --pool NAME); empty means any trainer.
	TrainerPool string `yaml:"trainer_pool,omitempty"`
	// WorldSize is the number of data-parallel trainer ranks; default 1.
	WorldSize int `yaml:"world_size"`

	file string
	set  map[string]bool     // key paths given in the file or on the command line
	pos  map[string]position // where each key path was given
}

// Dataset is one entry of datasets or test_datasets.
type Dataset struct {
	// Path is a hub dataset repo id, a local file or directory, or an
	// https URL. Required.
	Path string `yaml:"path"`
	// Split is the split to load (hub datasets); empty means "train".
	Split string `yaml:"split,omitempty"`
	// TrainOnSplit is read as Split when Split is empty. Axolotl itself
	// ignores this key (and warns); eft honours what it obviously means.
	TrainOnSplit string `yaml:"train_on_split,omitempty"`
	// Type is the prompt strategy (alpaca, completion, chat_template,
	// input_output, ...) or a user-defined format.
	Type DatasetType `yaml:"type,omitempty"`
	// DsType is the file format when Path is a file: json, csv, parquet,
	// arrow, text.
	DsType string `yaml:"ds_type,omitempty"`
	// DataFiles are files within Path to load.
	DataFiles []string `yaml:"data_files,omitempty"`
	// Name is the dataset configuration name (hub datasets).
	Name string `yaml:"name,omitempty"`
	// Revision is the hub revision of the dataset.
	Revision string `yaml:"revision,omitempty"`
	// Field is the text column for completion datasets; default "text".
	Field string `yaml:"field,omitempty"`
	// Conversation is the prompt style of the alpaca_chat strategies
	// (instruct, chat, ...). With the legacy type: sharegpt it names the
	// chat template and is folded into ChatTemplate.
	Conversation string `yaml:"conversation,omitempty"`

	// chat_template datasets.

	// FieldMessages is the column holding the conversation; default
	// "messages" for chat_template.
	FieldMessages string `yaml:"field_messages,omitempty"`
	// MessagePropertyMappings maps template properties to message keys;
	// default {role: role, content: content}. message_field_role and
	// message_field_content are folded into it, as Axolotl does.
	MessagePropertyMappings map[string]string `yaml:"message_property_mappings,omitempty"`
	// MessageFieldTraining is the per-message key whose boolean says
	// whether that message is trained on.
	MessageFieldTraining string `yaml:"message_field_training,omitempty"`
	// Roles maps template roles to the roles found in the data; default
	// user: [human, user], assistant: [gpt, assistant], system: [system],
	// tool: [tool].
	Roles map[string][]string `yaml:"roles,omitempty"`
	// RolesToTrain are the roles whose turns count in the loss; default
	// [assistant].
	RolesToTrain []string `yaml:"roles_to_train,omitempty"`
	// TrainOnEOS is which EOS tokens are trained: all, turn (default),
	// last or none.
	TrainOnEOS string `yaml:"train_on_eos,omitempty"`
	// TrainOnEOT is which end-of-turn tokens are trained; default TrainOnEOS.
	TrainOnEOT string `yaml:"train_on_eot,omitempty"`
	// ChatTemplate overrides the top-level chat_template for this dataset;
	// default tokenizer_default for type chat_template.
	ChatTemplate string `yaml:"chat_template,omitempty"`
	// ChatTemplateJinja is this dataset's Jinja template (or path).
	ChatTemplateJinja string `yaml:"chat_template_jinja,omitempty"`
	// DropSystemMessage drops system turns from the conversations.
	DropSystemMessage bool `yaml:"drop_system_message,omitempty"`
	// TrustRemoteCode must stay false.
	TrustRemoteCode bool `yaml:"trust_remote_code,omitempty"`
}

// UserDefinedFormat is a dataset `type:` given as a mapping: an
// instruction format built from the row's fields. Unset fields take the
// defaults of Axolotl's user_defined strategy.
type UserDefinedFormat struct {
	SystemPrompt     string `yaml:"system_prompt"`     // default ""
	SystemFormat     string `yaml:"system_format"`     // default "{system}"
	FieldSystem      string `yaml:"field_system"`      // default "system"
	FieldInstruction string `yaml:"field_instruction"` // default "instruction"
	FieldInput       string `yaml:"field_input"`       // default "input"
	FieldOutput      string `yaml:"field_output"`      // default "output"
	// Format is the prompt when the row has an input; default
	// "{instruction} {input} ".
	Format string `yaml:"format"`
	// NoInputFormat is the prompt when it has none; default "{instruction} ".
	NoInputFormat string `yaml:"no_input_format"`
}

// SpecialTokens sets the tokenizer's special tokens; a token the
// vocabulary lacks is added.
type SpecialTokens struct {
	BOSToken                string   `yaml:"bos_token,omitempty"`
	EOSToken                string   `yaml:"eos_token,omitempty"`
	PadToken                string   `yaml:"pad_token,omitempty"`
	UnkToken                string   `yaml:"unk_token,omitempty"`
	AdditionalSpecialTokens []string `yaml:"additional_special_tokens,omitempty"`
}

// IsZero reports whether no special token is set (for omitempty).
func (s SpecialTokens) IsZero() bool {
	return s.BOSToken == "" && s.EOSToken == "" && s.PadToken == "" && s.UnkToken == "" && len(s.AdditionalSpecialTokens) == 0
}

// File is the file the config was read from.
func (c *Config) File() string { return c.file }

// IsSet reports whether a key path ("sample_packing", "datasets[0].split")
// was given in the file or on the command line, as opposed to defaulted.
func (c *Config) IsSet(path string) bool { return c.set[path] }

// IssueAt makes an Issue about a key path at the place the key was given
// (its file line and column, or its command-line flag), for checks that
// run later than Parse: a LoRA target the model lacks, a dataset field the
// data lacks. A path that was not given gets the file without a line.
func (c *Config) IssueAt(path, format string, args ...any) Issue {
	d := decoder{file: c.file, pos: c.pos}
	return d.issue(d.keyPos(path), path, format, args...)
}
