package blas

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

type sgemmFunc func(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int)

// refSgemm is the definition of GEMM evaluated in float64.
func refSgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) []float64 {
	out := make([]float64, m*n)
	for i := range m {
		for j := range n {
			var s float64
			for p := range k {
				var av, bv float32
				if transA {
					av = a[p*lda+i]
				} else {
					av = a[i*lda+p]
				}
				if transB {
					bv = b[j*ldb+p]
				} else {
					bv = b[p*ldb+j]
				}
				s += float64(av) * float64(bv)
			}
			v := float64(alpha) * s
			if beta != 0 {
				v += float64(beta) * float64(c[i*ldc+j])
			}
			out[i*n+j] = v
		}
	}
	return out
}

func randMatrix(r *rand.Rand, rows, ld int) []float32 {
	x := make([]float32, rows*ld)
	for i := range x {
		x[i] = float32(r.NormFloat64())
	}
	return x
}

type gemmCase struct {
	transA, transB bool
	m, n, k        int
	pad            int // extra columns in every stride
	alpha, beta    float32
}

func (g gemmCase) String() string {
	return fmt.Sprintf("tA=%v,tB=%v,m=%d,n=%d,k=%d,pad=%d,alpha=%g,beta=%g", g.transA, g.transB, g.m, g.n, g.k, g.pad, g.alpha, g.beta)
}

// checkCase runs one case through f and fails the test if runCase finds
// anything wrong.
func checkCase(t *testing.T, f sgemmFunc, g gemmCase, r *rand.Rand) {
	t.Helper()
	if msg := runCase(g, f, r); msg != "" {
		t.Fatal(msg)
	}
}

// runCase runs one case through f and compares every element of C with the
// float64 reference, and checks that the padding between rows is untouched.
// It returns what went wrong, or "" (so goroutines other than the test's
// can use it).
func runCase(g gemmCase, f sgemmFunc, r *rand.Rand) string {
	aRows, aCols := g.m, g.k
	if g.transA {
		aRows, aCols = g.k, g.m
	}
	bRows, bCols := g.k, g.n
	if g.transB {
		bRows, bCols = g.n, g.k
	}
	lda, ldb, ldc := aCols+g.pad, bCols+g.pad, g.n+g.pad
	lda, ldb, ldc = max(lda, 1), max(ldb, 1), max(ldc, 1)
	a := randMatrix(r, aRows, lda)
	b := randMatrix(r, bRows, ldb)
	c := randMatrix(r, g.m, ldc)
	const sentinel = 12345.5
	for i := range g.m {
		for j := g.n; j < ldc; j++ {
			c[i*ldc+j] = sentinel
		}
	}
	if g.beta == 0 {
		for i := range g.m {
			for j := range g.n {
				c[i*ldc+j] = float32(math.NaN())
			}
		}
	}
	want := refSgemm(g.transA, g.transB, g.m, g.n, g.k, g.alpha, a, lda, b, ldb, g.beta, c, ldc)
	f(g.transA, g.transB, g.m, g.n, g.k, g.alpha, a, lda, b, ldb, g.beta, c, ldc)
	// float32 accumulation error grows like sqrt(k); the sums of k products of
	// unit normals have magnitude ~sqrt(k), so bound relative to that.
	tol := 1e-5 * (math.Sqrt(float64(g.k)) + 1) * (math.Abs(float64(g.alpha))*math.Sqrt(float64(g.k)) + math.Abs(float64(g.beta)) + 1)
	var msgs []string
	bad := 0
	for i := range g.m {
		for j := range g.n {
			got := float64(c[i*ldc+j])
			if w := want[i*g.n+j]; !(math.Abs(got-w) <= tol) {
				if bad < 5 {
					msgs = append(msgs, fmt.Sprintf("%v: C[%d,%d] = %g, want %g (tol %g)", g, i, j, got, w, tol))
				}
				bad++
			}
		}
		for j := g.n; j < ldc; j++ {
			if c[i*ldc+j] != sentinel {
				return fmt.Sprintf("%v: wrote C[%d,%d] outside the matrix", g, i, j)
			}
		}
	}
	if bad > 0 {
		msgs = append(msgs, fmt.Sprintf("%v: %d of %d elements wrong", g, bad, g.m*g.n))
	}
	return strings.Join(msgs, "\n")
}

