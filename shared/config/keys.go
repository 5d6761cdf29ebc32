package config

import (
	"strings"
)

// keyRule says what to do with a key that is not a field of the struct
// being decoded: decode it as another field (an alias), or check it.
type keyRule struct {
	alias  string // decode into this field instead
	reason string // for an alias: a warning to give (deprecated spellings)
	check  func(d *decoder, e entry, path string)
}

// isActive reports whether a value turns a feature on: anything but null,
// false, 0, an empty string, list or mapping. Axolotl example configs list
// many keys with empty values (`deepspeed:`); those must not fail.
func isActive(n *node) bool {
	switch n.kind {
	case kindNull:
		return false
	case kindSeq:
		return len(n.items) > 0
	case kindMap:
		return len(n.entries) > 0
	}
	switch strings.ToLower(n.text) {
	case "", "false", "no", "off", "0", "0.0", "none":
		return false
	}
	return true
}

// aboveOne is the "active" test for parallelism degrees, where 1 is off.
func aboveOne(n *node) bool {
	return isActive(n) && n.text != "1" && n.text != "1.0"
}

// ignored accepts a key that does not change what eft trains, with a
// warning when it is set so nobody expects it to do something.
func ignored(reason string) keyRule { return approximated("ignored: " + reason) }

// approximated accepts a key eft honours in part, with a warning saying
// what differs when it is set.
func approximated(what string) keyRule {
	return keyRule{check: func(d *decoder, e entry, path string) {
		d.pos[path] = e.keyPos
		if isActive(e.value) {
			d.warnf(e.keyPos, path, "%s", what)
		}
	}}
}

// unsupported refuses a key eft knows but cannot honour, unless it is off.
func unsupported(reason string) keyRule {
	return unsupportedWhen(isActive, reason)
}

func unsupportedWhen(active func(*node) bool, reason string) keyRule {
	return keyRule{check: func(d *decoder, e entry, path string) {
		d.pos[path] = e.keyPos
		if active(e.value) {
			d.errorf(e.keyPos, path, "not supported by eft: %s", reason)
		}
	}}
}

// deferred keeps a key's node for normalize, which folds it into other
// fields (batch_size, legacy attention flags, legacy sharegpt keys).
func deferred() keyRule {
	return keyRule{check: func(d *decoder, e entry, path string) {
		d.pos[path] = e.keyPos
		if d.extra == nil {
			d.extra = map[string]entry{}
		}
		d.extra[path] = e
	}}
}

func alias(target, warning string) keyRule { return keyRule{alias: target, reason: warning} }

// ruleGroup is one rule for several keys.
type ruleGroup struct {
	rule keyRule
	keys []string
}

func group(rule keyRule, keys ...string) ruleGroup { return ruleGroup{rule, keys} }

// classify builds a key table from groups; a key in two groups is a bug.
func classify(groups ...ruleGroup) map[string]keyRule {
	table := map[string]keyRule{}
	for _, g := range groups {
		for _, k := range g.keys {
			if _, dup := table[k]; dup {
				panic("config: key classified twice: " + k)
			}
			table[k] = g.rule
		}
	}
	return table
}

// Reasons shared by many keys.
const (
	whyTracker    = "eft records metrics in its own tracker (eft runs, eft logs); it calls no external experiment tracker"
	whyHub        = "eft does not push models or datasets to the Hugging Face Hub"
	whyTuning     = "a PyTorch/accelerate performance or memory knob; eft schedules its own kernels, memory and workers"
	whyKernels    = "an Axolotl/Triton kernel switch; eft's kernels are its own and compute the same values"
	whyInternal   = "an Axolotl-internal value"
	whyGeneration = "eft's evaluator reports eval loss and perplexity; it runs no extra sample generation or metrics"
	whyDist       = "eft scales out with data-parallel trainer ranks (world_size), not DeepSpeed/FSDP/model parallelism"
	whyRL         = "eft trains supervised fine-tunes (SFT) only; preference and RL training (DPO, KTO, ORPO, GRPO, reward models) is not implemented"
	whyQuant      = "eft quantizes only to NF4 for QLoRA (load_in_4bit)"
	whyOptim      = "eft implements AdamW and SGD with their standard hyperparameters only"
	whySchedule   = "eft implements transformers' schedules with their default arguments (and cosine_min_lr_ratio) only"
	whyPEFT       = "eft implements plain LoRA (rank, alpha, rsLoRA, dropout, target modules, modules_to_save) only"
	whyMultimodal = "eft trains text-only causal language models"
	whyOffload    = "eft does not offload activations or weights to CPU or disk; it keeps them in device memory"
	whyRemoved    = "removed from Axolotl itself"
	whyData       = "eft's data pipeline does not implement this data option"
)

