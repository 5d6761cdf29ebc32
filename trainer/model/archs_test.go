package model_test

import (
	"math"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/eftml/eft/shared/safetensors"
	"github.com/eftml/eft/trainer/internal/paritytest"
	"github.com/eftml/eft/trainer/lora"
	"github.com/eftml/eft/trainer/peft"
)

// A full fine-tune saves what it loaded, in the checkpoint's layout, on
// every fixture architecture: the same names (phi3's fused qkv_proj and
// gate_up_proj, gemma2's four norms a layer) and shapes, and the same
// values: exact, except that Gemma's norms are held as 1 + w, so w comes
// back rounded to float32's step at 1 (6e-8).
func TestStateDictIsTheCheckpoint(t *testing.T) {
	for _, dir := range paritytest.Dirs(t, false) {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			m := loadOrSkip(t, dir)
			src, err := safetensors.Open(filepath.Join(dir, "model.safetensors"))
			if err != nil {
				t.Fatal(err)
			}
			defer src.Close()
			saved, err := m.StateDict(safetensors.F32)
			if err != nil {
				t.Fatal(err)
			}
			if names := src.Names(); len(saved) != len(names) {
				t.Errorf("%d tensors saved, the checkpoint has %d", len(saved), len(names))
			}
			for _, nt := range saved {
				want, err := src.Float32s(nt.Name)
				if err != nil {
					t.Errorf("saved %s: %v", nt.Name, err)
					continue
				}
				info, _ := src.Info(nt.Name)
				got, err := nt.Tensor.Float32s()
				if err != nil {
					t.Fatal(err)
				}
				tol := 0.0
				if m.Config.NormOffset && strings.HasSuffix(nt.Name, "norm.weight") {
					tol = 6e-8
				}
				if d, at := maxAbsDiff(got, want); !slices.Equal(nt.Tensor.Shape, info.Shape) || d > tol {
					t.Errorf("%s: saved %v differs from the checkpoint's %v by %g at %d", nt.Name, nt.Tensor.Shape, info.Shape, d, at)
				}
			}
		})
	}
}

// Gradient checkpointing (each block recomputed before its backward pass)
// gives the gradients of the plain pass on every fixture architecture, with
// every weight training and a LoRA adapter with dropout on every linear:
// the recomputed blocks (phi3's fused projections, gemma2's sandwich norms
// and soft caps included) save everything their backward passes read.
func TestGradientCheckpointingOnEveryArch(t *testing.T) {
	for _, dir := range paritytest.Dirs(t, false) {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			m := loadOrSkip(t, dir)
			cfg := peft.NewConfig(4, 8, 0.1, nil)
			cfg.TargetRegex, cfg.InitLoraWeights = peft.AllLinear, false
			if err := lora.Attach(m, cfg, 9); err != nil {
				t.Fatal(err)
			}
			for _, p := range m.Params() {
				m.SetTrainable(p, true)
			}
			b := fixtureBatch(m.Config.Vocab)
			b.DropoutSeed = 5
			grads := func() map[string][]float32 {
				m.ZeroGrads()
				if _, _, err := m.ForwardBackward(b, 0.1); err != nil {
					t.Fatal(err)
				}
				out := map[string][]float32{}
				for _, p := range m.TrainableParams() {
					out[p.Name] = append([]float32(nil), p.G.F32...)
				}
				return out
			}
			plain := grads()
			m.GradientCheckpointing = true
			ckpt := grads()
			for name, want := range plain {
				if d, _ := maxAbsDiff(ckpt[name], want); d > 1e-6*max(1, maxAbs(want)) || math.IsNaN(d) {
					t.Errorf("%s: checkpointed gradient differs by %g", name, d)
				}
			}
			if len(ckpt) != len(plain) {
				t.Errorf("%d gradients with checkpointing, %d without", len(ckpt), len(plain))
			}
		})
	}
}

// The architecture switches that the fixtures cannot tell apart from their
// defaults are computed as transformers computes them: Gemma-2's scale
// 1/sqrt(query_pre_attn_scalar) (the fixture's scalar is its head_dim).
func TestQueryPreAttnScalarSetsTheScale(t *testing.T) {
	dir := copyModel(t, "gemma2")
	m16 := loadOrSkip(t, dir)
	editConfig(t, dir, `"query_pre_attn_scalar": 16`, `"query_pre_attn_scalar": 64`)
	m64 := loadOrSkip(t, dir)
	// Scores halved, as if q were: with q_proj halved the 16 model must
	// give the 64 model's logits (RoPE and the q path are linear in q).
	for l := range m16.Layers {
		w := m16.Layers[l].QKV[0].W.W.F32
		for i := range w {
			w[i] /= 2
		}
	}
	b := fixtureBatch(m16.Config.Vocab)
	l16, err := m16.Logits(b)
	if err != nil {
		t.Fatal(err)
	}
	l64, err := m64.Logits(b)
	if err != nil {
		t.Fatal(err)
	}
	if d, at := maxAbsDiff(l16, l64); d > 1e-5 {
		t.Errorf("query_pre_attn_scalar 64 is not the scores halved: logits differ by %g at %d", d, at)
	}
}
