package blas

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

// TestSgemmStridedBatched checks every product of a batch against the
// reference, for batches that run side by side (small products) and one
// after another (large ones), with padding between products and a shared
// (stride 0) B.
func TestSgemmStridedBatched(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for _, tc := range []struct {
		tA, tB         bool
		m, n, k, batch int
		shareB         bool
	}{
		{false, true, 7, 9, 5, 13, false},
		{true, false, 16, 33, 8, 4, true},
		{false, false, 200, 180, 130, 3, false}, // large: one after another
		{true, true, 3, 2, 1, 1, false},
		{false, true, 5, 4, 0, 3, false},
	} {
		t.Run(fmt.Sprintf("tA=%v,tB=%v,%dx%dx%d,batch=%d,shareB=%v", tc.tA, tc.tB, tc.m, tc.n, tc.k, tc.batch, tc.shareB), func(t *testing.T) {
			aRows, aCols := tc.m, tc.k
			if tc.tA {
				aRows, aCols = tc.k, tc.m
			}
			bRows, bCols := tc.k, tc.n
			if tc.tB {
				bRows, bCols = tc.n, tc.k
			}
			lda, ldb, ldc := max(aCols+1, 1), max(bCols+2, 1), tc.n+3
			strideA, strideB, strideC := aRows*lda+5, bRows*ldb+1, tc.m*ldc+7
			if tc.shareB {
				strideB = 0
			}
			a := randMatrix(r, tc.batch*strideA, 1)
			b := randMatrix(r, tc.batch*max(strideB, bRows*ldb), 1)
			c := randMatrix(r, tc.batch*strideC, 1)
			const alpha, beta = 0.75, -0.5
			want := make([][]float64, tc.batch)
			for i := range tc.batch {
				want[i] = refSgemm(tc.tA, tc.tB, tc.m, tc.n, tc.k, alpha, a[i*strideA:], lda, b[i*strideB:], ldb, beta, c[i*strideC:], ldc)
			}
			before := append([]float32(nil), c...)
			SgemmStridedBatched(tc.tA, tc.tB, tc.m, tc.n, tc.k, alpha, a, lda, strideA, b, ldb, strideB, beta, c, ldc, strideC, tc.batch)
			inside := make([]bool, len(c))
			for i := range tc.batch {
				for row := range tc.m {
					for col := range tc.n {
						at := i*strideC + row*ldc + col
						inside[at] = true
						if d := float64(c[at]) - want[i][row*tc.n+col]; d > 1e-4 || d < -1e-4 {
							t.Fatalf("product %d: C[%d,%d] = %g, want %g", i, row, col, c[at], want[i][row*tc.n+col])
						}
					}
				}
			}
			for j := range c {
				if !inside[j] && c[j] != before[j] {
					t.Fatalf("c[%d] outside every product changed", j)
				}
			}
		})
	}
}

func TestSgemmStridedBatchedRejectsBadArguments(t *testing.T) {
	a, b, c := make([]float32, 24), make([]float32, 24), make([]float32, 16)
	for _, tc := range []struct {
		name string
		call func()
		want string
	}{
		{"overlapping C", func() { SgemmStridedBatched(false, false, 2, 2, 3, 1, a, 3, 6, b, 2, 6, 0, c, 2, 3, 2) }, "strideC=3"},
		{"short A", func() { SgemmStridedBatched(false, false, 2, 2, 3, 1, a, 3, 10, b, 2, 6, 0, c, 2, 4, 3) }, "A has 24 elements"},
		{"negative stride", func() { SgemmStridedBatched(false, false, 2, 2, 3, 1, a, 3, -6, b, 2, 6, 0, c, 2, 4, 2) }, "negative"},
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
