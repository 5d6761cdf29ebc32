package cpu

import (
	"fmt"

	"github.com/eftml/eft/trainer/backend"
	"github.com/eftml/eft/trainer/quant"
	"github.com/eftml/eft/trainer/tensor"
)

var _ backend.QuantMatMul = (*CPU)(nil)

// quantTileFloats bounds the dequantized tile of a 4-bit weight (1 MiB of
// float32, whole rows of W): what MatMulQuant holds of the dense weight at
// any time, whatever the model's size.
const quantTileFloats = 1 << 18

// MatMulQuant implements backend.QuantMatMul: for each tile of W's rows it
// dequantizes the tile (split between the workers) into worker 0's scratch,
// then multiplies by it with the backend's GEMM. In the forward pass a tile
// is a slab of C's columns, C[:, r0:r1] = A·tileᵀ; in the backward pass a
// slab of the inner dimension, C += A[:, r0:r1]·tile.
func (c *CPU) MatMulQuant(out, a *tensor.Tensor, w *quant.Matrix, transW bool, beta float32) {
	m, in, outCols := a.Rows(), w.Rows, w.Cols // op(W) is [in, outCols]
	if transW {
		in, outCols = w.Cols, w.Rows
	}
	if a.Cols() != in || out.Rows() != m || out.Cols() != outCols {
		panic(fmt.Sprintf("cpu.MatMulQuant: shapes do not chain: A %v, W %d×%d (transW=%v), C %v", a, w.Rows, w.Cols, transW, out))
	}
	tileRows := max(1, min(w.Rows, quantTileFloats/w.Cols))
	scratch := c.scratchFor(0, tileRows*w.Cols)
	for r0 := 0; r0 < w.Rows; r0 += tileRows {
		r1 := min(r0+tileRows, w.Rows)
		tile := scratch[:(r1-r0)*w.Cols]
		c.parallel(r1-r0, 8, func(_, lo, hi int) {
			w.DequantizeRows(tile[lo*w.Cols:hi*w.Cols], r0+lo, r0+hi)
		})
		if transW {
			c.gemmRows(true, m, r1-r0, w.Cols, a.F32, a.Cols(), tile, w.Cols, beta, out.F32[r0:], out.Cols())
			continue
		}
		b := float32(1)
		if r0 == 0 {
			b = beta
		}
		c.gemmRows(false, m, w.Cols, r1-r0, a.F32[r0:], a.Cols(), tile, w.Cols, b, out.F32, out.Cols())
	}
}

// gemmRows is C = A·op(B) + beta·C with strided row-major A and C, split
// between the workers by rows of C as MatMul splits it.
func (c *CPU) gemmRows(transB bool, m, n, k int, a []float32, lda int, b []float32, ldb int, beta float32, out []float32, ldc int) {
	if m*n*k < 1<<18 {
		sgemm(false, transB, m, n, k, 1, a, lda, b, ldb, beta, out, ldc)
		return
	}
	c.parallel(m, 16, func(_, lo, hi int) {
		sgemm(false, transB, hi-lo, n, k, 1, a[lo*lda:], lda, b, ldb, beta, out[lo*ldc:], ldc)
	})
}
