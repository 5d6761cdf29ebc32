package cpu

import (
	"fmt"
	"math"

	"github.com/eftml/eft/trainer/backend"
	"github.com/eftml/eft/trainer/tensor"
)

// attnBlock is the number of queries scored together: one GEMM of
// [attnBlock, keys] per block keeps the scratch small and the GEMM efficient.
const attnBlock = 64

func checkAttention(op string, spec *backend.AttentionSpec, out, lse, q, k, v *tensor.Tensor) {
	s := spec
	if s.Heads <= 0 || s.KVHeads <= 0 || s.Heads%s.KVHeads != 0 || s.HeadDim <= 0 {
		panic(fmt.Sprintf("cpu.%s: %d heads over %d kv heads of dim %d", op, s.Heads, s.KVHeads, s.HeadDim))
	}
	if s.QOffset < 0 || s.QOffset+s.QLen > s.KVLen {
		panic(fmt.Sprintf("cpu.%s: %d queries at offset %d over %d keys", op, s.QLen, s.QOffset, s.KVLen))
	}
	if q.Len() != s.Batch*s.QLen*s.Heads*s.HeadDim || out.Len() != q.Len() || lse.Len() != s.Batch*s.Heads*s.QLen ||
		k.Len() != s.Batch*s.KVLen*s.KVHeads*s.HeadDim || v.Len() != k.Len() {
		panic(fmt.Sprintf("cpu.%s: q %v, k %v, v %v, out %v, lse %v for %+v", op, q, k, v, out, lse, *s))
	}
	if s.SegStart != nil && len(s.SegStart) != s.Batch*s.KVLen {
		panic(fmt.Sprintf("cpu.%s: %d segment starts for %d×%d keys", op, len(s.SegStart), s.Batch, s.KVLen))
	}
}

// firstKey is the lowest kv index query i of row b may attend.
func firstKey(s *backend.AttentionSpec, b, i int) int {
	p := s.QOffset + i
	lo := 0
	if s.SegStart != nil {
		lo = int(s.SegStart[b*s.KVLen+p])
	}
	if s.Window > 0 && p-s.Window+1 > lo {
		lo = p - s.Window + 1
	}
	return lo
}

// Attention implements backend.Backend. Work is split over (row, head); each
// block of queries scores only the keys any of them may see (packed samples
// before the block's first sample are skipped), then applies the exact mask.
func (c *CPU) Attention(out, lse, q, k, v *tensor.Tensor, spec backend.AttentionSpec) {
	checkAttention("Attention", &spec, out, lse, q, k, v)
	s := &spec
	H, hd := s.Heads, s.HeadDim
	group := H / s.KVHeads
	ldq, ldk := H*hd, s.KVHeads*hd
	c.parallel(s.Batch*H, 1, func(w, lo, hi int) {
		scores := c.scratchFor(w, attnBlock*s.KVLen)
		for unit := lo; unit < hi; unit++ {
			b, h := unit/H, unit%H
			qb := q.F32[b*s.QLen*ldq+h*hd:]
			ob := out.F32[b*s.QLen*ldq+h*hd:]
			kb := k.F32[b*s.KVLen*ldk+(h/group)*hd:]
			vb := v.F32[b*s.KVLen*ldk+(h/group)*hd:]
			lseRow := lse.F32[(b*H+h)*s.QLen : (b*H+h+1)*s.QLen]
			for i0 := 0; i0 < s.QLen; i0 += attnBlock {
				i1 := min(i0+attnBlock, s.QLen)
				bq := i1 - i0
				k0, k1 := firstKey(s, b, i0), s.QOffset+i1 // keys [k0, k1)
				nk := k1 - k0
				sc := scores[:bq*nk]
				sgemm(false, true, bq, nk, hd, s.Scale, qb[i0*ldq:], ldq, kb[k0*ldk:], ldk, 0, sc, nk)
				for r := range bq {
					i := i0 + r
					row := sc[r*nk : (r+1)*nk]
					from, to := firstKey(s, b, i)-k0, s.QOffset+i-k0+1 // allowed [from, to)
					if s.SoftCap > 0 {
						for j := from; j < to; j++ {
							row[j] = backend.SoftCapped(row[j], s.SoftCap)
						}
					}
					mx := float32(math.Inf(-1))
					for _, x := range row[from:to] {
						mx = max(mx, x)
					}
					var sum float32
					for j := from; j < to; j++ {
						e := exp32(row[j] - mx)
						row[j] = e
						sum += e
					}
					inv := 1 / sum
					clear(row[:from])
					for j := from; j < to; j++ {
						row[j] *= inv
					}
					clear(row[to:])
					lseRow[i] = mx + float32(math.Log(float64(sum)))
				}
				sgemm(false, false, bq, hd, nk, 1, sc, nk, vb[k0*ldk:], ldk, 0, ob[i0*ldq:], ldq)
			}
		}
	})
}

