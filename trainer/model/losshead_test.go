package model_test

import (
	"math"
	"testing"

	"github.com/eftml/eft/shared/testfixtures"
	"github.com/eftml/eft/trainer/backend"
	"github.com/eftml/eft/trainer/cpu"
	"github.com/eftml/eft/trainer/model"
	"github.com/eftml/eft/trainer/tensor"
)

// The loss head works through the tokens a chunk at a time; the chunk size
// must not change the loss or any gradient (tied head included: qwen2).
func TestLossChunkingChangesNothing(t *testing.T) {
	for _, arch := range []string{"llama", "qwen2"} {
		tokens := []int32{1, 40, 41, 42, 900, 3, 77, 78, 79, 80, 1000, 2}
		b := &model.Batch{Rows: 2, Cols: 6, Tokens: tokens, Targets: model.ShiftLabels(tokens, nil, 2, 6)}
		b.Targets[0], b.Targets[7] = backend.IgnoreIndex, backend.IgnoreIndex
		run := func(chunk int) (float64, [][]float32) {
			m, err := model.Load(testfixtures.Path(t, "hf", arch), cpu.New(0))
			if err != nil {
				t.Fatal(err)
			}
			m.LossChunkTokens = chunk
			for _, p := range m.Params() {
				m.SetTrainable(p, true)
			}
			sum, _, err := m.ForwardBackward(b, 0.1)
			if err != nil {
				t.Fatal(err)
			}
			var gs [][]float32
			for _, p := range m.Params() {
				gs = append(gs, append([]float32(nil), p.G.F32...))
			}
			return sum, gs
		}
		whole, g1 := run(0)
		chunked, g2 := run(5) // 12 tokens in chunks of 5, 5 and 2
		if math.Abs(whole-chunked) > 1e-4 {
			t.Fatalf("%s: loss %v in one chunk, %v in chunks of 5", arch, whole, chunked)
		}
		for i := range g1 {
			// 1e-5 of the tensor's largest magnitude: an optimised GEMM
			// (OpenBLAS) rounds differently with the product's shape, and
			// chunking changes the shapes (up to ~4e-6 relative observed;
			// the Go kernel stays below 1e-7). Still 10× tighter than the
			// 1e-4 the transformers fixtures are held to.
			d, _ := maxAbsDiff(g2[i], g1[i])
			if d > 1e-5*maxAbs(g1[i]) {
				t.Fatalf("%s: gradient %d differs by %g between chunkings", arch, i, d)
			}
		}
	}
}

// In a packed row the last token of a sample predicts nothing: the next
// sample (or padding, position 0) starts there.
func TestShiftLabelsStopsAtSampleBoundaries(t *testing.T) {
	labels := []int32{-100, 11, 12, -100, 21, 22, 23, 0, 0}
	positions := []int32{0, 1, 2, 0, 1, 2, 3, 0, 0}
	got := model.ShiftLabels(labels, positions, 1, 9)
	want := []int32{11, 12, -100, 21, 22, 23, -100, -100, -100}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("targets %v, want %v", got, want)
		}
	}
	plain := model.ShiftLabels(labels, nil, 1, 9)
	if plain[2] != -100 || plain[6] != 0 || plain[8] != -100 {
		t.Fatalf("without positions: %v", plain)
	}
}

// Training only the head skips the blocks' backward pass entirely, and
// gives the same head gradient as a full backward pass does.
func TestHeadOnlyTrainingSkipsTheBlocks(t *testing.T) {
	tokens := []int32{1, 40, 41, 42, 900, 3}
	b := &model.Batch{Rows: 1, Cols: 6, Tokens: tokens, Targets: model.ShiftLabels(tokens, nil, 1, 6)}
	head := func(all bool) []float32 {
		be := &countingBackend{CPU: cpu.New(0)}
		m, err := model.Load(testfixtures.Path(t, "hf", "llama"), be)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range m.Params() {
			m.SetTrainable(p, all || p == m.LMHead || p == m.FinalNorm)
		}
		if _, _, err := m.ForwardBackward(b, 1); err != nil {
			t.Fatal(err)
		}
		if want := map[bool]int{false: 0, true: 2}[all]; be.attentionBackward != want {
			t.Fatalf("%d attention backward passes, want %d", be.attentionBackward, want)
		}
		return append(m.LMHead.G.F32[:0:0], m.LMHead.G.F32...)
	}
	only, full := head(false), head(true)
	if d, at := maxAbsDiff(only, full); d != 0 {
		t.Fatalf("head gradient differs by %g at %d", d, at)
	}
}

// countingBackend counts attention backward passes.
type countingBackend struct {
	*cpu.CPU
	attentionBackward int
}

func (c *countingBackend) AttentionBackward(dq, dk, dv, dout, out, lse, q, k, v *tensor.Tensor, spec backend.AttentionSpec) {
	c.attentionBackward++
	c.CPU.AttentionBackward(dq, dk, dv, dout, out, lse, q, k, v, spec)
}
