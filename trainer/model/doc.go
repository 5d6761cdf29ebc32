// Package model is the engine's one decoder implementation: the llama family
// (llama, mistral, qwen2, qwen3), gemma, gemma2 and phi3 through switches in
// Config — biases, q/k norm, head_dim, sliding window, tied embeddings, rope
// variant and scaling (longrope included), Gemma's embedding scale and
// (1 + w) norms, Gemma-2's sandwich norms, soft caps and attention scale,
// Phi-3's fused qkv and gate_up projections (one Linear each, its output
// split by rows into q, k, v or gate, up: Linear.Split).
// It loads a Hugging Face model directory, runs the forward pass, the
// explicit backward pass (llm.c style, one function per block, every buffer
// from one arena that is reused step after step), the chunked loss head, and
// incremental decoding with a KV cache.
//
// Linear layers may carry a LoRA adapter (A, B, scale, dropout); attaching
// adapters by PEFT's rules is trainer/lora's job, choosing what trains is the
// caller's (Param.G is nil for a frozen weight, and frozen weights get no
// gradient work they do not need). Optimizers live in trainer/optim, the step
// loop in trainer/train.
package model
