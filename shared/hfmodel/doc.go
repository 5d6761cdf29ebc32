// Package hfmodel reads a Hugging Face model directory: which files it holds
// (config.json, safetensors weights with or without an index, tokenizer and
// generation files) and config.json parsed into a typed Config for the
// architectures eft trains (Supported: llama, mistral, qwen2, qwen3, gemma,
// gemma2, phi3) with transformers' defaults for absent keys, RoPE from both
// `rope_theta` + `rope_scaling` and transformers 5's `rope_parameters`
// (Phi-3's longrope included), and per-layer sliding windows resolved.
// Errors name the file and the key.
//
// Config.Params lists every weight tensor the config implies, with its HF name
// and shape in state-dict order, so loaders can check a weights file against
// the config and writers can save in the order transformers uses.
//
// It does not download (shared/hub does), tokenize (shared/tokenizer) or hold
// tensors (trainer/).
package hfmodel
