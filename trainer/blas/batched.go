package blas

import (
	"fmt"

	"github.com/eftml/eft/shared/parallel"
)

// batchedParallelFlops is the size of one product below which a batch runs
// its products side by side on goroutines (each single-threaded) rather
// than one after another (each split between goroutines).
const batchedParallelFlops = 1 << 23

// SgemmStridedBatched computes batch independent products
//
//	C_i = alpha*op(A_i)*op(B_i) + beta*C_i,  i = 0..batch-1,
//
// where A_i starts at a[i*strideA], B_i at b[i*strideB] and C_i at
// c[i*strideC], each laid out as for Sgemm. A stride of 0 shares one matrix
// between all products (A and B only). The C_i must not overlap. Small
// products run side by side on Threads() goroutines, large ones one after
// another, each split as Sgemm splits it.
func SgemmStridedBatched(transA, transB bool, m, n, k int, alpha float32, a []float32, lda, strideA int, b []float32, ldb, strideB int, beta float32, c []float32, ldc, strideC int, batch int) {
	if batch < 0 || strideA < 0 || strideB < 0 || strideC < 0 {
		panic(fmt.Sprintf("blas.SgemmStridedBatched: negative batch or stride (batch=%d strideA=%d strideB=%d strideC=%d)", batch, strideA, strideB, strideC))
	}
	if batch == 0 {
		return
	}
	checkArgs(transA, transB, m, n, k, a, lda, b, ldb, c, ldc)
	if batch > 1 && m > 0 && n > 0 && strideC < (m-1)*ldc+n {
		panic(fmt.Sprintf("blas.SgemmStridedBatched: strideC=%d makes the %d×%d products overlap (ldc=%d)", strideC, m, n, ldc))
	}
	aRows, aCols := m, k
	if transA {
		aRows, aCols = k, m
	}
	bRows, bCols := k, n
	if transB {
		bRows, bCols = n, k
	}
	checkBatchExtent("A", aRows, aCols, lda, a, strideA, batch)
	checkBatchExtent("B", bRows, bCols, ldb, b, strideB, batch)
	checkBatchExtent("C", m, n, ldc, c, strideC, batch)
	one := func(i int) {
		Sgemm(transA, transB, m, n, k, alpha, a[i*strideA:], lda, b[i*strideB:], ldb, beta, c[i*strideC:], ldc)
	}
	flops := 2 * float64(m) * float64(n) * float64(k)
	workers := min(Threads(), batch)
	if flops >= batchedParallelFlops || workers <= 1 {
		for i := range batch {
			one(i)
		}
		return
	}
	parallel.Chunks(batch, 1, workers, func(_, i, _ int) bool {
		one(i)
		return true
	})
}

// checkBatchExtent panics unless the last of batch rows×cols matrices,
// stride apart, fits in x.
func checkBatchExtent(name string, rows, cols, ld int, x []float32, stride, batch int) {
	if rows == 0 || cols == 0 {
		return
	}
	if need := (batch-1)*stride + (rows-1)*ld + cols; len(x) < need {
		panic(fmt.Sprintf("blas.SgemmStridedBatched: %s has %d elements, %d %d×%d matrices with stride %d and ld%s=%d need %d",
			name, len(x), batch, rows, cols, stride, name, ld, need))
	}
}
