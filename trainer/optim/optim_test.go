package optim

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"strings"
	"testing"

	"github.com/eftml/eft/shared/safetensors"
	"github.com/eftml/eft/shared/testfixtures"
)

// adamReference is AdamW written from the paper's formulation in float64:
// bias-corrected moments, eps added to sqrt(v̂), decoupled decay first.
func adamReference(p []float64, grads [][]float64, lr, b1, b2, eps, wd float64) []float64 {
	p = append([]float64(nil), p...)
	m := make([]float64, len(p))
	v := make([]float64, len(p))
	for t, g := range grads {
		step := float64(t + 1)
		for i := range p {
			p[i] -= lr * wd * p[i]
			m[i] = b1*m[i] + (1-b1)*g[i]
			v[i] = b2*v[i] + (1-b2)*g[i]*g[i]
			mHat := m[i] / (1 - math.Pow(b1, step))
			vHat := v[i] / (1 - math.Pow(b2, step))
			p[i] -= lr * mHat / (math.Sqrt(vHat) + eps)
		}
	}
	return p
}

func TestAdamWMatchesReferenceFormula(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	const n, steps = 257, 7
	p0 := make([]float64, n)
	for i := range p0 {
		p0[i] = rng.NormFloat64()
	}
	grads := make([][]float64, steps)
	for s := range grads {
		grads[s] = make([]float64, n)
		for i := range grads[s] {
			grads[s][i] = float64(float32(rng.NormFloat64() * 0.1))
		}
	}
	for _, wd := range []float64{0, 0.01, 0.1} {
		o, err := NewAdamW(0.9, 0.999, 1e-8, wd)
		if err != nil {
			t.Fatal(err)
		}
		p := &Param{Name: "w", Data: make([]float32, n), Grad: make([]float32, n)}
		for i := range p0 {
			p.Data[i] = float32(p0[i])
		}
		for _, g := range grads {
			for i := range g {
				p.Grad[i] = float32(g[i])
			}
			if err := o.Step([]*Param{p}, 1e-2); err != nil {
				t.Fatal(err)
			}
		}
		want := adamReference(p0, grads, 1e-2, 0.9, 0.999, 1e-8, wd)
		for i := range want {
			// float32 state: a few ulps of |p| (about 2.4e-7 at 2).
			if d := math.Abs(float64(p.Data[i]) - want[i]); d > 1e-6*max(1, math.Abs(want[i])) {
				t.Fatalf("wd %g: p[%d] = %.8f, reference %.8f", wd, i, p.Data[i], want[i])
			}
		}
	}
}

func TestAdamWHandValues(t *testing.T) {
	o, _ := NewAdamW(0.9, 0.999, 1e-8, 0.01)
	p := &Param{Name: "p", Data: []float32{1, 2}, Grad: []float32{0.5, 0}}
	o.Step([]*Param{p}, 0.1)
	// Element 0: decay to 0.999, then the first Adam step moves by lr·sign(g):
	// m̂ = g, v̂ = g², so p -= 0.1·0.5/(0.5+1e-8).
	// Element 1: zero gradient, so only the decoupled decay acts: 2·(1-0.001).
	if math.Abs(float64(p.Data[0])-0.899) > 1e-7 || p.Data[1] != float32(2*(1-0.1*0.01)) {
		t.Errorf("after one step %v, want [0.899 1.998]", p.Data)
	}
	// Exempt parameters are not decayed.
	q := &Param{Name: "b", Data: []float32{2}, Grad: []float32{0}, NoDecay: true}
	o.Step([]*Param{q}, 0.1)
	if q.Data[0] != 2 {
		t.Errorf("NoDecay parameter changed to %v", q.Data[0])
	}
}

