package model_test

import (
	"math"
	"path/filepath"
	"testing"

	"github.com/eftml/eft/trainer/cpu"
	"github.com/eftml/eft/trainer/internal/paritytest"
	"github.com/eftml/eft/trainer/model"
)

// Tolerances that hold for a correct float32 implementation (FIXTURES.md):
// logits and loss within 1e-4 absolute; each gradient within 1e-4 of the
// largest magnitude in that tensor.
const (
	tolLogits = 1e-4
	tolLoss   = 1e-4
	tolGrad   = 1e-4
)

// loadOrSkip loads a fixture model, skipping architectures the engine does
// not support yet (with the reason) and failing on anything else.
func loadOrSkip(t *testing.T, dir string) *model.Model {
	t.Helper()
	m, err := model.Load(dir, cpu.New(0))
	if err != nil {
		if model.IsUnsupported(err) {
			t.Skipf("%s: %v", filepath.Base(dir), err)
		}
		t.Fatalf("load %s: %v", dir, err)
	}
	return m
}

func maxAbsDiff(got, want []float32) (float64, int) {
	var worst float64
	at := -1
	for i := range want {
		if d := math.Abs(float64(got[i]) - float64(want[i])); d > worst || math.IsNaN(d) {
			worst, at = d, i
		}
	}
	return worst, at
}

func maxAbs(v []float32) float64 {
	var m float64
	for _, x := range v {
		m = max(m, math.Abs(float64(x)))
	}
	return m
}

func TestHFModelParity(t *testing.T) {
	for _, dir := range paritytest.Dirs(t, false) {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			m := loadOrSkip(t, dir)
			ref := paritytest.OpenReference(t, dir)
			batch := ref.Batch()

			logits, err := m.Logits(batch)
			if err != nil {
				t.Fatal(err)
			}
			d := paritytest.Compare(t, "logits", logits, ref.F32("logits"), tolLogits, false)
			t.Logf("logits: max difference %.2g", d)

			for _, p := range m.Params() {
				m.SetTrainable(p, true)
			}
			counted := 0
			for _, tg := range batch.Targets {
				if tg >= 0 {
					counted++
				}
			}
			sum, n, err := m.ForwardBackward(batch, 1/float32(counted))
			if err != nil {
				t.Fatal(err)
			}
			if n != counted {
				t.Fatalf("counted %d targets, want %d", n, counted)
			}
			wantLoss := ref.F32("loss")[0]
			if loss := sum / float64(n); math.Abs(loss-float64(wantLoss)) > tolLoss {
				t.Errorf("loss %.6f, want %.6f", loss, wantLoss)
			}
			var worstGrad float64
			for _, p := range m.Params() {
				got := make([]float32, p.G.Len())
				m.Backend.Download(got, p.G)
				worstGrad = max(worstGrad, paritytest.Compare(t, "grad "+p.Name, got, ref.F32("grad."+p.Name), tolGrad, true))
			}
			t.Logf("loss %.6f; gradients: max difference %.2g of the tensor's max magnitude", sum/float64(n), worstGrad)

			pids, pshape := ref.IDs("packed.input_ids")
			ppos, _ := ref.IDs("packed.position_ids")
			packed := &model.Batch{Rows: pshape[0], Cols: pshape[1], Tokens: pids, Positions: ppos}
			plogits, err := m.Logits(packed)
			if err != nil {
				t.Fatal(err)
			}
			paritytest.Compare(t, "packed logits (samples leaking into each other?)", plogits, ref.F32("packed.logits"), tolLogits, false)
		})
	}
}
