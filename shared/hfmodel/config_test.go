package hfmodel

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/eftml/eft/shared/testfixtures"
)

func TestFixtureConfigs(t *testing.T) {
	type want struct {
		kv, headDim                    int
		eps, theta                     float64
		tie, attnBias, outBias, qkNorm bool
		window                         []int
		bos                            *int
		eos                            []int
	}
	cases := map[string]want{
		"llama":   {kv: 2, headDim: 16, eps: 1e-5, theta: 10000, window: []int{0, 0}, bos: intPtr(1), eos: []int{2}},
		"mistral": {kv: 2, headDim: 16, eps: 1e-6, theta: 10000, window: []int{8, 8}, bos: intPtr(1), eos: []int{2}},
		// qwen2: bos/eos are explicit nulls; q, k, v always carry biases.
		"qwen2": {kv: 2, headDim: 16, eps: 1e-6, theta: 1e6, tie: true, attnBias: true, window: []int{0, 0}},
		"qwen3": {kv: 2, headDim: 16, eps: 1e-6, theta: 1e6, qkNorm: true, window: []int{0, 0}},
	}
	for arch, w := range cases {
		d, err := Open(testfixtures.Path(t, "hf", arch))
		if err != nil {
			t.Fatal(err)
		}
		c := d.Config
		if c.ModelType != arch || c.VocabSize != 2048 || c.HiddenSize != 64 || c.IntermediateSize != 160 ||
			c.NumHiddenLayers != 2 || c.NumAttentionHeads != 4 || c.NumKeyValueHeads != w.kv || c.HeadDim != w.headDim ||
			c.MaxPositionEmbeddings != 256 || c.HiddenAct != "silu" || c.DType != "float32" {
			t.Errorf("%s: sizes %+v", arch, *c)
		}
		if c.RMSNormEps != w.eps || c.RoPE.Theta != w.theta || c.RoPE.Type != "default" || c.RoPE.Factor != 0 {
			t.Errorf("%s: eps %g, rope %+v", arch, c.RMSNormEps, c.RoPE)
		}
		if c.TieWordEmbeddings != w.tie || c.AttentionBias != w.attnBias || c.OutputBias != w.outBias || c.QKNorm != w.qkNorm || c.MLPBias {
			t.Errorf("%s: tie %v attnBias %v outBias %v qkNorm %v mlpBias %v", arch, c.TieWordEmbeddings, c.AttentionBias, c.OutputBias, c.QKNorm, c.MLPBias)
		}
		if !slices.Equal(c.LayerWindow(), w.window) {
			t.Errorf("%s: layer windows %v, want %v", arch, c.LayerWindow(), w.window)
		}
		if !equalOpt(c.BOSTokenID, w.bos) || !slices.Equal(c.EOSTokenIDs, w.eos) || c.PadTokenID != nil {
			t.Errorf("%s: bos %v eos %v pad %v", arch, c.BOSTokenID, c.EOSTokenIDs, c.PadTokenID)
		}
		if !d.HasTokenizer() || d.GenerationConfig != "generation_config.json" || d.Weights != "model.safetensors" {
			t.Errorf("%s: files %+v", arch, d)
		}
	}
}

func equalOpt(a, b *int) bool { return (a == nil) == (b == nil) && (a == nil || *a == *b) }

