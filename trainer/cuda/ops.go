package cuda

import (
	"fmt"
	"unsafe"

	"github.com/eftml/eft/trainer/backend"
	"github.com/eftml/eft/trainer/tensor"
)

// Zero implements backend.Backend.
func (b *Backend) Zero(t *tensor.Tensor) {
	p := b.addr("Zero", t)
	bytes := t.Len() * t.DType.Size()
	if bytes%4 != 0 {
		panic(fmt.Sprintf("cuda.Zero: %v is not a whole number of 4-byte words", t))
	}
	b.do(func() { b.must(b.g.memset32(p, 0, bytes/4)) })
}

// Copy implements backend.Backend (same dtype: a device copy; float32 from
// or to bf16: a conversion).
func (b *Backend) Copy(dst, src *tensor.Tensor) {
	checkLen("Copy", dst, src)
	d, s, n := b.addr("Copy", dst), b.addr("Copy", src), dst.Len()
	b.do(func() {
		switch {
		case dst.DType == src.DType:
			b.must(b.g.dtod(d, s, n*dst.DType.Size()))
		case dst.DType == tensor.BF16 && src.DType == tensor.F32:
			b.convertExact(d, s, n, elemBF16)
		case dst.DType == tensor.F32 && src.DType == tensor.BF16:
			b.convertExact(d, s, n, elemF32)
		default:
			panic(fmt.Sprintf("cuda.Copy: %v from %v", dst, src))
		}
	})
}

// Add implements backend.Backend.
func (b *Backend) Add(dst, src *tensor.Tensor, alpha float32) {
	checkLen("Add", dst, src)
	checkF32("Add", dst, src)
	d, s, n := b.addr("Add", dst), b.addr("Add", src), dst.Len()
	b.do(func() {
		b.kernel("ew_add").p(d).p(s).f(alpha).l(n)
		b.launch(b.elementGrid(n), d1(threads))
	})
}

// Scale implements backend.Backend.
func (b *Backend) Scale(t *tensor.Tensor, s float32) {
	checkF32("Scale", t)
	d, n := b.addr("Scale", t), t.Len()
	b.do(func() {
		b.kernel("ew_scale").p(d).f(s).l(n)
		b.launch(b.elementGrid(n), d1(threads))
	})
}

// Mul implements backend.Backend.
func (b *Backend) Mul(dst, x, y *tensor.Tensor, accumulate bool) {
	checkLen("Mul", dst, x)
	checkLen("Mul", dst, y)
	checkF32("Mul", dst, x, y)
	d, pa, pb, n := b.addr("Mul", dst), b.addr("Mul", x), b.addr("Mul", y), dst.Len()
	acc := 0
	if accumulate {
		acc = 1
	}
	b.do(func() {
		b.kernel("ew_mul").p(d).p(pa).p(pb).i(acc).l(n)
		b.launch(b.elementGrid(n), d1(threads))
	})
}

// SumSquares implements backend.Backend (float64 accumulation; waits for
// the result).
func (b *Backend) SumSquares(t *tensor.Tensor) float64 {
	checkF32("SumSquares", t)
	x, n := b.addr("SumSquares", t), t.Len()
	var out float64
	b.do(func() {
		acc := b.scratchFor(scratchSums, 8)
		b.must(b.g.memset32(acc, 0, 2))
		b.kernel("sum_squares").p(x).l(n).p(acc)
		b.launch(b.elementGrid(n), d1(threads))
		b.must(b.g.dtoh(unsafe.Pointer(&out), acc, 8))
	})
	return out
}

// AddBias implements backend.Backend.
func (b *Backend) AddBias(y, bias *tensor.Tensor) {
	n := bias.Len()
	if y.Cols() != n {
		panic(fmt.Sprintf("cuda.AddBias: bias %v for rows of %v", bias, y))
	}
	checkF32("AddBias", y, bias)
	py, pb, rows := b.addr("AddBias", y), b.addr("AddBias", bias), y.Rows()
	b.do(func() {
		b.kernel("add_bias").p(py).p(pb).l(rows).i(n)
		b.launch(b.elementGrid(rows*n), d1(threads))
	})
}

// reduceRows is how many rows one block sums in column-sum kernels.
const reduceRows = 64

// BiasBackward implements backend.Backend.
func (b *Backend) BiasBackward(dbias, dy *tensor.Tensor) {
	n := dbias.Len()
	if dy.Cols() != n {
		panic(fmt.Sprintf("cuda.BiasBackward: bias %v for rows of %v", dbias, dy))
	}
	checkF32("BiasBackward", dbias, dy)
	pd, pg, rows := b.addr("BiasBackward", dbias), b.addr("BiasBackward", dy), dy.Rows()
	b.do(func() {
		b.kernel("bias_backward").p(pd).p(pg).i(rows).i(n).i(reduceRows)
		b.launch(d2((n+threads-1)/threads, (rows+reduceRows-1)/reduceRows), d1(threads))
	})
}

