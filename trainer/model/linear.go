package model

import (
	"github.com/eftml/eft/trainer/tensor"
)

// linearForward sets y = x·Wᵀ + b + Scale·(dropout(x)·Aᵀ)·Bᵀ, with dropout
// only while training. ys are the output's parts: one, or one per part of a
// fused linear (Linear.Split), each made from its rows of W, b and B.
func (m *Model) linearForward(lin *Linear, x *tensor.Tensor, la *linearActs, seed uint64, ys ...*tensor.Tensor) {
	be, v := m.Backend, &m.views
	for p, y := range ys {
		r0, r1 := lin.partRows(p)
		if lin.W.Quantized() {
			m.quantMM.MatMulQuant(y, x, lin.quantPart(p), true, 0)
		} else {
			be.MatMul(y, x, partOf(lin.W.W, &v.w, r0, r1), false, true, 1, 0)
		}
		if lin.Bias != nil {
			be.AddBias(y, partOf(lin.Bias.W, &v.bias, r0, r1))
		}
	}
	if lin.LoRA == nil {
		return
	}
	lo := lin.LoRA
	xd := x
	if lo.Dropout > 0 && m.training {
		xd = la.xd.Prefix(&m.views.xd, x.Rows(), lin.In)
		mask := la.msk.Prefix(&m.views.mask, x.Rows(), lin.In)
		be.Dropout(xd, mask, x, lo.Dropout, seed)
	}
	u := la.u.Prefix(&m.views.u, x.Rows(), lo.Rank())
	be.MatMul(u, xd, lo.A.W, false, true, 1, 0)
	for p, y := range ys {
		r0, r1 := lin.partRows(p)
		be.MatMul(y, u, partOf(lo.B.W, &v.loraB, r0, r1), false, true, lo.Scale, 1)
	}
}

// linearBackward adds the gradients of W, b, A and B (those that train) and,
// when dx is not nil, sets dx = d loss/dx (or adds to it with accumulate).
// dys are the gradients of the output's parts, as linearForward's ys.
func (m *Model) linearBackward(lin *Linear, dx, x *tensor.Tensor, la *linearActs, accumulate bool, dys ...*tensor.Tensor) {
	be, v := m.Backend, &m.views
	beta := float32(0)
	if accumulate {
		beta = 1
	}
	for p, dy := range dys {
		r0, r1 := lin.partRows(p)
		if lin.W.Trainable() {
			be.MatMul(partOf(lin.W.G, &v.w, r0, r1), dy, x, true, false, 1, 1)
		}
		if lin.Bias.Trainable() {
			be.BiasBackward(partOf(lin.Bias.G, &v.bias, r0, r1), dy)
		}
		switch {
		case dx != nil && lin.W.Quantized():
			m.quantMM.MatMulQuant(dx, dy, lin.quantPart(p), false, beta)
		case dx != nil:
			be.MatMul(dx, dy, partOf(lin.W.W, &v.w, r0, r1), false, false, 1, beta)
		}
		beta = 1 // the next part adds its share
	}
	if lin.LoRA == nil {
		return
	}
	lo := lin.LoRA
	rows := x.Rows()
	u := la.u.Prefix(&m.views.u, rows, lo.Rank())
	if lo.B.Trainable() {
		for p, dy := range dys {
			r0, r1 := lin.partRows(p)
			be.MatMul(partOf(lo.B.G, &v.loraB, r0, r1), dy, u, true, false, lo.Scale, 1)
		}
	}
	if !lo.A.Trainable() && dx == nil {
		return
	}
	du := m.acts.du.Prefix(&m.views.du, rows, lo.Rank())
	duBeta := float32(0)
	for p, dy := range dys {
		r0, r1 := lin.partRows(p)
		be.MatMul(du, dy, partOf(lo.B.W, &v.loraB, r0, r1), false, false, lo.Scale, duBeta)
		duBeta = 1 // du sums the parts' shares
	}
	xd := x
	if lo.Dropout > 0 && m.training {
		xd = la.xd.Prefix(&m.views.xd, rows, lin.In)
	}
	if lo.A.Trainable() {
		be.MatMul(lo.A.G, du, xd, true, false, 1, 1)
	}
	if dx == nil {
		return
	}
	if lo.Dropout > 0 && m.training {
		dxd := m.acts.dxd.Prefix(&m.views.dxd, rows, lin.In)
		be.MatMul(dxd, du, lo.A.W, false, false, 1, 0)
		be.Mul(dx, dxd, la.msk.Prefix(&m.views.mask, rows, lin.In), true)
		return
	}
	be.MatMul(dx, du, lo.A.W, false, false, 1, 1)
}

// project runs lins, in order, on x into outs: each linear fills as many
// outputs as it has parts (q, k, v from q_proj, k_proj, v_proj or from one
// qkv_proj). first is lins[0]'s index in the layer's Linears.
func (m *Model) project(lins []*Linear, x *tensor.Tensor, la *layerActs, seed uint64, layer, first int, outs ...*tensor.Tensor) {
	for j, lin := range lins {
		n := lin.parts()
		m.linearForward(lin, x, &la.lin[first+j], dropoutSeed(seed, layer, first+j), outs[:n]...)
		outs = outs[n:]
	}
}

// projectBackward is project's backward pass: dx = d loss/dx summed over
// every output (set, or added to with accumulate; nil when not wanted).
func (m *Model) projectBackward(lins []*Linear, dx, x *tensor.Tensor, la *layerActs, first int, accumulate bool, douts ...*tensor.Tensor) {
	for j, lin := range lins {
		n := lin.parts()
		m.linearBackward(lin, dx, x, &la.lin[first+j], accumulate || j > 0, douts[:n]...)
		douts = douts[n:]
	}
}
