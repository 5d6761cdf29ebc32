package train

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/eftml/eft/trainer/cpu"
	"github.com/eftml/eft/trainer/lora"
	"github.com/eftml/eft/trainer/model"
	"github.com/eftml/eft/trainer/optim"
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
	start := time.Now()
	m := quantizedModel(t, tinyConfig(), 0.3)
	if err := lora.Attach(m, allLinear(16, 32, 0), 5); err != nil {
		t.Fatal(err)
	}
	for _, p := range m.Params() {
		if p.Trainable() {
			t.Fatalf("base weight %s trains under QLoRA", p.Name)
		}
	}
	opt, err := optim.NewAdamW(0.9, 0.999, 1e-8, 0)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := New(m, opt, 1)
	if err != nil {
		t.Fatal(err)
	}
	b := randomBatch(rand.New(rand.NewPCG(3, 3)), 96, 24, 0, 0, 0, 0)
	var first, last StepResult
	for step := range 150 {
		res, err := tr.Step([]*model.Batch{b}, 1e-2)
		if err != nil {
			t.Fatal(err)
		}
		if step == 0 {
			first = res
		}
		last = res
		if res.Loss < 0.01 {
			break
		}
	}
	t.Logf("loss %.3f -> %.4f in %v", first.Loss, last.Loss, time.Since(start))
	if last.Loss > 0.05 {
		t.Fatalf("QLoRA did not memorise 4 sequences: loss %.3f -> %.3f", first.Loss, last.Loss)
	}
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
	opt, err := optim.NewAdamW(0.9, 0.999, 1e-8, 0.01)
	if err != nil {
		b.Fatal(err)
	}
	tr, err := New(m, opt, 1)
	if err != nil {
		b.Fatal(err)
	}
	batch := randomBatch(rand.New(rand.NewPCG(1, 2)), c.Vocab, benchCols, 16, 16, 16, 16)
	micro := []*model.Batch{batch}
	if _, err := tr.Step(micro, 1e-4); err != nil { // warm up
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := tr.Step(micro, 1e-4); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	perStep := b.Elapsed().Seconds() / float64(b.N)
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
