package hfmodel

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"strings"
)

// Supported lists the model_type values eft can train.
var Supported = []string{"llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "phi3"}

// knownUnsupported are architectures eft recognises but cannot train yet, so
// the error says so instead of "unknown".
var knownUnsupported = map[string]bool{
	"gemma3": true, "gemma3_text": true, "phi": true,
	"gpt_neox": true, "mixtral": true, "falcon": true, "gptj": true, "gpt2": true,
	"qwen2_moe": true, "qwen3_moe": true, "starcoder2": true, "olmo": true, "olmo2": true,
	"deepseek_v2": true, "deepseek_v3": true, "cohere": true, "stablelm": true, "bloom": true,
	"opt": true, "mpt": true, "granite": true, "internlm2": true,
}

// Config is a parsed config.json of a supported decoder.
type Config struct {
	Path          string // the file it came from, for errors
	ModelType     string // one of Supported
	Architectures []string

	VocabSize             int
	HiddenSize            int
	IntermediateSize      int
	NumHiddenLayers       int
	NumAttentionHeads     int
	NumKeyValueHeads      int
	HeadDim               int
	MaxPositionEmbeddings int
	RMSNormEps            float64
	HiddenAct             string // silu or gelu_pytorch_tanh (swish and gelu_new normalised)
	TieWordEmbeddings     bool

	AttentionBias bool // q_proj, k_proj, v_proj have biases
	OutputBias    bool // o_proj has a bias (llama's and qwen3's attention_bias)
	MLPBias       bool // gate_proj, up_proj, down_proj have biases (llama's mlp_bias)
	QKNorm        bool // per-head RMSNorm q_norm, k_norm before RoPE (qwen3)
	// Gemma: embeddings scaled by sqrt(hidden_size), RMSNorm by (1 + weight).
	EmbedScale, NormOffset bool
	// Phi-3: q, k and v are one qkv_proj (rows: q, then k, then v) and the
	// MLP's gate and up one gate_up_proj (rows: gate, then up).
	FusedQKV, FusedGateUp bool
	// Gemma-2: scores and final logits soft-capped as c·tanh(x/c)
	// (attn_logit_softcapping, final_logit_softcapping; 0 when null), the
	// attention scale 1/sqrt(query_pre_attn_scalar), and sandwich norms:
	// post_attention_layernorm on the attention output,
	// pre_feedforward_layernorm before the MLP and
	// post_feedforward_layernorm on its output.
	AttnSoftCap, FinalSoftCap float64
	QueryPreAttnScalar        float64
	SandwichNorms             bool

	// SlidingWindow is the window in tokens of layers whose LayerTypes entry
	// is "sliding_attention"; 0 when no layer slides.
	SlidingWindow    int
	UseSlidingWindow bool // qwen2/qwen3 switch (mistral slides whenever sliding_window is set)
	MaxWindowLayers  int  // qwen2/qwen3: layers from this index on slide
	LayerTypes       []string

	BOSTokenID  *int
	EOSTokenIDs []int // eos_token_id as a list (it may be an int or a list in the file)
	PadTokenID  *int

	RoPE RoPE

	// DType is the stored weights' dtype ("dtype", or "torch_dtype" in
	// transformers 4 files); empty when absent.
	DType               string
	TransformersVersion string
}

// RoPE holds the rotary-embedding settings after transformers' standardisation:
// rope_parameters, else rope_scaling plus a top-level rope_theta. Zero values
// mean "the transformers default" where the comment says so.
type RoPE struct {
	Type          string  // default, linear, dynamic, llama3, yarn, longrope ("type" accepted for rope_type)
	Theta         float64 // rope_theta; 10000 when absent
	Factor        float64 // linear, dynamic, llama3, yarn
	PartialRotary float64 // partial_rotary_factor; 0 means 1

	LowFreqFactor, HighFreqFactor float64 // llama3
	OriginalMaxPositions          int     // original_max_position_embeddings (llama3, yarn, longrope); 0 = absent

	AttentionFactor      float64 // yarn attention_factor; 0 = derived
	BetaFast, BetaSlow   float64 // yarn; 0 = 32 and 1
	Mscale, MscaleAllDim float64 // yarn (deepseek style); 0 = absent
	Truncate             *bool   // yarn; nil = true

	// longrope (Phi-3): per-frequency divisors of the inverse frequencies
	// while sequences fit original_max_position_embeddings (short) and
	// beyond it (long); rotary_dim/2 entries each.
	ShortFactor, LongFactor []float64

	from string // the config key the settings came from, for errors
}

// LayerWindow returns each layer's sliding window in tokens (0 = full
// attention).
func (c *Config) LayerWindow() []int {
	w := make([]int, c.NumHiddenLayers)
	for i, t := range c.LayerTypes {
		if t == "sliding_attention" {
			w[i] = c.SlidingWindow
		}
	}
	return w
}

// LoadConfig reads and validates a config.json.
func LoadConfig(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("hfmodel: %w", err)
	}
	return ParseConfig(path, data)
}

