package model_test

import (
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/eftml/eft/shared/safetensors"
	"github.com/eftml/eft/shared/testfixtures"
	"github.com/eftml/eft/trainer/cpu"
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

// modelDirs lists the fixture directories holding a model (config.json and
// no adapter_config.json).
func modelDirs(t *testing.T) []string {
	t.Helper()
	root := testfixtures.ParityDir(t)
	entries, err := os.ReadDir(root)
	if err != nil {
		t.Fatalf("parity fixtures: %v", err)
	}
	var dirs []string
	for _, e := range entries {
		dir := filepath.Join(root, e.Name())
		if !e.IsDir() || fileExists(filepath.Join(dir, "adapter_config.json")) || !fileExists(filepath.Join(dir, "config.json")) {
			continue
		}
		dirs = append(dirs, dir)
	}
	if len(dirs) == 0 {
		t.Fatalf("no model directories under %s", root)
	}
	return dirs
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

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

type reference struct {
	*safetensors.File
	t *testing.T
}

func openReference(t *testing.T, dir string) reference {
	t.Helper()
	f, err := safetensors.Open(filepath.Join(dir, "reference.safetensors"))
	if err != nil {
		t.Fatalf("reference: %v", err)
	}
	t.Cleanup(func() { f.Close() })
	return reference{f, t}
}

func (r reference) f32(name string) []float32 {
	r.t.Helper()
	v, err := r.Float32s(name)
	if err != nil {
		r.t.Fatalf("reference: %v", err)
	}
	return v
}

func (r reference) ids(name string) ([]int32, []int) {
	r.t.Helper()
	v, err := r.Int64s(name)
	if err != nil {
		r.t.Fatalf("reference: %v", err)
	}
	info, _ := r.Info(name)
	out := make([]int32, len(v))
	for i, x := range v {
		out[i] = int32(x)
	}
	return out, info.Shape
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
	for _, dir := range modelDirs(t) {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			m := loadOrSkip(t, dir)
			ref := openReference(t, dir)
			ids, shape := ref.ids("input_ids")
			labels, _ := ref.ids("labels")
			batch := &model.Batch{Rows: shape[0], Cols: shape[1], Tokens: ids, Targets: model.ShiftLabels(labels, nil, shape[0], shape[1])}

			logits, err := m.Logits(batch)
			if err != nil {
				t.Fatal(err)
			}
			d, at := maxAbsDiff(logits, ref.f32("logits"))
			if d > tolLogits {
				t.Errorf("logits differ by %.3g at %d (tolerance %g)", d, at, tolLogits)
			}
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
			wantLoss := ref.f32("loss")[0]
			if loss := sum / float64(n); math.Abs(loss-float64(wantLoss)) > tolLoss {
				t.Errorf("loss %.6f, want %.6f", loss, wantLoss)
			}
			var worstGrad float64
			for _, p := range m.Params() {
				want := ref.f32("grad." + p.Name)
				got := make([]float32, p.G.Len())
				m.Backend.Download(got, p.G)
				scale := maxAbs(want)
				d, at := maxAbsDiff(got, want)
				worstGrad = max(worstGrad, d/scale)
				if d > tolGrad*scale {
					t.Errorf("grad %s: differs by %.3g at %d (got %g want %g), max |grad| %.3g, tolerance %g relative",
						p.Name, d, at, got[at], want[at], scale, tolGrad)
				}
			}
			t.Logf("loss %.6f; gradients: max difference %.2g of the tensor's max magnitude", sum/float64(n), worstGrad)

			pids, pshape := ref.ids("packed.input_ids")
			ppos, _ := ref.ids("packed.position_ids")
			packed := &model.Batch{Rows: pshape[0], Cols: pshape[1], Tokens: pids, Positions: ppos}
			plogits, err := m.Logits(packed)
			if err != nil {
				t.Fatal(err)
			}
			if d, at := maxAbsDiff(plogits, ref.f32("packed.logits")); d > tolLogits {
				t.Errorf("packed logits differ by %.3g at %d (tolerance %g): samples leak into each other?", d, at, tolLogits)
			}
		})
	}
}
