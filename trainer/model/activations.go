package model

import (
	"github.com/eftml/eft/trainer/backend"
	"github.com/eftml/eft/trainer/tensor"
)

// linearActs is what a Linear's LoRA branch saves for its backward pass.
type linearActs struct {
	u       *tensor.Tensor // dropout(x)·Aᵀ [tokens, r]
	xd, msk *tensor.Tensor // dropout(x) and its mask [tokens, in], only with dropout
}

// layerActs is everything one block's backward pass reads. With gradient
// checkpointing one of these is shared by all layers and refilled by
// recomputing the block's forward pass.
type layerActs struct {
	xn1, rstd1   *tensor.Tensor // input norm output and 1/rms
	qRaw, kRaw   *tensor.Tensor // projections before q/k norm (qwen3)
	qRstd, kRstd *tensor.Tensor
	q, k, v      *tensor.Tensor // q and k after norm and rope
	att, lse     *tensor.Tensor // attention output and log-sum-exp
	mid          *tensor.Tensor // residual stream after attention
	ao, rstdAO   *tensor.Tensor // attention output before its norm (sandwich norms)
	mo, rstdMO   *tensor.Tensor // MLP output before its norm (sandwich norms)
	xn2, rstd2   *tensor.Tensor
	gate, up, h  *tensor.Tensor // MLP: h = act(gate)⊙up
	lin          [7]linearActs  // by Layer.Linears order
}

// activations holds every buffer of a forward and backward pass for one
// batch shape, carved from the model's arena.
type activations struct {
	rows, cols, n int
	pos, seg      []int32
	res           []*tensor.Tensor // res[l] is layer l's input; res[L] feeds the final norm
	layers        []layerActs
	xf, rstdF     *tensor.Tensor // final norm output
	logits        *tensor.Tensor // one chunk of logits [chunk, vocab]
	chunk         int

	// gradient buffers, shared by all layers
	dres, dxn, dq, dk, dv, datt, dh, dgate, dup, dxf *tensor.Tensor
	dqRaw, dkRaw                                     *tensor.Tensor
	dbranch                                          *tensor.Tensor // a branch's gradient before its output norm
	du, dxd                                          *tensor.Tensor // LoRA: [n, max r], [n, max in]
}

// actsKey is what forces the activations to be rebuilt.
type actsKey struct {
	rows, cols  int
	checkpoint  bool
	chunk       int
	loraRank    int
	loraDropout bool
	loraLayout  int
}

func (m *Model) loraShape() (maxRank int, dropout bool, layout int) {
	for i := range m.Layers {
		for j, lin := range m.Layers[i].Linears() {
			if lin.LoRA != nil {
				maxRank = max(maxRank, lin.LoRA.Rank())
				dropout = dropout || lin.LoRA.Dropout > 0
				layout += (i*7 + j + 1) * (lin.LoRA.Rank() + 1)
			}
		}
	}
	return
}

func (m *Model) lossChunk(n int) int {
	c := m.LossChunkTokens
	if c <= 0 {
		c = max(1, (4<<20)/m.Config.Vocab)
	}
	return min(c, n)
}

// activationsFor returns buffers for a rows×cols batch, reusing the last ones
// when nothing changed (the common case: every step has the same shape).
func (m *Model) activationsFor(rows, cols int) *activations {
	r, d, lay := m.loraShape()
	key := actsKey{rows, cols, m.GradientCheckpointing, m.lossChunk(rows * cols), r, d, lay}
	if m.acts != nil && m.actsKey == key {
		return m.acts
	}
	c := &m.Config
	n := rows * cols
	qd, kvd := c.Heads*c.HeadDim, c.KVHeads*c.HeadDim
	ar := &m.arena
	ar.Reset()
	a := &activations{rows: rows, cols: cols, n: n, pos: make([]int32, n), seg: make([]int32, n), chunk: key.chunk}
	a.res = make([]*tensor.Tensor, c.Layers+1)
	for l := range a.res {
		a.res[l] = ar.Alloc(n, c.Hidden)
	}
	nl := c.Layers
	if m.GradientCheckpointing {
		nl = 1
	}
	a.layers = make([]layerActs, nl)
	for i := range a.layers {
		m.allocLayerActs(ar, &a.layers[i], rows, cols, i, nl == 1)
	}
	a.xf, a.rstdF = ar.Alloc(n, c.Hidden), ar.Alloc(n)
	a.logits = ar.Alloc(a.chunk, c.Vocab)
	a.dres, a.dxn, a.dxf = ar.Alloc(n, c.Hidden), ar.Alloc(n, c.Hidden), ar.Alloc(n, c.Hidden)
	a.dq, a.dk, a.dv, a.datt = ar.Alloc(n, qd), ar.Alloc(n, kvd), ar.Alloc(n, kvd), ar.Alloc(n, qd)
	if c.QKNorm {
		a.dqRaw, a.dkRaw = ar.Alloc(n, qd), ar.Alloc(n, kvd)
	}
	if c.SandwichNorms {
		a.dbranch = ar.Alloc(n, c.Hidden)
	}
	a.dh, a.dgate, a.dup = ar.Alloc(n, c.Intermediate), ar.Alloc(n, c.Intermediate), ar.Alloc(n, c.Intermediate)
	if r > 0 {
		maxIn := max(c.Hidden, c.Intermediate, qd)
		a.du = ar.Alloc(n, r)
		a.dxd = ar.Alloc(n, maxIn)
	}
	m.acts, m.actsKey = a, key
	return a
}