// ParseConfig parses config.json content; name is used in errors.
func ParseConfig(name string, data []byte) (*Config, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("hfmodel: %s: %v", name, describeJSONError(data, err))
	}
	p := &parser{name: name, raw: raw}
	c := &Config{Path: name}
	c.ModelType = p.str("model_type", "")
	c.Architectures = p.strList("architectures")
	if c.ModelType == "" && len(c.Architectures) > 0 {
		c.ModelType = typeFromArchitecture(c.Architectures[0])
	}
	if err := p.err; err != nil {
		return nil, err
	}
	if err := checkSupported(name, c.ModelType, c.Architectures); err != nil {
		return nil, err
	}
	d := defaultsFor(c.ModelType)
	c.VocabSize = p.integer("vocab_size", d.vocab)
	c.HiddenSize = p.integer("hidden_size", d.hidden)
	c.IntermediateSize = p.integer("intermediate_size", d.intermediate)
	c.NumHiddenLayers = p.integer("num_hidden_layers", d.layers)
	c.NumAttentionHeads = p.integer("num_attention_heads", d.heads)
	c.NumKeyValueHeads = p.integer("num_key_value_heads", d.kvHeads)
	if c.NumKeyValueHeads == 0 {
		c.NumKeyValueHeads = c.NumAttentionHeads
	}
	defaultHeadDim := d.headDim
	if defaultHeadDim == 0 && c.NumAttentionHeads > 0 {
		defaultHeadDim = c.HiddenSize / c.NumAttentionHeads
	}
	c.HeadDim = p.integer("head_dim", defaultHeadDim)
	c.MaxPositionEmbeddings = p.integer("max_position_embeddings", d.maxPositions)
	c.RMSNormEps = p.number("rms_norm_eps", d.eps)
	c.HiddenAct = p.str("hidden_act", d.act)
	c.TieWordEmbeddings = p.boolean("tie_word_embeddings", d.tie)
	c.DType = p.str("dtype", p.str("torch_dtype", ""))
	c.TransformersVersion = p.str("transformers_version", "")

	switch c.ModelType {
	case "llama":
		c.AttentionBias = p.boolean("attention_bias", false)
		c.OutputBias = c.AttentionBias
		c.MLPBias = p.boolean("mlp_bias", false)
	case "qwen2":
		c.AttentionBias = true // Qwen2Attention: q, k, v with bias, o without
	case "qwen3":
		c.AttentionBias = p.boolean("attention_bias", false)
		c.OutputBias = c.AttentionBias
		c.QKNorm = true
	case "gemma":
		c.AttentionBias = p.boolean("attention_bias", false)
		c.OutputBias = c.AttentionBias
		c.EmbedScale, c.NormOffset = true, true
		// GemmaMLP takes hidden_activation; hidden_act is the older key.
		c.HiddenAct = p.str("hidden_activation", c.HiddenAct)
	case "gemma2":
		c.AttentionBias = p.boolean("attention_bias", false)
		c.OutputBias = c.AttentionBias
		c.EmbedScale, c.NormOffset, c.SandwichNorms = true, true, true
		// Gemma2MLP reads hidden_activation only.
		c.HiddenAct = p.str("hidden_activation", d.act)
		c.QueryPreAttnScalar = p.number("query_pre_attn_scalar", 256)
		c.AttnSoftCap = p.number("attn_logit_softcapping", 50)
		c.FinalSoftCap = p.number("final_logit_softcapping", 30)
		if isNull(p.raw, "attn_logit_softcapping") {
			c.AttnSoftCap = 0
		}
		if isNull(p.raw, "final_logit_softcapping") {
			c.FinalSoftCap = 0
		}
		if p.boolean("use_bidirectional_attention", false) {
			p.fail("use_bidirectional_attention", "is true; eft trains causal decoders only")
		}
		if v := p.number("attention_dropout", 0); v != 0 {
			p.fail("attention_dropout", "is %g; eft trains without attention dropout, so only 0 is supported", v)
		}
	case "phi3":
		c.FusedQKV, c.FusedGateUp = true, true
		// Phi3DecoderLayer applies dropout to both residual branches while
		// training, and the embeddings to embd_pdrop; eft has no dropout
		// there, so a model that asks for it is refused, not trained
		// differently. Released Phi-3 models set all three to 0.
		for _, key := range []string{"resid_pdrop", "embd_pdrop", "attention_dropout"} {
			if v := p.number(key, 0); v != 0 {
				p.fail(key, "is %g; eft trains without dropout there, so only 0 is supported", v)
			}
		}
	}

	c.BOSTokenID = p.optInt("bos_token_id", d.bos)
	c.EOSTokenIDs = p.intOrList("eos_token_id", d.eos)
	c.PadTokenID = p.optInt("pad_token_id", nil)

	p.slidingWindow(c, d)
	c.RoPE = p.rope()
	if c.ModelType == "phi3" {
		p.phi3RoPE(c)
	}
	if p.err != nil {
		return nil, p.err
	}
	if err := c.validate(); err != nil {
		return nil, err
	}
	return c, nil
}