func loadNamed(t *testing.T, name string) *Config {
	t.Helper()
	c, err := LoadConfig(testfixtures.Path(t, "hfmodel", name))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestRealWorldConfigs(t *testing.T) {
	l := loadNamed(t, "llama3.1-8b.json")
	wantRope := RoPE{Type: "llama3", Theta: 500000, Factor: 8, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPositions: 8192, from: "rope_scaling"}
	if !ropeEqual(l.RoPE, wantRope) {
		t.Errorf("llama 3.1 rope %+v, want %+v", l.RoPE, wantRope)
	}
	if l.HeadDim != 128 || l.NumKeyValueHeads != 8 || !slices.Equal(l.EOSTokenIDs, []int{128001, 128008, 128009}) || l.DType != "bfloat16" {
		t.Errorf("llama 3.1: head_dim %d kv %d eos %v dtype %s", l.HeadDim, l.NumKeyValueHeads, l.EOSTokenIDs, l.DType)
	}
	// 8.03B parameters, as the model card says.
	if n := l.ParamCount(); n != 8030261248 {
		t.Errorf("llama 3.1 8B parameter count %d", n)
	}

	q := loadNamed(t, "qwen2.5-7b.json")
	// sliding_window is set but use_sliding_window is false: no layer slides.
	if q.SlidingWindow != 0 || slices.Max(q.LayerWindow()) != 0 || q.RoPE.Theta != 1e6 || q.RoPE.Type != "default" || !q.AttentionBias || q.OutputBias {
		t.Errorf("qwen2.5: window %d rope %+v bias %v/%v", q.SlidingWindow, q.RoPE, q.AttentionBias, q.OutputBias)
	}
	if n := q.ParamCount(); n != 7615616512 {
		t.Errorf("qwen2.5 7B parameter count %d", n)
	}

	legacy := loadNamed(t, "llama2-linear-legacy.json")
	// Legacy "type" key, integer factor, no rope_theta: 10000; no
	// num_key_value_heads: as many as heads; explicit pad id.
	if legacy.RoPE.Type != "linear" || legacy.RoPE.Factor != 2 || legacy.RoPE.Theta != 10000 ||
		legacy.NumKeyValueHeads != 32 || legacy.PadTokenID == nil || *legacy.PadTokenID != 0 || legacy.DType != "float16" {
		t.Errorf("llama 2 legacy: rope %+v kv %d pad %v", legacy.RoPE, legacy.NumKeyValueHeads, legacy.PadTokenID)
	}

	y := loadNamed(t, "qwen3-yarn-sliding.json")
	f := false
	wantYarn := RoPE{Type: "yarn", Theta: 1e6, Factor: 4, OriginalMaxPositions: 32768, BetaFast: 16, Truncate: &f, from: "rope_parameters"}
	if !ropeEqual(y.RoPE, wantYarn) {
		t.Errorf("yarn rope %+v", y.RoPE)
	}
	// Qwen3 defaults: head_dim 128 when absent; layers from max_window_layers slide.
	if y.HeadDim != 128 || !slices.Equal(y.LayerWindow(), []int{0, 0, 512, 512}) || y.BOSTokenID != nil {
		t.Errorf("qwen3: head_dim %d windows %v bos %v", y.HeadDim, y.LayerWindow(), y.BOSTokenID)
	}
}

// ropeEqual compares RoPE settings by value (Truncate's target, the
// factor lists).
func ropeEqual(a, b RoPE) bool { return reflect.DeepEqual(a, b) }

func TestUnsupportedArchitecturesSaySo(t *testing.T) {
	dir := testfixtures.Path(t, "hfmodel", "unsupported")
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) < 5 {
		t.Fatalf("unsupported configs: %v, %d files", err, len(entries))
	}
	for _, e := range entries {
		arch := strings.TrimSuffix(e.Name(), ".json")
		_, err := LoadConfig(filepath.Join(dir, e.Name()))
		if err == nil || !strings.Contains(err.Error(), `model_type "`+arch+`"`) || !strings.Contains(err.Error(), "not supported yet") {
			t.Errorf("%s: %v", arch, err)
		}
	}
	_, err = ParseConfig("x/config.json", []byte(`{"model_type":"bert","architectures":["BertModel"]}`))
	if err == nil || !strings.Contains(err.Error(), `model_type "bert" (BertModel) is unknown; supported: llama, mistral, qwen2, qwen3`) {
		t.Errorf("unknown arch: %v", err)
	}
	// No model_type: the architecture name decides.
	c, err := ParseConfig("x/config.json", []byte(`{"architectures":["MistralForCausalLM"],"hidden_size":64,"num_attention_heads":4,"num_key_value_heads":2,"intermediate_size":128,"num_hidden_layers":1,"vocab_size":100,"bos_token_id":null,"eos_token_id":null}`))
	if err != nil || c.ModelType != "mistral" || c.SlidingWindow != 4096 {
		t.Errorf("architecture fallback: %v %+v", err, c)
	}
}

