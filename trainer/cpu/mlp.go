package cpu

import (
	"fmt"
	"math"

	"github.com/eftml/eft/trainer/backend"
	"github.com/eftml/eft/trainer/tensor"
)

const sqrt2OverPi = 0.7978845608028654 // sqrt(2/π)

// GatedAct implements backend.Backend: h = act(gate) ⊙ up.
func (c *CPU) GatedAct(h, gate, up *tensor.Tensor, act backend.Activation) {
	checkLen("GatedAct", h, gate)
	checkLen("GatedAct", h, up)
	hv, g, u := h.F32, gate.F32, up.F32
	c.parallel(len(hv), elementGrain, func(_, lo, hi int) {
		switch act {
		case backend.SiLU:
			for i := lo; i < hi; i++ {
				x := g[i]
				hv[i] = x / (1 + exp32(-x)) * u[i]
			}
		case backend.GELUTanh:
			for i := lo; i < hi; i++ {
				x := g[i]
				t := float32(math.Tanh(float64(sqrt2OverPi * (x + 0.044715*x*x*x))))
				hv[i] = 0.5 * x * (1 + t) * u[i]
			}
		default:
			panic(fmt.Sprintf("cpu.GatedAct: unknown activation %d", act))
		}
	})
}

// GatedActBackward implements backend.Backend:
// dgate = dh ⊙ up ⊙ act'(gate), dup = dh ⊙ act(gate).
func (c *CPU) GatedActBackward(dgate, dup, dh, gate, up *tensor.Tensor, act backend.Activation) {
	checkLen("GatedActBackward", dh, gate)
	checkLen("GatedActBackward", dh, up)
	checkLen("GatedActBackward", dh, dgate)
	checkLen("GatedActBackward", dh, dup)
	d, g, u, dg, du := dh.F32, gate.F32, up.F32, dgate.F32, dup.F32
	c.parallel(len(d), elementGrain, func(_, lo, hi int) {
		switch act {
		case backend.SiLU:
			for i := lo; i < hi; i++ {
				x := g[i]
				sg := 1 / (1 + exp32(-x))
				a := x * sg
				dg[i] = d[i] * u[i] * sg * (1 + x*(1-sg))
				du[i] = d[i] * a
			}
		case backend.GELUTanh:
			for i := lo; i < hi; i++ {
				x := g[i]
				t := float32(math.Tanh(float64(sqrt2OverPi * (x + 0.044715*x*x*x))))
				a := 0.5 * x * (1 + t)
				da := 0.5*(1+t) + 0.5*x*(1-t*t)*sqrt2OverPi*(1+3*0.044715*x*x)
				dg[i] = d[i] * u[i] * da
				du[i] = d[i] * a
			}
		default:
			panic(fmt.Sprintf("cpu.GatedActBackward: unknown activation %d", act))
		}
	})
}

// Dropout implements backend.Backend.
func (c *CPU) Dropout(out, mask, x *tensor.Tensor, p float32, seed uint64) {
	checkLen("Dropout", out, x)
	checkLen("Dropout", mask, x)
	keep := 1 / (1 - p)
	o, m, xv := out.F32, mask.F32, x.F32
	c.parallel(len(o), elementGrain, func(_, lo, hi int) {
		for i := lo; i < hi; i++ {
			if DropoutUniform(seed, uint64(i)) < p {
				m[i] = 0
			} else {
				m[i] = keep
			}
			o[i] = xv[i] * m[i]
		}
	})
}

// DropoutUniform is the counter-based uniform draw in [0,1) behind Dropout:
// splitmix64 of seed and element index, so any backend can reproduce a mask.
func DropoutUniform(seed, i uint64) float32 {
	z := seed + (i+1)*0x9e3779b97f4a7c15
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	z ^= z >> 31
	return float32(z>>40) / (1 << 24)
}
