package cuda

import (
	"fmt"
	"slices"

	"github.com/eftml/eft/trainer/backend"
	"github.com/eftml/eft/trainer/tensor"
)

// Attention here is the plain, correct version: per batch row and per
// query head within a kv group, batched GEMMs over the kv heads for the
// scores [kv heads, qlen, kvlen] and the weighted values, with the masked
// softmax as a kernel in between. It keeps scores for one (row, group
// member) at a time, so scratch is kv_heads·qlen·kvlen floats, and like the
// CPU backend it saves only the log-sum-exp for the backward pass. A fused
// flash-attention kernels (kernels/flash.cu: tiles in shared memory, bf16
// tensor cores, masked tiles skipped, no scores in global memory) replace
// it at bf16 precision for the usual head sizes.

// flashHeadDims are the head sizes kernels/flash.cu is instantiated for.
var flashHeadDims = []int{16, 32, 64, 128}

// envFlash set to 0 turns the flash kernels off (for comparisons).
const envFlash = "EFT_CUDA_FLASH"

// useFlash reports whether attention with spec runs on the flash kernels:
// at bf16 precision (they round q, k, v and the probabilities to bf16, as
// the products of that precision do), on sm_80 or newer, for the head
// sizes they are built for.
func (b *Backend) useFlash(s *backend.AttentionSpec) bool {
	return b.flash && b.opts.Precision == PrecisionBF16 && b.info.Major >= 8 && slices.Contains(flashHeadDims, s.HeadDim)
}

// attnDelta computes delta[b, h, i] = Σ out·dout over each query's head
// (the softmax backward's row sums) into scratch and returns its address.
// Runs on the executor.
func (b *Backend) attnDelta(s *backend.AttentionSpec, po, pdo uintptr) uintptr {
	tokens := s.Batch * s.QLen
	delta := b.scratchFor(scratchDelta, 4*tokens*s.Heads)
	b.kernel("attn_delta").p(delta).p(po).p(pdo).i(tokens).i(s.Heads).i(s.HeadDim).i(s.QLen)
	b.launch(d1((tokens*s.Heads*32+threads-1)/threads), d1(threads))
	return delta
}

// flashBlock is the flash kernels' block: four warps of 16 rows each.
const flashBlock = 128

func ceilDiv(a, b int) int { return (a + b - 1) / b }

func checkAttention(op string, s *backend.AttentionSpec, out, lse, q, k, v *tensor.Tensor) {
	if s.Heads <= 0 || s.KVHeads <= 0 || s.Heads%s.KVHeads != 0 || s.HeadDim <= 0 {
		panic(fmt.Sprintf("cuda.%s: %d heads over %d kv heads of dim %d", op, s.Heads, s.KVHeads, s.HeadDim))
	}
	if s.QOffset < 0 || s.QOffset+s.QLen > s.KVLen {
		panic(fmt.Sprintf("cuda.%s: %d queries at offset %d over %d keys", op, s.QLen, s.QOffset, s.KVLen))
	}
	if q.Len() != s.Batch*s.QLen*s.Heads*s.HeadDim || out.Len() != q.Len() || lse.Len() != s.Batch*s.Heads*s.QLen ||
		k.Len() != s.Batch*s.KVLen*s.KVHeads*s.HeadDim || v.Len() != k.Len() {
		panic(fmt.Sprintf("cuda.%s: q %v, k %v, v %v, out %v, lse %v for %+v", op, q, k, v, out, lse, *s))
	}
	if s.SegStart != nil && len(s.SegStart) != s.Batch*s.KVLen {
		panic(fmt.Sprintf("cuda.%s: %d segment starts for %d×%d keys", op, len(s.SegStart), s.Batch, s.KVLen))
	}
	checkF32(op, out, lse, q, k, v)
}

// attnLayout holds one call's strides (in floats).
type attnLayout struct {
	s                *backend.AttentionSpec
	group, ldq, ldk  int
	scoreSize        int // qlen·kvlen: one head's scores
	tf32             bool
	segPtr           uintptr
	scores, dscores  uintptr
	window, qoff, kv int
}