func gemmCases() []gemmCase {
	var cases []gemmCase
	sizes := [][3]int{
		{1, 1, 1}, {1, 7, 3}, {7, 1, 5}, {3, 5, 1}, {2, 3, 0}, {0, 4, 3}, {4, 0, 3},
		{17, 13, 11}, {31, 37, 29}, {64, 64, 64}, {97, 61, 131}, {6, 16, 300},
		{130, 70, 257}, {253, 67, 41}, {5, 300, 19},
		// several blocks of k, of m, of n; work split along m and along n
		{300, 33, 600}, {3, 4100, 7}, {20, 700, 200}, {2, 4097, 300},
	}
	scalars := [][2]float32{{1, 0}, {1, 1}, {-0.5, 2}, {0, 0.5}, {0, 0}, {2.5, -1}}
	for _, s := range sizes {
		for _, tA := range []bool{false, true} {
			for _, tB := range []bool{false, true} {
				for si, ab := range scalars {
					cases = append(cases, gemmCase{tA, tB, s[0], s[1], s[2], (si * 3) % 5, ab[0], ab[1]})
				}
			}
		}
	}
	return cases
}

func testSgemm(t *testing.T, f sgemmFunc) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, g := range gemmCases() {
		checkCase(t, f, g, r)
	}
}

func TestSgemm(t *testing.T) {
	t.Logf("implementation: %s", Implementation())
	testSgemm(t, Sgemm)
}

// TestGoSgemm runs the Go GEMM with each micro-kernel this CPU can run.
func TestGoSgemm(t *testing.T) {
	kernels := []*kernel{genericKernel}
	if activeKernel != genericKernel {
		kernels = append(kernels, activeKernel)
	}
	for _, kern := range kernels {
		t.Run(kern.name, func(t *testing.T) {
			testSgemm(t, func(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
				checkArgs(transA, transB, m, n, k, a, lda, b, ldb, c, ldc)
				gemmWith(kern, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
			})
		})
	}
}

// TestOpenBLASSgemm runs the same cases through OpenBLAS when it loads here.
func TestOpenBLASSgemm(t *testing.T) {
	lib := library()
	if lib == nil {
		t.Skipf("OpenBLAS not in use: %v", OpenBLASError())
	}
	t.Logf("%s: %s", lib.path, lib.config)
	testSgemm(t, func(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
		checkArgs(transA, transB, m, n, k, a, lda, b, ldb, c, ldc)
		if m > 0 && n > 0 {
			lib.call(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		}
	})
}

func TestSgemmRejectsBadArguments(t *testing.T) {
	a, b, c := make([]float32, 6), make([]float32, 6), make([]float32, 4)
	for _, tc := range []struct {
		name string
		call func()
		want string
	}{
		{"negative m", func() { Sgemm(false, false, -1, 2, 3, 1, a, 3, b, 2, 0, c, 2) }, "negative size"},
		{"short lda", func() { Sgemm(false, false, 2, 2, 3, 1, a, 2, b, 2, 0, c, 2) }, "ldA=2"},
		{"short B", func() { Sgemm(false, false, 2, 2, 3, 1, a, 3, b[:5], 2, 0, c, 2) }, "B has 5 elements"},
		{"short C", func() { Sgemm(false, false, 2, 2, 3, 1, a, 3, b, 2, 0, c[:3], 2) }, "C has 3 elements"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer func() {
				msg, _ := recover().(string)
				if !strings.Contains(msg, tc.want) {
					t.Fatalf("panic %q, want it to mention %q", msg, tc.want)
				}
			}()
			tc.call()
		})
	}
}
