package model

import (
	"fmt"

	"github.com/eftml/eft/trainer/backend"
	"github.com/eftml/eft/trainer/tensor"
)

// dropoutSeed keys the mask of one linear in one layer of one micro-batch,
// so a recomputed forward pass (gradient checkpointing) draws the same mask.
func dropoutSeed(batch uint64, layer, linear int) uint64 {
	return batch*0x100000001b3 ^ uint64(layer)<<8 ^ uint64(linear)
}

// prepare validates the batch and fills positions, segments and the rope
// table; it returns the activations to use.
func (m *Model) prepare(b *Batch) (*activations, error) {
	if err := b.validate(m.Config.Vocab); err != nil {
		return nil, err
	}
	a := m.activationsFor(b.Rows, b.Cols)
	maxPos := b.fillPositions(a.pos, a.seg)
	m.rope.ensure(m, int(maxPos)+1)
	return a, nil
}

// layerForward runs block l on a.res[l] into a.res[l+1], saving what the
// backward pass needs in la.
func (m *Model) layerForward(l int, a *activations, la *layerActs, seed uint64) {
	be, c, ly := m.Backend, &m.Config, &m.Layers[l]
	x := a.res[l]
	be.RMSNorm(la.xn1, la.rstd1, x, ly.InputNorm.W, c.NormEps)

	q, k := la.q, la.k
	if c.QKNorm {
		q, k = la.qRaw, la.kRaw
	}
	m.project(ly.QKV, la.xn1, la, seed, l, 0, q, k, la.v)
	if c.QKNorm {
		be.RMSNorm(la.q, la.qRstd, la.qRaw, ly.QNorm.W, c.NormEps)
		be.RMSNorm(la.k, la.kRstd, la.kRaw, ly.KNorm.W, c.NormEps)
	}
	be.RoPE(la.q, &m.rope.table, a.pos, c.Heads, c.HeadDim)
	be.RoPE(la.k, &m.rope.table, a.pos, c.KVHeads, c.HeadDim)
	be.Attention(la.att, la.lse, la.q, la.k, la.v, m.attnSpec(a, ly.Window))

	iO, iGateUp, iDown := ly.linearIndex()
	m.branchOut(ly.O, ly.AttnOutNorm, la.att, &la.lin[iO], dropoutSeed(seed, l, iO), la.mid, la.ao, la.rstdAO)
	be.Add(la.mid, x, 1)

	be.RMSNorm(la.xn2, la.rstd2, la.mid, ly.PostNorm.W, c.NormEps)
	m.project(ly.GateUp, la.xn2, la, seed, l, iGateUp, la.gate, la.up)
	be.GatedAct(la.h, la.gate, la.up, c.Act)
	out := a.res[l+1]
	m.branchOut(ly.Down, ly.MLPOutNorm, la.h, &la.lin[iDown], dropoutSeed(seed, l, iDown), out, la.mo, la.rstdMO)
	be.Add(out, la.mid, 1)
}

// branchOut sets y to a residual branch's output projection of x, through
// the branch's output norm when it has one (sandwich norms: the projection
// goes to pre, and 1/rms to rstd, for the backward pass).
func (m *Model) branchOut(lin *Linear, norm *Param, x *tensor.Tensor, la *linearActs, seed uint64, y, pre, rstd *tensor.Tensor) {
	if norm == nil {
		m.linearForward(lin, x, la, seed, y)
		return
	}
	m.linearForward(lin, x, la, seed, pre)
	m.Backend.RMSNorm(y, rstd, pre, norm.W, m.Config.NormEps)
}

func (m *Model) layerActsFor(a *activations, l int) *layerActs {
	if m.GradientCheckpointing {
		return &a.layers[0]
	}
	return &a.layers[l]
}

// forwardBody embeds the batch and runs every block and the final norm.
func (m *Model) forwardBody(b *Batch, a *activations) {
	be := m.Backend
	be.Embedding(a.res[0], m.Embed.W, b.Tokens)
	if s := m.Config.embedScale(); s != 1 {
		be.Scale(a.res[0], s)
	}
	for l := range m.Layers {
		m.layerForward(l, a, m.layerActsFor(a, l), b.DropoutSeed)
	}
	be.RMSNorm(a.xf, a.rstdF, a.res[len(m.Layers)], m.FinalNorm.W, m.Config.NormEps)
}

