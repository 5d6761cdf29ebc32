package train

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/eftml/eft/trainer/backend"
	"github.com/eftml/eft/trainer/cpu"
	"github.com/eftml/eft/trainer/lora"
	"github.com/eftml/eft/trainer/model"
	"github.com/eftml/eft/trainer/optim"
)

// bench20M is a llama of about 20M parameters: 8 layers of width 384,
// 6 heads of 64 over 2 kv heads, MLP 1024, vocabulary 8192, untied head.
func bench20M() model.Config {
	return model.Config{
		Arch: "llama", Vocab: 8192, Hidden: 384, Intermediate: 1024, Layers: 8, Heads: 6, KVHeads: 2, HeadDim: 64,
		NormEps: 1e-5, Act: backend.SiLU, LayerWindow: make([]int, 8), MaxPositions: 2048,
		Rope: model.RopeParams{Type: "default", Theta: 10000},
	}
}

const benchRows, benchCols = 4, 256

// stepFLOPs counts the useful floating-point work of one training step:
// every GEMM of the forward pass, the input-gradient GEMMs of the backward
// pass, and weight-gradient GEMMs only for what trains. Attention counts the
// causal half of its scores; recomputation (attention's backward,
// checkpointing) is overhead and not counted.
func stepFLOPs(c model.Config, tokens, cols int, rank int, full bool) float64 {
	n := float64(tokens)
	qd, kvd := float64(c.Heads*c.HeadDim), float64(c.KVHeads*c.HeadDim)
	D, F, V := float64(c.Hidden), float64(c.Intermediate), float64(c.Vocab)
	layerLinear := D*qd + 2*D*kvd + qd*D + 3*D*F // multiply-adds per token
	attn := 2 * float64(cols) / 2 * qd           // QKᵀ and PV over the causal half, per token
	fwd := 2 * n * (float64(c.Layers)*(layerLinear+attn) + D*V)
	bwdInput := fwd                                           // dX of every GEMM, dQ/dK/dV of attention
	bwdWeights := 2 * n * (float64(c.Layers)*layerLinear + 0) // dW of layer linears
	bwdWeights += 2 * n * D * V                               // lm_head
	if full {
		return fwd + bwdInput + bwdWeights
	}
	// LoRA on every linear: x·Aᵀ and u·Bᵀ forward; dB, du, dA, dx backward.
	perToken := float64(rank) * (D + qd + D + kvd + D + kvd + qd + D + 3*(D+F))
	loraFLOPs := 2 * n * float64(c.Layers) * perToken * 3
	return fwd + bwdInput + loraFLOPs
}

// gemmPeak measures the backend's matrix-product rate (GFLOP/s) on square
// float32 matrices, the shape a GEMM is fastest on.
func gemmPeak(be backend.Backend, size int) float64 {
	a, b, c := be.Alloc(size, size), be.Alloc(size, size), be.Alloc(size, size)
	vals := make([]float32, size*size)
	for i := range vals {
		vals[i] = float32(i%7) * 0.1
	}
	be.Upload(a, vals)
	be.Upload(b, vals)
	best := time.Duration(1 << 62)
	for range 3 {
		start := time.Now()
		be.MatMul(c, a, b, false, true, 1, 0)
		best = min(best, time.Since(start))
	}
	return 2 * float64(size) * float64(size) * float64(size) / best.Seconds() / 1e9
}

func benchmarkStep(b *testing.B, full bool) {
	c := bench20M()
	m, err := model.NewRandom(c, cpu.New(0), 1, 0.02)
	if err != nil {
		b.Fatal(err)
	}
	rank := 16
	if full {
		for _, p := range m.Params() {
			m.SetTrainable(p, true)
		}
	} else if err := lora.Attach(m, allLinear(rank, 32, 0), 1); err != nil {
		b.Fatal(err)
	}
	tr, micro := benchTrainer(b, m)
	peak := gemmPeak(m.Backend, 1024)
	perStep := timeSteps(b, tr, micro)
	tokens := benchRows * benchCols
	gflops := stepFLOPs(c, tokens, benchCols, rank, full) / perStep / 1e9
	b.ReportMetric(float64(tokens)/perStep, "tokens/s")
	b.ReportMetric(gflops, "GFLOP/s")
	b.ReportMetric(peak, "gemm-peak-GFLOP/s")
	b.ReportMetric(100*gflops/peak, "%peak")
	b.ReportMetric(float64(c.ParamCount())/1e6, "Mparams")
}

// BenchmarkTrainStep20M is one optimizer step (forward, backward, AdamW) of a
// 20M-parameter llama on 4×256 tokens, with LoRA r=16 on every linear layer
// and as a full fine-tune.
func BenchmarkTrainStep20M(b *testing.B) {
	b.Run("lora", func(b *testing.B) { benchmarkStep(b, false) })
	b.Run("full", func(b *testing.B) { benchmarkStep(b, true) })
}

// benchTrainer is an AdamW trainer of m and one micro-batch of
// benchRows×benchCols random tokens, after one warm-up step (buffers, rope
// table, optimizer state).
func benchTrainer(b *testing.B, m *model.Model) (*Trainer, []*model.Batch) {
	opt, err := optim.NewAdamW(0.9, 0.999, 1e-8, 0.01)
	if err != nil {
		b.Fatal(err)
	}
	tr, err := New(m, opt, 1)
	if err != nil {
		b.Fatal(err)
	}
	micro := []*model.Batch{randomBatch(rand.New(rand.NewPCG(1, 2)), m.Config.Vocab, benchCols, 16, 16, 16, 16)}
	if _, err := tr.Step(micro, 1e-4); err != nil {
		b.Fatal(err)
	}
	return tr, micro
}

// timeSteps times b.N steps of tr on micro and returns seconds per step.
func timeSteps(b *testing.B, tr *Trainer, micro []*model.Batch) float64 {
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := tr.Step(micro, 1e-4); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	return b.Elapsed().Seconds() / float64(b.N)
}