func (b *Backend) attnLayout(s *backend.AttentionSpec) attnLayout {
	return attnLayout{
		s: s, group: s.Heads / s.KVHeads, ldq: s.Heads * s.HeadDim, ldk: s.KVHeads * s.HeadDim,
		scoreSize: s.QLen * s.KVLen, tf32: b.opts.Precision == PrecisionBF16,
		window: s.Window, qoff: s.QOffset, kv: s.KVHeads,
	}
}

// rowGemm is gemm over raw float32 addresses in row-major terms, batched
// with strides (see Backend.gemm for the column-major swap).
func (b *Backend) rowGemm(transA, transB bool, m, n, k int, a uintptr, lda, sa int, bp uintptr, ldb, sb int,
	c uintptr, ldc, sc, batch int, alpha, beta float32, tf32 bool) {
	g := &b.gemmOp
	*g = gemmOp{
		transA: transB, transB: transA, m: n, n: m, k: k,
		a: bp, lda: ldb, strideA: sb,
		b: a, ldb: lda, strideB: sa,
		c: c, ldc: ldc, strideC: sc,
		batch: batch, ab: elemF32, ct: elemF32, tf32: tf32,
		alpha: alpha, beta: beta,
	}
	b.must(b.g.gemm(g))
}

// scores computes S[g] = scale·Q_h·K_gᵀ (h = g·group + j) for row bi.
func (b *Backend) scores(L *attnLayout, q, k uintptr, bi, j int, into uintptr) {
	s := L.s
	hd := s.HeadDim
	qh := q + uintptr(4*(bi*s.QLen*L.ldq+j*hd))
	kb := k + uintptr(4*(bi*s.KVLen*L.ldk))
	b.rowGemm(false, true, s.QLen, s.KVLen, hd,
		qh, L.ldq, L.group*hd,
		kb, L.ldk, hd,
		into, s.KVLen, L.scoreSize, L.kv, s.Scale, 0, L.tf32)
}

// Attention implements backend.Backend.
func (b *Backend) Attention(out, lse, q, k, v *tensor.Tensor, spec backend.AttentionSpec) {
	checkAttention("Attention", &spec, out, lse, q, k, v)
	s := &spec
	po, pl, pq, pk, pv := b.addr("Attention", out), b.addr("Attention", lse), b.addr("Attention", q), b.addr("Attention", k), b.addr("Attention", v)
	if b.useFlash(s) {
		b.do(func() { b.flashForward(s, po, pl, pq, pk, pv) })
		return
	}
	L := b.attnLayout(s)
	hd := s.HeadDim
	b.do(func() {
		L.segPtr = b.int32s(s.SegStart)
		L.scores = b.scratchFor(scratchScores, 4*L.kv*L.scoreSize)
		for bi := 0; bi < s.Batch; bi++ {
			for j := 0; j < L.group; j++ {
				b.scores(&L, pq, pk, bi, j, L.scores)
				b.kernel("attn_softmax").p(L.scores).p(pl).p(L.segPtr).i(bi).i(j).i(L.group).i(s.Heads).
					i(s.QLen).i(s.KVLen).i(L.qoff).i(L.window).f(s.SoftCap)
				b.launch(d2(s.QLen, L.kv), d1(rowThreads(s.KVLen)))
				// O_h = P[g]·V_g
				b.rowGemm(false, false, s.QLen, hd, s.KVLen,
					L.scores, s.KVLen, L.scoreSize,
					pv+uintptr(4*bi*s.KVLen*L.ldk), L.ldk, hd,
					po+uintptr(4*(bi*s.QLen*L.ldq+j*hd)), L.ldq, L.group*hd, L.kv, 1, 0, L.tf32)
			}
		}
	})
}

