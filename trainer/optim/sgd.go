package optim

import "fmt"

// SGD is torch.optim.SGD (maximize off).
type SGD struct {
	Momentum    float64
	Dampening   float64
	Nesterov    bool
	WeightDecay float64 // L2: added to the gradient, not decoupled

	state map[string]*sgdState
}

type sgdState struct {
	step int64
	buf  []float32 // nil until the first step with momentum
}

// NewSGD checks the settings as torch does.
func NewSGD(momentum, dampening, weightDecay float64, nesterov bool) (*SGD, error) {
	switch {
	case momentum < 0:
		return nil, fmt.Errorf("optim: sgd momentum %g must not be negative", momentum)
	case weightDecay < 0:
		return nil, fmt.Errorf("optim: weight decay %g must not be negative", weightDecay)
	case nesterov && (momentum <= 0 || dampening != 0):
		return nil, fmt.Errorf("optim: nesterov momentum requires a momentum and zero dampening")
	}
	return &SGD{Momentum: momentum, Dampening: dampening, Nesterov: nesterov, WeightDecay: weightDecay}, nil
}

// Step performs one SGD update:
//
//	d = g + wd·p
//	b = d on the first step, else momentum·b + (1-dampening)·d
//	d = d + momentum·b (nesterov) or b
//	p -= lr·d
func (o *SGD) Step(params []*Param, lr float64) error {
	if o.state == nil {
		o.state = map[string]*sgdState{}
	}
	mom, damp := float32(o.Momentum), float32(1-o.Dampening)
	step := float32(-lr)
	for _, p := range params {
		if err := checkParam(p); err != nil {
			return err
		}
		if p.Grad == nil {
			continue
		}
		wd := float32(o.WeightDecay)
		if p.NoDecay {
			wd = 0
		}
		s := o.state[p.Name]
		if s == nil {
			s = &sgdState{}
			o.state[p.Name] = s
		}
		first := false
		if o.Momentum != 0 && s.buf == nil {
			s.buf = make([]float32, len(p.Data))
			first = true
		}
		if s.buf != nil && len(s.buf) != len(p.Data) {
			return fmt.Errorf("optim: parameter %q has %d values but its SGD state has %d", p.Name, len(p.Data), len(s.buf))
		}
		s.step++
		data, grad, buf := p.Data, p.Grad, s.buf
		forChunks(len(data), func(lo, hi int) {
			for i := lo; i < hi; i++ {
				d := grad[i]
				if wd != 0 {
					d += wd * data[i]
				}
				if buf != nil {
					if first {
						buf[i] = d
					} else {
						buf[i] = mom*buf[i] + damp*d
					}
					if o.Nesterov {
						d += mom * buf[i]
					} else {
						d = buf[i]
					}
				}
				data[i] += step * d
			}
		})
	}
	return nil
}

// State exports the momentum buffers (parameters stepped without momentum
// carry only their step count).
func (o *SGD) State() State {
	st := State{Kind: "sgd", Params: map[string]*ParamState{}}
	for name, s := range o.state {
		ps := &ParamState{Step: s.step, Buffers: map[string][]float32{}}
		if s.buf != nil {
			ps.Buffers["momentum_buffer"] = s.buf
		}
		st.Params[name] = ps
	}
	return st
}

// LoadState restores buffers exported by State (copying them).
func (o *SGD) LoadState(st State) error {
	if st.Kind != "sgd" {
		return fmt.Errorf("optim: cannot load %q optimizer state into SGD", st.Kind)
	}
	state := map[string]*sgdState{}
	for name, ps := range st.Params {
		s := &sgdState{step: ps.Step}
		if b, ok := ps.Buffers["momentum_buffer"]; ok {
			s.buf = append([]float32(nil), b...)
		}
		state[name] = s
	}
	o.state = state
	return nil
}
