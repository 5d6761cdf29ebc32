package lora_test

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/eftml/eft/shared/testfixtures"
	"github.com/eftml/eft/trainer/cpu"
	"github.com/eftml/eft/trainer/lora"
	"github.com/eftml/eft/trainer/model"
	"github.com/eftml/eft/trainer/peft"
	"github.com/eftml/eft/trainer/quant"
)

func loadLlama4bit(t *testing.T) *model.Model {
	t.Helper()
	o := quant.QLoRA()
	m, err := model.LoadWith(testfixtures.Path(t, "hf", "llama"), cpu.New(0), model.Options{Quantize4bit: &o})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestMergeIntoQuantizedBase: merging an adapter into a 4-bit base gives
// float32 weights equal to the dequantized base plus scale·B·A, whose
// logits are the adapted 4-bit model's.
func TestMergeIntoQuantizedBase(t *testing.T) {
	m := loadLlama4bit(t)
	cfg := withRegex(peft.AllLinear)
	cfg.InitLoraWeights = false
	if err := lora.Attach(m, cfg, 3); err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 1))
	b := &model.Batch{Rows: 1, Cols: 10, Tokens: make([]int32, 10)}
	for i := range b.Tokens {
		b.Tokens[i] = int32(r.IntN(m.Config.Vocab))
	}
	adapted, err := m.Logits(b)
	if err != nil {
		t.Fatal(err)
	}
	q := m.Layers[1].Down
	want := make([]float32, q.Out*q.In)
	q.W.Quant.Dequantize(want)
	lo := q.LoRA
	for i := range q.Out {
		for j := range q.In {
			var s float32
			for k := range lo.Rank() {
				s += lo.B.W.F32[i*lo.Rank()+k] * lo.A.W.F32[k*q.In+j]
			}
			want[i*q.In+j] += lo.Scale * s
		}
	}
	lora.Merge(m)
	for i := range m.Layers {
		for _, lin := range m.Layers[i].Linears() {
			if lin.W.Quantized() || lin.LoRA != nil || len(lin.W.W.F32) != lin.Out*lin.In {
				t.Fatalf("%s after the merge: quantized %v, adapter %v, %d values", lin.Module, lin.W.Quantized(), lin.LoRA != nil, len(lin.W.W.F32))
			}
		}
	}
	for i, w := range want {
		if d := math.Abs(float64(q.W.W.F32[i] - w)); d > 1e-6 {
			t.Fatalf("merged down_proj[%d] = %g, dequantized base + scale·B·A = %g", i, q.W.W.F32[i], w)
		}
	}
	merged, err := m.Logits(b)
	if err != nil {
		t.Fatal(err)
	}
	for i := range merged {
		if d := math.Abs(float64(merged[i] - adapted[i])); d > 1e-4 {
			t.Fatalf("merged logit %d = %g, adapted 4-bit model %g", i, merged[i], adapted[i])
		}
	}
}

func TestModulesToSaveRefusesQuantizedLayers(t *testing.T) {
	m := loadLlama4bit(t)
	cfg := withSaved(peft.NewConfig(2, 4, 0, []string{"q_proj"}), "mlp.down_proj")
	err := lora.Attach(m, cfg, 1)
	if err == nil || !strings.Contains(err.Error(), `modules_to_save entry "mlp.down_proj" names model.layers.0.mlp.down_proj.weight, which is loaded in 4 bits`) {
		t.Fatalf("modules_to_save on a 4-bit layer: %v", err)
	}
	if err := lora.Attach(m, withSaved(peft.NewConfig(2, 4, 0, []string{"q_proj"}), "lm_head"), 1); err != nil {
		t.Fatalf("lm_head stays float32 and can be saved: %v", err)
	}
}
