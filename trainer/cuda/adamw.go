package cuda

import (
	"errors"
	"fmt"
	"math"
	"unsafe"

	"github.com/eftml/eft/trainer/model"
	"github.com/eftml/eft/trainer/optim"
	"github.com/eftml/eft/trainer/tensor"
	"github.com/eftml/eft/trainer/train"
)

// AdamW is torch.optim.AdamW on the device: moments live next to the
// parameters, and one multi-tensor launch updates every trainable tensor
// (another measures the gradient norm). It computes what optim.AdamW
// computes, in the same float32 order. State and LoadState exchange host
// buffers, so checkpoints are the same whichever backend trained.
type AdamW struct {
	Beta1, Beta2, Eps, WeightDecay float64

	b       *Backend
	state   map[string]*adamState
	pending map[string]*optim.ParamState // loaded, not yet on the device
	table   []uint64                     // per tensor: w, g, m, v, n, decay|step, bc2
	chunks  []int64
	sums    []float64
}

type adamState struct {
	step int64
	m, v *tensor.Tensor
}

var _ train.DeviceOptimizer = (*AdamW)(nil)

// adamChunk is EFT_CHUNK in adamw.cu: elements per block.
const adamChunk = 16384

// NewAdamW returns a device AdamW with torch's hyper-parameters.
func (b *Backend) NewAdamW(beta1, beta2, eps, weightDecay float64) (*AdamW, error) {
	if _, err := optim.NewAdamW(beta1, beta2, eps, weightDecay); err != nil {
		return nil, err
	}
	return &AdamW{Beta1: beta1, Beta2: beta2, Eps: eps, WeightDecay: weightDecay, b: b, state: map[string]*adamState{}}, nil
}

// Optimizer returns the device version of a host optimizer (its
// hyper-parameters and any state it holds), for train.New with a model on
// this backend. AdamW is supported; SGD is not yet.
func (b *Backend) Optimizer(host optim.Optimizer) (optim.Optimizer, error) {
	a, ok := host.(*optim.AdamW)
	if !ok {
		return nil, fmt.Errorf("cuda: the %T optimizer has no device version yet (AdamW has)", host)
	}
	d, err := b.NewAdamW(a.Beta1, a.Beta2, a.Eps, a.WeightDecay)
	if err != nil {
		return nil, err
	}
	if st := a.State(); len(st.Params) > 0 {
		if err := d.LoadState(st); err != nil {
			return nil, err
		}
	}
	return d, nil
}

// Step implements optim.Optimizer for host parameters, which this
// optimizer does not update: train.Trainer calls StepDevice.
func (o *AdamW) Step([]*optim.Param, float64) error {
	return errors.New("cuda: the device AdamW updates device parameters (train.Trainer calls StepDevice)")
}

// State implements optim.Optimizer: the moments, copied to the host.
func (o *AdamW) State() optim.State {
	st := optim.State{Kind: "adamw", Params: map[string]*optim.ParamState{}}
	for name, ps := range o.pending {
		st.Params[name] = ps
	}
	for name, s := range o.state {
		m, v := make([]float32, s.m.Len()), make([]float32, s.v.Len())
		o.b.Download(m, s.m)
		o.b.Download(v, s.v)
		st.Params[name] = &optim.ParamState{Step: s.step, Buffers: map[string][]float32{"exp_avg": m, "exp_avg_sq": v}}
	}
	return st
}

// LoadState implements optim.Optimizer; the moments go to the device at the
// next step, when the parameters they belong to are known.
func (o *AdamW) LoadState(st optim.State) error {
	if st.Kind != "adamw" {
		return fmt.Errorf("cuda: cannot load %q optimizer state into AdamW", st.Kind)
	}
	pending := map[string]*optim.ParamState{}
	for name, ps := range st.Params {
		m, v := ps.Buffers["exp_avg"], ps.Buffers["exp_avg_sq"]
		if m == nil || v == nil || len(m) != len(v) {
			return fmt.Errorf("cuda: AdamW state of %q needs exp_avg and exp_avg_sq of equal length", name)
		}
		if ps.Step < 0 {
			return fmt.Errorf("cuda: AdamW state of %q has step %d", name, ps.Step)
		}
		pending[name] = &optim.ParamState{Step: ps.Step, Buffers: map[string][]float32{
			"exp_avg": append([]float32(nil), m...), "exp_avg_sq": append([]float32(nil), v...)}}
	}
	for _, s := range o.state {
		o.b.Free(s.m)
		o.b.Free(s.v)
	}
	o.state, o.pending = map[string]*adamState{}, pending
	return nil
}

// stateFor returns p's moments, creating them (zero, or from loaded state).
func (o *AdamW) stateFor(p *model.Param) (*adamState, error) {
	if s := o.state[p.Name]; s != nil {
		if s.m.Len() != p.W.Len() {
			return nil, fmt.Errorf("cuda: parameter %q has %d values but its AdamW state has %d", p.Name, p.W.Len(), s.m.Len())
		}
		return s, nil
	}
	s := &adamState{m: o.b.Alloc(p.W.Len()), v: o.b.Alloc(p.W.Len())}
	if ps := o.pending[p.Name]; ps != nil {
		if len(ps.Buffers["exp_avg"]) != p.W.Len() {
			return nil, fmt.Errorf("cuda: parameter %q has %d values but its AdamW state has %d", p.Name, p.W.Len(), len(ps.Buffers["exp_avg"]))
		}
		o.b.Upload(s.m, ps.Buffers["exp_avg"])
		o.b.Upload(s.v, ps.Buffers["exp_avg_sq"])
		s.step = ps.Step
		delete(o.pending, p.Name)
	}
	o.state[p.Name] = s
	return s, nil
}

