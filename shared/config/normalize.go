package config

import (
	"fmt"
	"strings"
)

// Defaults that are not obvious from the field docs. Axolotl leaves the
// AdamW hyperparameters and max_grad_norm unset, so transformers'
// TrainingArguments defaults apply; eft writes them out.
const (
	defaultOutputDir      = "./model-out"
	defaultOptimizer      = "adamw_torch_fused"
	defaultLRScheduler    = "cosine"
	defaultSequenceLen    = 512
	defaultSeed           = 42
	defaultSaveTotalLimit = 4
	defaultAdamBeta1      = 0.9
	defaultAdamBeta2      = 0.999
	defaultAdamEpsilon    = 1e-8
	defaultMaxGradNorm    = 1.0
)

// legacyAttentionFlags are Axolotl's deprecated boolean attention switches,
// in the priority order Axolotl uses to pick one, with the
// attn_implementation each stands for.
var legacyAttentionFlags = []struct{ flag, impl string }{
	{"xformers_attention", "xformers"},
	{"sage_attention", "sage"},
	{"flex_attention", "flex_attention"},
	{"flash_attention", "flash_attention_2"},
	{"sdp_attention", "sdpa"},
	{"eager_attention", "eager"},
}

// defaultRoles is the chat_template role mapping Axolotl uses when a
// dataset gives none (target role: roles found in the data).
func defaultRoles() map[string][]string {
	return map[string][]string{
		"user":      {"human", "user"},
		"assistant": {"gpt", "assistant"},
		"system":    {"system"},
		"tool":      {"tool"},
	}
}

// normalize folds deprecated and alias keys into their fields and fills in
// defaults, the way Axolotl's validators and normalize_config do.
func (d *decoder) normalize(c *Config) {
	d.foldBatchSize(c)
	d.foldAttentionFlags(c)
	d.checkPlugins()

	if c.BaseModelConfig == "" {
		c.BaseModelConfig = c.BaseModel
	}
	if c.TokenizerConfig == "" {
		c.TokenizerConfig = c.BaseModelConfig
	}
	if !d.set["output_dir"] || c.OutputDir == "" {
		c.OutputDir = defaultOutputDir
	}
	if !d.set["micro_batch_size"] {
		c.MicroBatchSize = 1
	}
	if !d.set["gradient_accumulation_steps"] && !d.gasFromBatchSize {
		c.GradientAccumulationSteps = 1
	}
	if !d.set["eval_batch_size"] {
		c.EvalBatchSize = c.MicroBatchSize
	}
	if !d.set["num_epochs"] {
		c.NumEpochs = 1
	}
	if !d.set["optimizer"] {
		c.Optimizer = defaultOptimizer
	}
	if !d.set["lr_scheduler"] {
		c.LRScheduler = defaultLRScheduler
	}
	if !d.set["adam_beta1"] {
		c.AdamBeta1 = defaultAdamBeta1
	}
	if !d.set["adam_beta2"] {
		c.AdamBeta2 = defaultAdamBeta2
	}
	if !d.set["adam_epsilon"] {
		c.AdamEpsilon = defaultAdamEpsilon
	}
	if !d.set["max_grad_norm"] {
		c.MaxGradNorm = defaultMaxGradNorm
	}
	if c.BF16 == "" {
		c.BF16 = Auto
	}
	if c.TF32 == "" {
		c.TF32 = Auto
	}
	if !d.set["sequence_len"] {
		c.SequenceLen = defaultSequenceLen
	}
	if c.ExcessLengthStrategy == "" {
		c.ExcessLengthStrategy = "drop"
	}
	if !d.set["shuffle_merged_datasets"] {
		c.ShuffleMergedDatasets = true
	}
	// Axolotl: eval_sample_packing follows sample_packing when unset, and
	// sample packing sets pad_to_sequence_len.
	if !d.set["eval_sample_packing"] {
		c.EvalSamplePacking = c.SamplePacking
	}
	if !d.set["pad_to_sequence_len"] {
		c.PadToSequenceLen = c.SamplePacking
	} else if c.SamplePacking && !c.PadToSequenceLen {
		d.warnf(d.keyPos("pad_to_sequence_len"), "pad_to_sequence_len", "pad_to_sequence_len: true is recommended with sample_packing")
	}
	// Axolotl's trainer keeps 4 checkpoints when save_total_limit is unset or 0.
	if c.SaveTotalLimit == 0 {
		c.SaveTotalLimit = defaultSaveTotalLimit
	}
	if !d.set["seed"] {
		c.Seed = defaultSeed
	}
	if !d.set["world_size"] {
		c.WorldSize = 1
	}
	if c.ChatTemplateJinja != "" && c.ChatTemplate == "" {
		c.ChatTemplate = "jinja"
	}
	for i := range c.Datasets {
		d.normalizeDataset(&c.Datasets[i], fmt.Sprintf("datasets[%d]", i))
	}
	for i := range c.TestDatasets {
		d.normalizeDataset(&c.TestDatasets[i], fmt.Sprintf("test_datasets[%d]", i))
	}
}

