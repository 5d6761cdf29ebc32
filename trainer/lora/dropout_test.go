package lora_test

import (
	"math"
	"math/rand/v2"
	"sort"
	"testing"

	"github.com/eftml/eft/trainer/lora"
	"github.com/eftml/eft/trainer/model"
	"github.com/eftml/eft/trainer/peft"
)

// With dropout the adapter sees dropout(x); its gradients must follow the
// same mask (drawn again from the batch's seed). Central differences of the
// training loss check the largest gradient entries of every adapter weight.
func TestDropoutGradientsMatchFiniteDifferences(t *testing.T) {
	m := loadLlama(t)
	cfg := peft.NewConfig(4, 8, 0.3, nil)
	cfg.TargetRegex = peft.AllLinear
	if err := lora.Attach(m, cfg, 2); err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(8, 8))
	for _, p := range m.LoRAParams() {
		for i := range p.W.F32 {
			p.W.F32[i] = float32(r.NormFloat64() * 0.2)
		}
	}
	tokens := []int32{1, 30, 500, 7, 99, 1200, 3, 64, 65, 66}
	b := &model.Batch{Rows: 1, Cols: len(tokens), Tokens: tokens, Targets: model.ShiftLabels(tokens, nil, 1, len(tokens)), DropoutSeed: 12345}
	lossAt := func() float64 {
		s, _, err := m.ForwardBackward(b, 0)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	m.ZeroGrads()
	if _, _, err := m.ForwardBackward(b, 1); err != nil {
		t.Fatal(err)
	}
	// Dropout must change the loss (or this test checks nothing).
	withDropout := lossAt()
	noDrop, _, err := m.Loss(b)
	if err != nil {
		t.Fatal(err)
	}
	if withDropout == noDrop {
		t.Fatal("dropout did not change the training loss")
	}
	const eps = 1e-3
	for _, p := range m.LoRAParams() {
		g := append([]float32(nil), p.G.F32...)
		idx := make([]int, len(g))
		for i := range idx {
			idx[i] = i
		}
		sort.Slice(idx, func(a, b int) bool { return math.Abs(float64(g[idx[a]])) > math.Abs(float64(g[idx[b]])) })
		for _, i := range idx[:2] {
			orig := p.W.F32[i]
			p.W.F32[i] = orig + eps
			up := lossAt()
			p.W.F32[i] = orig - eps
			down := lossAt()
			p.W.F32[i] = orig
			fd := (up - down) / (2 * eps)
			if math.Abs(fd-float64(g[i])) > 0.02*math.Abs(fd)+1e-3 {
				t.Errorf("%s[%d]: gradient %v, finite difference %v", p.Name, i, g[i], fd)
			}
		}
	}
}