// The llama-lora fixture's settings (reference_optimizer.json) on its real
// adapter weights and gradients: the first AdamW step has the closed form
// p·(1-lr·wd) - lr·g/(|g|+eps). After the 5 steps of the fixture each weight
// has moved by about lr per step, never more than the Adam bound allows.
func TestAdamWFirstStepOnLlamaLoraFixture(t *testing.T) {
	dir := testfixtures.Path(t, "hf", "llama-lora")
	raw, err := os.ReadFile(dir + "/reference_optimizer.json")
	if err != nil {
		t.Fatal(err)
	}
	var settings struct {
		LR          float64    `json:"lr"`
		Betas       [2]float64 `json:"betas"`
		Eps         float64    `json:"eps"`
		WeightDecay float64    `json:"weight_decay"`
		Steps       int        `json:"steps"`
	}
	if err := json.Unmarshal(raw, &settings); err != nil {
		t.Fatal(err)
	}
	adapter, err := safetensors.Open(dir + "/adapter_model.safetensors")
	if err != nil {
		t.Fatal(err)
	}
	defer adapter.Close()
	ref, err := safetensors.Open(dir + "/reference.safetensors")
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Close()
	o, err := NewAdamW(settings.Betas[0], settings.Betas[1], settings.Eps, settings.WeightDecay)
	if err != nil {
		t.Fatal(err)
	}
	var params []*Param
	initial := map[string][]float32{}
	for _, name := range adapter.Names() {
		data, _ := adapter.Float32s(name)
		// PEFT's in-memory names carry the adapter name "default".
		memName := strings.Replace(name, ".weight", ".default.weight", 1)
		grad, err := ref.Float32s("grad." + memName)
		if err != nil {
			t.Fatal(err)
		}
		initial[name] = append([]float32(nil), data...)
		params = append(params, &Param{Name: name, Data: data, Grad: grad})
	}
	if len(params) != 28 {
		t.Fatalf("%d adapter tensors, want 28 (2 layers x 7 modules x A, B)", len(params))
	}
	if err := o.Step(params, settings.LR); err != nil {
		t.Fatal(err)
	}
	lr, wd, eps := settings.LR, settings.WeightDecay, settings.Eps
	moved, total := 0, 0
	for _, p := range params {
		after5, err := ref.Float32s("after5." + strings.Replace(p.Name, ".weight", ".default.weight", 1))
		if err != nil {
			after5, err = ref.Float32s("after5." + p.Name)
		}
		if err != nil {
			t.Fatal(err)
		}
		for i, p0 := range initial[p.Name] {
			g := float64(p.Grad[i])
			want := float64(p0)*(1-lr*wd) - lr*g/(math.Abs(g)+eps)
			if d := math.Abs(float64(p.Data[i]) - want); d > 1e-6 {
				t.Fatalf("%s[%d]: after one step %.8f, closed form %.8f", p.Name, i, p.Data[i], want)
			}
			// Adam's per-step move |m̂/sqrt(v̂)| stays below 3 over 5 steps
			// with these betas; decay adds at most 5·lr·wd·|p|.
			d5 := math.Abs(float64(after5[i]) - float64(p0))
			if d5 > float64(settings.Steps)*lr*(3+wd*math.Abs(float64(p0))) {
				t.Fatalf("%s[%d] moved %.4f in %d steps", p.Name, i, d5, settings.Steps)
			}
			if d5 > 0.5*lr {
				moved++
			}
			total++
		}
	}
	if moved < total*9/10 {
		t.Errorf("only %d of %d weights moved by more than lr/2 in the fixture's 5 steps", moved, total)
	}
}