// checkIDs panics, as the CPU backend does, on an id outside [0, limit).
func checkIDs(op, what string, ids []int32, limit int) {
	for _, id := range ids {
		if id < 0 || int(id) >= limit {
			panic(fmt.Sprintf("cuda.%s: %s %d outside [0, %d)", op, what, id, limit))
		}
	}
}

// Embedding implements backend.Backend; the table may be float32 or bf16.
func (b *Backend) Embedding(out, table *tensor.Tensor, ids []int32) {
	dim, vocab := table.Cols(), table.Rows()
	if out.Len() != len(ids)*dim {
		panic(fmt.Sprintf("cuda.Embedding: %d ids of width %d into %v", len(ids), dim, out))
	}
	checkF32("Embedding", out)
	checkIDs("Embedding", "token id", ids, vocab)
	po, pt := b.addr("Embedding", out), b.addr("Embedding", table)
	isBF16 := 0
	if table.DType == tensor.BF16 {
		isBF16 = 1
	}
	b.do(func() {
		pid := b.int32s(ids)
		b.kernel("embedding_fwd").p(po).p(pt).i(isBF16).p(pid).i(dim)
		b.launch(d1(len(ids)), d1(rowThreads(dim)))
	})
}

// EmbeddingBackward implements backend.Backend (atomic adds: tokens with
// the same id add in no fixed order).
func (b *Backend) EmbeddingBackward(dtable, dout *tensor.Tensor, ids []int32) {
	dim := dtable.Cols()
	if dout.Len() != len(ids)*dim {
		panic(fmt.Sprintf("cuda.EmbeddingBackward: %d ids of width %d from %v", len(ids), dim, dout))
	}
	checkF32("EmbeddingBackward", dtable, dout)
	checkIDs("EmbeddingBackward", "token id", ids, dtable.Rows())
	pd, pg := b.addr("EmbeddingBackward", dtable), b.addr("EmbeddingBackward", dout)
	b.do(func() {
		pid := b.int32s(ids)
		b.kernel("embedding_bwd").p(pd).p(pg).p(pid).i(dim)
		b.launch(d1(len(ids)), d1(rowThreads(dim)))
	})
}

// RMSNorm implements backend.Backend.
func (b *Backend) RMSNorm(out, rstd, x, w *tensor.Tensor, eps float32) {
	d := w.Len()
	rows := x.Len() / d
	if x.Len() != rows*d || out.Len() != x.Len() || rstd.Len() != rows {
		panic(fmt.Sprintf("cuda.RMSNorm: x %v, out %v, rstd %v, weight %v", x, out, rstd, w))
	}
	checkF32("RMSNorm", out, rstd, x, w)
	po, pr, px, pw := b.addr("RMSNorm", out), b.addr("RMSNorm", rstd), b.addr("RMSNorm", x), b.addr("RMSNorm", w)
	b.do(func() {
		b.kernel("rmsnorm_fwd").p(po).p(pr).p(px).p(pw).i(d).f(eps)
		b.launch(d1(rows), d1(rowThreads(d)))
	})
}

// RMSNormBackward implements backend.Backend.
func (b *Backend) RMSNormBackward(dx, dw, dout, x, w, rstd *tensor.Tensor) {
	d := w.Len()
	rows := x.Len() / d
	if dx.Len() != x.Len() || dout.Len() != x.Len() || rstd.Len() != rows || (dw != nil && dw.Len() != d) {
		panic(fmt.Sprintf("cuda.RMSNormBackward: dx %v, dout %v, x %v, rstd %v, weight %v", dx, dout, x, rstd, w))
	}
	checkF32("RMSNormBackward", dx, dw, dout, x, w, rstd)
	pdx, pg, px, pw, pr := b.addr("RMSNormBackward", dx), b.addr("RMSNormBackward", dout), b.addr("RMSNormBackward", x),
		b.addr("RMSNormBackward", w), b.addr("RMSNormBackward", rstd)
	var pdw uintptr
	if dw != nil {
		pdw = b.addr("RMSNormBackward", dw)
	}
	b.do(func() {
		b.kernel("rmsnorm_bwd_dx").p(pdx).p(pg).p(px).p(pw).p(pr).i(d)
		b.launch(d1(rows), d1(rowThreads(d)))
		if pdw != 0 {
			b.kernel("rmsnorm_bwd_dw").p(pdw).p(pg).p(px).p(pr).i(rows).i(d).i(reduceRows)
			b.launch(d2((d+threads-1)/threads, (rows+reduceRows-1)/reduceRows), d1(threads))
		}
	})
}

// RoPE implements backend.Backend.
func (b *Backend) RoPE(x *tensor.Tensor, table *backend.RoPETable, positions []int32, heads, headDim int) {
	b.rope("RoPE", x, table, positions, heads, headDim, 1)
}

// RoPEBackward implements backend.Backend.
func (b *Backend) RoPEBackward(dx *tensor.Tensor, table *backend.RoPETable, positions []int32, heads, headDim int) {
	b.rope("RoPEBackward", dx, table, positions, heads, headDim, -1)
}

