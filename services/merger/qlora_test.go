package merger

import (
	"path/filepath"
	"testing"

	"github.com/eftml/eft/shared/safetensors"
	"github.com/eftml/eft/shared/testfixtures"
	"github.com/eftml/eft/trainer/cpu"
	"github.com/eftml/eft/trainer/lora"
	"github.com/eftml/eft/trainer/model"
	"github.com/eftml/eft/trainer/peft"
	"github.com/eftml/eft/trainer/quant"
)

// saveAdapter writes a random adapter (B non-zero) on the llama fixture for
// the given target modules.
func saveAdapter(t *testing.T, targets ...string) string {
	t.Helper()
	m, err := model.Load(testfixtures.Path(t, "hf", "llama"), cpu.New(0))
	if err != nil {
		t.Fatal(err)
	}
	cfg := peft.NewConfig(4, 8, 0, targets)
	cfg.InitLoraWeights = false
	if err := lora.Attach(m, cfg, 9); err != nil {
		t.Fatal(err)
	}
	dir, _ := exportAdapter(t, m, cfg)
	return dir
}

// exportAdapter saves m's adapter (as PEFT would) in a new folder, and
// returns the folder and the adapter.
func exportAdapter(t *testing.T, m *model.Model, cfg *peft.Config) (string, *peft.Adapter) {
	t.Helper()
	a, err := lora.Export(m, cfg)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "adapter")
	if err := a.Save(dir, safetensors.F32); err != nil {
		t.Fatal(err)
	}
	return dir, a
}

// A QLoRA adapter merges into the NF4 round trip of the weights it adapts
// (what it was trained against) and leaves the other weights as the base
// holds them; with every linear adapted, the merged model's logits are the
// adapter's on the 4-bit base.
func TestMergeQLoRAAdapter(t *testing.T) {
	base := testfixtures.Path(t, "hf", "llama")
	o := quant.QLoRA()

	partial := saveAdapter(t, "q_proj", "v_proj")
	out := filepath.Join(t.TempDir(), "merged")
	if _, err := MergeDir(base, partial, "", out, MergeOptions{Quantized: &o}); err != nil {
		t.Fatal(err)
	}
	merged, err := safetensors.OpenModel(out, "model")
	if err != nil {
		t.Fatal(err)
	}
	defer merged.Close()
	orig, err := safetensors.OpenModel(base, "model")
	if err != nil {
		t.Fatal(err)
	}
	defer orig.Close()
	want, err := model.Load(base, cpu.New(0))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lora.Load(want, partial); err != nil {
		t.Fatal(err)
	}
	for _, lin := range want.Layers[0].Linears() {
		name := lin.W.Name
		have, err := merged.Float32s(name)
		if err != nil {
			t.Fatal(err)
		}
		if lin.LoRA == nil {
			w, _ := orig.Float32s(name)
			if d := maxAbsDiff(have, w); d != 0 {
				t.Errorf("%s has no adapter but differs from the base by %g", name, d)
			}
			continue
		}
		q, err := quant.Quantize(lin.W.W.F32, lin.Out, lin.In, o)
		if err != nil {
			t.Fatal(err)
		}
		q.Dequantize(lin.W.W.F32)
		lo := lin.LoRA
		want.Backend.MatMul(lin.W.W, lo.B.W, lo.A.W, false, false, lo.Scale, 1)
		if d := maxAbsDiff(have, lin.W.W.F32); d > 1e-6 {
			t.Errorf("merged %s differs from its NF4 round trip + scale·B·A by %g", name, d)
		}
	}

	all := saveAdapter(t, "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
	out = filepath.Join(t.TempDir(), "merged-all")
	if _, err := MergeDir(base, all, "", out, MergeOptions{Quantized: &o}); err != nil {
		t.Fatal(err)
	}
	m, err := model.Load(out, cpu.New(0))
	if err != nil {
		t.Fatal(err)
	}
	q, err := model.LoadWith(base, cpu.New(0), model.Options{Quantize4bit: &o})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lora.Load(q, all); err != nil {
		t.Fatal(err)
	}
	if d := maxAbsDiff(loadLogits(t, m), loadLogits(t, q)); d > 1e-4 {
		t.Errorf("merged model's logits differ from the adapter on the 4-bit base by %g", d)
	}
}
