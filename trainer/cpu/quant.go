package cpu

import (
	"fmt"

	"github.com/eftml/eft/trainer/backend"
	"github.com/eftml/eft/trainer/quant"
	"github.com/eftml/eft/trainer/tensor"
)

var _ backend.QuantMatMul = (*CPU)(nil)

// quantTileFloats bounds the dequantized tile of a 4-bit weight (4 MiB of
// float32): what MatMulQuant holds of the dense weight at any time,
// whatever the model's size.
const quantTileFloats = 1 << 20

// MatMulQuant implements backend.QuantMatMul. It dequantizes W a tile at
// a time (split between the workers) into worker 0's scratch and
// multiplies by each tile with the backend's GEMM, always over the full
// inner dimension so that C is written once: in the forward pass a tile is
// a band of W's rows, giving a band of C's columns (C[:, r0:r1] =
// A·tileᵀ); for the input gradient a band of W's columns, giving a band of
// C's columns again (C[:, c0:c1] = A·tile).
func (c *CPU) MatMulQuant(out, a *tensor.Tensor, w *quant.Matrix, transW bool, beta float32) {
	m, in, outCols := a.Rows(), w.Rows, w.Cols // op(W) is [in, outCols]
	if transW {
		in, outCols = w.Cols, w.Rows
	}
	if a.Cols() != in || out.Rows() != m || out.Cols() != outCols {
		panic(fmt.Sprintf("cpu.MatMulQuant: shapes do not chain: A %v, W %d×%d (transW=%v), C %v", a, w.Rows, w.Cols, transW, out))
	}
	if transW {
		band := tileBand(w.Rows, w.Cols)
		scratch := c.scratchFor(0, band*w.Cols)
		for r0 := 0; r0 < w.Rows; r0 += band {
			r1 := min(r0+band, w.Rows)
			tile := scratch[:(r1-r0)*w.Cols]
			c.parallel(r1-r0, 8, func(_, lo, hi int) {
				w.DequantizeRows(tile[lo*w.Cols:hi*w.Cols], r0+lo, r0+hi)
			})
			sgemm(false, true, m, r1-r0, w.Cols, 1, a.F32, a.Cols(), tile, w.Cols, beta, out.F32[r0:], out.Cols())
		}
		return
	}
	band := tileBand(w.Cols, w.Rows)
	scratch := c.scratchFor(0, band*w.Rows)
	for c0 := 0; c0 < w.Cols; c0 += band {
		c1 := min(c0+band, w.Cols)
		width := c1 - c0
		tile := scratch[:w.Rows*width]
		c.parallel(w.Rows, 8, func(_, lo, hi int) {
			w.DequantizeSub(tile[lo*width:hi*width], lo, hi, c0, c1)
		})
		sgemm(false, false, m, width, w.Rows, 1, a.F32, a.Cols(), tile, width, beta, out.F32[c0:], out.Cols())
	}
}

// tileBand is how many of n rows (or columns) of length long go in one
// tile: as many as fit quantTileFloats, a multiple of 64 when that many fit
// (whole absmax blocks, aligned GEMM panels).
func tileBand(n, long int) int {
	band := max(1, quantTileFloats/long)
	if band >= 64 {
		band -= band % 64
	}
	return min(n, band)
}