// allocLayerActs carves la's buffers for a rows×cols batch from ar. The
// LoRA buffers fit layer l's adapters, or every layer's when shared (one
// layerActs reused by all layers: gradient checkpointing, decoding).
func (m *Model) allocLayerActs(ar *tensor.Arena, la *layerActs, rows, cols, l int, shared bool) {
	c := &m.Config
	n := rows * cols
	qd, kvd := c.Heads*c.HeadDim, c.KVHeads*c.HeadDim
	maxIn := max(c.Hidden, c.Intermediate, qd)
	la.xn1, la.rstd1 = ar.Alloc(n, c.Hidden), ar.Alloc(n)
	la.q, la.k, la.v = ar.Alloc(n, qd), ar.Alloc(n, kvd), ar.Alloc(n, kvd)
	if c.QKNorm {
		la.qRaw, la.kRaw = ar.Alloc(n, qd), ar.Alloc(n, kvd)
		la.qRstd, la.kRstd = ar.Alloc(n*c.Heads), ar.Alloc(n*c.KVHeads)
	}
	la.att, la.lse = ar.Alloc(n, qd), ar.Alloc(rows*c.Heads*cols)
	la.mid = ar.Alloc(n, c.Hidden)
	if c.SandwichNorms {
		la.ao, la.rstdAO = ar.Alloc(n, c.Hidden), ar.Alloc(n)
		la.mo, la.rstdMO = ar.Alloc(n, c.Hidden), ar.Alloc(n)
	}
	la.xn2, la.rstd2 = ar.Alloc(n, c.Hidden), ar.Alloc(n)
	la.gate, la.up, la.h = ar.Alloc(n, c.Intermediate), ar.Alloc(n, c.Intermediate), ar.Alloc(n, c.Intermediate)
	for i := range m.Layers {
		if !shared && i != l {
			continue
		}
		for j, lin := range m.Layers[i].Linears() {
			if lin.LoRA == nil {
				continue
			}
			if la.lin[j].u == nil || la.lin[j].u.Cols() < lin.LoRA.Rank() {
				la.lin[j].u = ar.Alloc(n, lin.LoRA.Rank())
			}
			if lin.LoRA.Dropout > 0 && la.lin[j].xd == nil {
				la.lin[j].xd, la.lin[j].msk = ar.Alloc(n, maxIn), ar.Alloc(n, maxIn)
			}
		}
	}
}

// attnSpec is the attention of layer l over a's batch.
func (m *Model) attnSpec(a *activations, window int) backend.AttentionSpec {
	c := &m.Config
	return backend.AttentionSpec{
		Batch: a.rows, QLen: a.cols, KVLen: a.cols,
		Heads: c.Heads, KVHeads: c.KVHeads, HeadDim: c.HeadDim,
		Scale: c.attnScale(), SoftCap: c.AttnSoftCap, Window: window, SegStart: a.seg,
	}
}

// attnSpecDecode is the attention of n new tokens over a cache now holding
// total positions of one sequence.
func attnSpecDecode(c *Config, n, total, window int) backend.AttentionSpec {
	return backend.AttentionSpec{
		Batch: 1, QLen: n, KVLen: total, QOffset: total - n,
		Heads: c.Heads, KVHeads: c.KVHeads, HeadDim: c.HeadDim,
		Scale: c.attnScale(), SoftCap: c.AttnSoftCap, Window: window,
	}
}
