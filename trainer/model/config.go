package model

import (
	"fmt"
	"math"
	"strings"

	"github.com/eftml/eft/trainer/backend"
)

// Config is what the decoder needs to know about an architecture: sizes and
// the switches that tell the architectures apart (hfmodel.Supported).
type Config struct {
	Arch         string // model_type: llama, mistral, qwen2, qwen3, gemma, gemma2, phi3
	Vocab        int
	Hidden       int
	Intermediate int
	Layers       int
	Heads        int
	KVHeads      int
	HeadDim      int
	NormEps      float32
	Act          backend.Activation

	AttentionBias bool // q, k, v (and o for llama's attention_bias) carry biases
	OutputBias    bool // o_proj has a bias (llama attention_bias)
	MLPBias       bool // gate, up, down carry biases (llama mlp_bias)
	QKNorm        bool // per-head RMSNorm of q and k before rope (qwen3)
	TieEmbeddings bool // lm_head shares embed_tokens' weight
	// EmbedScale multiplies the embeddings by sqrt(hidden) rounded to
	// float32, as Gemma's normalizer does (the tied head reads them
	// unscaled).
	EmbedScale bool
	// NormOffset: every RMSNorm multiplies by (1 + weight), as Gemma's
	// does. The model holds 1 + weight (added on load, taken off when
	// saved), so the norm op and its gradient stay the same.
	NormOffset bool
	// FusedQKV: q, k and v come from one qkv_proj whose output rows are q,
	// then k, then v; FusedGateUp: gate and up from one gate_up_proj
	// (gate rows first). Phi-3 has both.
	FusedQKV, FusedGateUp bool
	// Gemma-2: AttnSoftCap caps every attention score s (after the
	// scale) as AttnSoftCap·tanh(s/AttnSoftCap) before the mask and
	// softmax; FinalSoftCap caps the logits the same way. 0 means none.
	AttnSoftCap, FinalSoftCap float32
	// QueryPreAttnScalar, when set, makes the attention scale
	// 1/sqrt(QueryPreAttnScalar) instead of 1/sqrt(HeadDim) (Gemma-2).
	QueryPreAttnScalar float64
	// SandwichNorms: each block also normalises its attention output and
	// its MLP output before they join the residual stream (Gemma-2's
	// post_attention_layernorm and post_feedforward_layernorm; its
	// pre_feedforward_layernorm is then the norm before the MLP).
	SandwichNorms bool

	// LayerWindow[l] is layer l's sliding window in tokens, 0 for full
	// attention (mistral: every layer; qwen2: layers from max_window_layers
	// when use_sliding_window).
	LayerWindow []int

	Rope         RopeParams
	MaxPositions int // max_position_embeddings
}

// Validate checks the sizes fit together.
func (c *Config) Validate() error {
	switch {
	case c.Vocab <= 0, c.Hidden <= 0, c.Intermediate <= 0, c.Layers <= 0, c.Heads <= 0, c.KVHeads <= 0, c.HeadDim <= 0:
		return fmt.Errorf("model: %s config has a non-positive size: %+v", c.Arch, *c)
	case c.Heads%c.KVHeads != 0:
		return fmt.Errorf("model: num_attention_heads %d is not a multiple of num_key_value_heads %d", c.Heads, c.KVHeads)
	case c.HeadDim%2 != 0:
		return fmt.Errorf("model: head_dim %d is odd; rotary embedding needs pairs", c.HeadDim)
	case len(c.LayerWindow) != c.Layers:
		return fmt.Errorf("model: %d sliding-window entries for %d layers", len(c.LayerWindow), c.Layers)
	case c.NormEps <= 0:
		return fmt.Errorf("model: rms_norm_eps %g must be positive", c.NormEps)
	case c.AttnSoftCap < 0 || c.FinalSoftCap < 0 || c.QueryPreAttnScalar < 0:
		return fmt.Errorf("model: soft caps %g, %g and query_pre_attn_scalar %g must not be negative", c.AttnSoftCap, c.FinalSoftCap, c.QueryPreAttnScalar)
	}
	return c.Rope.validate(c.HeadDim)
}

// ParamCount is the number of weights in the base model (tied counted once).
func (c *Config) ParamCount() int {
	qd, kvd := c.Heads*c.HeadDim, c.KVHeads*c.HeadDim
	layer := 2*c.Hidden + c.Hidden*qd + 2*c.Hidden*kvd + qd*c.Hidden + 3*c.Hidden*c.Intermediate
	if c.AttentionBias {
		layer += qd + 2*kvd
	}
	if c.OutputBias {
		layer += c.Hidden
	}
	if c.MLPBias {
		layer += 2*c.Intermediate + c.Hidden
	}
	if c.QKNorm {
		layer += 2 * c.HeadDim
	}
	if c.SandwichNorms {
		layer += 2 * c.Hidden
	}
	n := c.Layers*layer + c.Vocab*c.Hidden + c.Hidden
	if !c.TieEmbeddings {
		n += c.Vocab * c.Hidden
	}
	return n
}

// embedScale is what the embeddings are multiplied by: float32(sqrt(hidden))
// with EmbedScale (Gemma computes the normalizer in the hidden states'
// dtype), else 1.
func (c *Config) embedScale() float32 {
	if !c.EmbedScale {
		return 1
	}
	return float32(math.Sqrt(float64(c.Hidden)))
}

// attnScale multiplies q·k: 1/sqrt(query_pre_attn_scalar) when set
// (Gemma-2), else 1/sqrt(head_dim).
func (c *Config) attnScale() float32 {
	if c.QueryPreAttnScalar > 0 {
		return float32(1 / math.Sqrt(c.QueryPreAttnScalar))
	}
	return float32(1 / math.Sqrt(float64(c.HeadDim)))
}

// capLogits applies the final soft cap to logits handed out (the loss head
// caps inside CrossEntropy): cap·tanh(x/cap) in float32, as torch.
func (c *Config) capLogits(logits []float32) {
	if c.FinalSoftCap <= 0 {
		return
	}
	for i, x := range logits {
		logits[i] = backend.SoftCapped(x, c.FinalSoftCap)
	}
}

// normOffset is what the model adds to a norm weight it loads (and takes
// off one it saves): 1 with NormOffset, else 0.
func (c *Config) normOffset(name string) float32 {
	if c.NormOffset && strings.HasSuffix(name, "norm.weight") {
		return 1
	}
	return 0
}
