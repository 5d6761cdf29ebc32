package cuda

import (
	"fmt"

	"github.com/eftml/eft/trainer/tensor"
)

// matDims works out m, n, k of C = op(A)·op(B) from row-major matrix views
// and checks that they agree (the CPU backend's rule and message).
func matDims(op string, c, a, b *tensor.Tensor, transA, transB bool, ar, ac, br, bc, cr, cc int) (m, n, k int) {
	m, k = ar, ac
	if transA {
		m, k = ac, ar
	}
	kb, n := br, bc
	if transB {
		kb, n = bc, br
	}
	if k != kb || cr != m || cc != n {
		panic(fmt.Sprintf("cuda.%s: shapes do not chain: op(A) %dx%d, op(B) %dx%d, C %dx%d (A %v transA=%v, B %v transB=%v)",
			op, m, k, kb, n, cr, cc, a, transA, b, transB))
	}
	return m, n, k
}

// MatMul implements backend.Backend. Operands may be float32 or bf16 (a
// frozen weight); C may be float32 or bf16 (merging into a bf16 weight).
func (b *Backend) MatMul(c, a, bm *tensor.Tensor, transA, transB bool, alpha, beta float32) {
	m, n, k := matDims("MatMul", c, a, bm, transA, transB, a.Rows(), a.Cols(), bm.Rows(), bm.Cols(), c.Rows(), c.Cols())
	b.gemm("MatMul", c, a, bm, transA, transB, m, n, k, 1, alpha, beta)
}

// BatchedMatMul implements backend.Backend.
func (b *Backend) BatchedMatMul(c, a, bm *tensor.Tensor, transA, transB bool, alpha, beta float32) {
	if a.Rank() != 3 || bm.Rank() != 3 || c.Rank() != 3 || a.Dim(0) != bm.Dim(0) || a.Dim(0) != c.Dim(0) {
		panic(fmt.Sprintf("cuda.BatchedMatMul: want three 3-D tensors of one batch size, got %v %v %v", c, a, bm))
	}
	m, n, k := matDims("BatchedMatMul", c, a, bm, transA, transB, a.Dim(1), a.Dim(2), bm.Dim(1), bm.Dim(2), c.Dim(1), c.Dim(2))
	b.gemm("BatchedMatMul", c, a, bm, transA, transB, m, n, k, a.Dim(0), alpha, beta)
}

// skinnyDim is the largest m, n or k of a product that runs on float32
// operands in TF32 at bf16 precision (LoRA ranks are 8 to 64).
const skinnyDim = 64

// gemm runs row-major C = alpha·op(A)·op(B) + beta·C over batch matrices.
// cuBLAS is column-major, and a row-major X is the column-major Xᵀ, so it
// computes Cᵀ = op(B)ᵀ·op(A)ᵀ: B first, the transposes kept, m and n
// swapped. Operands not in the precision's input type are converted into
// scratch buffers first.
func (b *Backend) gemm(op string, c, a, bm *tensor.Tensor, transA, transB bool, m, n, k, batch int, alpha, beta float32) {
	if c.DType != tensor.F32 && c.DType != tensor.BF16 {
		panic(fmt.Sprintf("cuda.%s: output %v", op, c))
	}
	pa, pb, pc := b.addr(op, a), b.addr(op, bm), b.addr(op, c)
	if m == 0 || n == 0 {
		return
	}
	in := elemBF16
	if b.opts.Precision == PrecisionFP32 {
		in = elemF32
	}
	ct := elemF32
	if c.DType == tensor.BF16 {
		ct = elemBF16
	}
	// A skinny product (a LoRA rank on one side) of two float32 operands
	// reads them as they are, on TF32 tensor cores: converting its large
	// operand to bf16 would move more memory than the product does.
	tf32 := false
	if in == elemBF16 && a.DType == tensor.F32 && bm.DType == tensor.F32 && min(m, n, k) <= skinnyDim {
		in, tf32 = elemF32, true
	}
	// Not b.do: a product keeps the conversions of other operands (only
	// its output can change them), so the next product of the same
	// activation, as the q, k, v and LoRA-A products of one input are,
	// reads the bf16 copy already made.
	b.ex.do(func() {
		defer b.forgetOverlapping(pc, c.Len()*elemOf(c).size())
		if k == 0 { // an empty sum: C = beta·C
			if ct != elemF32 {
				panic(fmt.Sprintf("cuda.%s: k = 0 into %v", op, c))
			}
			b.kernel("ew_scale").p(pc).f(beta).l(batch * m * n)
			b.launch(b.elementGrid(batch*m*n), d1(threads))
			return
		}
		xa := b.converted(pa, a, in)
		xb := b.converted(pb, bm, in)
		// cuBLASLt has no float32 × float32 → bf16 product (seen on an
		// H100: CUBLAS_STATUS_NOT_SUPPORTED), which an fp32-precision merge
		// into a bf16 weight asks for: widen C, multiply, narrow it back.
		narrowTo := uintptr(0)
		if in == elemF32 && ct == elemBF16 {
			wide := b.scratchFor(scratchC, 4*c.Len())
			b.convertExact(wide, pc, c.Len(), elemF32)
			narrowTo, pc, ct = pc, wide, elemF32
		}
		g := &b.gemmOp
		*g = gemmOp{
			transA: transB, transB: transA,
			m: n, n: m, k: k,
			a: xb, lda: bm.Cols(),
			b: xa, ldb: a.Cols(),
			c: pc, ldc: n,
			batch: batch, ab: in, ct: ct,
			tf32:  tf32,
			alpha: alpha, beta: beta,
		}
		if batch > 1 {
			g.strideA, g.strideB, g.strideC = bm.Dim(1)*bm.Dim(2), a.Dim(1)*a.Dim(2), m*n
		}
		b.must(b.g.gemm(g))
		if narrowTo != 0 {
			b.convertExact(narrowTo, pc, c.Len(), elemBF16)
		}
	})
}

