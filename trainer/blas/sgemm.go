package blas

import (
	"errors"
	"fmt"
	"math"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
)

// Sgemm computes C = alpha*op(A)*op(B) + beta*C for row-major matrices,
// op(X) = X or Xᵀ. A is m×k (k×m if transA), B is k×n (n×k if transB), C is
// m×n; lda/ldb/ldc are row strides. When beta is 0, C is only written, never
// read, so NaN or Inf already in C does not leak into the result.
//
// Arguments that do not describe valid matrices (negative sizes, a stride
// shorter than a row, a slice too short for its matrix) are programming
// errors and panic with a message naming the argument.
func Sgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	checkArgs(transA, transB, m, n, k, a, lda, b, ldb, c, ldc)
	if m == 0 || n == 0 {
		return
	}
	if lib := active(); lib != nil && fitsInt32(m, n, k, lda, ldb, ldc) {
		lib.sgemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		return
	}
	goSgemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

// Implementation names the GEMM in use: "openblas (path)" or "go".
func Implementation() string {
	if lib := active(); lib != nil {
		return "openblas (" + lib.path + ")"
	}
	return "go"
}

// OpenBLASError says why OpenBLAS is not in use: EFT_BLAS=go, ForceGo, or
// for each place looked at, why it did not load. It is nil when OpenBLAS is
// in use.
func OpenBLASError() error {
	if library() != nil && forceGo.Load() {
		return errors.New("blas.ForceGo(true)")
	}
	return loaded.err
}

// forceGo is the ForceGo setting.
var forceGo atomic.Bool

// ForceGo makes Sgemm use the Go kernel even where OpenBLAS is loaded (true)
// or go back to OpenBLAS when it is (false). It is for programs and tests
// that need the Go kernel's guarantee that an element of C does not depend
// on m, n or the thread count (OpenBLAS's kernels change with the shape, so
// its results differ in the last bits); EFT_BLAS=go does the same for a
// whole process from outside.
func ForceGo(force bool) {
	forceGo.Store(force)
}

// active is the loaded OpenBLAS unless ForceGo is on; nil means the Go
// kernel.
func active() *openBLAS {
	if forceGo.Load() {
		return nil
	}
	return library()
}

var loaded struct {
	once sync.Once
	lib  *openBLAS
	err  error
}

// library loads OpenBLAS on first use, unless EFT_BLAS=go; nil means the Go
// kernel.
func library() *openBLAS {
	loaded.once.Do(func() {
		if os.Getenv("EFT_BLAS") == "go" {
			loaded.err = fmt.Errorf("EFT_BLAS=go")
			return
		}
		loaded.lib, loaded.err = loadOpenBLAS()
	})
	return loaded.lib
}

func fitsInt32(xs ...int) bool {
	for _, x := range xs {
		if x > math.MaxInt32 {
			return false
		}
	}
	return true
}

func checkArgs(transA, transB bool, m, n, k int, a []float32, lda int, b []float32, ldb int, c []float32, ldc int) {
	if m < 0 || n < 0 || k < 0 {
		panic(fmt.Sprintf("blas.Sgemm: negative size m=%d n=%d k=%d", m, n, k))
	}
	aRows, aCols := m, k
	if transA {
		aRows, aCols = k, m
	}
	bRows, bCols := k, n
	if transB {
		bRows, bCols = n, k
	}
	checkMatrix("A", aRows, aCols, a, lda)
	checkMatrix("B", bRows, bCols, b, ldb)
	checkMatrix("C", m, n, c, ldc)
}

func checkMatrix(name string, rows, cols int, x []float32, ld int) {
	if ld < max(cols, 1) {
		panic(fmt.Sprintf("blas.Sgemm: ld%s=%d is less than the %d columns of %s", name, ld, cols, name))
	}
	if rows == 0 || cols == 0 {
		return
	}
	if need := (rows-1)*ld + cols; len(x) < need {
		panic(fmt.Sprintf("blas.Sgemm: %s has %d elements, a %d×%d matrix with stride %d needs %d", name, len(x), rows, cols, ld, need))
	}
}

// threadSetting is the SetThreads setting; 0 means GOMAXPROCS.
var threadSetting atomic.Int64

// SetThreads sets how many goroutines (Go kernel) or threads (OpenBLAS) one
// Sgemm call may use; n <= 0 restores the default, GOMAXPROCS. It is
// process-wide, like OpenBLAS's own setting.
func SetThreads(n int) {
	threadSetting.Store(int64(max(n, 0)))
}

// Threads returns how many goroutines or threads one Sgemm call may use.
func Threads() int {
	if n := threadSetting.Load(); n > 0 {
		return int(n)
	}
	return runtime.GOMAXPROCS(0)
}
