package model_test

import (
	"math"
	"strings"
	"testing"

	"github.com/eftml/eft/trainer/cpu"
	"github.com/eftml/eft/trainer/model"
)

// Phi-3's longrope on the phi3 fixture (original maximum 8, partial rotary
// 0.5: 4 short and 4 long factors): a sequence that outgrows 8 tokens is
// rotated with the long factors throughout, and decoding one token at a time
// gives, at every step, the logits of a forward pass over the whole prefix:
// the KV cache is recomputed when the sequence crosses the original
// maximum, as transformers' Phi-3 generation drops its cache there.
func TestPhi3LongropeDecodeMatchesForward(t *testing.T) {
	dir := copyModel(t, "phi3")
	editConfig(t, dir, `"partial_rotary_factor": 1.0,`,
		`"partial_rotary_factor": 0.5, "short_factor": [1.0, 1.5, 2.0, 3.0], "long_factor": [2.0, 5.0, 9.0, 20.0],`)
	editConfig(t, dir, `"rope_type": "default"`, `"rope_type": "longrope"`)
	editConfig(t, dir, `"original_max_position_embeddings": 4096`, `"original_max_position_embeddings": 8`)
	m, err := model.Load(dir, cpu.New(0))
	if err != nil {
		t.Fatal(err)
	}
	if r := m.Config.Rope; r.Type != "longrope" || r.OriginalMaxPositions != 8 || r.PartialRotary != 0.5 {
		t.Fatalf("rope %+v", r)
	}
	seq := []int32{1, 40, 41, 42, 900, 3, 77, 500, 12, 13, 14, 1500, 2047, 0, 9, 10}
	lastRow := func(prefix []int32) []float32 {
		lg, err := m.Logits(&model.Batch{Rows: 1, Cols: len(prefix), Tokens: prefix})
		if err != nil {
			t.Fatal(err)
		}
		return lg[(len(prefix)-1)*m.Config.Vocab:]
	}
	// Past 8 tokens every position moves to the long factors: position 7's
	// logits differ between the 8- and 9-token sequences.
	l8 := lastRow(seq[:8])
	l9, err := m.Logits(&model.Batch{Rows: 1, Cols: 9, Tokens: seq[:9]})
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := maxAbsDiff(l9[7*m.Config.Vocab:8*m.Config.Vocab], l8); d < 1e-3 {
		t.Errorf("position 7 in a 9-token sequence moved by %g: the long factors did not apply", d)
	}

	kc := m.NewKVCache(len(seq))
	for n := 5; n <= len(seq); n++ {
		step := seq[n-1 : n]
		if n == 5 {
			step = seq[:5]
		}
		got, err := m.Decode(kc, step)
		if err != nil {
			t.Fatal(err)
		}
		if d, at := maxAbsDiff(got, lastRow(seq[:n])); d > 1e-4 || math.IsNaN(d) {
			t.Errorf("decoding token %d: logits differ from the forward pass by %g at %d", n, d, at)
		}
	}
}

// A phi3 config asking for something eft cannot do is refused at load with
// the key named (the config rules themselves are hfmodel's tests).
func TestPhi3ConfigRefusals(t *testing.T) {
	dir := copyModel(t, "phi3")
	editConfig(t, dir, `"resid_pdrop": 0.0`, `"resid_pdrop": 0.1`)
	if _, err := model.Load(dir, cpu.New(0)); err == nil || !strings.Contains(err.Error(), `key "resid_pdrop"`) {
		t.Errorf("residual dropout: %v", err)
	}
	dir = copyModel(t, "phi3")
	editConfig(t, dir, `"rope_type": "default"`, `"rope_type": "longrope"`)
	if _, err := model.Load(dir, cpu.New(0)); err == nil || !strings.Contains(err.Error(), "short_factor") {
		t.Errorf("longrope without factors: %v", err)
	}
}