// The phi3 fixture: fused projections, Phi3Config's defaults for what the
// file leaves out, and an eos id (Phi3Config's 32000) past its 2048-token
// vocabulary, which transformers keeps.
func TestPhi3FixtureConfig(t *testing.T) {
	d, err := Open(testfixtures.Path(t, "hf", "phi3"))
	if err != nil {
		t.Fatal(err)
	}
	c := d.Config
	if c.ModelType != "phi3" || !c.FusedQKV || !c.FusedGateUp || c.AttentionBias || c.OutputBias || c.MLPBias || c.QKNorm {
		t.Errorf("switches %+v", *c)
	}
	if c.HeadDim != 16 || c.NumKeyValueHeads != 4 || c.RMSNormEps != 1e-5 || c.HiddenAct != "silu" || c.TieWordEmbeddings {
		t.Errorf("sizes %+v", *c)
	}
	if c.RoPE.Type != "default" || c.RoPE.PartialRotary != 1 || c.RoPE.Theta != 10000 || slices.Max(c.LayerWindow()) != 0 {
		t.Errorf("rope %+v windows %v", c.RoPE, c.LayerWindow())
	}
	if !slices.Equal(c.EOSTokenIDs, []int{32000}) || *c.BOSTokenID != 1 || *c.PadTokenID != 0 {
		t.Errorf("bos %v eos %v pad %v", *c.BOSTokenID, c.EOSTokenIDs, *c.PadTokenID)
	}
	src, err := d.OpenWeights()
	if err != nil {
		t.Fatalf("fused weights against the config: %v", err)
	}
	defer src.Close()
	if info, _ := src.Info("model.layers.1.self_attn.qkv_proj.weight"); !slices.Equal(info.Shape, []int{3 * 64, 64}) {
		t.Errorf("qkv_proj %v", info.Shape)
	}
	if info, _ := src.Info("model.layers.1.mlp.gate_up_proj.weight"); !slices.Equal(info.Shape, []int{2 * 160, 64}) {
		t.Errorf("gate_up_proj %v", info.Shape)
	}
}

// Phi-3.5-mini-instruct's config.json: legacy rope_scaling with type
// longrope and 48 short and long factors (head_dim 96), a sliding window on
// every layer, 3.82B parameters.
func TestPhi35MiniConfig(t *testing.T) {
	c := loadNamed(t, "phi3.5-mini.json")
	r := c.RoPE
	if r.Type != "longrope" || r.OriginalMaxPositions != 4096 || r.Factor != 0 || len(r.ShortFactor) != 48 || len(r.LongFactor) != 48 ||
		r.ShortFactor[1] != 1.0199999809265137 || r.LongFactor[47] != 64.83999633789062 || r.from != "rope_scaling" {
		t.Errorf("rope %+v", r)
	}
	if c.HeadDim != 96 || c.MaxPositionEmbeddings != 131072 || !slices.Equal(c.LayerWindow()[:2], []int{262144, 262144}) || c.DType != "bfloat16" {
		t.Errorf("head_dim %d max %d windows %v dtype %s", c.HeadDim, c.MaxPositionEmbeddings, c.LayerWindow(), c.DType)
	}
	if n := c.ParamCount(); n != 3821079552 {
		t.Errorf("parameter count %d", n)
	}
}