func TestSGDHandValues(t *testing.T) {
	grads := [][]float32{{1, -2}, {0.5, 0.5}, {-1, 1}}
	cases := []struct {
		name          string
		mom, damp, wd float64
		nesterov      bool
	}{
		{"plain", 0, 0, 0, false},
		{"momentum", 0.9, 0, 0, false},
		{"dampening", 0.9, 0.1, 0, false},
		{"nesterov", 0.9, 0, 0, true},
		{"weight decay", 0.5, 0, 0.1, false},
	}
	for _, c := range cases {
		o, err := NewSGD(c.mom, c.damp, c.wd, c.nesterov)
		if err != nil {
			t.Fatal(err)
		}
		p := &Param{Name: "w", Data: []float32{1, 1}, Grad: make([]float32, 2)}
		// torch.optim.SGD written out in float64.
		want := []float64{1, 1}
		buf := []float64{0, 0}
		for s, g := range grads {
			copy(p.Grad, g)
			o.Step([]*Param{p}, 0.1)
			for i := range want {
				d := float64(g[i]) + c.wd*want[i]
				if c.mom != 0 {
					if s == 0 {
						buf[i] = d
					} else {
						buf[i] = c.mom*buf[i] + (1-c.damp)*d
					}
					if c.nesterov {
						d += c.mom * buf[i]
					} else {
						d = buf[i]
					}
				}
				want[i] -= 0.1 * d
			}
		}
		for i := range want {
			if math.Abs(float64(p.Data[i])-want[i]) > 1e-6 {
				t.Errorf("%s: %v, want %v", c.name, p.Data, want)
			}
		}
	}
	// Momentum 0.9 by hand: steps of 0.1, 0.1·(0.9+0.5)=0.14, 0.1·(1.26-1)=0.026.
	o, _ := NewSGD(0.9, 0, 0, false)
	p := &Param{Name: "w", Data: []float32{1}, Grad: []float32{1}}
	for _, g := range []float32{1, 0.5, -1} {
		p.Grad[0] = g
		o.Step([]*Param{p}, 0.1)
	}
	if math.Abs(float64(p.Data[0])-(1-0.1-0.14-0.026)) > 1e-6 {
		t.Errorf("hand momentum: %v, want 0.734", p.Data[0])
	}
	if _, err := NewSGD(0, 0, 0, true); err == nil {
		t.Error("nesterov without momentum accepted")
	}
}

func TestClipGradNorm(t *testing.T) {
	a := &Param{Name: "a", Data: make([]float32, 2), Grad: []float32{3, 4}}
	b := &Param{Name: "b", Data: make([]float32, 1), Grad: []float32{12}}
	frozen := &Param{Name: "f", Data: make([]float32, 1)}
	params := []*Param{a, frozen, b}
	if n := ClipGradNorm(params, 100); n != 13 || a.Grad[0] != 3 || b.Grad[0] != 12 {
		t.Errorf("under the limit: norm %v grads %v %v", n, a.Grad, b.Grad)
	}
	n := ClipGradNorm(params, 6.5)
	coef := 6.5 / (13 + 1e-6)
	if n != 13 || math.Abs(float64(a.Grad[1])-4*coef) > 1e-6 || math.Abs(float64(b.Grad[0])-12*coef) > 1e-6 {
		t.Errorf("clipped: norm %v grads %v %v", n, a.Grad, b.Grad)
	}
	if after := ClipGradNorm(params, 0); math.Abs(after-6.5) > 1e-5 {
		t.Errorf("norm after clipping %v, want 6.5", after)
	}
	nan := &Param{Name: "n", Data: make([]float32, 1), Grad: []float32{float32(math.Inf(1))}}
	if got := ClipGradNorm([]*Param{a, nan}, 1); !math.IsInf(got, 1) || a.Grad[0] == 0 || math.IsNaN(float64(a.Grad[0])) {
		t.Errorf("infinite gradient: norm %v, grads %v", got, a.Grad)
	}
}

