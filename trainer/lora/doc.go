// Package lora attaches LoRA adapters to a model.Model as PEFT would from an
// adapter_config (trainer/peft decides which modules are targets, their rank
// and scaling); initialises them as PEFT does (init_lora_weights true, false
// or "gaussian"); makes the adapters and modules_to_save trainable and
// freezes everything else (on a model with tied embeddings, lm_head or
// embed_tokens in modules_to_save untie them, or with ensure_weight_tying
// train the shared weight, as PEFT does); loads and exports adapters in
// PEFT's layout (peft.Adapter); and merges them into the base weights on
// the model's backend (merge_and_unload).
//
// The adapted forward and backward passes themselves are the model's
// (model.Linear with a LoRA).
package lora