// What Phi3Config does to the RoPE settings: "su" and "yarn" are longrope,
// the top-level original_max_position_embeddings wins, other types are
// refused; non-zero dropout is refused (eft has none to apply).
func TestPhi3ConfigRules(t *testing.T) {
	base, err := os.ReadFile(testfixtures.Path(t, "hf", "phi3", "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	edit := func(old, new string) []byte {
		if !strings.Contains(string(base), old) {
			t.Fatalf("fixture lacks %q", old)
		}
		return []byte(strings.Replace(string(base), old, new, 1))
	}
	factors := `"short_factor": [1, 1, 1, 1, 1, 1, 1, 2], "long_factor": [1, 2, 3, 4, 5, 6, 7, 8], "original_max_position_embeddings": 64`
	for _, typ := range []string{"su", "yarn", "longrope"} {
		c, err := ParseConfig("p/config.json", edit(`"rope_type": "default"`, factors+`, "rope_type": "`+typ+`"`))
		if err != nil {
			t.Fatalf("%s: %v", typ, err)
		}
		if c.RoPE.Type != "longrope" || c.RoPE.OriginalMaxPositions != 4096 || c.RoPE.LongFactor[7] != 8 {
			t.Errorf("%s: %+v", typ, c.RoPE)
		}
	}
	c, err := ParseConfig("p/config.json", edit(`"partial_rotary_factor": 1.0`, `"partial_rotary_factor": 0.5`))
	if err != nil || c.RoPE.PartialRotary != 0.5 {
		t.Errorf("partial rotary: %v %+v", err, c.RoPE)
	}
	c, err = ParseConfig("p/config.json", edit(`"sliding_window": null`, `"sliding_window": 6`))
	if err != nil || !slices.Equal(c.LayerWindow(), []int{6, 6}) {
		t.Errorf("sliding window: %v %v", err, c.LayerWindow())
	}
	for _, bad := range []struct {
		data []byte
		want string
	}{
		{edit(`"rope_type": "default"`, `"rope_type": "linear", "factor": 2`), `key "rope_parameters": rope_type "linear" is not supported by phi3`},
		{edit(`"rope_type": "default"`, `"rope_type": "longrope", "short_factor": [1, 1], "long_factor": [1, 2]`), `needs short_factor: a list of rotary_dim/2 = 8 numbers, got 2`},
		{edit(`"rope_type": "default"`, `"rope_type": "longrope", "short_factor": [1, 1, 1, 1, 1, 1, 1, 1], "long_factor": "x"`), `key "long_factor": want a list of numbers`},
		{edit(`"rope_type": "default"`, `"rope_type": "longrope", "short_factor": [1, 1, 1, 1, 1, 1, 1, 0], "long_factor": [1, 1, 1, 1, 1, 1, 1, 1]`), `short_factor[7] is 0`},
		{edit(`"resid_pdrop": 0.0`, `"resid_pdrop": 0.1`), `key "resid_pdrop": is 0.1`},
		{edit(`"embd_pdrop": 0.0`, `"embd_pdrop": 0.1`), `key "embd_pdrop": is 0.1`},
	} {
		if _, err := ParseConfig("p/config.json", bad.data); err == nil || !strings.Contains(err.Error(), bad.want) || !strings.Contains(err.Error(), "p/config.json") {
			t.Errorf("%v\nwant it to name p/config.json and say %q", err, bad.want)
		}
	}
}

// The gemma2 fixture: Gemma's (1 + w) norms and √hidden embedding scale,
// sandwich norms, both soft caps, query_pre_attn_scalar, and layer_types'
// sliding and full layers.
func TestGemma2FixtureConfig(t *testing.T) {
	d, err := Open(testfixtures.Path(t, "hf", "gemma2"))
	if err != nil {
		t.Fatal(err)
	}
	c := d.Config
	if !c.EmbedScale || !c.NormOffset || !c.SandwichNorms || c.FusedQKV || c.AttentionBias || !c.TieWordEmbeddings {
		t.Errorf("switches %+v", *c)
	}
	if c.AttnSoftCap != 50 || c.FinalSoftCap != 30 || c.QueryPreAttnScalar != 16 || c.HiddenAct != "gelu_pytorch_tanh" || c.HeadDim != 16 {
		t.Errorf("caps %g/%g, scalar %g, act %s, head_dim %d", c.AttnSoftCap, c.FinalSoftCap, c.QueryPreAttnScalar, c.HiddenAct, c.HeadDim)
	}
	if !slices.Equal(c.LayerWindow(), []int{8, 0}) {
		t.Errorf("windows %v, want [8 0]", c.LayerWindow())
	}
	src, err := d.OpenWeights()
	if err != nil {
		t.Fatalf("four norms a layer against the config: %v", err)
	}
	src.Close()
}

// Gemma-2-9B's config.json (no layer_types: every other layer slides,
// the first included): 9.24B parameters as published.
func TestGemma2RealConfig(t *testing.T) {
	c := loadNamed(t, "gemma2-9b.json")
	w := c.LayerWindow()
	if len(w) != 42 || w[0] != 4096 || w[1] != 0 || w[40] != 4096 || w[41] != 0 {
		t.Errorf("windows %v", w)
	}
	if c.QueryPreAttnScalar != 256 || c.AttnSoftCap != 50 || c.FinalSoftCap != 30 || c.RoPE.Theta != 10000 {
		t.Errorf("scalar %g caps %g/%g rope %+v", c.QueryPreAttnScalar, c.AttnSoftCap, c.FinalSoftCap, c.RoPE)
	}
	if n := c.ParamCount(); n != 9241705984 {
		t.Errorf("parameter count %d", n)
	}
}

// Gemma2Config's rules: its defaults for absent keys, null soft caps mean
// none, and what eft cannot train is refused with the key named.
func TestGemma2ConfigRules(t *testing.T) {
	base, err := os.ReadFile(testfixtures.Path(t, "hf", "gemma2", "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	edit := func(pairs ...string) []byte {
		out := string(base)
		for i := 0; i < len(pairs); i += 2 {
			if !strings.Contains(out, pairs[i]) {
				t.Fatalf("fixture lacks %q", pairs[i])
			}
			out = strings.Replace(out, pairs[i], pairs[i+1], 1)
		}
		return []byte(out)
	}
	c, err := ParseConfig("g/config.json", edit(`"attn_logit_softcapping": 50.0,`, ``, `"final_logit_softcapping": 30.0,`, ``,
		`"query_pre_attn_scalar": 16,`, ``, `"sliding_window": 8,`, ``, `"layer_types": [
    "sliding_attention",
    "full_attention"
  ],`, ``))
	if err != nil {
		t.Fatal(err)
	}
	if c.AttnSoftCap != 50 || c.FinalSoftCap != 30 || c.QueryPreAttnScalar != 256 || !slices.Equal(c.LayerWindow(), []int{4096, 0}) {
		t.Errorf("defaults: caps %g/%g scalar %g windows %v", c.AttnSoftCap, c.FinalSoftCap, c.QueryPreAttnScalar, c.LayerWindow())
	}
	c, err = ParseConfig("g/config.json", edit(`"attn_logit_softcapping": 50.0`, `"attn_logit_softcapping": null`,
		`"final_logit_softcapping": 30.0`, `"final_logit_softcapping": null`, `"sliding_window": 8`, `"sliding_window": null`))
	if err != nil || c.AttnSoftCap != 0 || c.FinalSoftCap != 0 || slices.Max(c.LayerWindow()) != 0 {
		t.Errorf("nulls: %v, caps %g/%g windows %v", err, c.AttnSoftCap, c.FinalSoftCap, c.LayerWindow())
	}
	for _, bad := range []struct {
		data []byte
		want string
	}{
		{edit(`"use_bidirectional_attention": null`, `"use_bidirectional_attention": true`), `key "use_bidirectional_attention": is true`},
		{edit(`"attention_dropout": 0.0`, `"attention_dropout": 0.1`), `key "attention_dropout": is 0.1`},
		{edit(`"attn_logit_softcapping": 50.0`, `"attn_logit_softcapping": -1`), `key "attn_logit_softcapping": must be a positive number`},
		{edit(`"query_pre_attn_scalar": 16`, `"query_pre_attn_scalar": 0`), `key "query_pre_attn_scalar": must be a positive number`},
		{edit(`"final_logit_softcapping": 30.0`, `"final_logit_softcapping": "30"`), `key "final_logit_softcapping": want a number`},
		{edit(`"sliding_attention",
    "full_attention"`, `"sliding_attention"`), `key "layer_types": has 1 entries for 2 layers`},
		{edit(`"full_attention"
  ]`, `"chunked_attention"
  ]`), `key "layer_types": entry 1 is "chunked_attention"`},
	} {
		if _, err := ParseConfig("g/config.json", bad.data); err == nil || !strings.Contains(err.Error(), bad.want) || !strings.Contains(err.Error(), "g/config.json") {
			t.Errorf("%v\nwant it to name g/config.json and say %q", err, bad.want)
		}
	}
}

func TestConfigErrorsNameFileAndKey(t *testing.T) {
	base, err := os.ReadFile(testfixtures.Path(t, "hf", "llama", "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	edit := func(old, new string) []byte {
		if !strings.Contains(string(base), old) {
			t.Fatalf("fixture lacks %q", old)
		}
		return []byte(strings.Replace(string(base), old, new, 1))
	}
	cases := []struct {
		name string
		data []byte
		want string
	}{
		{"syntax", edit(`"hidden_size": 64,`, `"hidden_size": 64,,`), "line 12"},
		{"string size", edit(`"hidden_size": 64`, `"hidden_size": "64"`), `key "hidden_size": want an integer, got "64"`},
		{"fraction", edit(`"num_hidden_layers": 2`, `"num_hidden_layers": 2.5`), `key "num_hidden_layers": want an integer`},
		{"zero", edit(`"intermediate_size": 160`, `"intermediate_size": 0`), `key "intermediate_size": must be a positive integer`},
		{"gqa", edit(`"num_key_value_heads": 2`, `"num_key_value_heads": 3`), `key "num_key_value_heads": 3 does not divide num_attention_heads 4`},
		{"odd head", edit(`"head_dim": 16`, `"head_dim": 15`), `key "head_dim": 15 is odd`},
		{"eps", edit(`"rms_norm_eps": 1e-05`, `"rms_norm_eps": 0`), `key "rms_norm_eps"`},
		{"act", edit(`"hidden_act": "silu"`, `"hidden_act": "gelu"`), `key "hidden_act": "gelu" is not supported`},
		{"bool", edit(`"tie_word_embeddings": false`, `"tie_word_embeddings": "no"`), `key "tie_word_embeddings": want true or false`},
		{"eos", edit(`"eos_token_id": 2`, `"eos_token_id": -1`), "token id -1 is negative"},
		{"rope type", edit(`"rope_type": "default"`, `"rope_type": "ntk"`), `key "rope_parameters": rope_type "ntk" is not supported`},
		{"longrope factors", edit(`"rope_type": "default"`, `"rope_type": "longrope"`), `key "rope_parameters": rope_type longrope needs short_factor: a list of rotary_dim/2 = 8 numbers, got 0`},
		{"rope factor", edit(`"rope_type": "default"`, `"rope_type": "linear"`), `rope_type "linear" needs a positive factor`},
		{"rope theta", edit(`"rope_theta": 10000.0`, `"rope_theta": "big"`), `key "rope_theta": want a number, got "big" (inside "rope_parameters")`},
		{"llama3 fields", edit(`"rope_type": "default"`, `"rope_type": "llama3", "factor": 8`), "rope_type llama3 needs"},
		{"rope not object", edit(`"rope_parameters": {`, `"rope_parameters": 3, "x": {`), `key "rope_parameters": want an object`},
		{"model type", edit(`"model_type": "llama"`, `"model_type": 7`), `key "model_type": want a string`},
	}
	for _, c := range cases {
		_, err := ParseConfig("m/config.json", c.data)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "m/config.json") {
			t.Errorf("%s: %v\nwant it to name m/config.json and say %q", c.name, err, c.want)
		}
	}
	q, _ := os.ReadFile(testfixtures.Path(t, "hf", "qwen2", "config.json"))
	bad := strings.Replace(string(q), `"full_attention",
    "full_attention"`, `"full_attention"`, 1)
	if _, err := ParseConfig("q/config.json", []byte(bad)); err == nil || !strings.Contains(err.Error(), `key "layer_types": has 1 entries for 2 layers`) {
		t.Errorf("layer_types length: %v", err)
	}
}
