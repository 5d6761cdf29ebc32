// Package blas owns eft's single-precision matrix multiply (GEMM) on the CPU.
//
// Sgemm (and SgemmStridedBatched for batches) is the one entry point the
// engine uses for every matrix product. It calls OpenBLAS's sgemm_ when
// libopenblas can be loaded at run time (through purego, so eft still builds
// with CGO_ENABLED=0) and a pure-Go blocked GEMM with an AVX2+FMA assembly
// micro-kernel otherwise; EFT_BLAS=go or ForceGo choose the Go kernel.
// Implementation says which one is in use, MeasurePeak what it reaches.
//
// Both run one OS thread per core given by SetThreads (default GOMAXPROCS),
// splitting a product between goroutines themselves: OpenBLAS is held to
// one thread per call. Any number of goroutines may call Sgemm at once.
// Design notes and figures: docs/blas.md.
//
// It does not own tensors, shapes beyond m, n, k and strides, or any other
// BLAS routine.
package blas