func (b *Backend) rope(op string, x *tensor.Tensor, table *backend.RoPETable, positions []int32, heads, headDim int, sign float32) {
	if x.Len() != len(positions)*heads*headDim {
		panic(fmt.Sprintf("cuda.%s: %d positions × %d heads × %d into %v", op, len(positions), heads, headDim, x))
	}
	half := table.RotaryDim / 2
	if table.RotaryDim > headDim || table.Cos.Cols() != half {
		panic(fmt.Sprintf("cuda.%s: table of rotary dim %d (cos %v) for head dim %d", op, table.RotaryDim, table.Cos, headDim))
	}
	checkF32(op, x, table.Cos, table.Sin)
	checkIDs(op, "position", positions, table.Positions())
	px, pc, ps := b.addr(op, x), b.addr(op, table.Cos), b.addr(op, table.Sin)
	n := len(positions) * heads * half
	b.do(func() {
		pp := b.int32s(positions)
		b.kernel("rope").p(px).p(pc).p(ps).p(pp).i(len(positions)).i(heads).i(headDim).i(half).f(sign)
		b.launch(b.elementGrid(n), d1(threads))
	})
}

// GatedAct implements backend.Backend.
func (b *Backend) GatedAct(h, gate, up *tensor.Tensor, act backend.Activation) {
	checkLen("GatedAct", h, gate)
	checkLen("GatedAct", h, up)
	checkF32("GatedAct", h, gate, up)
	a := activationCode("GatedAct", act)
	ph, pg, pu, n := b.addr("GatedAct", h), b.addr("GatedAct", gate), b.addr("GatedAct", up), h.Len()
	b.do(func() {
		b.kernel("gated_act_fwd").p(ph).p(pg).p(pu).i(a).l(n)
		b.launch(b.elementGrid(n), d1(threads))
	})
}

// GatedActBackward implements backend.Backend.
func (b *Backend) GatedActBackward(dgate, dup, dh, gate, up *tensor.Tensor, act backend.Activation) {
	for _, t := range []*tensor.Tensor{gate, up, dgate, dup} {
		checkLen("GatedActBackward", dh, t)
	}
	checkF32("GatedActBackward", dgate, dup, dh, gate, up)
	a := activationCode("GatedActBackward", act)
	pdg, pdu, pdh := b.addr("GatedActBackward", dgate), b.addr("GatedActBackward", dup), b.addr("GatedActBackward", dh)
	pg, pu, n := b.addr("GatedActBackward", gate), b.addr("GatedActBackward", up), dh.Len()
	b.do(func() {
		b.kernel("gated_act_bwd").p(pdg).p(pdu).p(pdh).p(pg).p(pu).i(a).l(n)
		b.launch(b.elementGrid(n), d1(threads))
	})
}

func activationCode(op string, act backend.Activation) int {
	switch act {
	case backend.SiLU:
		return 0
	case backend.GELUTanh:
		return 1
	}
	panic(fmt.Sprintf("cuda.%s: unknown activation %d", op, act))
}

// Dropout implements backend.Backend with trainer/cpu's counter-based draw,
// so a seed gives the same mask on both backends.
func (b *Backend) Dropout(out, mask, x *tensor.Tensor, p float32, seed uint64) {
	checkLen("Dropout", out, x)
	checkLen("Dropout", mask, x)
	checkF32("Dropout", out, mask, x)
	po, pm, px, n := b.addr("Dropout", out), b.addr("Dropout", mask), b.addr("Dropout", x), x.Len()
	b.do(func() {
		b.kernel("dropout_fwd").p(po).p(pm).p(px).f(p).u(seed).l(n)
		b.launch(b.elementGrid(n), d1(threads))
	})
}

// CrossEntropy implements backend.Backend; it waits for the loss.
func (b *Backend) CrossEntropy(logits *tensor.Tensor, targets []int32, softCap float32, grad bool, gradScale float32) (float64, int) {
	rows, vocab := logits.Rows(), logits.Cols()
	if rows != len(targets) {
		panic(fmt.Sprintf("cuda.CrossEntropy: %d targets for %v", len(targets), logits))
	}
	checkF32("CrossEntropy", logits)
	counted := 0
	for _, t := range targets {
		if t == backend.IgnoreIndex {
			continue
		}
		if t < 0 || int(t) >= vocab {
			panic(fmt.Sprintf("cuda.CrossEntropy: target %d outside vocabulary of %d", t, vocab))
		}
		counted++
	}
	pl := b.addr("CrossEntropy", logits)
	g := 0
	if grad {
		g = 1
	}
	var sum float64
	b.do(func() {
		acc := b.scratchFor(scratchSums, 8)
		b.must(b.g.memset32(acc, 0, 2))
		pt := b.int32s(targets)
		b.kernel("cross_entropy").p(pl).p(pt).i(vocab).f(softCap).i(g).f(gradScale).p(acc)
		b.launch(d1(rows), d1(rowThreads(vocab)))
		b.must(b.g.dtoh(unsafe.Pointer(&sum), acc, 8))
	})
	return sum, counted
}
