package model

import (
	"github.com/eftml/eft/trainer/tensor"
)

// linearForward sets y = x·Wᵀ + b + Scale·(dropout(x)·Aᵀ)·Bᵀ, with dropout
// only while training.
func (m *Model) linearForward(lin *Linear, y, x *tensor.Tensor, la *linearActs, seed uint64) {
	be := m.Backend
	if lin.W.Quantized() {
		m.quantMM.MatMulQuant(y, x, lin.W.Quant, true, 0)
	} else {
		be.MatMul(y, x, lin.W.W, false, true, 1, 0)
	}
	if lin.Bias != nil {
		be.AddBias(y, lin.Bias.W)
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
	be.MatMul(y, u, lo.B.W, false, true, lo.Scale, 1)
}

// linearBackward adds the gradients of W, b, A and B (those that train) and,
// when dx is not nil, sets dx = d loss/dx (or adds to it with accumulate).
func (m *Model) linearBackward(lin *Linear, dx, dy, x *tensor.Tensor, la *linearActs, accumulate bool) {
	be := m.Backend
	if lin.W.Trainable() {
		be.MatMul(lin.W.G, dy, x, true, false, 1, 1)
	}
	if lin.Bias.Trainable() {
		be.BiasBackward(lin.Bias.G, dy)
	}
	beta := float32(0)
	if accumulate {
		beta = 1
	}
	switch {
	case dx != nil && lin.W.Quantized():
		m.quantMM.MatMulQuant(dx, dy, lin.W.Quant, false, beta)
	case dx != nil:
		be.MatMul(dx, dy, lin.W.W, false, false, 1, beta)
	}
	if lin.LoRA == nil {
		return
	}
	lo := lin.LoRA
	rows := x.Rows()
	u := la.u.Prefix(&m.views.u, rows, lo.Rank())
	if lo.B.Trainable() {
		be.MatMul(lo.B.G, dy, u, true, false, lo.Scale, 1)
	}
	if !lo.A.Trainable() && dx == nil {
		return
	}
	du := m.acts.du.Prefix(&m.views.du, rows, lo.Rank())
	be.MatMul(du, dy, lo.B.W, false, false, lo.Scale, 0)
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