// AttentionBackward implements backend.Backend. Per row and group member,
// with P recomputed from the scores and lse: dV_g += Pᵀ·dO_h,
// dP = dO_h·V_gᵀ, dS = P⊙(dP − rowsum(dO⊙O))·scale (⊙ the soft cap's
// derivative, kept per score while P is recomputed), dQ_h = dS·K_g,
// dK_g += dSᵀ·Q_h.
func (b *Backend) AttentionBackward(dq, dk, dv, dout, out, lse, q, k, v *tensor.Tensor, spec backend.AttentionSpec) {
	checkAttention("AttentionBackward", &spec, out, lse, q, k, v)
	s := &spec
	if dq.Len() != q.Len() || dout.Len() != q.Len() || dk.Len() != k.Len() || dv.Len() != v.Len() {
		panic(fmt.Sprintf("cuda.AttentionBackward: dq %v, dk %v, dv %v, dout %v", dq, dk, dv, dout))
	}
	checkF32("AttentionBackward", dq, dk, dv, dout)
	op := "AttentionBackward"
	pdq, pdk, pdv, pdo := b.addr(op, dq), b.addr(op, dk), b.addr(op, dv), b.addr(op, dout)
	po, pl, pq, pk, pv := b.addr(op, out), b.addr(op, lse), b.addr(op, q), b.addr(op, k), b.addr(op, v)
	if b.useFlash(s) {
		b.do(func() { b.flashBackward(s, pdq, pdk, pdv, pdo, po, pl, pq, pk, pv) })
		return
	}
	L := b.attnLayout(s)
	hd := s.HeadDim
	b.do(func() {
		L.segPtr = b.int32s(s.SegStart)
		L.scores = b.scratchFor(scratchScores, 4*L.kv*L.scoreSize)
		L.dscores = b.scratchFor(scratchDScores, 4*L.kv*L.scoreSize)
		capGrad := uintptr(0) // the soft cap's derivative per score
		if s.SoftCap > 0 {
			capGrad = b.scratchFor(scratchCapGrad, 4*L.kv*L.scoreSize)
		}
		delta := b.attnDelta(s, po, pdo)
		b.must(b.g.memset32(pdk, 0, dk.Len()))
		b.must(b.g.memset32(pdv, 0, dv.Len()))
		for bi := 0; bi < s.Batch; bi++ {
			qRow := uintptr(4 * bi * s.QLen * L.ldq)
			kvRow := uintptr(4 * bi * s.KVLen * L.ldk)
			for j := 0; j < L.group; j++ {
				qh := qRow + uintptr(4*j*hd) // offset of head j's columns in the row
				b.scores(&L, pq, pk, bi, j, L.scores)
				b.kernel("attn_probs").p(L.scores).p(capGrad).p(pl).p(L.segPtr).i(bi).i(j).i(L.group).i(s.Heads).
					i(s.QLen).i(s.KVLen).i(L.qoff).i(L.window).f(s.SoftCap)
				b.launch(d2(s.QLen, L.kv), d1(rowThreads(s.KVLen)))
				// dV_g += P[g]ᵀ·dO_h
				b.rowGemm(true, false, s.KVLen, hd, s.QLen,
					L.scores, s.KVLen, L.scoreSize,
					pdo+qh, L.ldq, L.group*hd,
					pdv+kvRow, L.ldk, hd, L.kv, 1, 1, L.tf32)
				// dP = dO_h·V_gᵀ
				b.rowGemm(false, true, s.QLen, s.KVLen, hd,
					pdo+qh, L.ldq, L.group*hd,
					pv+kvRow, L.ldk, hd,
					L.dscores, s.KVLen, L.scoreSize, L.kv, 1, 0, L.tf32)
				b.kernel("attn_dscores").p(L.dscores).p(L.scores).p(capGrad).p(delta).i(bi).i(j).i(L.group).i(s.Heads).
					i(s.QLen).i(s.KVLen).f(s.Scale)
				b.launch(d2(s.QLen, L.kv), d1(rowThreads(s.KVLen)))
				// dQ_h = dS·K_g
				b.rowGemm(false, false, s.QLen, hd, s.KVLen,
					L.dscores, s.KVLen, L.scoreSize,
					pk+kvRow, L.ldk, hd,
					pdq+qh, L.ldq, L.group*hd, L.kv, 1, 0, L.tf32)
				// dK_g += dSᵀ·Q_h
				b.rowGemm(true, false, s.KVLen, hd, s.QLen,
					L.dscores, s.KVLen, L.scoreSize,
					pq+qh, L.ldq, L.group*hd,
					pdk+kvRow, L.ldk, hd, L.kv, 1, 1, L.tf32)
			}
		}
	})
}