// AttentionBackward implements backend.Backend. Work is split over
// (row, kv head) so the heads sharing a kv head add into dk and dv in turn,
// never at once. Per block of queries, with P the recomputed weights:
// dV += Pᵀ·dO, dP = dO·Vᵀ, dS = P⊙(dP − rowsum(dO⊙O))·scale, dQ = dS·K,
// dK += dSᵀ·Q; with a soft cap, dS also carries the cap's derivative
// 1 − tanh²(s/cap), kept per score while P is recomputed.
func (c *CPU) AttentionBackward(dq, dk, dv, dout, out, lse, q, k, v *tensor.Tensor, spec backend.AttentionSpec) {
	checkAttention("AttentionBackward", &spec, out, lse, q, k, v)
	s := &spec
	if dq.Len() != q.Len() || dout.Len() != q.Len() || dk.Len() != k.Len() || dv.Len() != v.Len() {
		panic(fmt.Sprintf("cpu.AttentionBackward: dq %v, dk %v, dv %v, dout %v", dq, dk, dv, dout))
	}
	H, KV, hd := s.Heads, s.KVHeads, s.HeadDim
	group := H / KV
	ldq, ldk := H*hd, KV*hd
	c.parallel(s.Batch*KV, 1, func(w, lo, hi int) {
		area := attnBlock * s.KVLen
		need := 2*area + attnBlock
		if s.SoftCap > 0 {
			need += area
		}
		buf := c.scratchFor(w, need)
		for unit := lo; unit < hi; unit++ {
			b, g := unit/KV, unit%KV
			kb := k.F32[b*s.KVLen*ldk+g*hd:]
			vb := v.F32[b*s.KVLen*ldk+g*hd:]
			dkb := dk.F32[b*s.KVLen*ldk+g*hd:]
			dvb := dv.F32[b*s.KVLen*ldk+g*hd:]
			for t := range s.KVLen {
				clear(dkb[t*ldk : t*ldk+hd])
				clear(dvb[t*ldk : t*ldk+hd])
			}
			for h := g * group; h < (g+1)*group; h++ {
				off := b*s.QLen*ldq + h*hd
				qb, ob, dob, dqb := q.F32[off:], out.F32[off:], dout.F32[off:], dq.F32[off:]
				lseRow := lse.F32[(b*H+h)*s.QLen : (b*H+h+1)*s.QLen]
				for i0 := 0; i0 < s.QLen; i0 += attnBlock {
					i1 := min(i0+attnBlock, s.QLen)
					bq := i1 - i0
					k0, k1 := firstKey(s, b, i0), s.QOffset+i1
					nk := k1 - k0
					p := buf[:bq*nk]
					dp := buf[area : area+bq*nk]
					delta := buf[2*area : 2*area+bq]
					var capGrad []float32 // 1 − tanh²(s/cap) per score
					if s.SoftCap > 0 {
						capGrad = buf[2*area+attnBlock : 2*area+attnBlock+bq*nk]
					}
					sgemm(false, true, bq, nk, hd, s.Scale, qb[i0*ldq:], ldq, kb[k0*ldk:], ldk, 0, p, nk)
					for r := range bq {
						i := i0 + r
						row := p[r*nk : (r+1)*nk]
						from, to := firstKey(s, b, i)-k0, s.QOffset+i-k0+1
						l := lseRow[i]
						clear(row[:from])
						if s.SoftCap > 0 {
							cg := capGrad[r*nk : (r+1)*nk]
							clear(cg[:from]) // masked: P is 0 there, and so must dS be
							clear(cg[to:])
							for j := from; j < to; j++ {
								th := float32(math.Tanh(float64(row[j] / s.SoftCap)))
								row[j] = exp32(s.SoftCap*th - l)
								cg[j] = 1 - th*th
							}
						} else {
							for j := from; j < to; j++ {
								row[j] = exp32(row[j] - l)
							}
						}
						clear(row[to:])
						var d float32
						o, do := ob[i*ldq:i*ldq+hd], dob[i*ldq:i*ldq+hd]
						for x := range hd {
							d += o[x] * do[x]
						}
						delta[r] = d
					}
					sgemm(true, false, nk, hd, bq, 1, p, nk, dob[i0*ldq:], ldq, 1, dvb[k0*ldk:], ldk)
					sgemm(false, true, bq, nk, hd, 1, dob[i0*ldq:], ldq, vb[k0*ldk:], ldk, 0, dp, nk)
					for r := range bq {
						pr, dr := p[r*nk:(r+1)*nk], dp[r*nk:(r+1)*nk]
						d := delta[r]
						if s.SoftCap > 0 {
							cg := capGrad[r*nk : (r+1)*nk]
							for j := range pr {
								dr[j] = pr[j] * (dr[j] - d) * cg[j] * s.Scale
							}
							continue
						}
						for j := range pr {
							dr[j] = pr[j] * (dr[j] - d) * s.Scale
						}
					}
					sgemm(false, false, bq, hd, nk, 1, dp, nk, kb[k0*ldk:], ldk, 0, dqb[i0*ldq:], ldq)
					sgemm(true, false, nk, hd, bq, 1, dp, nk, qb[i0*ldq:], ldq, 1, dkb[k0*ldk:], ldk)
				}
			}
		}
	})
}