// topLevelRules classifies every top-level Axolotl key that is not a field
// of Config. The list follows Axolotl's pydantic schema
// (src/axolotl/utils/schemas); TestEveryAxolotlKeyIsClassified holds it to
// testdata/configs/axolotl-keys.txt.
var topLevelRules = classify(
	group(alias("revision_of_model", ""),
		"model_revision"),
	group(alias("model_type", ""),
		"type_of_model"),
	group(alias("eval_strategy", "evaluation_strategy is deprecated; read as eval_strategy"),
		"evaluation_strategy"),
	group(deferred(),
		"batch_size", "flash_attention", "sdp_attention", "xformers_attention", "sage_attention",
		"flex_attention", "eager_attention", "plugins"),
	group(ignored(whyTracker),
		"use_wandb", "wandb_project", "wandb_entity", "wandb_watch", "wandb_name", "wandb_run_id",
		"wandb_log_model", "wandb_mode", "use_mlflow", "mlflow_tracking_uri", "mlflow_experiment_name",
		"mlflow_run_name", "hf_mlflow_log_artifacts", "use_comet", "comet_api_key", "comet_workspace",
		"comet_project_name", "comet_experiment_key", "comet_mode", "comet_online",
		"comet_experiment_config", "use_trackio", "trackio_project_name", "trackio_run_name",
		"trackio_space_id", "use_tensorboard"),
	group(ignored("eft exports OpenTelemetry through its own telemetry settings"),
		"use_otel_metrics", "otel_metrics_host", "otel_metrics_port"),
	group(ignored("eft always reports tokens/s"),
		"include_tokens_per_second", "include_tkps"),
	group(ignored("the PyTorch profiler does not apply to eft"),
		"profiler_steps", "profiler_steps_start"),
	group(ignored("eft has no loss watchdog; watch the run with eft logs"),
		"loss_watchdog_threshold", "loss_watchdog_patience"),
	group(ignored("eft inference is a terminal command"),
		"gradio_title", "gradio_share", "gradio_server_name", "gradio_server_port", "gradio_max_new_tokens",
		"gradio_temperature"),
	group(ignored(whyGeneration),
		"generate_samples", "num_generation_samples", "generation_max_new_tokens", "generation_temperature",
		"generation_top_p", "generation_top_k", "generation_prompt_ratio", "generation_do_sample",
		"do_causal_lm_eval", "eval_causal_lm_metrics", "do_bench_eval", "bench_dataset", "bench_split",
		"eval_table_size", "eval_max_new_tokens"),
	group(ignored("eft keeps the last checkpoints (save_total_limit), not the best one"),
		"metric_for_best_model", "greater_is_better"),
	group(ignored("eft saves on save_steps/saves_per_epoch and when a run is cancelled"),
		"dynamic_checkpoint"),
	group(ignored("eft saves on save_steps/saves_per_epoch"),
		"save_first_step"),
	group(ignored("eft always saves the trainer state with a checkpoint, so every checkpoint can be resumed"),
		"save_only_model"),
	group(ignored(whyHub),
		"hub_model_id", "hub_strategy", "hub_revision", "push_dataset_to_hub"),
	group(ignored("eft reads a hub token from HF_TOKEN when it downloads"),
		"hf_use_auth_token"),
	group(ignored(whyTuning),
		"dataset_num_proc", "dataset_processes", "dataset_keep_in_memory", "dataloader_num_workers",
		"dataloader_pin_memory", "dataloader_prefetch_factor", "remove_unused_columns",
		"accelerator_config", "device", "device_map", "max_memory", "gpu_memory_limit", "low_cpu_mem_usage",
		"ddp", "ddp_timeout", "ddp_bucket_cap_mb", "ddp_broadcast_buffers", "ddp_find_unused_parameters",
		"torch_compile", "torch_compile_backend", "torch_compile_mode", "torch_compile_options",
		"torch_empty_cache_steps", "gc_steps", "gc_collect_steps", "selective_checkpointing", "tiled_mlp",
		"tiled_mlp_num_shards", "tiled_mlp_use_original_mlp", "lora_on_cpu",
		"experimental_skip_move_to_device", "embeddings_skip_upcast", "sample_packing_mp_start_method",
		"num_dataset_shards_to_save"),
	group(ignored(whyInternal),
		"local_rank", "sample_packing_eff_est", "multipack_real_batches", "axolotl_config_path",
		"is_preprocess", "preprocess_iterable", "total_num_tokens", "total_supervised_tokens",
		"is_falcon_derived_model", "is_llama_derived_model", "is_mistral_derived_model",
		"is_qwen_derived_model", "capabilities", "env_capabilities"),
	group(ignored("eft's gradient checkpointing recomputes each layer; it has no reentrant variants"),
		"gradient_checkpointing_kwargs"),
	group(ignored(whyKernels),
		"lora_mlp_kernel", "lora_qkv_kernel", "lora_o_kernel", "lora_embedding_kernel",
		"flash_attn_cross_entropy", "flash_attn_fuse_mlp", "flash_optimum", "flex_attn_compile_kwargs",
		"sdpa_varlen", "fused_attn_kernel", "large_head_attention", "flash_attn_d512",
		"gemma4_hybrid_attn_impl", "use_kernels", "experts_implementation", "llama4_linearized_experts",
		"batch_flattening"),
	group(ignored("eft's cross-entropy is always computed in chunks"),
		"chunked_cross_entropy", "chunked_cross_entropy_num_chunks"),
	group(ignored("eft packs all samples at once (first-fit decreasing)"),
		"sample_packing_group_size", "sample_packing_bin_size"),
	group(ignored("padding does not change the loss; eft pads rows as its batch encoding needs"),
		"pad_to_multiple_of"),
	group(ignored("eft always uses the fast tokenizer (tokenizer.json)"),
		"tokenizer_use_fast", "tokenizer_legacy"),
	group(ignored("eft writes the tokenizer files as it read them"),
		"tokenizer_save_jinja_files"),
	group(ignored("eft reads config.json itself"),
		"cls_model_config"),
	group(ignored("eft always tokenizes through its cached preprocessing stage"),
		"skip_prepare_dataset"),
	group(ignored("eft's merger produces the same weights whatever the method"),
		"merge_method"),
	group(ignored("used only with loraplus_lr_ratio"),
		"loraplus_lr_embedding"),
	group(ignored("an FSDP loading path"),
		"qlora_sharded_model_loading"),
	group(ignored("eft keeps adapter weights in fp32"),
		"peft_autocast_adapter_dtype"),
	group(ignored("eft's CPU backend always computes in fp32"),
		"float32"),
	group(ignored(whyDist),
		"fp8_enable_fsdp_float8_all_gather", "fsdp_version", "fsdp_final_state_dict_type", "heads_k_stride",
		"ring_attn_func", "ray_run_name", "ray_num_workers", "resources_per_worker"),
	group(ignored("used only with pretraining_dataset"),
		"pretrain_multipack_attn"),
	group(ignored("used only with streaming"),
		"streaming_multipack_buffer_size", "pretrain_multipack_buffer_size"),
	group(ignored("used only with the dion optimizer"),
		"dion_rank_fraction", "dion_rank_multiple_of"),
	group(ignored("used only with Q-GaLore"),
		"qgalore_rank", "qgalore_update_proj_gap", "qgalore_scale", "qgalore_proj_type",
		"qgalore_proj_quant", "qgalore_proj_bits", "qgalore_proj_group_size", "qgalore_cos_threshold",
		"qgalore_gamma_proj", "qgalore_queue_size"),
	group(ignored("used only with use_eaft"),
		"eaft_alpha", "eaft_k"),
	group(ignored("used only with scaling_softmax"),
		"scaling_softmax_factor", "scaling_softmax_bias"),
	group(ignored("used only with lisa_n_layers"),
		"lisa_step_interval", "lisa_layers_attribute"),
	group(ignored("used only with relora"),
		"relora_prune_method", "relora_prune_ratio", "relora_cpu_offload"),
	group(unsupported(whyDist),
		"deepspeed", "deepcompile", "fsdp", "fsdp_config", "fp32_norms", "fp32_norm_classes", "use_ray"),
	group(unsupportedWhen(aboveOne, whyDist),
		"context_parallel_size", "sequence_parallel_degree", "tensor_parallel_size", "dp_shard_size",
		"dp_replicate_size"),
	group(unsupported(whyRL),
		"rl", "trl", "vllm", "ebft", "reward_model", "process_reward_model", "center_rewards_coefficient",
		"num_labels", "dpo_beta", "dpo_use_weighting", "dpo_label_smoothing", "dpo_use_liger_kernel",
		"dpo_padding_free", "dpo_loss_type", "dpo_loss_weights", "dpo_use_logits_to_keep",
		"dpo_generate_during_eval", "dpo_norm_loss", "precompute_ref_log_probs", "kto_desirable_weight",
		"kto_undesirable_weight", "orpo_alpha", "simpo_gamma", "cpo_alpha", "rl_beta", "rpo_alpha",
		"max_prompt_len"),
	group(unsupported("eft runs no custom Python trainer classes"),
		"trainer_cls"),
	group(unsupported(whyQuant),
		"gptq", "qat", "quantization", "model_quantization_config", "model_quantization_config_kwargs",
		"quantize_moe_experts", "use_onebitllms"),
	group(unsupported("eft trains in bf16 (GPU) or fp32 (CPU); fp8 training is not implemented"),
		"fp8"),
	// Axolotl's bfloat16 loads the model in bf16 and trains without AMP.
	// With an adapter that is what eft does (PEFT keeps adapters in fp32
	// too); a full fine-tune differs in its master weights.
	group(approximated("eft loads the frozen base in bf16 on a GPU as bfloat16 does, but keeps trainable weights "+
		"(LoRA adapters, as PEFT does; every weight in a full fine-tune) and the optimizer state in fp32 with bf16 compute: "+
		"a full fine-tune takes more memory than pure bf16 and rounds less"),
		"bfloat16"),
	group(unsupported("eft has no fp16 training; use bf16"),
		"float16"),
	group(unsupported("eft's 4-bit quantization has Axolotl's fixed QLoRA settings (NF4, blocks of 64, double quantization on; the CPU computes in float32); bitsandbytes options do not apply"),
		"bnb_config_kwargs"),
	group(unsupported(whyOptim),
		"optim_args", "optim_target_modules", "torchdistx_path", "adam_beta3", "adam_epsilon2", "dion_lr",
		"dion_momentum", "embedding_lr", "embedding_lr_scale", "lr_groups", "loraplus_lr_ratio"),
	group(unsupported(whySchedule),
		"lr_scheduler_kwargs", "lr_quadratic_warmup", "cosine_constant_lr_ratio", "lr_div_factor",
		"jagged_restart_steps", "jagged_restart_warmup_steps", "jagged_restart_anneal_steps"),
	group(unsupported(whyPEFT),
		"relora", "peft", "peft_use_dora", "peft_layer_replication", "peft_layers_pattern",
		"peft_layers_to_transform", "peft_trainable_token_indices",
		"lora_target_parameters", "lora_rank_pattern", "lora_alpha_pattern", "lisa_n_layers"),
	group(unsupportedWhen(func(n *node) bool { return isActive(n) && strings.ToLower(n.text) != "true" }, "eft initialises LoRA weights the standard way (peft's init_lora_weights: true)"),
		"peft_init_lora_weights"),
	group(unsupported("eft's model families use nn.Linear layout, never Conv1D"),
		"lora_fan_in_fan_out"),
	group(unsupported("eft trains all weights (full fine-tune) or the adapter only"),
		"unfrozen_parameters"),
	group(unsupported(whyMultimodal),
		"freeze_mm_modules", "processor_type", "processor_kwargs", "image_size", "image_resize_algorithm",
		"role_boundaries"),
	group(ignored(whyOffload+" (more memory, the same training)"),
		"activation_offloading", "layer_offloading"),
	group(unsupported("NEFTune embedding noise is not implemented"),
		"neftune_noise_alpha", "noisy_embedding_alpha"),
	group(unsupported("eft's loss is plain token cross-entropy"),
		"use_eaft"),
	group(unsupported("eft's attention is standard scaled dot-product attention"),
		"scaling_softmax"),
	group(unsupported("PoSE context extension is not implemented"),
		"use_pose", "pose_split_on_token_ids", "pose_max_context_len", "pose_num_chunks"),
	group(unsupported("eft tokenizes datasets ahead of training; streamed pretraining datasets are not implemented (use type: completion)"),
		"pretraining_dataset"),
	group(unsupported("eft tokenizes datasets ahead of training; streaming is not implemented"),
		"streaming"),
	group(unsupported(whyData),
		"pretraining_sample_concatenation", "shuffle_before_merging_datasets", "curriculum_sampling",
		"sample_packing_sequentially", "group_by_length", "dataloader_drop_last", "dataset_shard_num",
		"dataset_shard_idx", "min_sample_len"),
	group(unsupported("evaluation uses sequence_len"),
		"eval_sequence_len"),
	group(unsupported("set the system message in a chat_template_jinja template instead"),
		"default_system_message"),
	group(unsupported("eft adds tokens (tokens, special_tokens) but does not rename existing ones"),
		"added_tokens_overrides"),
	group(unsupported("eft does not re-initialise token embeddings"),
		"fix_untrained_tokens"),
	group(unsupported("eft initialises new token embeddings the transformers way (resize_token_embeddings)"),
		"mean_resizing_embeddings"),
	group(unsupported("eft resizes embeddings to exactly the tokenizer's size"),
		"resize_token_embeddings_to_32x"),
	group(unsupported("eft does not shrink embeddings"),
		"shrink_embeddings"),
	group(unsupported("eft fine-tunes pretrained weights"),
		"reinit_weights"),
	group(unsupported("eft reads the model's config.json as is; edit a local copy of the model instead"),
		"model_config"),
	group(unsupported("eft reads the model's config.json as is"),
		"model_kwargs"),
	group(unsupported("eft does not search for a batch size; set micro_batch_size"),
		"auto_find_batch_size"),
	group(unsupported("eft's final model is the last step's"),
		"load_best_model_at_end"),
	group(unsupported("early stopping is not implemented"),
		"early_stopping_patience"),
	group(unsupported("eft reads tokenizer.json (Hugging Face tokenizers) only"),
		"tokenizer_use_mistral_common"),
	group(unsupportedWhen(func(n *node) bool { return n.kind != kindNull && !isActive(n) }, "eft always writes safetensors (Axolotl itself rejects save_safetensors: false)"),
		"save_safetensors"),
	group(unsupported(whyRemoved+"; use sample_packing"),
		"max_packed_sequence_len"),
	group(unsupported(whyRemoved+"; rope scaling comes from the model's config.json"),
		"rope_scaling"),
	group(unsupported(whyRemoved),
		"s2_attention", "flash_attn_rms_norm", "unsloth_lora_mlp", "unsloth_lora_qkv", "unsloth_lora_o",
		"unsloth_rms_norm", "unsloth_rope"),
	group(unsupported(whyRemoved+" (use the lora_*_kernel keys; eft has its own kernels)"),
		"unsloth_cross_entropy_loss"),
)