// buildTable fills the tensor table (with the update's scalars when lr is
// given) and the chunk list; it checks each parameter is float32 here.
func (o *AdamW) buildTable(params []*model.Param, withState bool, lr float64) error {
	o.table, o.chunks = o.table[:0], o.chunks[:0]
	for i, p := range params {
		if p.W.DType != tensor.F32 || p.G == nil || p.G.DType != tensor.F32 || p.G.Len() != p.W.Len() {
			return fmt.Errorf("cuda: AdamW: %s must be a trainable float32 parameter (weight %v, gradient %v)", p.Name, p.W, p.G)
		}
		var m, v uintptr
		var decay, stepSize, bc2 float32
		if withState {
			s, err := o.stateFor(p)
			if err != nil {
				return err
			}
			s.step++
			m, v = o.b.addr("AdamW", s.m), o.b.addr("AdamW", s.v)
			wd := o.WeightDecay
			if optim.DecayExempt(p.Name) {
				wd = 0
			}
			t := float64(s.step)
			decay = float32(1 - lr*wd)
			stepSize = float32(-lr / (1 - math.Pow(o.Beta1, t)))
			bc2 = float32(math.Sqrt(1 - math.Pow(o.Beta2, t)))
		}
		n := p.W.Len()
		o.table = append(o.table, uint64(o.b.addr("AdamW", p.W)), uint64(o.b.addr("AdamW", p.G)), uint64(m), uint64(v), uint64(n),
			uint64(math.Float32bits(decay))|uint64(math.Float32bits(stepSize))<<32, uint64(math.Float32bits(bc2)))
		for c := 0; c*adamChunk < n; c++ {
			o.chunks = append(o.chunks, int64(i)<<32|int64(c))
		}
	}
	return nil
}

// words views a uint64 or int64 slice as int32s for the upload cache.
func words[T uint64 | int64](v []T) []int32 {
	if len(v) == 0 {
		return nil
	}
	return unsafe.Slice((*int32)(unsafe.Pointer(&v[0])), 2*len(v))
}

// GradNorm implements train.DeviceOptimizer: per-tensor float64 sums of
// squares in one launch, combined as torch's clip_grad_norm_ does.
func (o *AdamW) GradNorm(params []*model.Param) float64 {
	if err := o.buildTable(params, false, 0); err != nil {
		panic(err)
	}
	if cap(o.sums) < len(params) {
		o.sums = make([]float64, len(params))
	}
	sums := o.sums[:len(params)]
	b := o.b
	b.do(func() {
		out := b.scratchFor(scratchSums, 8*len(params))
		b.must(b.g.memset32(out, 0, 2*len(params)))
		tab, ch := b.int32s(words(o.table)), b.int32s(words(o.chunks))
		b.kernel("sumsq_multi").p(tab).p(ch).p(out)
		b.launch(d1(len(o.chunks)), d1(threads))
		b.must(b.g.dtoh(unsafe.Pointer(&sums[0]), out, 8*len(sums)))
	})
	var sumSq float64
	for _, s := range sums {
		n := float64(float32(math.Sqrt(s))) // torch: each tensor's norm in float32
		sumSq += n * n
	}
	return float64(float32(math.Sqrt(sumSq)))
}

// StepDevice implements train.DeviceOptimizer.
func (o *AdamW) StepDevice(params []*model.Param, lr float64, gradScale float32) error {
	if err := o.buildTable(params, true, lr); err != nil {
		return err
	}
	b := o.b
	w1, b2, w2, eps := float32(1-o.Beta1), float32(o.Beta2), float32(1-o.Beta2), float32(o.Eps)
	b.do(func() {
		tab, ch := b.int32s(words(o.table)), b.int32s(words(o.chunks))
		b.kernel("adamw_multi").p(tab).p(ch).f(w1).f(b2).f(w2).f(eps).f(gradScale)
		b.launch(d1(len(o.chunks)), d1(threads))
	})
	return nil
}

// StoreFrozenBF16 keeps m's frozen weight matrices (embeddings, linear
// layers, the head; not the 1-D norms and biases) in bfloat16 on the
// device, halving their memory. Call it after choosing what trains (LoRA
// attach). It returns the bytes saved.
func (b *Backend) StoreFrozenBF16(m *model.Model) int {
	saved := 0
	for _, p := range m.Params() {
		w := p.W
		if p.Trainable() || p.Quantized() || w.DType != tensor.F32 || w.Rank() != 2 || w.DeviceOffset != 0 {
			continue
		}
		old := b.buf("StoreFrozenBF16", w)
		n := w.Len()
		b.do(func() {
			nb := b.allocBuffer(2 * n)
			b.convertExact(nb.ptr, old.ptr, n, elemBF16)
			b.mem.put(old.ptr)
			old.ptr = 0
			w.DType, w.Device = tensor.BF16, nb
		})
		saved += 2 * n
	}
	// The float32 blocks are weight-sized and would sit in the cache unused:
	// give them back to the driver.
	b.do(func() {
		b.must(b.g.sync())
		b.mem.release()
	})
	return saved
}
