package model

import "github.com/eftml/eft/trainer/tensor"

// backwardBody runs the backward pass from a.dxf (the loss head's gradient
// of the final norm's output) down to the embeddings.
func (m *Model) backwardBody(b *Batch, a *activations) {
	be := m.Backend
	L := len(m.Layers)
	be.Zero(a.dres)
	be.RMSNormBackward(a.dres, gradOf(m.FinalNorm), a.dxf, a.res[L], m.FinalNorm.W, a.rstdF)
	// Below the lowest layer with something to train the gradient would only
	// feed the embeddings: stop there unless they train.
	stop := m.lowestTrainableLayer()
	for l := L - 1; l >= stop; l-- {
		la := m.layerActsFor(a, l)
		if m.GradientCheckpointing {
			m.layerForward(l, a, la, b.DropoutSeed)
		}
		m.layerBackward(l, a, la, l > stop || m.Embed.Trainable())
	}
	if m.Embed.Trainable() {
		if s := m.Config.embedScale(); s != 1 {
			be.Scale(a.dres, s)
		}
		be.EmbeddingBackward(m.Embed.G, a.dres, b.Tokens)
	}
}

// lowestTrainableLayer is the first layer the backward pass must reach: 0
// when the embeddings train, else the lowest layer holding a trainable
// weight or adapter (len(Layers) when none does).
func (m *Model) lowestTrainableLayer() int {
	if m.Embed.Trainable() {
		return 0
	}
	for l := range m.Layers {
		ly := &m.Layers[l]
		for _, p := range []*Param{ly.InputNorm, ly.PostNorm, ly.AttnOutNorm, ly.MLPOutNorm, ly.QNorm, ly.KNorm} {
			if p.Trainable() {
				return l
			}
		}
		for _, lin := range ly.Linears() {
			if lin.W.Trainable() || lin.Bias.Trainable() || (lin.LoRA != nil && (lin.LoRA.A.Trainable() || lin.LoRA.B.Trainable())) {
				return l
			}
		}
	}
	return len(m.Layers)
}

// layerBackward turns a.dres from d loss/d res[l+1] into d loss/d res[l]
// (when needInput) and adds block l's parameter gradients.
func (m *Model) layerBackward(l int, a *activations, la *layerActs, needInput bool) {
	be, c, ly := m.Backend, &m.Config, &m.Layers[l]
	x := a.res[l]

	iO, iGateUp, iDown := ly.linearIndex()
	// MLP branch: res[l+1] = mid + down(act(gate(xn2)) ⊙ up(xn2)), the
	// branch normalised first with sandwich norms.
	dDown := a.dres
	if ly.MLPOutNorm != nil {
		dDown = m.branchNormBackward(a, ly.MLPOutNorm, la.mo, la.rstdMO)
	}
	m.linearBackward(ly.Down, a.dh, la.h, &la.lin[iDown], false, dDown)
	be.GatedActBackward(a.dgate, a.dup, a.dh, la.gate, la.up, c.Act)
	m.projectBackward(ly.GateUp, a.dxn, la.xn2, la, iGateUp, false, a.dgate, a.dup)
	be.RMSNormBackward(a.dres, gradOf(ly.PostNorm), a.dxn, la.mid, ly.PostNorm.W, la.rstd2)
	// a.dres is now d loss/d mid.

	// Attention branch: mid = x + o(attention(q, k, v)), normalised first
	// with sandwich norms.
	dO := a.dres
	if ly.AttnOutNorm != nil {
		dO = m.branchNormBackward(a, ly.AttnOutNorm, la.ao, la.rstdAO)
	}
	m.linearBackward(ly.O, a.datt, la.att, &la.lin[iO], false, dO)
	be.AttentionBackward(a.dq, a.dk, a.dv, a.datt, la.att, la.lse, la.q, la.k, la.v, m.attnSpec(a, ly.Window))
	be.RoPEBackward(a.dq, &m.rope.table, a.pos, c.Heads, c.HeadDim)
	be.RoPEBackward(a.dk, &m.rope.table, a.pos, c.KVHeads, c.HeadDim)
	dq, dk := a.dq, a.dk
	if c.QKNorm {
		be.Zero(a.dqRaw)
		be.Zero(a.dkRaw)
		be.RMSNormBackward(a.dqRaw, gradOf(ly.QNorm), a.dq, la.qRaw, ly.QNorm.W, la.qRstd)
		be.RMSNormBackward(a.dkRaw, gradOf(ly.KNorm), a.dk, la.kRaw, ly.KNorm.W, la.kRstd)
		dq, dk = a.dqRaw, a.dkRaw
	}
	dxn := a.dxn
	if !needInput && !ly.InputNorm.Trainable() {
		dxn = nil // nothing below wants it: weight gradients only
	}
	m.projectBackward(ly.QKV, dxn, la.xn1, la, 0, false, dq, dk, a.dv)
	if dxn == nil {
		return
	}
	if needInput {
		be.RMSNormBackward(a.dres, gradOf(ly.InputNorm), dxn, x, ly.InputNorm.W, la.rstd1)
		return
	}
	// Only the norm weight wants a gradient: send dx to a scratch buffer.
	be.Zero(a.dxf)
	be.RMSNormBackward(a.dxf, gradOf(ly.InputNorm), dxn, x, ly.InputNorm.W, la.rstd1)
}

// branchNormBackward carries a.dres, the gradient of a residual branch
// after its output norm (sandwich norms), back through the norm into
// a.dbranch, which it returns; the norm's weight gets its gradient.
func (m *Model) branchNormBackward(a *activations, norm *Param, x, rstd *tensor.Tensor) *tensor.Tensor {
	m.Backend.Zero(a.dbranch)
	m.Backend.RMSNormBackward(a.dbranch, gradOf(norm), a.dres, x, norm.W, rstd)
	return a.dbranch
}

// gradOf is p's gradient, or nil for a frozen p, as the backend's
// RMSNormBackward expects.
func gradOf(p *Param) *tensor.Tensor {
	if p.Trainable() {
		return p.G
	}
	return nil
}