// datasetRules classifies the keys of a datasets entry that are not
// fields of Dataset.
var datasetRules = classify(
	group(deferred(),
		"message_field_role", "message_field_content", "field_human", "field_model"),
	group(unsupported(whyData),
		"shards", "shards_idx", "preprocess_shards", "input_transform", "input_format"),
	group(unsupported("tool definitions in chat datasets are not implemented"),
		"field_tools"),
	group(unsupported("reasoning traces in chat datasets are not implemented"),
		"field_thinking", "template_thinking_key", "split_thinking"),
	group(unsupported("per-character training spans are not implemented; use message_field_training"),
		"message_field_training_detail"),
	group(unsupported(whyRL),
		"logprobs_field", "temperature"),
	group(unsupported("put field_system in a user-defined type: mapping"),
		"field_system"),
	group(unsupported("put field_instruction in a user-defined type: mapping"),
		"field_instruction"),
	group(unsupported("put field_input in a user-defined type: mapping"),
		"field_input"),
	group(unsupported("put field_output in a user-defined type: mapping"),
		"field_output"),
	group(unsupported("put format in a user-defined type: mapping"),
		"format"),
	group(unsupported("put no_input_format in a user-defined type: mapping"),
		"no_input_format"),
)

// speedPlugins are Axolotl plugins that only swap in faster kernels; eft
// accepts them (and their keys) with a warning. Any other plugin changes
// what is trained and is refused.
var speedPlugins = map[string]string{
	"axolotl.integrations.liger.LigerPlugin":                       "liger_",
	"axolotl.integrations.cut_cross_entropy.CutCrossEntropyPlugin": "cut_cross_entropy",
}

// valueHooks check values that cannot be decoded into their field as is;
// a hook returns false when it has dealt with the value.
var valueHooks = map[string]func(d *decoder, n *node, path string) bool{
	"gradient_checkpointing": func(d *decoder, n *node, path string) bool {
		// "offload" (Axolotl's activation offloading) checkpoints as true
		// does, keeping the layer inputs in device memory: more memory, the
		// same gradients.
		if n.kind == kindScalar && n.scalar == scalarString && strings.HasPrefix(n.text, "offload") {
			d.warnf(n.pos, path, "gradient_checkpointing: %s read as true: %s", n.text, whyOffload)
			n.scalar, n.text = scalarBool, "true"
		}
		return true
	},
}
