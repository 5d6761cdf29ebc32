package lora_test

import (
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/eftml/eft/trainer/cpu"
	"github.com/eftml/eft/trainer/internal/paritytest"
	"github.com/eftml/eft/trainer/lora"
	"github.com/eftml/eft/trainer/model"
	"github.com/eftml/eft/trainer/optim"
	"github.com/eftml/eft/trainer/peft"
	"github.com/eftml/eft/trainer/train"
)

// Tolerances (FIXTURES.md): logits, losses and weights within 1e-4
// absolute; gradients within 1e-4 of each tensor's largest magnitude.
const (
	tolAbs  = 1e-4
	tolGrad = 1e-4
)

// loadAdapter loads the adapter in dir onto its base model, the sibling
// directory named without the "-lora" suffix, and opens its reference.
func loadAdapter(t *testing.T, dir string) (*model.Model, paritytest.Reference) {
	t.Helper()
	base := strings.TrimSuffix(dir, "-lora")
	if base == dir {
		t.Skipf("%s: cannot tell the base model (want a sibling directory named without -lora)", dir)
	}
	m, err := model.Load(base, cpu.New(0))
	if err != nil {
		if model.IsUnsupported(err) {
			t.Skipf("%s: %v", dir, err)
		}
		t.Fatal(err)
	}
	if _, err := lora.Load(m, dir); err != nil {
		t.Fatal(err)
	}
	return m, paritytest.OpenReference(t, dir)
}

// inMemoryName is PEFT's name for an adapter weight while loaded (with the
// adapter name), as the fixture's gradients are keyed.
func inMemoryName(saved string) string { return peft.MemoryKey(saved, peft.DefaultAdapterName) }

func download(m *model.Model, p *model.Param, g bool) []float32 {
	t := p.W
	if g {
		t = p.G
	}
	out := make([]float32, t.Len())
	m.Backend.Download(out, t)
	return out
}

func countTargets(b *model.Batch) int {
	n := 0
	for _, tg := range b.Targets {
		if tg >= 0 {
			n++
		}
	}
	return n
}

func TestPEFTAdapterParity(t *testing.T) {
	for _, dir := range paritytest.Dirs(t, true) {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			m, ref := loadAdapter(t, dir)
			b := ref.Batch()
			logits, err := m.Logits(b)
			if err != nil {
				t.Fatal(err)
			}
			d := paritytest.Compare(t, "logits", logits, ref.F32("logits"), tolAbs, false)

			n := countTargets(b)
			sum, _, err := m.ForwardBackward(b, 1/float32(n))
			if err != nil {
				t.Fatal(err)
			}
			if want := ref.F32("loss")[0]; math.Abs(sum/float64(n)-float64(want)) > tolAbs {
				t.Errorf("loss %.6f, want %.6f", sum/float64(n), want)
			}
			var worst float64
			for _, p := range m.TrainableParams() {
				worst = max(worst, paritytest.Compare(t, "grad "+p.Name, download(m, p, true), ref.F32("grad."+inMemoryName(p.Name)), tolGrad, true))
			}
			if len(m.TrainableParams()) != len(m.LoRAParams()) {
				t.Errorf("%d trainable parameters, want only the %d adapter weights", len(m.TrainableParams()), len(m.LoRAParams()))
			}
			t.Logf("logits max difference %.2g, adapter gradients %.2g of max magnitude", d, worst)

			// Five AdamW updates on the same batch, with the fixture's settings.
			oc := paritytest.ReadOptimizer(t, dir)
			opt, err := optim.NewAdamW(oc.Betas[0], oc.Betas[1], oc.Eps, oc.WeightDecay)
			if err != nil {
				t.Fatal(err)
			}
			tr, err := train.New(m, opt, 0)
			if err != nil {
				t.Fatal(err)
			}
			wantLosses := ref.F32("adamw.losses")
			for step := range oc.Steps {
				res, err := tr.Step([]*model.Batch{b}, oc.LR)
				if err != nil {
					t.Fatal(err)
				}
				if math.Abs(res.Loss-float64(wantLosses[step])) > tolAbs {
					t.Errorf("loss before update %d: %.6f, want %.6f", step+1, res.Loss, wantLosses[step])
				}
			}
			for _, p := range m.LoRAParams() {
				paritytest.Compare(t, "after 5 updates "+p.Name, download(m, p, false), ref.F32("after5."+inMemoryName(p.Name)), tolAbs, false)
			}

			// merge_and_unload of the trained adapter.
			lora.Merge(m)
			for _, p := range m.Params() {
				paritytest.Compare(t, "merged "+p.Name, download(m, p, false), ref.F32("merged."+p.Name), tolAbs, false)
			}
		})
	}
}
