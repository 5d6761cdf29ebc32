package optim

import (
	"fmt"
	"math"
)

// AdamW is torch.optim.AdamW (amsgrad off, maximize off). The zero value is
// not useful: use NewAdamW or set every field.
type AdamW struct {
	Beta1, Beta2 float64 // torch defaults 0.9, 0.999
	Eps          float64 // torch default 1e-8
	WeightDecay  float64 // torch default 0.01 (transformers' Trainer passes its own, default 0)

	state map[string]*adamState
}

type adamState struct {
	step          int64
	expAvg, expSq []float32
}

// NewAdamW returns AdamW with the given hyper-parameters.
func NewAdamW(beta1, beta2, eps, weightDecay float64) (*AdamW, error) {
	switch {
	case beta1 < 0 || beta1 >= 1:
		return nil, fmt.Errorf("optim: adam beta1 %g must be in [0, 1)", beta1)
	case beta2 < 0 || beta2 >= 1:
		return nil, fmt.Errorf("optim: adam beta2 %g must be in [0, 1)", beta2)
	case eps < 0:
		return nil, fmt.Errorf("optim: adam epsilon %g must not be negative", eps)
	case weightDecay < 0:
		return nil, fmt.Errorf("optim: weight decay %g must not be negative", weightDecay)
	}
	return &AdamW{Beta1: beta1, Beta2: beta2, Eps: eps, WeightDecay: weightDecay}, nil
}

// Step performs one AdamW update as torch's single-tensor implementation
// does, in float32 with scalar factors computed in float64:
//
//	p  *= 1 - lr·wd
//	m  += (1-β1)·(g - m)
//	v   = β2·v + (1-β2)·g²
//	p  -= lr/(1-β1^t) · m / (sqrt(v)/sqrt(1-β2^t) + eps)
func (o *AdamW) Step(params []*Param, lr float64) error {
	if o.state == nil {
		o.state = map[string]*adamState{}
	}
	for _, p := range params {
		if err := checkParam(p); err != nil {
			return err
		}
		if p.Grad == nil {
			continue
		}
		s := o.state[p.Name]
		if s == nil {
			s = &adamState{expAvg: make([]float32, len(p.Data)), expSq: make([]float32, len(p.Data))}
			o.state[p.Name] = s
		} else if len(s.expAvg) != len(p.Data) {
			return fmt.Errorf("optim: parameter %q has %d values but its AdamW state has %d", p.Name, len(p.Data), len(s.expAvg))
		}
		s.step++
		wd := o.WeightDecay
		if p.NoDecay {
			wd = 0
		}
		t := float64(s.step)
		bc1 := 1 - math.Pow(o.Beta1, t)
		bc2sqrt := math.Sqrt(1 - math.Pow(o.Beta2, t))
		decay := float32(1 - lr*wd)
		w1 := float32(1 - o.Beta1)
		b2, w2 := float32(o.Beta2), float32(1-o.Beta2)
		stepSize := float32(-lr / bc1)
		bc2 := float32(bc2sqrt)
		eps := float32(o.Eps)
		data, grad, m, v := p.Data, p.Grad, s.expAvg, s.expSq
		forChunks(len(data), func(lo, hi int) {
			// Same-length reslices let the compiler drop bounds checks;
			// decay is exactly 1 without weight decay.
			data, grad, m, v := data[lo:hi], grad[lo:hi], m[lo:hi], v[lo:hi]
			grad, m, v = grad[:len(data)], m[:len(data)], v[:len(data)]
			for i := range data {
				g := grad[i]
				mi := m[i] + w1*(g-m[i])
				vi := b2*v[i] + w2*g*g
				m[i], v[i] = mi, vi
				denom := float32(math.Sqrt(float64(vi)))/bc2 + eps
				data[i] = data[i]*decay + stepSize*(mi/denom)
			}
		})
	}
	return nil
}

// State exports the per-parameter step and moments.
func (o *AdamW) State() State {
	st := State{Kind: "adamw", Params: map[string]*ParamState{}}
	for name, s := range o.state {
		st.Params[name] = &ParamState{Step: s.step, Buffers: map[string][]float32{"exp_avg": s.expAvg, "exp_avg_sq": s.expSq}}
	}
	return st
}

// LoadState restores moments exported by State (copying them).
func (o *AdamW) LoadState(st State) error {
	if st.Kind != "adamw" {
		return fmt.Errorf("optim: cannot load %q optimizer state into AdamW", st.Kind)
	}
	state := map[string]*adamState{}
	for name, ps := range st.Params {
		m, v := ps.Buffers["exp_avg"], ps.Buffers["exp_avg_sq"]
		if m == nil || v == nil || len(m) != len(v) {
			return fmt.Errorf("optim: AdamW state of %q needs exp_avg and exp_avg_sq of equal length", name)
		}
		if ps.Step < 0 {
			return fmt.Errorf("optim: AdamW state of %q has step %d", name, ps.Step)
		}
		state[name] = &adamState{step: ps.Step, expAvg: append([]float32(nil), m...), expSq: append([]float32(nil), v...)}
	}
	o.state = state
	return nil
}