// foldBatchSize turns batch_size into gradient_accumulation_steps, as
// Axolotl's normalize_config does (gradient_accumulation_steps =
// batch_size // micro_batch_size).
func (d *decoder) foldBatchSize(c *Config) {
	e, ok := d.extra["batch_size"]
	if !ok || e.value.kind == kindNull {
		return
	}
	var bs int
	if !d.decodeInt(e.value, "batch_size", &bs) {
		return
	}
	d.set["batch_size"] = true
	mbs := c.MicroBatchSize
	if !d.set["micro_batch_size"] {
		mbs = 1
	}
	switch {
	case bs < 1:
		d.errorf(e.keyPos, "batch_size", "must be at least 1, got %d", bs)
	case d.set["gradient_accumulation_steps"]:
		// check_gas_bsz reports this; nothing to fold.
	case mbs < 1:
	case bs < mbs:
		d.errorf(e.keyPos, "batch_size", "batch_size %d is smaller than micro_batch_size %d", bs, mbs)
	default:
		if bs%mbs != 0 {
			d.warnf(e.keyPos, "batch_size", "batch_size %d is not a multiple of micro_batch_size %d; gradient_accumulation_steps is %d (as in Axolotl)", bs, mbs, bs/mbs)
		}
		c.GradientAccumulationSteps = bs / mbs
		d.gasFromBatchSize = true
	}
}

// foldAttentionFlags maps the legacy flags (flash_attention: true, ...) to
// attn_implementation, as Axolotl's normalize_attn_implementation does.
func (d *decoder) foldAttentionFlags(c *Config) {
	var chosen, chosenFlag string
	var set []string
	for _, lf := range legacyAttentionFlags {
		e, ok := d.extra[lf.flag]
		if !ok || e.value.kind == kindNull {
			continue
		}
		var on bool
		if !d.decodeBool(e.value, lf.flag, &on, "true or false") || !on {
			continue
		}
		set = append(set, lf.flag)
		if chosen == "" {
			chosen, chosenFlag = lf.impl, lf.flag
		}
	}
	if len(set) == 0 {
		return
	}
	if c.AttnImplementation != "" {
		d.errorf(d.keyPos(set[0]), set[0], "attn_implementation: %s cannot be combined with the legacy attention flags (%s); set only attn_implementation",
			c.AttnImplementation, strings.Join(set, ", "))
		return
	}
	d.warnf(d.keyPos(chosenFlag), chosenFlag, "%s: true is deprecated; read as attn_implementation: %s", chosenFlag, chosen)
	c.AttnImplementation = chosen
}

// checkPlugins accepts Axolotl plugins that only swap in faster kernels and
// refuses the rest, which change what is trained.
func (d *decoder) checkPlugins() {
	e, ok := d.extra["plugins"]
	if !ok || e.value.kind == kindNull {
		return
	}
	var plugins []string
	d.decodeStringList(e.value, "plugins", &plugins)
	for i, p := range plugins {
		path := fmt.Sprintf("plugins[%d]", i)
		pos := e.keyPos
		if e.value.kind == kindSeq && i < len(e.value.items) {
			pos = e.value.items[i].pos
		}
		if _, ok := speedPlugins[p]; ok {
			d.warnf(pos, path, "ignored: %s only swaps in faster kernels; eft's kernels are its own", p)
			continue
		}
		d.errorf(pos, path, "not supported by eft: the plugin %s (eft runs no Axolotl plugins; only the kernel plugins %s are accepted, and ignored)",
			p, strings.Join(sortedKeys(speedPlugins), ", "))
	}
}

func (d *decoder) normalizeDataset(ds *Dataset, path string) {
	if ds.TrainOnSplit != "" {
		switch {
		case ds.Split == "":
			ds.Split = ds.TrainOnSplit
			d.warnf(d.keyPos(path+".train_on_split"), path+".train_on_split",
				"read as split: %s (Axolotl ignores train_on_split and loads the default split)", ds.TrainOnSplit)
		case ds.Split != ds.TrainOnSplit:
			d.warnf(d.keyPos(path+".train_on_split"), path+".train_on_split",
				"ignored: split: %s is used", ds.Split)
		}
		ds.TrainOnSplit = ""
	}
	d.foldSharegpt(ds, path)
	d.foldMessageFields(ds, path)
	if ds.Type.Name == "chat_template" {
		if ds.ChatTemplate == "" {
			// Axolotl sets tokenizer_default here even when the dataset
			// gives chat_template_jinja, which then goes unused; eft
			// honours the dataset's template, as the key's docs promise.
			if ds.ChatTemplateJinja != "" {
				ds.ChatTemplate = "jinja"
			} else {
				ds.ChatTemplate = "tokenizer_default"
			}
		}
		if ds.FieldMessages == "" {
			ds.FieldMessages = "messages"
		}
		if ds.MessagePropertyMappings == nil {
			ds.MessagePropertyMappings = map[string]string{}
		}
		if _, ok := ds.MessagePropertyMappings["role"]; !ok {
			ds.MessagePropertyMappings["role"] = "role"
		}
		if _, ok := ds.MessagePropertyMappings["content"]; !ok {
			ds.MessagePropertyMappings["content"] = "content"
		}
		if len(ds.Roles) == 0 {
			ds.Roles = defaultRoles()
		}
		if !d.set[path+".roles_to_train"] {
			ds.RolesToTrain = []string{"assistant"}
		}
		if ds.TrainOnEOS == "" {
			ds.TrainOnEOS = "turn"
		}
		if ds.TrainOnEOT == "" {
			ds.TrainOnEOT = ds.TrainOnEOS
		}
	} else if ds.ChatTemplateJinja != "" && ds.ChatTemplate == "" {
		ds.ChatTemplate = "jinja"
	}
	if f := ds.Type.Format; f != nil {
		fill := func(field *string, key, def string) {
			if !d.set[path+".type."+key] {
				*field = def
			}
		}
		fill(&f.SystemFormat, "system_format", "{system}")
		fill(&f.FieldSystem, "field_system", "system")
		fill(&f.FieldInstruction, "field_instruction", "instruction")
		fill(&f.FieldInput, "field_input", "input")
		fill(&f.FieldOutput, "field_output", "output")
		fill(&f.Format, "format", "{instruction} {input} ")
		fill(&f.NoInputFormat, "no_input_format", "{instruction} ")
	}
}