type archDefaults struct {
	vocab, hidden, intermediate, layers, heads, kvHeads, headDim, maxPositions int
	eps                                                                        float64
	bos                                                                        *int
	eos                                                                        []int
	slidingWindow                                                              int
	act                                                                        string
	tie                                                                        bool
}

func intPtr(v int) *int { return &v }

// defaultsFor returns transformers 5's defaults for keys a config.json omits
// (LlamaConfig, MistralConfig, Qwen2Config, Qwen3Config, GemmaConfig,
// Gemma2Config, Phi3Config).
func defaultsFor(modelType string) archDefaults {
	switch modelType {
	case "mistral":
		return archDefaults{vocab: 32000, hidden: 4096, intermediate: 14336, layers: 32, heads: 32, kvHeads: 8,
			maxPositions: 4096 * 32, eps: 1e-6, bos: intPtr(1), eos: []int{2}, slidingWindow: 4096, act: "silu"}
	case "qwen2":
		return archDefaults{vocab: 151936, hidden: 4096, intermediate: 22016, layers: 32, heads: 32, kvHeads: 32,
			maxPositions: 32768, eps: 1e-6, slidingWindow: 4096, act: "silu"}
	case "qwen3":
		return archDefaults{vocab: 151936, hidden: 4096, intermediate: 22016, layers: 32, heads: 32, kvHeads: 32,
			headDim: 128, maxPositions: 32768, eps: 1e-6, slidingWindow: 4096, act: "silu"}
	case "gemma":
		return archDefaults{vocab: 256000, hidden: 3072, intermediate: 24576, layers: 28, heads: 16, kvHeads: 16,
			headDim: 256, maxPositions: 8192, eps: 1e-6, bos: intPtr(2), eos: []int{1}, act: "gelu_pytorch_tanh", tie: true}
	case "gemma2":
		return archDefaults{vocab: 256000, hidden: 2304, intermediate: 9216, layers: 26, heads: 8, kvHeads: 4,
			headDim: 256, maxPositions: 8192, eps: 1e-6, bos: intPtr(2), eos: []int{1}, act: "gelu_pytorch_tanh", tie: true,
			slidingWindow: 4096}
	case "phi3":
		return archDefaults{vocab: 32064, hidden: 3072, intermediate: 8192, layers: 32, heads: 32,
			maxPositions: 4096, eps: 1e-5, bos: intPtr(1), eos: []int{32000}, act: "silu"}
	default: // llama
		return archDefaults{vocab: 32000, hidden: 4096, intermediate: 11008, layers: 32, heads: 32,
			maxPositions: 2048, eps: 1e-6, bos: intPtr(1), eos: []int{2}, act: "silu"}
	}
}

