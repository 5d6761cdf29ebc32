package model

import (
	"fmt"

	"github.com/eftml/eft/trainer/tensor"
)

// KVCache holds one sequence's keys and values for every layer, so each
// decoding step only computes the new tokens. Create it after attaching any
// adapters: its step buffers are sized for the model as it is then.
type KVCache struct {
	k, v   []*tensor.Tensor // per layer [MaxLen, KVHeads*HeadDim], rope applied to k
	Len    int              // positions filled
	MaxLen int
	tokens []int32 // the sequence so far, to recompute it (longrope)

	// Step buffers for the last number of new tokens (the prompt, then 1).
	arena        tensor.Arena
	stepLen      int
	la           layerActs
	x, xf, rstdF *tensor.Tensor
	logits       *tensor.Tensor
	pos          []int32
	kView, vView tensor.Tensor
}

// NewKVCache returns an empty cache for sequences of up to maxLen tokens.
func (m *Model) NewKVCache(maxLen int) *KVCache {
	c, be := &m.Config, m.Backend
	kvd := c.KVHeads * c.HeadDim
	kc := &KVCache{MaxLen: maxLen, pos: make([]int32, maxLen), tokens: make([]int32, maxLen)}
	kc.arena.Device = deviceMemory(be)
	for range c.Layers {
		kc.k = append(kc.k, be.Alloc(maxLen, kvd))
		kc.v = append(kc.v, be.Alloc(maxLen, kvd))
	}
	kc.xf, kc.rstdF, kc.logits = be.Alloc(1, c.Hidden), be.Alloc(1), be.Alloc(1, c.Vocab)
	return kc
}

// Reset empties the cache for a new sequence.
func (kc *KVCache) Reset() { kc.Len = 0 }

// stepBuffers sizes the step buffers for n new tokens.
func (m *Model) stepBuffers(kc *KVCache, n int) {
	if kc.stepLen == n {
		return
	}
	kc.arena.Reset()
	kc.la = layerActs{}
	m.allocLayerActs(&kc.arena, &kc.la, 1, n, 0, true)
	kc.x = kc.arena.Alloc(n, m.Config.Hidden)
	kc.stepLen = n
}

// Decode appends tokens to the cached sequence and returns the logits of the
// last of them (a new slice of Vocab values).
func (m *Model) Decode(kc *KVCache, tokens []int32) ([]float32, error) {
	c, be := &m.Config, m.Backend
	n := len(tokens)
	if n == 0 {
		return nil, fmt.Errorf("model: Decode of no tokens")
	}
	if kc.Len+n > kc.MaxLen {
		return nil, fmt.Errorf("model: %d cached + %d new tokens exceed the cache of %d", kc.Len, n, kc.MaxLen)
	}
	for i, t := range tokens {
		if t < 0 || int(t) >= c.Vocab {
			return nil, fmt.Errorf("model: token %d at %d is outside the vocabulary of %d", t, i, c.Vocab)
		}
	}
	total := kc.Len + n
	if r := &c.Rope; r.Type == "longrope" && kc.Len > 0 && r.longropeSeqLen(kc.Len, c.MaxPositions) != r.longropeSeqLen(total, c.MaxPositions) {
		// The sequence outgrows longrope's original maximum: every key
		// must now be rotated with the long factors, so the cache is
		// recomputed from the tokens, as transformers' Phi-3 generation
		// drops its cache at that point.
		tokens = append(kc.tokens[:kc.Len:kc.Len], tokens...)
		kc.Len, n = 0, total
	}
	copy(kc.tokens[kc.Len:total], tokens)
	for i := kc.Len; i < total; i++ {
		kc.pos[i] = int32(i)
	}
	positions := kc.pos[kc.Len:total]
	m.rope.ensure(m, total)
	m.stepBuffers(kc, n)
	la, x := &kc.la, kc.x

	be.Embedding(x, m.Embed.W, tokens)
	if s := c.embedScale(); s != 1 {
		be.Scale(x, s)
	}
	for l := range m.Layers {
		ly := &m.Layers[l]
		be.RMSNorm(la.xn1, la.rstd1, x, ly.InputNorm.W, c.NormEps)
		q, k := la.q, la.k
		if c.QKNorm {
			q, k = la.qRaw, la.kRaw
		}
		m.project(ly.QKV, la.xn1, la, 0, l, 0, q, k, la.v)
		if c.QKNorm {
			be.RMSNorm(la.q, la.qRstd, la.qRaw, ly.QNorm.W, c.NormEps)
			be.RMSNorm(la.k, la.kRstd, la.kRaw, ly.KNorm.W, c.NormEps)
		}
		be.RoPE(la.q, &m.rope.table, positions, c.Heads, c.HeadDim)
		be.RoPE(la.k, &m.rope.table, positions, c.KVHeads, c.HeadDim)
		be.Copy(kc.k[l].SliceRows(&kc.kView, kc.Len, total), la.k)
		be.Copy(kc.v[l].SliceRows(&kc.vView, kc.Len, total), la.v)
		be.Attention(la.att, la.lse, la.q, kc.k[l].SliceRows(&kc.kView, 0, total), kc.v[l].SliceRows(&kc.vView, 0, total),
			attnSpecDecode(c, n, total, ly.Window))
		iO, iGateUp, iDown := ly.linearIndex()
		m.branchOut(ly.O, ly.AttnOutNorm, la.att, &la.lin[iO], 0, la.mid, la.ao, la.rstdAO)
		be.Add(la.mid, x, 1)
		be.RMSNorm(la.xn2, la.rstd2, la.mid, ly.PostNorm.W, c.NormEps)
		m.project(ly.GateUp, la.xn2, la, 0, l, iGateUp, la.gate, la.up)
		be.GatedAct(la.h, la.gate, la.up, c.Act)
		m.branchOut(ly.Down, ly.MLPOutNorm, la.h, &la.lin[iDown], 0, x, la.mo, la.rstdMO)
		be.Add(x, la.mid, 1)
	}
	kc.Len = total
	var last tensor.Tensor
	be.RMSNorm(kc.xf, kc.rstdF, x.SliceRows(&last, n-1, n), m.FinalNorm.W, c.NormEps)
	be.MatMul(kc.logits, kc.xf, m.LMHead.W, false, true, 1, 0)
	out := make([]float32, c.Vocab)
	be.Download(out, kc.logits)
	c.capLogits(out)
	return out, nil
}
