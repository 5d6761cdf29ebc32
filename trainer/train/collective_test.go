package train

import (
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	"github.com/eftml/eft/trainer/lora"
	"github.com/eftml/eft/trainer/model"
)

// memWorld is a Collective for ranks in one process: each exchange waits
// for every rank and sums in rank order.
type memWorld struct {
	n       int
	mu      sync.Mutex
	cond    *sync.Cond
	round   int
	arrived int
	vals    [][]float64
	out     []float64
}

func newMemWorld(n int) *memWorld {
	w := &memWorld{n: n, vals: make([][]float64, n)}
	w.cond = sync.NewCond(&w.mu)
	return w
}

// sum returns, on every rank, the rank-ordered sum of the ranks' v.
func (w *memWorld) sum(rank int, v []float64) []float64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	round := w.round
	w.vals[rank] = v
	w.arrived++
	if w.arrived == w.n {
		w.out = make([]float64, len(v))
		for _, x := range w.vals {
			for i := range x {
				w.out[i] += x[i]
			}
		}
		w.arrived = 0
		w.round++
		w.cond.Broadcast()
	}
	for w.round == round {
		w.cond.Wait()
	}
	return w.out
}

type memRank struct {
	w    *memWorld
	rank int
}

func (r memRank) SumCounts(c []int64) error {
	v := make([]float64, len(c))
	for i, x := range c {
		v[i] = float64(x)
	}
	for i, x := range r.w.sum(r.rank, v) {
		c[i] = int64(x)
	}
	return nil
}

func (r memRank) SumGradients(params []*model.Param, lossSum float64) (float64, error) {
	v := []float64{lossSum}
	for _, p := range params {
		for _, g := range p.G.F32 {
			v = append(v, float64(g))
		}
	}
	s := r.w.sum(r.rank, v)
	k := 1
	for _, p := range params {
		for i := range p.G.F32 {
			p.G.F32[i] = float32(s[k])
			k++
		}
	}
	return s[0], nil
}

// Two ranks, each with half of every step's micro-batches, step exactly as
// one trainer with all of them: the same losses and token counts, and
// weights that agree to float32 rounding (the sums are grouped
// differently), with clipping on and LoRA dropout keyed per micro-batch.
// The two ranks' weights are identical bit for bit.
func TestDataParallelStepEqualsOneProcess(t *testing.T) {
	c := tinyConfig()
	setup := func() *Trainer {
		m := tinyModel(t, c)
		if err := lora.Attach(m, allLinear(4, 8, 0.1, "lm_head"), 3); err != nil {
			t.Fatal(err)
		}
		tr, err := New(m, frozenAdamW(t), 0.5)
		if err != nil {
			t.Fatal(err)
		}
		return tr
	}
	rng := rand.New(rand.NewPCG(5, 5))
	const steps = 3
	var micro [][]*model.Batch // per step: 4 micro-batches, unequal counted tokens
	for s := range steps {
		var mbs []*model.Batch
		for k := range 4 {
			b := randomBatch(rng, c.Vocab, 16, 3*k, 11-2*k)
			b.DropoutSeed = uint64(100*s + k)
			mbs = append(mbs, b)
		}
		micro = append(micro, mbs)
	}

	one := setup()
	var want []StepResult
	for s := range steps {
		res, err := one.Step(micro[s], 1e-2)
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, res)
	}

	world := newMemWorld(2)
	ranks := []*Trainer{setup(), setup()}
	got := make([][]StepResult, 2)
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for r, tr := range ranks {
		tr.Collective = memRank{world, r}
		wg.Go(func() {
			for s := range steps {
				mine := []*model.Batch{micro[s][r], micro[s][r+2]} // rank r: positions r, r+2
				res, err := tr.Step(mine, 1e-2)
				if err != nil {
					errs[r] = err
					return
				}
				got[r] = append(got[r], res)
			}
		})
	}
	wg.Wait()
	for r := range 2 {
		if errs[r] != nil {
			t.Fatal(errs[r])
		}
		for s := range steps {
			g, w := got[r][s], want[s]
			if g.Tokens != w.Tokens || math.Abs(g.Loss-w.Loss) > 1e-5*w.Loss || math.Abs(g.GradNorm-w.GradNorm) > 1e-4*w.GradNorm {
				t.Fatalf("rank %d step %d: %+v, one process %+v", r, s, g, w)
			}
		}
	}
	p0, p1, ref := ranks[0].Model.TrainableParams(), ranks[1].Model.TrainableParams(), one.Model.TrainableParams()
	var worstW float64
	for i := range ref {
		if !slices.Equal(p0[i].W.F32, p1[i].W.F32) {
			t.Fatalf("%s differs between the ranks", ref[i].Name)
		}
		for j, x := range ref[i].W.F32 {
			worstW = max(worstW, math.Abs(float64(p0[i].W.F32[j]-x)))
		}
	}
	// AdamW's first steps move each weight by about lr whatever the
	// gradient's size, so a near-zero gradient element rounded differently
	// moves differently: the bound is on the weight, relative to the 3·lr
	// the updates can add up to.
	if worstW > 1e-3*steps*1e-2 {
		t.Fatalf("data parallel and one process weights differ by up to %.3g", worstW)
	}
	for s := range steps {
		t.Logf("step %d: loss %.7f, one process %.7f", s+1, got[0][s].Loss, want[s].Loss)
	}
	t.Logf("weights differ by up to %.3g", worstW)
}
