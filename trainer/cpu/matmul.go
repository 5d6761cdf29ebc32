package cpu

import (
	"fmt"

	"github.com/eftml/eft/trainer/blas"
	"github.com/eftml/eft/trainer/tensor"
)

// gemmDims works out m, n, k of C = op(A)·op(B) from matrix views of the
// tensors (rows × last dimension) and checks that they agree.
func gemmDims(op string, c, a, b *tensor.Tensor, transA, transB bool, ar, ac, br, bc, cr, cc int) (m, n, k int) {
	m, k = ar, ac
	if transA {
		m, k = ac, ar
	}
	kb, n := br, bc
	if transB {
		kb, n = bc, br
	}
	if k != kb || cr != m || cc != n {
		panic(fmt.Sprintf("cpu.%s: shapes do not chain: op(A) %dx%d, op(B) %dx%d, C %dx%d (A %v transA=%v, B %v transB=%v)",
			op, m, k, kb, n, cr, cc, a, transA, b, transB))
	}
	return m, n, k
}

// MatMul implements backend.Backend.
func (c *CPU) MatMul(out, a, b *tensor.Tensor, transA, transB bool, alpha, beta float32) {
	m, n, k := gemmDims("MatMul", out, a, b, transA, transB, a.Rows(), a.Cols(), b.Rows(), b.Cols(), out.Rows(), out.Cols())
	sgemm(transA, transB, m, n, k, alpha, a.F32, a.Cols(), b.F32, b.Cols(), beta, out.F32, n)
}

// BatchedMatMul implements backend.Backend.
func (c *CPU) BatchedMatMul(out, a, b *tensor.Tensor, transA, transB bool, alpha, beta float32) {
	if a.Rank() != 3 || b.Rank() != 3 || out.Rank() != 3 || a.Dim(0) != b.Dim(0) || a.Dim(0) != out.Dim(0) {
		panic(fmt.Sprintf("cpu.BatchedMatMul: want three 3-D tensors of one batch size, got %v %v %v", out, a, b))
	}
	batch := a.Dim(0)
	m, n, k := gemmDims("BatchedMatMul", out, a, b, transA, transB, a.Dim(1), a.Dim(2), b.Dim(1), b.Dim(2), out.Dim(1), out.Dim(2))
	blas.SgemmStridedBatched(transA, transB, m, n, k, alpha, a.F32, a.Dim(2), a.Dim(1)*a.Dim(2), b.F32, b.Dim(2), b.Dim(1)*b.Dim(2),
		beta, out.F32, n, m*n, batch)
}

// AddBias implements backend.Backend.
func (c *CPU) AddBias(y, bias *tensor.Tensor) {
	n := bias.Len()
	if y.Cols() != n {
		panic(fmt.Sprintf("cpu.AddBias: bias %v for rows of %v", bias, y))
	}
	d, bb := y.F32, bias.F32
	c.parallel(y.Rows(), 64, func(_, lo, hi int) {
		for r := lo; r < hi; r++ {
			row := d[r*n : (r+1)*n]
			for i, v := range bb {
				row[i] += v
			}
		}
	})
}

// BiasBackward implements backend.Backend.
func (c *CPU) BiasBackward(dbias, dy *tensor.Tensor) {
	n := dbias.Len()
	if dy.Cols() != n {
		panic(fmt.Sprintf("cpu.BiasBackward: bias %v for rows of %v", dbias, dy))
	}
	rows, g, db := dy.Rows(), dy.F32, dbias.F32
	c.parallel(n, 16, func(_, lo, hi int) {
		for r := 0; r < rows; r++ {
			row := g[r*n : (r+1)*n]
			for i := lo; i < hi; i++ {
				db[i] += row[i]
			}
		}
	})
}
