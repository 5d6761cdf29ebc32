package hfmodel

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/eftml/eft/shared/safetensors"
	"github.com/eftml/eft/shared/testfixtures"
)

// The names and shapes Params derives from config.json must be exactly the
// tensors transformers saved, for every supported model directory in the
// parity fixtures ($EFT_PARITY_DIR, default testdata/hf).
func TestParityParamsMatchWeights(t *testing.T) {
	root := testfixtures.ParityDir(t)
	entries, err := os.ReadDir(root)
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, e := range entries {
		dir := filepath.Join(root, e.Name())
		if _, err := os.Stat(filepath.Join(dir, "config.json")); err != nil {
			continue // adapters and other folders
		}
		d, err := Open(dir)
		if err != nil {
			if strings.Contains(err.Error(), "not supported yet") {
				continue
			}
			t.Fatal(err)
		}
		src, err := d.OpenWeights()
		if err != nil {
			t.Fatalf("%s: %v", e.Name(), err)
		}
		params := d.Config.Params()
		if len(params) != len(src.Names()) {
			t.Errorf("%s: config implies %d tensors, file has %d", e.Name(), len(params), len(src.Names()))
		}
		var total int64
		for _, p := range params {
			info, _ := src.Info(p.Name)
			total += (info.End - info.Begin) / int64(info.DType.Size())
		}
		if total != d.Config.ParamCount() {
			t.Errorf("%s: ParamCount %d, file holds %d", e.Name(), d.Config.ParamCount(), total)
		}
		src.Close()
		checked++
	}
	if checked == 0 {
		t.Fatalf("no supported model directory under %s", root)
	}
}

func TestStateDictOrder(t *testing.T) {
	c, _ := LoadConfig(testfixtures.Path(t, "hf", "qwen3", "config.json"))
	p := c.Params()
	// State-dict order: q, k, v, o, then qwen3's q_norm, k_norm, then the MLP.
	got := []string{p[1].Name, p[4].Name, p[5].Name, p[6].Name, p[7].Name, p[len(p)-1].Name}
	want := []string{"model.layers.0.self_attn.q_proj.weight", "model.layers.0.self_attn.o_proj.weight",
		"model.layers.0.self_attn.q_norm.weight", "model.layers.0.self_attn.k_norm.weight",
		"model.layers.0.mlp.gate_proj.weight", "lm_head.weight"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("qwen3 order %v, want %v", got, want)
	}
}

// copyModel makes a writable copy of a fixture model directory.
func copyModel(t *testing.T, arch string) string {
	t.Helper()
	src := testfixtures.Path(t, "hf", arch)
	dst := t.TempDir()
	entries, _ := os.ReadDir(src)
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dst, e.Name()), b, 0o644)
	}
	return dst
}

func TestWeightsThatDoNotMatchTheConfig(t *testing.T) {
	dir := copyModel(t, "llama")
	cfgPath := filepath.Join(dir, "config.json")
	cfg, _ := os.ReadFile(cfgPath)
	os.WriteFile(cfgPath, []byte(strings.Replace(string(cfg), `"intermediate_size": 160`, `"intermediate_size": 128`, 1)), 0o644)
	d, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	_, err = d.OpenWeights()
	if err == nil || !strings.Contains(err.Error(), "model.layers.0.mlp.down_proj.weight has shape [64 160], config.json implies [64 128]") ||
		!strings.Contains(err.Error(), cfgPath) {
		t.Errorf("shape mismatch: %v", err)
	}

	// A qwen2 (tied, biased) config over llama weights: missing biases and an
	// unexplained lm_head are reported, not ignored.
	q, _ := os.ReadFile(testfixtures.Path(t, "hf", "qwen2", "config.json"))
	os.WriteFile(cfgPath, q, 0o644)
	d, err = Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	_, err = d.OpenWeights()
	if err == nil || !strings.Contains(err.Error(), "missing model.layers.0.self_attn.q_proj.bias [64]") {
		t.Errorf("wrong architecture: %v", err)
	}

	// Extra tensors.
	dir = copyModel(t, "qwen3")
	f, _ := safetensors.Open(filepath.Join(dir, "model.safetensors"))
	var tensors []safetensors.NamedTensor
	for _, n := range f.Names() {
		tt, _ := f.Tensor(n)
		tensors = append(tensors, safetensors.NamedTensor{Name: n, Tensor: tt})
	}
	extra, _ := safetensors.FromFloat32(safetensors.F32, []int{2}, []float32{1, 2})
	tensors = append(tensors, safetensors.NamedTensor{Name: "model.layers.0.mlp.experts.0.weight", Tensor: extra})
	err = safetensors.WriteFile(filepath.Join(dir, "model.safetensors"), tensors, nil)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	d, _ = Open(dir)
	if _, err = d.OpenWeights(); err == nil || !strings.Contains(err.Error(), "1 tensors the config does not explain, e.g. model.layers.0.mlp.experts.0.weight") {
		t.Errorf("extra tensor: %v", err)
	}
}

func TestDirErrors(t *testing.T) {
	empty := t.TempDir()
	if _, err := Open(empty); err == nil || !strings.Contains(err.Error(), "has no config.json") {
		t.Errorf("no config: %v", err)
	}
	if _, err := Open(filepath.Join(empty, "absent")); err == nil {
		t.Error("absent directory opened")
	}
	dir := copyModel(t, "mistral")
	os.Remove(filepath.Join(dir, "model.safetensors"))
	os.WriteFile(filepath.Join(dir, "pytorch_model.bin"), []byte("pickle"), 0o644)
	os.Remove(filepath.Join(dir, "tokenizer.json"))
	d, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if d.HasTokenizer() || d.Weights != "" {
		t.Errorf("files %+v", d)
	}
	if _, err := d.OpenWeights(); err == nil || !strings.Contains(err.Error(), "pytorch_model.bin: PyTorch pickles are not read") {
		t.Errorf("bin only: %v", err)
	}
}

func TestShardedModelDirectory(t *testing.T) {
	dir := copyModel(t, "qwen2")
	d, _ := Open(dir)
	src, err := d.OpenWeights()
	if err != nil {
		t.Fatal(err)
	}
	var tensors []safetensors.NamedTensor
	for _, p := range d.Config.Params() {
		tt, _ := src.Tensor(p.Name)
		tt.Data = append([]byte(nil), tt.Data...)
		tensors = append(tensors, safetensors.NamedTensor{Name: p.Name, Tensor: tt})
	}
	src.Close()
	if _, err := safetensors.WriteModel(dir, "model", tensors, map[string]string{"format": "pt"}, 200_000); err != nil {
		t.Fatal(err)
	}
	d, err = Open(dir)
	if err != nil || d.Weights != "model.safetensors.index.json" {
		t.Fatalf("after sharding: %v %+v", err, d)
	}
	src, err = d.OpenWeights()
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if len(src.Names()) != len(tensors) {
		t.Errorf("%d tensors through the index, want %d", len(src.Names()), len(tensors))
	}
}
