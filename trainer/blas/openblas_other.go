//go:build !((linux || darwin) && (amd64 || arm64))

package blas

import "errors"

// openBLAS is not loadable on this platform (purego cannot pass float
// arguments or run without cgo here); the Go kernel is used.
type openBLAS struct {
	path, config string
}

func loadOpenBLAS() (*openBLAS, error) {
	return nil, errors.New("loading OpenBLAS is not supported on this platform")
}

func (l *openBLAS) call(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	panic("unreachable")
}

func (l *openBLAS) sgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	panic("unreachable")
}

func (l *openBLAS) threads() int         { return 0 }
func (l *openBLAS) setThreadCount(n int) {}