// Logits runs the forward pass and returns the logits [Rows*Cols, Vocab] in
// a new host slice (evaluation and tests; training never builds them all).
func (m *Model) Logits(b *Batch) ([]float32, error) {
	a, err := m.prepare(b)
	if err != nil {
		return nil, err
	}
	m.forwardBody(b, a)
	out := make([]float32, a.n*m.Config.Vocab)
	for r0 := 0; r0 < a.n; r0 += a.chunk {
		r1 := min(r0+a.chunk, a.n)
		lg := a.logits.Prefix(&m.views.logits, r1-r0, m.Config.Vocab)
		m.Backend.MatMul(lg, a.xf.SliceRows(&m.views.rows, r0, r1), m.LMHead.W, false, true, 1, 0)
		m.Backend.Download(out[r0*m.Config.Vocab:r1*m.Config.Vocab], lg)
	}
	m.Config.capLogits(out)
	return out, nil
}

// Loss runs the forward pass and returns the summed cross-entropy of the
// counted targets and their number, without touching gradients.
func (m *Model) Loss(b *Batch) (float64, int, error) {
	if b.Targets == nil {
		return 0, 0, fmt.Errorf("model: Loss needs a batch with targets")
	}
	a, err := m.prepare(b)
	if err != nil {
		return 0, 0, err
	}
	m.forwardBody(b, a)
	sum, n := m.lossHead(b, a, false, 0)
	return sum, n, nil
}

// ForwardBackward runs the forward pass and the backward pass of one
// micro-batch, adding gradScale·d(summed loss)/d param into every trainable
// parameter's gradient. Pass gradScale = 1/(counted targets over all
// micro-batches of the optimizer step) to get the mean token loss's gradient.
// It returns the summed loss of this micro-batch and its counted targets.
func (m *Model) ForwardBackward(b *Batch, gradScale float32) (float64, int, error) {
	if b.Targets == nil {
		return 0, 0, fmt.Errorf("model: ForwardBackward needs a batch with targets")
	}
	a, err := m.prepare(b)
	if err != nil {
		return 0, 0, err
	}
	m.training = true
	defer func() { m.training = false }()
	m.forwardBody(b, a)
	sum, n := m.lossHead(b, a, true, gradScale)
	m.backwardBody(b, a)
	return sum, n, nil
}

// lossHead projects the final hidden states to logits one chunk of tokens at
// a time and scores them; with grad, each chunk's logits become their
// gradient in place and flow straight back into a.dxf and the head's weight
// gradient, so only one chunk of [tokens, vocab] ever exists.
func (m *Model) lossHead(b *Batch, a *activations, grad bool, gradScale float32) (float64, int) {
	be := m.Backend
	var total float64
	var counted int
	for r0 := 0; r0 < a.n; r0 += a.chunk {
		r1 := min(r0+a.chunk, a.n)
		targets := b.Targets[r0:r1]
		if !grad && allIgnored(targets) {
			continue
		}
		lg := a.logits.Prefix(&m.views.logits, r1-r0, m.Config.Vocab)
		x := a.xf.SliceRows(&m.views.rows, r0, r1)
		be.MatMul(lg, x, m.LMHead.W, false, true, 1, 0)
		s, n := be.CrossEntropy(lg, targets, m.Config.FinalSoftCap, grad, gradScale)
		total += s
		counted += n
		if grad {
			be.MatMul(a.dxf.SliceRows(&m.views.dRows, r0, r1), lg, m.LMHead.W, false, false, 1, 0)
			if m.LMHead.Trainable() {
				be.MatMul(m.LMHead.G, lg, x, true, false, 1, 1)
			}
		}
	}
	return total, counted
}

func allIgnored(targets []int32) bool {
	for _, t := range targets {
		if t != backend.IgnoreIndex {
			return false
		}
	}
	return true
}