func elemOf(t *tensor.Tensor) elemType {
	if t.DType == tensor.BF16 {
		return elemBF16
	}
	return elemF32
}

// conversion is a GEMM operand converted to the precision's input type,
// kept for the next products that read the same operand.
type conversion struct {
	src      uintptr // 0: free
	n        int
	srcBytes int
	want     elemType
	buf      *buffer
	used     int
}

// converted returns the address of t's data (at p) as elements of type
// want: p itself, a conversion made since the operand last changed, or a
// new one in the least recently used conversion buffer. Runs on the
// executor.
func (b *Backend) converted(p uintptr, t *tensor.Tensor, want elemType) uintptr {
	if elemOf(t) == want {
		return p
	}
	b.convTick++
	n := t.Len()
	bytes := n * want.size()
	// Where the conversion goes, best first: a forgotten one's buffer that
	// is large enough, an unused slot, a kept one's buffer that is large
	// enough, the least recently used (grown). The same step makes the
	// same choices, so buffers keep their sizes from step to step and a
	// steady-state step allocates nothing.
	var victim *conversion
	rank := func(c *conversion) int {
		fits := c.buf != nil && c.buf.bytes >= bytes
		switch {
		case fits && c.src == 0:
			return 0
		case c.buf == nil:
			return 1
		case fits && c.used < b.convTick-1:
			return 2
		}
		return 3
	}
	for i := range b.conversions {
		c := &b.conversions[i]
		if c.src == p && c.n == n && c.want == want {
			c.used = b.convTick
			return c.buf.ptr
		}
		if victim == nil || rank(c) < rank(victim) || rank(c) == rank(victim) && c.used < victim.used {
			victim = c
		}
	}
	if victim.buf == nil || victim.buf.bytes < bytes {
		if victim.buf != nil {
			b.mem.put(victim.buf.ptr)
		}
		victim.buf = b.allocBuffer(bytes)
	}
	b.convert(victim.buf.ptr, p, n, want)
	*victim = conversion{src: p, n: n, srcBytes: n * elemOf(t).size(), want: want, buf: victim.buf, used: b.convTick}
	return victim.buf.ptr
}

// forgetConversions drops every kept conversion (their buffers stay for
// reuse): any op but a product may have written their sources.
func (b *Backend) forgetConversions() {
	for i := range b.conversions {
		b.conversions[i].src = 0
	}
}

// forgetOverlapping drops the conversions whose source overlaps the bytes
// a product just wrote.
func (b *Backend) forgetOverlapping(p uintptr, bytes int) {
	for i := range b.conversions {
		c := &b.conversions[i]
		if c.src != 0 && c.src < p+uintptr(bytes) && p < c.src+uintptr(c.srcBytes) {
			c.src = 0
		}
	}
}

// do runs f on the executor, first forgetting the kept conversions.
func (b *Backend) do(f func()) {
	b.ex.do(func() {
		b.forgetConversions()
		f()
	})
}

// convert writes n elements at src, stored as the other type, as want
// into dst, four at a time where sizes and alignment allow (a GEMM
// operand; bf16 NaNs may come out with another payload). Runs on the
// executor.
func (b *Backend) convert(dst, src uintptr, n int, want elemType) {
	if want == elemBF16 && n%4 == 0 && src%16 == 0 && dst%8 == 0 {
		b.kernel("f32_to_bf16_x4").p(dst).p(src).l(n / 4)
		b.launch(b.elementGrid(n/4), d1(threads))
		return
	}
	b.convertExact(dst, src, n, want)
}

// convertExact is convert one element at a time with f2bf's rounding, NaN
// payloads kept (Copy, stored weights).
func (b *Backend) convertExact(dst, src uintptr, n int, want elemType) {
	if want == elemBF16 {
		b.kernel("f32_to_bf16").p(dst).p(src).l(n)
	} else {
		b.kernel("bf16_to_f32").p(dst).p(src).l(n)
	}
	b.launch(b.elementGrid(n), d1(threads))
}
