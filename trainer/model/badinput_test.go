package model_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/eftml/eft/shared/testfixtures"
	"github.com/eftml/eft/trainer/cpu"
	"github.com/eftml/eft/trainer/model"
)

// copyModel copies a fixture's config and weights into a temporary
// directory the test may break.
func copyModel(t *testing.T, arch string) string {
	t.Helper()
	src := testfixtures.Path(t, "hf", arch)
	dst := t.TempDir()
	for _, name := range []string{"config.json", "model.safetensors"} {
		data, err := os.ReadFile(filepath.Join(src, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

func editConfig(t *testing.T, dir, from, to string) {
	t.Helper()
	p := filepath.Join(dir, "config.json")
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), from) {
		t.Fatalf("config.json has no %q", from)
	}
	if err := os.WriteFile(p, []byte(strings.Replace(string(data), from, to, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestLoadRejectsBrokenDirectories(t *testing.T) {
	cases := []struct {
		name        string
		breakIt     func(t *testing.T, dir string)
		wantInError []string
		unsupported bool
		arch        string // llama when empty
	}{
		{"missing weights", func(t *testing.T, dir string) {
			os.Remove(filepath.Join(dir, "model.safetensors"))
		}, []string{"model.safetensors"}, false, ""},
		{"truncated weights", func(t *testing.T, dir string) {
			p := filepath.Join(dir, "model.safetensors")
			info, _ := os.Stat(p)
			if err := os.Truncate(p, info.Size()/2); err != nil {
				t.Fatal(err)
			}
		}, []string{"model.safetensors"}, false, ""},
		{"truncated header", func(t *testing.T, dir string) {
			if err := os.Truncate(filepath.Join(dir, "model.safetensors"), 5); err != nil {
				t.Fatal(err)
			}
		}, []string{"model.safetensors"}, false, ""},
		{"shape differs from config", func(t *testing.T, dir string) {
			editConfig(t, dir, `"intermediate_size": 160`, `"intermediate_size": 128`)
		}, []string{"model.safetensors", "model.layers.0.mlp.gate_proj.weight", "[160 64]", "[128 64]"}, false, ""},
		{"missing tensor", func(t *testing.T, dir string) {
			editConfig(t, dir, `"num_hidden_layers": 2`, `"num_hidden_layers": 3`)
		}, []string{"model.layers.2."}, false, ""},
		{"architecture not supported yet", func(t *testing.T, dir string) {
			editConfig(t, dir, `"model_type": "llama"`, `"model_type": "gpt_neox"`)
		}, []string{"gpt_neox"}, true, ""},
		{"gemma2 config over llama weights", func(t *testing.T, dir string) {
			editConfig(t, dir, `"model_type": "llama"`, `"model_type": "gemma2"`)
		}, []string{`has no tensor "model.layers.0.pre_feedforward_layernorm.weight"`, "a gemma2 checkpoint needs it"}, false, ""},
		{"unknown architecture", func(t *testing.T, dir string) {
			editConfig(t, dir, `"model_type": "llama"`, `"model_type": "frobnicator"`)
		}, []string{"frobnicator"}, true, ""},
		{"config is not JSON", func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, "config.json"), []byte("{\"model_type\": "), 0o644)
		}, []string{"config.json"}, false, ""},
		{"phi3: fused shape differs from config", func(t *testing.T, dir string) {
			editConfig(t, dir, `"intermediate_size": 160`, `"intermediate_size": 128`)
		}, []string{"model.safetensors", "model.layers.0.mlp.gate_up_proj.weight", "[320 64]", "[256 64]"}, false, "phi3"},
		{"phi3: unfused checkpoint", func(t *testing.T, dir string) {
			// llama's weights (q_proj, ..., up_proj) under a phi3 config
			data, err := os.ReadFile(filepath.Join(testfixtures.Path(t, "hf", "llama"), "model.safetensors"))
			if err != nil {
				t.Fatal(err)
			}
			os.WriteFile(filepath.Join(dir, "model.safetensors"), data, 0o644)
			editConfig(t, dir, `"num_key_value_heads": 4`, `"num_key_value_heads": 2`)
		}, []string{"has no tensor \"model.layers.0.self_attn.qkv_proj.weight\"", "a phi3 checkpoint needs it, shape [128 64]"}, false, "phi3"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			arch := tc.arch
			if arch == "" {
				arch = "llama"
			}
			dir := copyModel(t, arch)
			tc.breakIt(t, dir)
			_, err := model.Load(dir, cpu.New(0))
			if err == nil {
				t.Fatal("loaded without error")
			}
			for _, want := range tc.wantInError {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not mention %q", err, want)
				}
			}
			if model.IsUnsupported(err) != tc.unsupported {
				t.Errorf("IsUnsupported(%q) = %v, want %v", err, !tc.unsupported, tc.unsupported)
			}
		})
	}
}

func TestBatchValidation(t *testing.T) {
	m, err := model.Load(testfixtures.Path(t, "hf", "llama"), cpu.New(0))
	if err != nil {
		t.Fatal(err)
	}
	bad := []struct {
		name  string
		batch model.Batch
		want  string
	}{
		{"token outside vocabulary", model.Batch{Rows: 1, Cols: 2, Tokens: []int32{1, 2048}}, "vocabulary"},
		{"too few tokens", model.Batch{Rows: 2, Cols: 2, Tokens: []int32{1, 2, 3}}, "3 tokens"},
		{"negative position", model.Batch{Rows: 1, Cols: 2, Tokens: []int32{1, 2}, Positions: []int32{0, -1}}, "position -1"},
		{"absurd position", model.Batch{Rows: 1, Cols: 2, Tokens: []int32{1, 2}, Positions: []int32{0, 1 << 30}}, "position 1073741824"},
		{"target outside vocabulary", model.Batch{Rows: 1, Cols: 2, Tokens: []int32{1, 2}, Targets: []int32{5000, -100}}, "target 5000"},
	}
	for _, tc := range bad {
		_, err := m.Logits(&tc.batch)
		if tc.batch.Targets != nil {
			_, _, err = m.Loss(&tc.batch)
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one mentioning %q", tc.name, err, tc.want)
		}
	}
}
