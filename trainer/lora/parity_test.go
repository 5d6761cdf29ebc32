package lora_test

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/eftml/eft/shared/safetensors"
	"github.com/eftml/eft/shared/testfixtures"
	"github.com/eftml/eft/trainer/cpu"
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

type adapterFixture struct {
	dir, base string
	cfg       *peft.Config
	ref       *safetensors.File
}

// adapterDirs lists every fixture directory holding a PEFT adapter. Its base
// model is the sibling directory named without the "-lora" suffix.
func adapterDirs(t *testing.T) []string {
	root := testfixtures.ParityDir(t)
	entries, err := os.ReadDir(root)
	if err != nil {
		t.Fatalf("parity fixtures: %v", err)
	}
	var dirs []string
	for _, e := range entries {
		if _, err := os.Stat(filepath.Join(root, e.Name(), "adapter_config.json")); err == nil {
			dirs = append(dirs, filepath.Join(root, e.Name()))
		}
	}
	if len(dirs) == 0 {
		t.Fatalf("no adapter directories under %s", root)
	}
	return dirs
}

func loadAdapter(t *testing.T, dir string) (*model.Model, adapterFixture) {
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
	cfg, err := lora.Load(m, dir)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := safetensors.Open(filepath.Join(dir, "reference.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ref.Close() })
	return m, adapterFixture{dir: dir, base: base, cfg: cfg, ref: ref}
}

func (f adapterFixture) f32(t *testing.T, name string) []float32 {
	t.Helper()
	v, err := f.ref.Float32s(name)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func (f adapterFixture) batch(t *testing.T) *model.Batch {
	t.Helper()
	get := func(name string) ([]int32, []int) {
		v, err := f.ref.Int64s(name)
		if err != nil {
			t.Fatal(err)
		}
		info, _ := f.ref.Info(name)
		out := make([]int32, len(v))
		for i, x := range v {
			out[i] = int32(x)
		}
		return out, info.Shape
	}
	ids, shape := get("input_ids")
	labels, _ := get("labels")
	return &model.Batch{Rows: shape[0], Cols: shape[1], Tokens: ids, Targets: model.ShiftLabels(labels, nil, shape[0], shape[1])}
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

func compare(t *testing.T, what string, got, want []float32, tol float64, relative bool) float64 {
	t.Helper()
	scale := 1.0
	if relative {
		scale = 0
		for _, w := range want {
			scale = max(scale, math.Abs(float64(w)))
		}
	}
	var worst float64
	at := 0
	for i := range want {
		if d := math.Abs(float64(got[i]) - float64(want[i])); d > worst || math.IsNaN(d) {
			worst, at = d, i
		}
	}
	if worst > tol*scale {
		t.Errorf("%s: differs by %.3g at %d (got %g, want %g), tolerance %g×%.3g", what, worst, at, got[at], want[at], tol, scale)
	}
	return worst / scale
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
	for _, dir := range adapterDirs(t) {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			m, fx := loadAdapter(t, dir)
			b := fx.batch(t)
			logits, err := m.Logits(b)
			if err != nil {
				t.Fatal(err)
			}
			d := compare(t, "logits", logits, fx.f32(t, "logits"), tolAbs, false)

			n := countTargets(b)
			sum, _, err := m.ForwardBackward(b, 1/float32(n))
			if err != nil {
				t.Fatal(err)
			}
			if want := fx.f32(t, "loss")[0]; math.Abs(sum/float64(n)-float64(want)) > tolAbs {
				t.Errorf("loss %.6f, want %.6f", sum/float64(n), want)
			}
			var worst float64
			for _, p := range m.TrainableParams() {
				worst = max(worst, compare(t, "grad "+p.Name, download(m, p, true), fx.f32(t, "grad."+inMemoryName(p.Name)), tolGrad, true))
			}
			if len(m.TrainableParams()) != len(m.LoRAParams()) {
				t.Errorf("%d trainable parameters, want only the %d adapter weights", len(m.TrainableParams()), len(m.LoRAParams()))
			}
			t.Logf("logits max difference %.2g, adapter gradients %.2g of max magnitude", d, worst)

			// Five AdamW updates on the same batch, with the fixture's settings.
			var oc struct {
				LR          float64    `json:"lr"`
				Betas       [2]float64 `json:"betas"`
				Eps         float64    `json:"eps"`
				WeightDecay float64    `json:"weight_decay"`
				Steps       int        `json:"steps"`
			}
			data, err := os.ReadFile(filepath.Join(dir, "reference_optimizer.json"))
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(data, &oc); err != nil {
				t.Fatal(err)
			}
			opt, err := optim.NewAdamW(oc.Betas[0], oc.Betas[1], oc.Eps, oc.WeightDecay)
			if err != nil {
				t.Fatal(err)
			}
			tr, err := train.New(m, opt, 0)
			if err != nil {
				t.Fatal(err)
			}
			wantLosses := fx.f32(t, "adamw.losses")
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
				compare(t, "after 5 updates "+p.Name, download(m, p, false), fx.f32(t, "after5."+inMemoryName(p.Name)), tolAbs, false)
			}

			// merge_and_unload of the trained adapter.
			lora.Merge(m)
			for _, p := range m.Params() {
				compare(t, "merged "+p.Name, download(m, p, false), fx.f32(t, "merged."+p.Name), tolAbs, false)
			}
		})
	}
}
