// Package cpu is the CPU implementation of backend.Backend: every op of the
// decoder, forward and backward side by side (one file per family of ops, the
// llm.c way), as goroutine-parallel Go kernels over float32 slices. Matrix
// products go through one GEMM, trainer/blas.Sgemm (gemm.go), which uses
// blas.Threads() threads whatever the backend's worker count.
// Attention is computed block by block from GEMMs, saving only the
// log-sum-exp of each query, and recomputes its weights in the backward pass,
// so its memory grows with the sequence, not its square.
//
// A CPU value is not safe for concurrent use: ops share its scratch buffers.
// It does not own model structure (trainer/model) or optimizers
// (trainer/optim).
package cpu
