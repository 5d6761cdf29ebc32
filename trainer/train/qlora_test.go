package train

import (
	"testing"

	"github.com/eftml/eft/trainer/cpu"
	"github.com/eftml/eft/trainer/lora"
	"github.com/eftml/eft/trainer/model"
	"github.com/eftml/eft/trainer/quant"
)

// quantizedModel is a random model of config c with its decoder linear
// weights loaded in NF4 (QLoRA's format).
func quantizedModel(t testing.TB, c model.Config, std float64) *model.Model {
	t.Helper()
	o := quant.QLoRA()
	m, err := model.NewWith(c, cpu.New(0), model.RandomWeights(1, std), model.Options{Quantize4bit: &o})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// QLoRA — LoRA over NF4 base weights — memorises a few sequences like LoRA
// over float32 ones (TestLoRAOverfitsFewSequences).
func TestQLoRAOverfitsFewSequences(t *testing.T) {
	overfitsFewSequences(t, quantizedModel(t, tinyConfig(), 0.3), "QLoRA")
}

// baseWeightBytes is the memory the frozen base weights hold: 4-bit codes
// and scales for quantized ones, float32 for the rest.
func baseWeightBytes(m *model.Model) (linears, all int) {
	for _, p := range m.Params() {
		n := 4 * p.W.Len()
		if p.Quantized() {
			n = p.Quant.Bytes()
		}
		all += n
		if p.Quantized() || len(p.W.Shape()) == 2 && p != m.Embed && p != m.LMHead {
			linears += n
		}
	}
	return linears, all
}

func benchmarkAdapterStep(b *testing.B, nf4 bool) {
	c := bench20M()
	var m *model.Model
	if nf4 {
		m = quantizedModel(b, c, 0.02)
	} else {
		var err error
		if m, err = model.NewRandom(c, cpu.New(0), 1, 0.02); err != nil {
			b.Fatal(err)
		}
	}
	rank := 16
	if err := lora.Attach(m, allLinear(rank, 32, 0), 1); err != nil {
		b.Fatal(err)
	}
	tr, micro := benchTrainer(b, m)
	perStep := timeSteps(b, tr, micro)
	tokens := benchRows * benchCols
	linears, all := baseWeightBytes(m)
	b.ReportMetric(float64(tokens)/perStep, "tokens/s")
	b.ReportMetric(stepFLOPs(c, tokens, benchCols, rank, false)/perStep/1e9, "GFLOP/s")
	b.ReportMetric(float64(linears)/1e6, "linear-MB")
	b.ReportMetric(float64(all)/1e6, "base-MB")
}

// BenchmarkTrainStep20MQLoRA compares one optimizer step of the 20M llama
// of BenchmarkTrainStep20M with LoRA r=16 on every linear layer over
// float32 base weights ("lora") and over NF4 ones ("qlora": the base
// linears dequantized a tile at a time in every product), with the memory
// the frozen base weights hold.
func BenchmarkTrainStep20MQLoRA(b *testing.B) {
	b.Run("lora", func(b *testing.B) { benchmarkAdapterStep(b, false) })
	b.Run("qlora", func(b *testing.B) { benchmarkAdapterStep(b, true) })
}
