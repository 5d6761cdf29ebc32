package train

import (
	"math"
	"math/rand/v2"
	"runtime"
	"testing"
	"time"

	"github.com/eftml/eft/trainer/backend"
	"github.com/eftml/eft/trainer/cpu"
	"github.com/eftml/eft/trainer/lora"
	"github.com/eftml/eft/trainer/model"
	"github.com/eftml/eft/trainer/optim"
	"github.com/eftml/eft/trainer/peft"
)

func tinyConfig() model.Config {
	return model.Config{
		Arch: "llama", Vocab: 96, Hidden: 48, Intermediate: 96, Layers: 2, Heads: 4, KVHeads: 2, HeadDim: 12,
		NormEps: 1e-5, Act: backend.SiLU, LayerWindow: []int{0, 0}, MaxPositions: 128,
		Rope: model.RopeParams{Type: "default", Theta: 10000},
	}
}

// allLinear is a LoRA config on every linear layer (Axolotl's
// lora_target_linear).
func allLinear(r int, alpha, dropout float64, modulesToSave ...string) *peft.Config {
	c := peft.NewConfig(r, alpha, dropout, nil)
	c.TargetRegex = peft.AllLinear
	c.ModulesToSave = modulesToSave
	return c
}

func tinyModel(t testing.TB, c model.Config) *model.Model {
	t.Helper()
	// std 0.3 rather than a pretrained-like 0.02: with frozen small head
	// weights the final norm caps the logits and no adapter could reach a
	// near-zero loss.
	m, err := model.NewRandom(c, cpu.New(0), 1, 0.3)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// randomBatch makes rows of random tokens whose targets are the next token,
// with the first ignored[r] targets of row r ignored (prompt tokens).
func randomBatch(r *rand.Rand, vocab, cols int, ignored ...int) *model.Batch {
	rows := len(ignored)
	b := &model.Batch{Rows: rows, Cols: cols, Tokens: make([]int32, rows*cols)}
	for i := range b.Tokens {
		b.Tokens[i] = int32(r.IntN(vocab))
	}
	b.Targets = model.ShiftLabels(b.Tokens, nil, rows, cols)
	for row, n := range ignored {
		for c := range n {
			b.Targets[row*cols+c] = backend.IgnoreIndex
		}
	}
	return b
}

func rowsOf(b *model.Batch, r0, r1 int) *model.Batch {
	return &model.Batch{Rows: r1 - r0, Cols: b.Cols, Tokens: b.Tokens[r0*b.Cols : r1*b.Cols], Targets: b.Targets[r0*b.Cols : r1*b.Cols]}
}

func grads(m *model.Model) [][]float32 {
	var out [][]float32
	for _, p := range m.TrainableParams() {
		out = append(out, append([]float32(nil), p.G.F32...))
	}
	return out
}

func assertSameGrads(t *testing.T, what string, m *model.Model, a, b [][]float32, tol float64) {
	t.Helper()
	for i, p := range m.TrainableParams() {
		var scale, worst float64
		for j := range a[i] {
			scale = max(scale, math.Abs(float64(a[i][j])))
			worst = max(worst, math.Abs(float64(a[i][j]-b[i][j])))
		}
		if worst > tol*scale {
			t.Fatalf("%s: gradient of %s differs by %.3g (max magnitude %.3g)", what, p.Name, worst, scale)
		}
	}
}

func frozenAdamW(t testing.TB) optim.Optimizer {
	o, err := optim.NewAdamW(0.9, 0.999, 1e-8, 0)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// Accumulating two micro-batches must give the gradient of one batch holding
// both: the loss is normalised by all counted tokens of the step, not
// averaged per micro-batch (the rows here count different numbers).
func TestGradientAccumulationNormalisesByAllTokens(t *testing.T) {
	m := tinyModel(t, tinyConfig())
	for _, p := range m.Params() {
		m.SetTrainable(p, true)
	}
	tr, err := New(m, frozenAdamW(t), 0)
	if err != nil {
		t.Fatal(err)
	}
	b := randomBatch(rand.New(rand.NewPCG(1, 1)), 96, 12, 2, 9, 0, 5)
	whole, err := tr.Step([]*model.Batch{b}, 0)
	if err != nil {
		t.Fatal(err)
	}
	g1 := grads(m)
	split, err := tr.Step([]*model.Batch{rowsOf(b, 0, 1), rowsOf(b, 1, 4)}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if whole.Tokens != split.Tokens || math.Abs(whole.Loss-split.Loss) > 1e-5 {
		t.Fatalf("whole batch: loss %v over %d tokens; accumulated: %v over %d", whole.Loss, whole.Tokens, split.Loss, split.Tokens)
	}
	assertSameGrads(t, "accumulated", m, g1, grads(m), 1e-5)
	if math.Abs(whole.GradNorm-split.GradNorm) > 1e-5*whole.GradNorm {
		t.Fatalf("grad norm %v vs %v", whole.GradNorm, split.GradNorm)
	}
}

func TestGradientCheckpointingGivesSameGradients(t *testing.T) {
	c := tinyConfig()
	c.QKNorm, c.AttentionBias = true, true // exercise every saved buffer
	m := tinyModel(t, c)
	if err := lora.Attach(m, allLinear(4, 8, 0.2, "lm_head"), 3); err != nil {
		t.Fatal(err)
	}
	for _, p := range m.LoRAParams() { // B starts at zero: make its gradient path count
		for i := range p.W.F32 {
			if p.W.F32[i] == 0 {
				p.W.F32[i] = 0.05
			}
		}
	}
	tr, err := New(m, frozenAdamW(t), 0)
	if err != nil {
		t.Fatal(err)
	}
	b := randomBatch(rand.New(rand.NewPCG(2, 2)), 96, 10, 1, 3)
	b.DropoutSeed = 77
	plain, err := tr.Step([]*model.Batch{b}, 0)
	if err != nil {
		t.Fatal(err)
	}
	g1 := grads(m)
	m.GradientCheckpointing = true
	ckpt, err := tr.Step([]*model.Batch{b}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if plain.Loss != ckpt.Loss {
		t.Fatalf("loss %v without checkpointing, %v with", plain.Loss, ckpt.Loss)
	}
	assertSameGrads(t, "checkpointed", m, g1, grads(m), 1e-6)
}

// LoRA on a tiny model memorises a few sequences.
func TestLoRAOverfitsFewSequences(t *testing.T) {
	overfitsFewSequences(t, tinyModel(t, tinyConfig()), "LoRA")
}

// overfitsFewSequences attaches LoRA to every linear layer of m and checks
// that only the adapters train and that 4 sequences are memorised (loss
// under 0.05) within 150 steps.
func overfitsFewSequences(t *testing.T, m *model.Model, what string) {
	t.Helper()
	start := time.Now()
	if err := lora.Attach(m, allLinear(16, 32, 0), 5); err != nil {
		t.Fatal(err)
	}
	for _, p := range m.Params() {
		if p.Trainable() {
			t.Fatalf("base weight %s trains under %s", p.Name, what)
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
		t.Fatalf("%s did not memorise 4 sequences: loss %.3f -> %.3f", what, first.Loss, last.Loss)
	}
}

func TestStepRejectsBatchesWithNothingToLearn(t *testing.T) {
	m := tinyModel(t, tinyConfig())
	m.SetTrainable(m.FinalNorm, true)
	tr, err := New(m, frozenAdamW(t), 0)
	if err != nil {
		t.Fatal(err)
	}
	b := randomBatch(rand.New(rand.NewPCG(4, 4)), 96, 6, 6)
	if _, err := tr.Step([]*model.Batch{b}, 1e-3); err == nil {
		t.Fatal("a step with every target ignored did not fail")
	}
	if _, err := New(tinyModel(t, tinyConfig()), frozenAdamW(t), 0); err == nil {
		t.Fatal("a trainer with nothing trainable was created")
	}
}

// After the first step every buffer comes from the model's arena: what a
// step still allocates (goroutine closures, small slices) must not grow with
// the number of tokens.
func TestStepGarbageDoesNotGrowWithTokens(t *testing.T) {
	perStep := func(cols int) float64 {
		m := tinyModel(t, tinyConfig())
		if err := lora.Attach(m, allLinear(4, 8, 0.1), 1); err != nil {
			t.Fatal(err)
		}
		tr, err := New(m, frozenAdamW(t), 1)
		if err != nil {
			t.Fatal(err)
		}
		b := randomBatch(rand.New(rand.NewPCG(1, 1)), 96, cols, 2, 9, 0, 5)
		step := func() {
			if _, err := tr.Step([]*model.Batch{b}, 1e-3); err != nil {
				t.Fatal(err)
			}
		}
		step()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		for range 5 {
			step()
		}
		runtime.ReadMemStats(&after)
		return float64(after.TotalAlloc-before.TotalAlloc) / 5
	}
	small, large := perStep(12), perStep(96)
	t.Logf("garbage per step: %.0f B at 4×12 tokens, %.0f B at 4×96", small, large)
	// Larger batches spread ops over more goroutines (bounded by the worker
	// count, not by tokens): allow that, but not buffers growing with 8×
	// the tokens.
	if large > 2*small+16<<10 || large > 256<<10 {
		t.Fatalf("a step allocates %.0f B at 4×12 tokens but %.0f B at 4×96: buffers escape the arena", small, large)
	}
}