func typeFromArchitecture(arch string) string {
	base := strings.TrimSuffix(strings.TrimSuffix(arch, "ForCausalLM"), "Model")
	switch base {
	case "Llama":
		return "llama"
	case "Mistral":
		return "mistral"
	case "Qwen2":
		return "qwen2"
	case "Qwen3":
		return "qwen3"
	case "Gemma":
		return "gemma"
	}
	return strings.ToLower(base)
}

func checkSupported(name, modelType string, archs []string) error {
	for _, s := range Supported {
		if modelType == s {
			return nil
		}
	}
	arch := ""
	if len(archs) > 0 {
		arch = " (" + strings.Join(archs, ", ") + ")"
	}
	supported := strings.Join(Supported, ", ")
	switch {
	case modelType == "":
		return fmt.Errorf("hfmodel: %s: key \"model_type\" is missing and \"architectures\" does not name a known model; supported: %s", name, supported)
	case knownUnsupported[modelType]:
		return fmt.Errorf("hfmodel: %s: model_type %q%s is not supported yet; supported: %s", name, modelType, arch, supported)
	default:
		return fmt.Errorf("hfmodel: %s: model_type %q%s is unknown; supported: %s", name, modelType, arch, supported)
	}
}

func (c *Config) validate() error {
	fail := func(key, format string, args ...any) error {
		return fmt.Errorf("hfmodel: %s: key %q: %s", c.Path, key, fmt.Sprintf(format, args...))
	}
	positive := []struct {
		key string
		v   int
	}{
		{"vocab_size", c.VocabSize}, {"hidden_size", c.HiddenSize}, {"intermediate_size", c.IntermediateSize},
		{"num_hidden_layers", c.NumHiddenLayers}, {"num_attention_heads", c.NumAttentionHeads},
		{"num_key_value_heads", c.NumKeyValueHeads}, {"head_dim", c.HeadDim},
		{"max_position_embeddings", c.MaxPositionEmbeddings},
	}
	for _, p := range positive {
		if p.v <= 0 {
			return fail(p.key, "must be a positive integer, got %d", p.v)
		}
	}
	switch {
	case c.NumAttentionHeads%c.NumKeyValueHeads != 0:
		return fail("num_key_value_heads", "%d does not divide num_attention_heads %d", c.NumKeyValueHeads, c.NumAttentionHeads)
	case c.HeadDim%2 != 0:
		return fail("head_dim", "%d is odd; rotary embedding rotates pairs", c.HeadDim)
	case !(c.RMSNormEps > 0) || math.IsInf(c.RMSNormEps, 0):
		return fail("rms_norm_eps", "must be a positive number, got %g", c.RMSNormEps)
	}
	if c.ModelType == "gemma2" {
		for _, f := range []struct {
			key      string
			v        float64
			nullable bool // null (0) switches it off
		}{{"attn_logit_softcapping", c.AttnSoftCap, true}, {"final_logit_softcapping", c.FinalSoftCap, true}, {"query_pre_attn_scalar", c.QueryPreAttnScalar, false}} {
			if f.v < 0 || (f.v == 0 && !f.nullable) || math.IsNaN(f.v) || math.IsInf(f.v, 0) {
				return fail(f.key, "must be a positive number, got %g", f.v)
			}
		}
	}
	switch c.HiddenAct {
	case "silu", "swish":
		c.HiddenAct = "silu"
	case "gelu_pytorch_tanh", "gelu_new":
		c.HiddenAct = "gelu_pytorch_tanh"
	default:
		return fail("hidden_act", "%q is not supported (silu, swish, gelu_pytorch_tanh, gelu_new)", c.HiddenAct)
	}
	// An id past the vocabulary is kept, as transformers keeps it (a
	// config made from Phi3Config's defaults carries eos 32000 whatever
	// its vocab_size): the model can never produce that token, so it
	// stops nothing. A negative id is no token at all.
	for _, id := range append(append([]int{}, c.EOSTokenIDs...), derefs(c.BOSTokenID, c.PadTokenID)...) {
		if id < 0 {
			return fail("bos/eos/pad_token_id", "token id %d is negative", id)
		}
	}
	return c.validateRoPE()
}

