package peft

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/eftml/eft/shared/safetensors"
)

// modules_to_save as PEFT 0.21's _add_modules_to_save_to_tie leaves it for
// a tied model (its tests' cases and the lists Axolotl users write), and
// unchanged without ensure_weight_tying or without a tied layer listed.
func TestTieModulesToSave(t *testing.T) {
	cases := []struct {
		saved  []string
		ensure bool
		want   []string
		tie    bool
	}{
		{[]string{"lm_head"}, true, []string{"model.embed_tokens"}, true},
		{[]string{"embed_tokens"}, true, []string{"embed_tokens", "model.embed_tokens"}, true},
		{[]string{"embed_tokens", "lm_head"}, true, []string{"embed_tokens", "model.embed_tokens"}, true},
		{[]string{"lm_head", "embed_tokens", "norm"}, true, []string{"embed_tokens", "norm", "model.embed_tokens"}, true},
		{[]string{"model.embed_tokens"}, true, []string{"model.embed_tokens"}, true},
		{[]string{"norm"}, true, []string{"norm"}, false},
		{[]string{"lm_head"}, false, []string{"lm_head"}, false},
		{[]string{"embed_tokens", "lm_head"}, false, []string{"embed_tokens", "lm_head"}, false},
		{nil, true, nil, false},
	}
	for _, c := range cases {
		cfg := NewConfig(4, 8, 0, []string{"q_proj"})
		cfg.ModulesToSave, cfg.EnsureWeightTying = slices.Clone(c.saved), c.ensure
		tie := cfg.TieModulesToSave("model.embed_tokens")
		if tie != c.tie || !slices.Equal(cfg.ModulesToSave, c.want) {
			t.Errorf("%q ensure %v: %q tie %v, want %q tie %v", c.saved, c.ensure, cfg.ModulesToSave, tie, c.want, c.tie)
		}
		// Loading the adapter applies it again (PEFT does too): no change.
		again := slices.Clone(cfg.ModulesToSave)
		if cfg.TieModulesToSave("model.embed_tokens") != c.tie || !slices.Equal(cfg.ModulesToSave, again) {
			t.Errorf("%q ensure %v: applied twice gives %q", c.saved, c.ensure, cfg.ModulesToSave)
		}
	}
}

// ensure_weight_tying is read and written; with it the tied head's saved
// weight loads although modules_to_save no longer lists lm_head, and
// without it that weight is a stray tensor.
func TestEnsureWeightTyingAdapter(t *testing.T) {
	cfg := NewConfig(2, 4, 0, []string{"q_proj"})
	cfg.ModulesToSave, cfg.EnsureWeightTying = []string{"lm_head"}, true
	cfg.TieModulesToSave("model.embed_tokens")
	embed := &Tensor{Shape: []int{3, 2}, Data: []float32{1, 2, 3, 4, 5, 6}}
	a := &Adapter{Config: cfg,
		LoRA:  map[string]*Pair{"model.layers.0.self_attn.q_proj": {A: []float32{1, 2, 3, 4}, B: []float32{0.5, 0.25}, Rank: 2, In: 2, Out: 1}},
		Saved: map[string]*Tensor{"model.embed_tokens.weight": embed, "lm_head.weight": embed},
	}
	dir := t.TempDir()
	if err := a.Save(dir, safetensors.F32); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, ConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{`"ensure_weight_tying": true,`, `"modules_to_save": [` + "\n    \"model.embed_tokens\"\n  ],"} {
		if !strings.Contains(string(raw), s) {
			t.Errorf("adapter_config.json lacks %q:\n%s", s, raw)
		}
	}
	back, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !back.Config.EnsureWeightTying || len(back.Saved) != 2 || back.Saved["lm_head.weight"].Data[5] != 6 {
		t.Errorf("loaded %+v, saved %v", back.Config, back.Saved)
	}

	os.WriteFile(filepath.Join(dir, ConfigFile), []byte(strings.Replace(string(raw), `"ensure_weight_tying": true`, `"ensure_weight_tying": false`, 1)), 0o644)
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), `"base_model.model.lm_head.weight" is neither a LoRA weight nor in modules_to_save`) {
		t.Errorf("the tied head without ensure_weight_tying: %v", err)
	}
	os.WriteFile(filepath.Join(dir, ConfigFile), []byte(strings.Replace(string(raw), `"ensure_weight_tying": true`, `"ensure_weight_tying": "yes"`, 1)), 0o644)
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), `key "ensure_weight_tying": want true or false`) {
		t.Errorf("ensure_weight_tying \"yes\": %v", err)
	}
}
