package lora_test

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/eftml/eft/shared/safetensors"
	"github.com/eftml/eft/shared/testfixtures"
	"github.com/eftml/eft/trainer/cpu"
	"github.com/eftml/eft/trainer/lora"
	"github.com/eftml/eft/trainer/model"
	"github.com/eftml/eft/trainer/peft"
)

// phi3Targets are PEFT's module names for Phi-3 (what Axolotl's Phi-3
// LoRA examples target).
var phi3Targets = []string{"qkv_proj", "o_proj", "gate_up_proj", "down_proj"}

func loadPhi3(t *testing.T) *model.Model {
	t.Helper()
	m, err := model.Load(testfixtures.Path(t, "hf", "phi3"), cpu.New(0))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// phi3Adapter attaches a rank-4 adapter with non-zero B (so it changes the
// output) to Phi-3's four linear modules in every layer.
func phi3Adapter(t *testing.T, m *model.Model) *peft.Config {
	t.Helper()
	cfg := peft.NewConfig(4, 8, 0, phi3Targets)
	cfg.InitLoraWeights = false
	if err := lora.Attach(m, cfg, 3); err != nil {
		t.Fatal(err)
	}
	return cfg
}

var phi3Batch = &model.Batch{Rows: 2, Cols: 6,
	Tokens:  []int32{1, 40, 41, 42, 900, 3, 7, 8, 2000, 11, 12, 13},
	Targets: []int32{40, 41, 42, 900, 3, -100, -100, 2000, 11, 12, 13, -100}}

// An adapter on a fused projection is one adapter on the whole matrix, as
// PEFT puts it on the nn.Linear qkv_proj: the model computes what the
// merged weight W + s·B·A computes, and its gradients are the merged
// weight's gradient G carried onto the factors: dB = s·G·Aᵀ, dA = s·Bᵀ·G
// (for the q, k and v rows alike). The merged model's gradient G is the
// full fine-tune's, which the phi3 parity test holds against transformers.
func TestLoRAOnFusedProjectionsIsTheMergedWeight(t *testing.T) {
	adapted := loadPhi3(t)
	phi3Adapter(t, adapted)
	if n := len(adapted.LoRAParams()) / 2; n != 4*len(adapted.Layers) {
		t.Fatalf("%d adapted modules, want 4 a layer", n)
	}
	merged := loadPhi3(t)
	phi3Adapter(t, merged) // the same seed: the same A and B
	lora.Merge(merged)
	for _, p := range merged.Params() {
		merged.SetTrainable(p, true)
	}

	la, err := adapted.Logits(phi3Batch)
	if err != nil {
		t.Fatal(err)
	}
	lm, err := merged.Logits(phi3Batch)
	if err != nil {
		t.Fatal(err)
	}
	if d := maxDiff(la, lm); d > 1e-4 {
		t.Errorf("adapter logits differ from the merged model's by %g", d)
	}
	sa, n, err := adapted.ForwardBackward(phi3Batch, 1)
	if err != nil {
		t.Fatal(err)
	}
	sm, _, err := merged.ForwardBackward(phi3Batch, 1)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(sa-sm)/float64(n) > 1e-5 {
		t.Errorf("loss %.7f, merged %.7f", sa/float64(n), sm/float64(n))
	}
	for l := range adapted.Layers {
		lins, mlins := adapted.Layers[l].Linears(), merged.Layers[l].Linears()
		for i, lin := range lins {
			lo, g := lin.LoRA, mlins[i].W.G.F32
			r, s := lo.Rank(), float64(lo.Scale)
			wantA, wantB := make([]float32, r*lin.In), make([]float32, lin.Out*r)
			for o := range lin.Out {
				for k := range r {
					var sum float64
					for j := range lin.In {
						sum += float64(g[o*lin.In+j]) * float64(lo.A.W.F32[k*lin.In+j])
					}
					wantB[o*r+k] = float32(s * sum)
				}
			}
			for k := range r {
				for j := range lin.In {
					var sum float64
					for o := range lin.Out {
						sum += float64(lo.B.W.F32[o*r+k]) * float64(g[o*lin.In+j])
					}
					wantA[k*lin.In+j] = float32(s * sum)
				}
			}
			for _, c := range []struct {
				name      string
				got, want []float32
			}{{lo.A.Name, lo.A.G.F32, wantA}, {lo.B.Name, lo.B.G.F32, wantB}} {
				if d, scale := maxDiff(c.got, c.want), maxMagnitude(c.want); d > 1e-4*scale || scale == 0 {
					t.Errorf("%s: gradient differs from the merged weight's by %g (largest %g)", c.name, d, scale)
				}
			}
		}
	}
}

// A Phi-3 adapter is saved in PEFT's layout, one lora_A/lora_B pair per
// fused module (lora_B with the fused module's rows), and loads back.
func TestPhi3AdapterSavesInPEFTLayout(t *testing.T) {
	m := loadPhi3(t)
	cfg := phi3Adapter(t, m)
	want, err := m.Logits(phi3Batch)
	if err != nil {
		t.Fatal(err)
	}
	dir := saveAdapter(t, m, cfg)
	f, err := safetensors.Open(filepath.Join(dir, "adapter_model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	shapes := map[string][2][]int{ // module: lora_A, lora_B shapes (r = 4, hidden 64, 4 heads of 16, intermediate 160)
		"self_attn.qkv_proj": {{4, 64}, {3 * 64, 4}},
		"self_attn.o_proj":   {{4, 64}, {64, 4}},
		"mlp.gate_up_proj":   {{4, 64}, {2 * 160, 4}},
		"mlp.down_proj":      {{4, 160}, {64, 4}},
	}
	var wantNames []string
	for l := range 2 {
		for module, s := range shapes {
			for i, kind := range []string{"lora_A", "lora_B"} {
				name := fmt.Sprintf("base_model.model.model.layers.%d.%s.%s.weight", l, module, kind)
				wantNames = append(wantNames, name)
				info, ok := f.Info(name)
				if !ok || !slices.Equal(info.Shape, s[i]) {
					t.Errorf("%s: %v (present %v), want %v", name, info.Shape, ok, s[i])
				}
			}
		}
	}
	if names := f.Names(); len(names) != len(wantNames) {
		t.Errorf("saved %v, want %d tensors", names, len(wantNames))
	}
	config, err := os.ReadFile(filepath.Join(dir, "adapter_config.json"))
	if err != nil || !strings.Contains(string(config), `"qkv_proj"`) || !strings.Contains(string(config), `"gate_up_proj"`) {
		t.Errorf("adapter_config.json: %v\n%s", err, config)
	}

	back := loadPhi3(t)
	if _, err := lora.Load(back, dir); err != nil {
		t.Fatal(err)
	}
	got, err := back.Logits(phi3Batch)
	if err != nil {
		t.Fatal(err)
	}
	if d := maxDiff(got, want); d != 0 {
		t.Errorf("reloaded adapter: logits differ by %g", d)
	}
}

// Llama's module names do not exist in Phi-3: targeting them, or loading an
// adapter made for them, is an error naming the module and what exists.
func TestPhi3RejectsUnfusedTargets(t *testing.T) {
	err := lora.Attach(loadPhi3(t), peft.NewConfig(4, 8, 0, []string{"q_proj", "v_proj"}), 1)
	if err == nil || !strings.Contains(err.Error(), "target module(s) q_proj, v_proj not found") ||
		!strings.Contains(err.Error(), "down_proj, gate_up_proj, o_proj, qkv_proj") {
		t.Errorf("llama targets on phi3: %v", err)
	}
	_, err = lora.Load(loadPhi3(t), testfixtures.Path(t, "hf", "llama-lora"))
	if err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("llama adapter on phi3: %v", err)
	}
}

func maxDiff(a, b []float32) float64 {
	var d float64
	for i := range a {
		d = max(d, math.Abs(float64(a[i])-float64(b[i])))
		if math.IsNaN(float64(a[i])) {
			return math.Inf(1)
		}
	}
	return d
}

func maxMagnitude(v []float32) float64 {
	var m float64
	for _, x := range v {
		m = max(m, math.Abs(float64(x)))
	}
	return m
}

// Phi-3's fused module names do not exist in Gemma-2 either: targeting one
// is an error listing the modules there are.
func TestGemma2RejectsFusedTargets(t *testing.T) {
	m, err := model.Load(testfixtures.Path(t, "hf", "gemma2"), cpu.New(0))
	if err != nil {
		t.Fatal(err)
	}
	err = lora.Attach(m, peft.NewConfig(4, 8, 0, []string{"qkv_proj", "o_proj"}), 1)
	if err == nil || !strings.Contains(err.Error(), "target module(s) qkv_proj not found") ||
		!strings.Contains(err.Error(), "down_proj, gate_proj, k_proj, o_proj, q_proj, up_proj, v_proj") {
		t.Errorf("phi3 targets on gemma2: %v", err)
	}
}