// flashPrep copies src [batch, n, heads, hd] to bf16 rows [batch, heads,
// lp, hd] in scratch slot and returns their address and the padded length
// lp. Runs on the executor.
func (b *Backend) flashPrep(src uintptr, batch, n, heads, hd, slot int) (rows uintptr, lp int) {
	lp = ceilDiv(n, 64) * 64
	rows = b.scratchFor(slot, 2*batch*heads*lp*hd)
	b.kernel(fmt.Sprintf("flash_prep_%d", hd)).p(rows).p(src).i(n).i(heads).i(lp)
	b.launch(dims{uint32(lp / 64), uint32(heads), uint32(batch)}, d1(flashBlock))
	return rows, lp
}

func (b *Backend) flashForward(s *backend.AttentionSpec, po, pl, pq, pk, pv uintptr) {
	hd := s.HeadDim
	seg := b.int32s(s.SegStart)
	qr, qlp := b.flashPrep(pq, s.Batch, s.QLen, s.Heads, hd, scratchFlashQ)
	kr, klp := b.flashPrep(pk, s.Batch, s.KVLen, s.KVHeads, hd, scratchFlashK)
	vr, _ := b.flashPrep(pv, s.Batch, s.KVLen, s.KVHeads, hd, scratchFlashV)
	b.kernel(fmt.Sprintf("flash_fwd_%d", hd)).p(po).p(pl).p(qr).p(kr).p(vr).p(seg).
		i(s.Heads).i(s.KVHeads).i(s.QLen).i(s.KVLen).i(qlp).i(klp).i(s.QOffset).i(s.Window).f(s.Scale).f(s.SoftCap)
	b.launch(dims{uint32(ceilDiv(s.QLen, 64)), uint32(s.Heads), uint32(s.Batch)}, d1(flashBlock))
}

func (b *Backend) flashBackward(s *backend.AttentionSpec, pdq, pdk, pdv, pdo, po, pl, pq, pk, pv uintptr) {
	hd := s.HeadDim
	seg := b.int32s(s.SegStart)
	delta := b.attnDelta(s, po, pdo)
	qr, qlp := b.flashPrep(pq, s.Batch, s.QLen, s.Heads, hd, scratchFlashQ)
	dr, _ := b.flashPrep(pdo, s.Batch, s.QLen, s.Heads, hd, scratchFlashDO)
	kr, klp := b.flashPrep(pk, s.Batch, s.KVLen, s.KVHeads, hd, scratchFlashK)
	vr, _ := b.flashPrep(pv, s.Batch, s.KVLen, s.KVHeads, hd, scratchFlashV)
	b.kernel(fmt.Sprintf("flash_bwd_kv_%d", hd)).p(pdk).p(pdv).p(qr).p(kr).p(vr).p(dr).p(pl).p(delta).p(seg).
		i(s.Heads).i(s.KVHeads).i(s.QLen).i(s.KVLen).i(qlp).i(klp).i(s.QOffset).i(s.Window).f(s.Scale).f(s.SoftCap)
	b.launch(dims{uint32(ceilDiv(s.KVLen, 64)), uint32(s.KVHeads), uint32(s.Batch)}, d1(flashBlock))
	b.kernel(fmt.Sprintf("flash_bwd_q_%d", hd)).p(pdq).p(qr).p(kr).p(vr).p(dr).p(pl).p(delta).p(seg).
		i(s.Heads).i(s.KVHeads).i(s.QLen).i(s.KVLen).i(qlp).i(klp).i(s.QOffset).i(s.Window).f(s.Scale).f(s.SoftCap)
	b.launch(dims{uint32(ceilDiv(s.QLen, 64)), uint32(s.Heads), uint32(s.Batch)}, d1(flashBlock))
}
