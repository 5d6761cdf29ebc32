package peft

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/eftml/eft/shared/hfmodel"
	"github.com/eftml/eft/shared/safetensors"
	"github.com/eftml/eft/shared/testfixtures"
)

func TestLoadFixtureAdapters(t *testing.T) {
	cases := map[string]struct {
		modules int
		targets string
	}{
		"llama-lora": {14, "q_proj v_proj up_proj k_proj down_proj gate_proj o_proj"},
		"qwen2-lora": {4, "q_proj v_proj"},
	}
	for name, c := range cases {
		a, err := Load(testfixtures.Path(t, "hf", name))
		if err != nil {
			t.Fatal(err)
		}
		cfg := a.Config
		if cfg.R != 4 || cfg.LoraAlpha != 8 || cfg.LoraDropout != 0 || cfg.UseRSLoRA || cfg.InitLoraWeights != false ||
			strings.Join(cfg.TargetModules, " ") != c.targets || cfg.TaskType != "CAUSAL_LM" || cfg.BaseModelNameOrPath != nil {
			t.Errorf("%s config %+v", name, cfg)
		}
		if len(a.LoRA) != c.modules || len(a.Saved) != 0 {
			t.Errorf("%s: %d LoRA modules, %d saved", name, len(a.LoRA), len(a.Saved))
		}
		p := a.LoRA["model.layers.1.self_attn.v_proj"]
		if p == nil || p.Rank != 4 || p.In != 64 || p.Out != 32 || len(p.A) != 4*64 || len(p.B) != 32*4 {
			t.Errorf("%s v_proj pair %+v", name, p)
		}
		if s := cfg.Scaling("model.layers.1.self_attn.v_proj"); s != 2 {
			t.Errorf("%s scaling %g, want alpha/r = 2", name, s)
		}
	}
}

// Saving what we loaded must reproduce PEFT's files byte for byte, for every
// adapter directory in the parity fixtures ($EFT_PARITY_DIR, default
// testdata/hf).
func TestParitySaveReproducesPEFTFiles(t *testing.T) {
	root := testfixtures.ParityDir(t)
	entries, err := os.ReadDir(root)
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, e := range entries {
		src := filepath.Join(root, e.Name())
		if _, err := os.Stat(filepath.Join(src, ConfigFile)); err != nil {
			continue
		}
		a, err := Load(src)
		if err != nil {
			t.Fatal(err)
		}
		dst := t.TempDir()
		if err := a.Save(dst, safetensors.F32); err != nil {
			t.Fatal(err)
		}
		for _, f := range []string{ConfigFile, WeightsFile} {
			want, _ := os.ReadFile(filepath.Join(src, f))
			got, _ := os.ReadFile(filepath.Join(dst, f))
			if !bytes.Equal(got, want) {
				t.Errorf("%s/%s differs from what PEFT wrote\n got %.300q\nwant %.300q", e.Name(), f, got, want)
			}
		}
		checked++
	}
	if checked == 0 {
		t.Fatalf("no adapter directory under %s", root)
	}
}

func TestNewConfigIsPEFTsFile(t *testing.T) {
	// A config built from scratch with the fixture's values is PEFT's file.
	c := NewConfig(4, 8, 0, []string{"q_proj", "v_proj"})
	c.InitLoraWeights = false
	got, err := c.Encode()
	if err != nil {
		t.Fatal(err)
	}
	want, _ := os.ReadFile(testfixtures.Path(t, "hf", "qwen2-lora", ConfigFile))
	if !bytes.Equal(got, want) {
		t.Errorf("NewConfig encodes as\n%s\nwant\n%s", got, want)
	}
}

