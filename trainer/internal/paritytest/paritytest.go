// Package paritytest holds what the engine's parity tests against
// transformers and PEFT share: the fixture directories under
// testfixtures.ParityDir, their reference.safetensors (the batch, logits,
// loss, gradients and weights the Python side computed), the optimizer
// settings of reference_optimizer.json, and a comparison that reports where
// two tensors differ. It is for tests only; the fixtures are described in
// testdata/hf/FIXTURES.md.
package paritytest

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/eftml/eft/shared/safetensors"
	"github.com/eftml/eft/shared/testfixtures"
	"github.com/eftml/eft/trainer/model"
)

// Dirs lists the fixture directories: with adapters, those holding a PEFT
// adapter (adapter_config.json), else those holding a model (config.json and
// no adapter). It fails the test when there is none.
func Dirs(t testing.TB, adapters bool) []string {
	t.Helper()
	root := testfixtures.ParityDir(t)
	entries, err := os.ReadDir(root)
	if err != nil {
		t.Fatalf("parity fixtures: %v", err)
	}
	var dirs []string
	for _, e := range entries {
		dir := filepath.Join(root, e.Name())
		_, cfgErr := os.Stat(filepath.Join(dir, "config.json"))
		_, adErr := os.Stat(filepath.Join(dir, "adapter_config.json"))
		if adapters && adErr == nil || !adapters && adErr != nil && cfgErr == nil {
			dirs = append(dirs, dir)
		}
	}
	if len(dirs) == 0 {
		t.Fatalf("no fixtures under %s", root)
	}
	return dirs
}

// Reference is a fixture's reference.safetensors; its reads fail the test
// on a missing tensor.
type Reference struct {
	*safetensors.File
	t testing.TB
}

// OpenReference opens dir/reference.safetensors for the test's lifetime.
func OpenReference(t testing.TB, dir string) Reference {
	t.Helper()
	f, err := safetensors.Open(filepath.Join(dir, "reference.safetensors"))
	if err != nil {
		t.Fatalf("reference: %v", err)
	}
	t.Cleanup(func() { f.Close() })
	return Reference{f, t}
}

// F32 reads a tensor as float32.
func (r Reference) F32(name string) []float32 {
	r.t.Helper()
	v, err := r.Float32s(name)
	if err != nil {
		r.t.Fatalf("reference: %v", err)
	}
	return v
}

// IDs reads an int64 tensor of token ids or positions as int32, with its
// shape.
func (r Reference) IDs(name string) ([]int32, []int) {
	r.t.Helper()
	v, err := r.Int64s(name)
	if err != nil {
		r.t.Fatalf("reference: %v", err)
	}
	info, _ := r.Info(name)
	out := make([]int32, len(v))
	for i, x := range v {
		out[i] = int32(x)
	}
	return out, info.Shape
}

// Batch is the fixture's input_ids with its labels shifted into targets, as
// transformers computes the loss.
func (r Reference) Batch() *model.Batch {
	r.t.Helper()
	ids, shape := r.IDs("input_ids")
	labels, _ := r.IDs("labels")
	return &model.Batch{Rows: shape[0], Cols: shape[1], Tokens: ids, Targets: model.ShiftLabels(labels, nil, shape[0], shape[1])}
}

// Optimizer is reference_optimizer.json: the AdamW settings and step count
// the fixture's after-update tensors were made with.
type Optimizer struct {
	LR          float64    `json:"lr"`
	Betas       [2]float64 `json:"betas"`
	Eps         float64    `json:"eps"`
	WeightDecay float64    `json:"weight_decay"`
	Steps       int        `json:"steps"`
}

// ReadOptimizer reads dir/reference_optimizer.json.
func ReadOptimizer(t testing.TB, dir string) Optimizer {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "reference_optimizer.json"))
	if err != nil {
		t.Fatal(err)
	}
	var oc Optimizer
	if err := json.Unmarshal(data, &oc); err != nil {
		t.Fatalf("%s: %v", filepath.Join(dir, "reference_optimizer.json"), err)
	}
	return oc
}

// Compare fails the test when got and want differ by more than tol
// (absolute), or, with relative, by more than tol times want's largest
// magnitude; a NaN always fails. It returns the largest difference over that
// scale.
func Compare(t testing.TB, what string, got, want []float32, tol float64, relative bool) float64 {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %d values, want %d", what, len(got), len(want))
		return math.Inf(1)
	}
	scale := 1.0
	if relative {
		scale = 0
		for _, w := range want {
			scale = max(scale, math.Abs(float64(w)))
		}
	}
	worst, at := 0.0, 0
	for i := range want {
		if d := math.Abs(float64(got[i]) - float64(want[i])); d > worst || math.IsNaN(d) {
			worst, at = d, i
		}
	}
	if worst > tol*scale || math.IsNaN(worst) {
		t.Errorf("%s: differs by %.3g at %d (got %g, want %g), tolerance %g×%.3g", what, worst, at, got[at], want[at], tol, scale)
	}
	return worst / scale
}
