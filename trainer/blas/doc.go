// Package blas owns eft's single-precision matrix multiply (GEMM) on the CPU.
//
// Sgemm is the one entry point the engine uses for every matrix product. It
// calls OpenBLAS's cblas_sgemm when libopenblas can be loaded at run time
// (through purego, so eft still builds with CGO_ENABLED=0) and a pure-Go
// kernel otherwise. Implementation says which one is in use.
//
// It does not own tensors, shapes beyond m, n, k and strides, or any other
// BLAS routine.
package blas