func derefs(ps ...*int) []int {
	var out []int
	for _, p := range ps {
		if p != nil {
			out = append(out, *p)
		}
	}
	return out
}

func (c *Config) validateRoPE() error {
	r := &c.RoPE
	key := r.from
	fail := func(format string, args ...any) error {
		return fmt.Errorf("hfmodel: %s: key %q: %s", c.Path, key, fmt.Sprintf(format, args...))
	}
	if !(r.Theta > 0) {
		return fail("rope_theta must be positive, got %g", r.Theta)
	}
	switch r.Type {
	case "default":
	case "linear", "dynamic", "yarn":
		if !(r.Factor > 0) {
			return fail("rope_type %q needs a positive factor, got %g", r.Type, r.Factor)
		}
	case "llama3":
		if !(r.Factor > 0) || !(r.LowFreqFactor > 0) || !(r.HighFreqFactor > r.LowFreqFactor) || r.OriginalMaxPositions <= 0 {
			return fail("rope_type llama3 needs factor > 0, high_freq_factor > low_freq_factor > 0 and original_max_position_embeddings > 0; got %g, %g, %g, %d",
				r.Factor, r.LowFreqFactor, r.HighFreqFactor, r.OriginalMaxPositions)
		}
	case "longrope":
		if r.OriginalMaxPositions == 0 {
			// transformers' standardisation: the model's own length.
			r.OriginalMaxPositions = c.MaxPositionEmbeddings
		}
		half := c.HeadDim / 2
		if r.PartialRotary != 0 {
			half = int(float64(c.HeadDim)*r.PartialRotary) / 2
		}
		for _, f := range []struct {
			key  string
			vals []float64
		}{{"short_factor", r.ShortFactor}, {"long_factor", r.LongFactor}} {
			if len(f.vals) != half {
				return fail("rope_type longrope needs %s: a list of rotary_dim/2 = %d numbers, got %d", f.key, half, len(f.vals))
			}
			for i, v := range f.vals {
				if !(v > 0) || math.IsInf(v, 0) {
					return fail("longrope %s[%d] is %g; it must be a positive number", f.key, i, v)
				}
			}
		}
		if r.OriginalMaxPositions <= 0 {
			return fail("longrope needs original_max_position_embeddings > 0, got %d", r.OriginalMaxPositions)
		}
	default:
		return fail("rope_type %q is not supported (default, linear, dynamic, llama3, yarn, longrope)", r.Type)
	}
	if r.PartialRotary != 0 {
		if d := int(float64(c.HeadDim) * r.PartialRotary); d <= 0 || d%2 != 0 || r.PartialRotary > 1 {
			return fail("partial_rotary_factor %g leaves %d rotary features of head_dim %d", r.PartialRotary, d, c.HeadDim)
		}
	}
	return nil
}

// describeJSONError adds a line number to a JSON syntax error.
func describeJSONError(data []byte, err error) error {
	if se, ok := err.(*json.SyntaxError); ok {
		line := 1 + bytes.Count(data[:min(int(se.Offset), len(data))], []byte("\n"))
		return fmt.Errorf("line %d: %v", line, err)
	}
	return err
}
