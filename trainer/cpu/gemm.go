package cpu

import "github.com/eftml/eft/trainer/blas"

// sgemm is the single-precision GEMM behind every matrix product here,
// row-major: C = alpha·op(A)·op(B) + beta·C. It is trainer/blas.Sgemm
// (OpenBLAS when it loads, the Go kernel otherwise), which splits a large
// product between goroutines itself, so callers do not split it again.
func sgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	blas.Sgemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}