// merge_and_unload onto the llama fixture, compared with the merged state
// dict PEFT produced. The fixture merged the adapter as it stood after its 5
// AdamW steps (reference after5.*), not the saved initial adapter.
func TestMergeMatchesPEFT(t *testing.T) {
	a, err := Load(testfixtures.Path(t, "hf", "llama-lora"))
	if err != nil {
		t.Fatal(err)
	}
	base, err := safetensors.Open(testfixtures.Path(t, "hf", "llama", "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer base.Close()
	ref, err := safetensors.Open(testfixtures.Path(t, "hf", "llama-lora", "reference.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Close()
	for module, p := range a.LoRA {
		if p.A, err = ref.Float32s("after5." + MemoryKey(SavedKey(module, LoraA), DefaultAdapterName)); err != nil {
			t.Fatal(err)
		}
		if p.B, err = ref.Float32s("after5." + MemoryKey(SavedKey(module, LoraB), DefaultAdapterName)); err != nil {
			t.Fatal(err)
		}
	}
	merged := 0
	for _, name := range base.Names() {
		w, _ := base.Float32s(name)
		module := strings.TrimSuffix(name, ".weight")
		if p, ok := a.LoRA[module]; ok {
			if err := Merge(w, p, a.Config.Scaling(module)); err != nil {
				t.Fatal(err)
			}
			merged++
		}
		want, err := ref.Float32s("merged." + name)
		if err != nil {
			t.Fatal(err)
		}
		var maxAbs, maxDiff float64
		for i := range want {
			maxAbs = max(maxAbs, math.Abs(float64(want[i])))
			maxDiff = max(maxDiff, math.Abs(float64(w[i]-want[i])))
		}
		if maxDiff > 1e-6*max(1, maxAbs) {
			t.Errorf("%s: merged weight differs from PEFT's by %g", name, maxDiff)
		}
	}
	if merged != 14 {
		t.Errorf("merged %d modules, want 14", merged)
	}
}

func TestKeyNames(t *testing.T) {
	ref, err := safetensors.Open(testfixtures.Path(t, "hf", "llama-lora", "reference.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Close()
	adapter, _ := safetensors.Open(testfixtures.Path(t, "hf", "llama-lora", WeightsFile))
	defer adapter.Close()
	// Every saved key maps to the in-memory name PEFT used for its gradient.
	for _, saved := range adapter.Names() {
		mem := MemoryKey(saved, DefaultAdapterName)
		if _, ok := ref.Info("grad." + mem); !ok {
			t.Errorf("MemoryKey(%q) = %q, which has no gradient in the reference", saved, mem)
		}
		module, kind, _, err := ParseKey(saved)
		if err != nil || SavedKey(module, kind) != saved {
			t.Errorf("ParseKey(%q) = %q %q %v", saved, module, kind, err)
		}
	}
	cases := map[string]string{
		"base_model.model.lm_head.weight":                           "base_model.model.lm_head.modules_to_save.default.weight",
		"base_model.model.model.embed_tokens.lora_embedding_A":      "base_model.model.model.embed_tokens.lora_embedding_A.default",
		"base_model.model.model.layers.3.mlp.up_proj.lora_B.weight": "base_model.model.model.layers.3.mlp.up_proj.lora_B.default.weight",
	}
	for saved, want := range cases {
		if got := MemoryKey(saved, DefaultAdapterName); got != want {
			t.Errorf("MemoryKey(%q) = %q, want %q", saved, got, want)
		}
	}
	for _, bad := range []string{"model.layers.0.q_proj.lora_A.weight", "base_model.model.x.lora_A.bias", "base_model.model.x.lora_C.weight", "base_model.model.w"} {
		if _, _, _, err := ParseKey(bad); err == nil {
			t.Errorf("ParseKey(%q) accepted", bad)
		}
	}
}

func linearModules(t *testing.T) []string {
	c, err := hfmodel.LoadConfig(testfixtures.Path(t, "hf", "llama", "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, p := range c.Params() {
		if len(p.Shape) == 2 && !strings.Contains(p.Name, "embed_tokens") {
			out = append(out, strings.TrimSuffix(p.Name, ".weight"))
		}
	}
	return out
}

func TestSelectTargets(t *testing.T) {
	linear := linearModules(t)
	if len(linear) != 15 {
		t.Fatalf("%d linear modules in llama, want 2x7 + lm_head", len(linear))
	}
	cases := []struct {
		name string
		cfg  func(c *Config)
		n    int
	}{
		{"names", func(c *Config) {}, 4},
		{"suffix path", func(c *Config) { c.TargetModules = []string{"self_attn.q_proj"} }, 2},
		{"all-linear", func(c *Config) { c.TargetModules, c.TargetRegex = nil, AllLinear }, 14},
		{"regex", func(c *Config) { c.TargetModules, c.TargetRegex = nil, `.*\.layers\.1\..*_proj` }, 7},
		{"layers", func(c *Config) { c.LayersToTransform = []int{1} }, 2},
		{"layers pattern", func(c *Config) { c.LayersToTransform, c.LayersPattern = []int{0}, []string{"layers"} }, 2},
		{"exclude", func(c *Config) { c.ExcludeModules = []string{"model.layers.0.self_attn.q_proj"} }, 3},
		{"lm_head", func(c *Config) { c.TargetModules = []string{"lm_head"} }, 1},
	}
	for _, c := range cases {
		cfg := NewConfig(8, 16, 0, []string{"q_proj", "v_proj"})
		c.cfg(cfg)
		got, err := cfg.SelectTargets(linear, "lm_head")
		if err != nil || len(got) != c.n {
			t.Errorf("%s: %v %v, want %d modules", c.name, got, err, c.n)
		}
	}
	cfg := NewConfig(8, 16, 0, []string{"q_proj", "qkv_proj"})
	_, err := cfg.SelectTargets(linear, "lm_head")
	if err == nil || !strings.Contains(err.Error(), "target module(s) qkv_proj not found in the base model") ||
		!strings.Contains(err.Error(), "down_proj, gate_proj, k_proj, lm_head, o_proj, q_proj, up_proj, v_proj") {
		t.Errorf("unknown target: %v", err)
	}
	cfg = NewConfig(8, 16, 0, nil)
	cfg.TargetRegex = `.*\.attention\..*`
	if _, err := cfg.SelectTargets(linear, "lm_head"); err == nil {
		t.Error("a regex matching nothing was accepted")
	}
}

func TestScalingPatterns(t *testing.T) {
	c := NewConfig(16, 32, 0, []string{"q_proj"})
	c.RankPattern = map[string]int{"layers.1.self_attn.q_proj": 4}
	c.AlphaPattern = map[string]float64{`layers\.[01]\.self_attn\.q_proj`: 8}
	if c.Rank("model.layers.0.self_attn.q_proj") != 16 || c.Rank("model.layers.1.self_attn.q_proj") != 4 {
		t.Error("rank_pattern")
	}
	if s := c.Scaling("model.layers.1.self_attn.q_proj"); s != 2 {
		t.Errorf("scaling with patterns %g, want 8/4", s)
	}
	if s := c.Scaling("model.layers.2.self_attn.q_proj"); s != 2 {
		t.Errorf("scaling without patterns %g, want 32/16", s)
	}
	c.UseRSLoRA = true
	if s := c.Scaling("model.layers.2.self_attn.q_proj"); s != 8 {
		t.Errorf("rslora scaling %g, want 32/sqrt(16)", s)
	}
}

func TestConfigErrors(t *testing.T) {
	base, _ := os.ReadFile(testfixtures.Path(t, "hf", "qwen2-lora", ConfigFile))
	edit := func(old, new string) []byte {
		if !bytes.Contains(base, []byte(old)) {
			t.Fatalf("fixture lacks %q", old)
		}
		return bytes.Replace(base, []byte(old), []byte(new), 1)
	}
	cases := []struct {
		name string
		data []byte
		want string
	}{
		{"dora", edit(`"use_dora": false`, `"use_dora": true`), `key "use_dora": DoRA is not supported`},
		{"bias", edit(`"bias": "none"`, `"bias": "all"`), `key "bias": "all" is not supported`},
		{"rank", edit(`"r": 4`, `"r": 0`), `key "r": rank must be positive`},
		{"rank type", edit(`"r": 4`, `"r": "4"`), `key "r": want a number`},
		{"targets", edit(`"target_modules": [`, `"target_modules": null, "x": [`), `key "target_modules": no target modules`},
		{"type", edit(`"peft_type": "LORA"`, `"peft_type": "IA3"`), `"IA3" adapters are not supported`},
		{"syntax", append([]byte("{"), base...), "adapter_config.json"},
	}
	for _, c := range cases {
		_, err := ParseConfig("a/adapter_config.json", c.data)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "a/adapter_config.json") {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
}

func TestModulesToSaveAndEmbeddingRoundTrip(t *testing.T) {
	c := NewConfig(2, 4, 0.05, []string{"embed_tokens", "q_proj"})
	c.ModulesToSave = []string{"lm_head"}
	c.UseRSLoRA = true
	base := "meta-llama/Llama-3.2-1B"
	c.BaseModelNameOrPath = &base
	a := &Adapter{Config: c,
		LoRA: map[string]*Pair{
			"model.embed_tokens":              {A: []float32{1, 2, 3, 4, 5, 6}, B: []float32{1, 0, 0, 1}, Rank: 2, In: 3, Out: 2, Embedding: true},
			"model.layers.0.self_attn.q_proj": {A: []float32{1, 2, 3, 4}, B: []float32{0.5, 0.25}, Rank: 2, In: 2, Out: 1},
		},
		Saved: map[string]*Tensor{"lm_head.weight": {Shape: []int{3, 2}, Data: []float32{1, 2, 3, 4, 5, 6}}},
	}
	dir := t.TempDir()
	if err := a.Save(dir, safetensors.BF16); err != nil {
		t.Fatal(err)
	}
	f, _ := safetensors.Open(filepath.Join(dir, WeightsFile))
	names := strings.Join(f.Names(), " ")
	f.Close()
	want := "base_model.model.lm_head.weight base_model.model.model.embed_tokens.lora_embedding_A base_model.model.model.embed_tokens.lora_embedding_B " +
		"base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight"
	if names != want {
		t.Errorf("saved keys\n%s\nwant\n%s", names, want)
	}
	back, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !back.LoRA["model.embed_tokens"].Embedding || back.Saved["lm_head.weight"].Data[5] != 6 || !back.Config.UseRSLoRA ||
		*back.Config.BaseModelNameOrPath != base || back.Config.LoraDropout != 0.05 {
		t.Errorf("round trip lost something: %+v", back)
	}
	raw, _ := os.ReadFile(filepath.Join(dir, ConfigFile))
	for _, s := range []string{`"lora_dropout": 0.05,`, `"modules_to_save": [` + "\n    \"lm_head\"\n  ],", `"base_model_name_or_path": "meta-llama/Llama-3.2-1B",`} {
		if !bytes.Contains(raw, []byte(s)) {
			t.Errorf("config lacks %q:\n%s", s, raw)
		}
	}
	// Embedding merge: W [vocab 3, dim 2] += s·(B·A)ᵀ with B = I.
	w := make([]float32, 6)
	Merge(w, back.LoRA["model.embed_tokens"], 1)
	if w[0] != 1 || w[1] != 4 || w[4] != 3 || w[5] != 6 {
		t.Errorf("embedding merge %v, want [1 4 2 5 3 6]", w)
	}
	// A stray tensor that is not in modules_to_save is an error.
	back.Config.ModulesToSave = nil
	back.Save(dir, safetensors.F32)
	back.Config.ModulesToSave = []string{"lm_head"}
	enc, _ := back.Config.Encode()
	os.WriteFile(filepath.Join(dir, ConfigFile), bytes.Replace(enc, []byte(`"lm_head"`), []byte(`"score"`), 1), 0o644)
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "neither a LoRA weight nor in modules_to_save") {
		t.Errorf("stray tensor: %v", err)
	}
}
