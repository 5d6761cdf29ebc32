package runspec

import (
	"strings"
	"testing"

	"github.com/eftml/eft/shared/testfixtures"
	"github.com/eftml/eft/trainer/cpu"
	"github.com/eftml/eft/trainer/quant"
)

const qloraKeys = "adapter: qlora\nload_in_4bit: true\nlora_r: 4\nlora_alpha: 8\nlora_target_linear: true\n"

// adapter: qlora loads the base in Axolotl's BitsAndBytesConfig (NF4,
// blocks of 64, double quantization); adapter: lora with load_in_4bit
// quantizes nothing, as in Axolotl.
func TestQuantization(t *testing.T) {
	if o := Quantization(parse(t, qloraKeys)); o == nil || *o != quant.QLoRA() {
		t.Errorf("qlora: %+v, want %+v", o, quant.QLoRA())
	}
	for _, keys := range []string{
		"adapter: lora\nload_in_4bit: true\nlora_r: 4\nlora_alpha: 8\nlora_target_linear: true\n",
		"adapter: lora\nlora_r: 4\nlora_alpha: 8\nlora_target_linear: true\n",
		"",
	} {
		if o := Quantization(parse(t, keys)); o != nil {
			t.Errorf("%q: quantized %+v", keys, o)
		}
	}
}

// A QLoRA run's model: every decoder linear in NF4 and frozen, an adapter
// on each, nothing else training.
func TestBuildQLoRA(t *testing.T) {
	cfg := parse(t, qloraKeys)
	built, err := Resolver{}.Build(cfg, testfixtures.Path(t, "hf", "llama"), "", cpu.New(0))
	if err != nil {
		t.Fatal(err)
	}
	m := built.Model
	for _, p := range m.Params() {
		if p.Trainable() || p.Quantized() != strings.HasSuffix(p.Name, "_proj.weight") {
			t.Errorf("%s: trainable %v, quantized %v", p.Name, p.Trainable(), p.Quantized())
		}
	}
	if n := len(m.LoRAParams()); n != 2*7*len(m.Layers) {
		t.Errorf("%d adapter tensors, want %d", n, 2*7*len(m.Layers))
	}
	if built.Adapter == nil || built.Adapter.R != 4 {
		t.Errorf("adapter config %+v", built.Adapter)
	}
}