// foldSharegpt reads the legacy `type: sharegpt` as chat_template, as
// Axolotl's migration guide describes: conversations in "conversations",
// turns with "from" and "value", roles human/gpt.
func (d *decoder) foldSharegpt(ds *Dataset, path string) {
	legacy := map[string]entry{}
	for _, k := range []string{"field_human", "field_model"} {
		if e, ok := d.extra[path+"."+k]; ok && e.value.kind != kindNull {
			legacy[k] = e
		}
	}
	if !strings.HasPrefix(ds.Type.Name, "sharegpt") {
		for k, e := range legacy {
			d.warnf(e.keyPos, path+"."+k, "ignored: used only with type: sharegpt")
		}
		return
	}
	d.warnf(d.keyPos(path+".type"), path+".type",
		"type: %s is deprecated in Axolotl; read as type: chat_template with field_messages: conversations and from/value turns", ds.Type.Name)
	ds.Type = DatasetType{Name: "chat_template"}
	if ds.FieldMessages == "" {
		ds.FieldMessages = "conversations"
	}
	if ds.MessagePropertyMappings == nil && !d.hasExtra(path, "message_field_role", "message_field_content") {
		ds.MessagePropertyMappings = map[string]string{"role": "from", "content": "value"}
	}
	if name := ds.Conversation; name != "" {
		ds.Conversation = ""
		switch {
		case ds.ChatTemplate != "":
			d.warn(path+".conversation", "ignored: chat_template: %s is given", ds.ChatTemplate)
		case !isNamedChatTemplate(name):
			d.fail(path+".conversation", "conversation: %s has no chat_template of that name; set chat_template (one of %s) or chat_template_jinja",
				name, strings.Join(namedChatTemplates, ", "))
		default:
			ds.ChatTemplate = name
		}
	}
	human, model := "human", "gpt"
	customRoles := false
	if e, ok := legacy["field_human"]; ok && d.decodeString(e.value, path+".field_human", &human) {
		customRoles = true
	}
	if e, ok := legacy["field_model"]; ok && d.decodeString(e.value, path+".field_model", &model) {
		customRoles = true
	}
	if customRoles && len(ds.Roles) == 0 {
		ds.Roles = defaultRoles()
		ds.Roles["user"] = []string{human}
		ds.Roles["assistant"] = []string{model}
	}
}

func (d *decoder) hasExtra(path string, keys ...string) bool {
	for _, k := range keys {
		if e, ok := d.extra[path+"."+k]; ok && e.value.kind != kindNull {
			return true
		}
	}
	return false
}

// foldMessageFields moves the deprecated message_field_role and
// message_field_content into message_property_mappings, refusing a
// conflict, as Axolotl's handle_legacy_message_fields_logic does.
func (d *decoder) foldMessageFields(ds *Dataset, path string) {
	for _, f := range []struct{ key, prop string }{{"message_field_role", "role"}, {"message_field_content", "content"}} {
		e, ok := d.extra[path+"."+f.key]
		if !ok || e.value.kind == kindNull {
			continue
		}
		p := path + "." + f.key
		var v string
		if !d.decodeString(e.value, p, &v) {
			continue
		}
		if ds.MessagePropertyMappings == nil {
			ds.MessagePropertyMappings = map[string]string{}
		}
		if prev, ok := ds.MessagePropertyMappings[f.prop]; ok && prev != v {
			d.errorf(e.keyPos, p, "%s: %s conflicts with message_property_mappings.%s: %s", f.key, v, f.prop, prev)
			continue
		}
		ds.MessagePropertyMappings[f.prop] = v
		d.warnf(e.keyPos, p, "%s is deprecated; read as message_property_mappings: {%s: %s}", f.key, f.prop, v)
	}
}
