package model_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/eftml/eft/shared/safetensors"
	"github.com/eftml/eft/shared/testfixtures"
	"github.com/eftml/eft/trainer/cpu"
	"github.com/eftml/eft/trainer/model"
)

// A saved state dict is a model directory transformers can load: here, our
// own loader gives the same logits back, from F32 exactly and from BF16
// and sharded F16 within their rounding. Tied embeddings (qwen2) are saved once.
func TestStateDictRoundTrip(t *testing.T) {
	for _, arch := range []string{"llama", "qwen2", "phi3", "gemma2"} {
		src := testfixtures.Path(t, "hf", arch)
		m, err := model.Load(src, cpu.New(0))
		if err != nil {
			t.Fatal(err)
		}
		b := &model.Batch{Rows: 1, Cols: 6, Tokens: []int32{1, 40, 41, 42, 900, 3}}
		want, err := m.Logits(b)
		if err != nil {
			t.Fatal(err)
		}
		for _, dtype := range []safetensors.DType{safetensors.F32, safetensors.BF16, safetensors.F16} {
			tensors, err := m.StateDict(dtype)
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			config, err := os.ReadFile(filepath.Join(src, "config.json"))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "config.json"), config, 0o644); err != nil {
				t.Fatal(err)
			}
			// F16 is written in shards of at most 256 KB, read through the index.
			shard := int64(0)
			if dtype == safetensors.F16 {
				shard = 256 << 10
			}
			files, err := safetensors.WriteModel(dir, "model", tensors, map[string]string{"format": "pt"}, shard)
			if err != nil {
				t.Fatal(err)
			}
			if dtype == safetensors.F16 && len(files) < 3 {
				t.Fatalf("expected a sharded model, wrote %v", files)
			}
			back, err := model.Load(dir, cpu.New(0))
			if err != nil {
				t.Fatalf("%s %s: %v", arch, dtype, err)
			}
			got, err := back.Logits(b)
			if err != nil {
				t.Fatal(err)
			}
			tol := 0.0
			if dtype != safetensors.F32 {
				tol = 0.1 // weights rounded to 8 (bf16) or 11 (f16) bits of mantissa
			}
			d, at := maxAbsDiff(got, want)
			if d > tol {
				t.Errorf("%s saved as %s: logits differ by %g at %d", arch, dtype, d, at)
			}
			if arch == "qwen2" {
				for _, nt := range tensors {
					if nt.Name == "lm_head.weight" {
						t.Errorf("tied lm_head saved separately")
					}
				}
			}
		}
	}
}
