// Package cuda is the engine's NVIDIA GPU backend: every op of
// trainer/backend on device memory, in a binary built with CGO_ENABLED=0.
//
// It owns: finding and opening the CUDA libraries at run time with purego
// (libcuda's driver API, cuBLASLt, NVRTC; libs.go), the one OS-thread-locked
// goroutine per device that makes every CUDA call (executor.go), a caching
// device allocator so the step loop never calls cuMemAlloc (alloc.go),
// pinned host staging for uploads, the CUDA C kernels embedded in the binary
// and compiled by NVRTC for the device's architecture on first use, cached on
// disk (kernels/, nvrtc.go), GEMMs through cuBLASLt (bf16 in, fp32
// accumulate; gemm.go, with converted operands kept in matmul.go), the ops
// themselves (ops*.go, attention.go; flash attention in kernels/flash.cu),
// the device AdamW with its multi-tensor gradient norm (adamw.go), and
// per-kernel timing under EFT_CUDA_PROFILE (profile.go).
//
// It does not own what the ops mean (trainer/backend and its CPU twin
// trainer/cpu define that), the model (trainer/model), nor choosing a
// backend for a run (the trainer service's configuration).
//
// Precision: trainable weights, gradients, optimizer state and activations
// are float32; frozen weights may be stored as bfloat16 (StoreFrozenBF16);
// with PrecisionBF16 every matrix product reads bf16 and accumulates in
// float32, with PrecisionFP32 they run in full float32 (the parity tests'
// setting). Reductions are float32 or float64.
package cuda