func TestStateRoundTripResumesExactly(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	mk := func() []*Param {
		var ps []*Param
		for _, n := range []int{5, 3} {
			p := &Param{Name: "p" + string(rune('0'+n)), Data: make([]float32, n), Grad: make([]float32, n)}
			for i := range p.Data {
				p.Data[i] = float32(i) / 7
			}
			ps = append(ps, p)
		}
		return ps
	}
	grads := make([][]float32, 6)
	for s := range grads {
		for range 8 {
			grads[s] = append(grads[s], float32(rng.NormFloat64()))
		}
	}
	setGrads := func(ps []*Param, g []float32) {
		copy(ps[0].Grad, g[:5])
		copy(ps[1].Grad, g[5:])
	}
	adam := func() Optimizer { o, _ := NewAdamW(0.9, 0.99, 1e-6, 0.05); return o }
	sgd := func() Optimizer { o, _ := NewSGD(0.8, 0, 0.01, true); return o }
	for kind, mkOpt := range map[string]func() Optimizer{"adamw": adam, "sgd": sgd} {
		straight, resumed := mk(), mk()
		a := mkOpt()
		for _, g := range grads {
			setGrads(straight, g)
			a.Step(straight, 0.01)
		}
		b := mkOpt()
		for _, g := range grads[:3] {
			setGrads(resumed, g)
			b.Step(resumed, 0.01)
		}
		st := b.State()
		if st.Kind != kind || st.Params["p5"].Step != 3 {
			t.Fatalf("%s state %+v", kind, st)
		}
		c := mkOpt()
		if err := c.LoadState(st); err != nil {
			t.Fatal(err)
		}
		for _, g := range grads[3:] {
			setGrads(resumed, g)
			c.Step(resumed, 0.01)
		}
		for i := range straight {
			for j := range straight[i].Data {
				if straight[i].Data[j] != resumed[i].Data[j] {
					t.Fatalf("%s: resumed run differs at %s[%d]", kind, straight[i].Name, j)
				}
			}
		}
	}
	o, _ := NewAdamW(0.9, 0.999, 1e-8, 0)
	if err := o.LoadState(State{Kind: "sgd"}); err == nil {
		t.Error("AdamW loaded SGD state")
	}
	if err := o.LoadState(State{Kind: "adamw", Params: map[string]*ParamState{"x": {Buffers: map[string][]float32{"exp_avg": {1}}}}}); err == nil {
		t.Error("AdamW loaded state without exp_avg_sq")
	}
	if err := o.Step([]*Param{{Name: "x", Data: make([]float32, 2), Grad: make([]float32, 3)}}, 1); err == nil {
		t.Error("mismatched gradient length accepted")
	}
}

// A parameter large enough to be split across goroutines must update exactly
// as if its halves were separate parameters.
func TestParallelChunksChangeNothing(t *testing.T) {
	n := 3*parallelChunk + 17
	whole := &Param{Name: "w", Data: make([]float32, n), Grad: make([]float32, n)}
	for i := range whole.Data {
		whole.Data[i] = float32(math.Sin(float64(i)))
		whole.Grad[i] = float32(math.Cos(float64(i) * 0.37))
	}
	lo := &Param{Name: "lo", Data: append([]float32(nil), whole.Data[:100]...), Grad: append([]float32(nil), whole.Grad[:100]...)}
	hi := &Param{Name: "hi", Data: append([]float32(nil), whole.Data[n-100:]...), Grad: append([]float32(nil), whole.Grad[n-100:]...)}
	a, _ := NewAdamW(0.9, 0.999, 1e-8, 0.1)
	b, _ := NewAdamW(0.9, 0.999, 1e-8, 0.1)
	for range 3 {
		a.Step([]*Param{whole}, 1e-3)
		b.Step([]*Param{lo, hi}, 1e-3)
	}
	for i := range 100 {
		if whole.Data[i] != lo.Data[i] || whole.Data[n-100+i] != hi.Data[i] {
			t.Fatalf("chunked update differs at %d", i)
		}
	}
}

func TestDecayExempt(t *testing.T) {
	cases := map[string]bool{
		"model.layers.0.input_layernorm.weight":                 true,
		"model.layers.3.post_attention_layernorm.weight":        true,
		"model.norm.weight":                                     true,
		"model.layers.0.self_attn.q_proj.bias":                  true,
		"model.layers.0.self_attn.q_norm.weight":                true,
		"model.layers.0.self_attn.q_proj.weight":                false,
		"model.layers.0.self_attn.q_proj.lora_A.default.weight": false,
		"model.embed_tokens.weight":                             false,
		"lm_head.weight":                                        false,
		"model.layers.0.mlp.normalizer.weight":                  false,
	}
	for name, want := range cases {
		if got := DecayExempt(name); got != want {
			t.Errorf("DecayExempt(%q) = %v, want %v", name, got, want)
		}
	}
}
