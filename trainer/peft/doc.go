// Package peft reads and writes PEFT LoRA adapter directories exactly as the
// peft library (0.21) does: adapter_config.json with PEFT's full field set,
// sorted keys and Python's JSON spelling, and adapter_model.safetensors with
// PEFT's saved key names (`base_model.model.<module>.lora_A.weight`, no
// adapter name; modules_to_save as `base_model.model.<module>.weight`).
//
// It owns the mapping between those names, PEFT's in-memory names (with
// ".default") and eft's module paths (the Hugging Face module names such as
// "model.layers.0.self_attn.q_proj"); target-module matching as PEFT does it
// (names, suffixes, a regex, "all-linear", layers_to_transform,
// exclude_modules) with a clear error for a target that matches nothing;
// per-module rank and alpha (rank_pattern, alpha_pattern) and the scaling
// alpha/r, or alpha/sqrt(r) with use_rslora; modules_to_save as
// ensure_weight_tying rewrites it for a tied model (TieModulesToSave); and
// merging a LoRA pair into a base weight (W += scaling·B·A).
//
// The engine (trainer/lora) owns the LoRA forward and backward passes.
package peft
