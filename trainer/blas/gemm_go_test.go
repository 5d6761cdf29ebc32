package blas

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
)

// The Go GEMM sums every element of C in the same order whatever the rest
// of the product looks like: a row or column block computed on its own, in
// place or packed, on one goroutine or several, gives bit-identical values.
// Callers rely on this to make results independent of how they batch work
// (the loss head's chunking, the number of cores).
func TestGoSgemmElementsIndependentOfShapeAndThreads(t *testing.T) {
	splitSmallProducts(t)
	r := rand.New(rand.NewPCG(5, 6))
	kernels := []*kernel{genericKernel}
	if activeKernel != genericKernel {
		kernels = append(kernels, activeKernel)
	}
	const m, n, k = 150, 90, 600 // several k slices; packed A and B for the whole
	for _, kern := range kernels {
		for _, tA := range []bool{false, true} {
			for _, tB := range []bool{false, true} {
				for _, beta := range []float32{0, 1, 0.5} {
					t.Run(fmt.Sprintf("%s/tA=%v/tB=%v/beta=%g", kern.name, tA, tB, beta), func(t *testing.T) {
						lda, ldb := k, n
						if tA {
							lda = m
						}
						if tB {
							ldb = k
						}
						a := randMatrix(r, m*k, 1)
						b := randMatrix(r, k*n, 1)
						c0 := randMatrix(r, m*n, 1)
						run := func(threads, i0, i1, j0, j1 int) []float32 {
							SetThreads(threads)
							defer SetThreads(0)
							c := append([]float32(nil), c0...)
							aOff, bOff := i0*lda, j0
							if tA {
								aOff = i0
							}
							if tB {
								bOff = j0 * ldb
							}
							gemmWith(kern, tA, tB, i1-i0, j1-j0, k, 0.75, a[aOff:], lda, b[bOff:], ldb, beta, c[i0*n+j0:], n)
							return c
						}
						whole := run(1, 0, m, 0, n)
						for _, part := range []struct{ threads, i0, i1, j0, j1 int }{
							{4, 0, m, 0, n},     // split into pieces between workers
							{1, 7, 29, 0, n},    // a few rows: B used in place when untransposed
							{1, 0, m, 5, 38},    // a few columns: A used in place
							{3, 13, 14, 61, 62}, // one element
							{2, 31, 149, 17, 89},
						} {
							got := run(part.threads, part.i0, part.i1, part.j0, part.j1)
							for i := part.i0; i < part.i1; i++ {
								for j := part.j0; j < part.j1; j++ {
									if got[i*n+j] != whole[i*n+j] {
										t.Fatalf("%+v: C[%d,%d] = %g, the whole product gives %g", part, i, j, got[i*n+j], whole[i*n+j])
									}
								}
							}
						}
					})
				}
			}
		}
	}
}

// Several goroutines multiplying at once share the parked helper
// goroutines, the pooled jobs and the workspace free list; every product
// must still be right (run with -race to check the hand-offs too).
func TestGoSgemmConcurrentCallers(t *testing.T) {
	splitSmallProducts(t)
	SetThreads(3) // more pieces and helpers than cores
	defer SetThreads(0)
	shapes := []gemmCase{
		{false, true, 300, 200, 100, 3, 1, 0},
		{true, false, 40, 500, 120, 0, 0.5, 1},
		{false, false, 33, 17, 65, 1, 1, 0},
		{true, true, 129, 130, 300, 2, -1, 0.25},
		{false, false, 200, 16, 700, 0, 2, 0}, // A in place
	}
	var wg sync.WaitGroup
	errs := make(chan string, 64)
	for g := range 6 {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(g), 8))
			for it := range 8 {
				tc := shapes[(g+it)%len(shapes)]
				if msg := runCase(tc, goSgemm, r); msg != "" {
					errs <- fmt.Sprintf("goroutine %d, product %d: %s", g, it, msg)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for msg := range errs {
		t.Error(msg)
	}
}

// TestGoSgemmSplit runs every case through the parallel path: products
// split into pieces between three workers, whatever their size.
func TestGoSgemmSplit(t *testing.T) {
	splitSmallProducts(t)
	SetThreads(3)
	defer SetThreads(0)
	testSgemm(t, goSgemm)
}

// splitSmallProducts lets the products of a test, small as they are, be
// split between goroutines, until the test ends.
func splitSmallProducts(t *testing.T) {
	saved := minParallelFlops
	minParallelFlops = 1 << 10
	t.Cleanup(func() { minParallelFlops = saved })
}
