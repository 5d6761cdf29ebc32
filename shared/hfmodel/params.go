package hfmodel

import (
	"fmt"
	"slices"
	"strings"

	"github.com/eftml/eft/shared/safetensors"
)

// Param is one weight tensor a config implies: its Hugging Face name and shape.
type Param struct {
	Name  string
	Shape []int
}

// Params lists the model's weight tensors in transformers' state-dict order
// (the order save_pretrained shards in): embeddings, then per layer the
// attention projections (weight before bias; phi3's o_proj before its fused
// qkv_proj), qwen3's q_norm and k_norm, the MLP (phi3: gate_up_proj, then
// down_proj), the layer norms (gemma2's four); then the final norm and,
// unless tied, lm_head.
func (c *Config) Params() []Param {
	h, q, kv, ff := c.HiddenSize, c.NumAttentionHeads*c.HeadDim, c.NumKeyValueHeads*c.HeadDim, c.IntermediateSize
	out := []Param{{"model.embed_tokens.weight", []int{c.VocabSize, h}}}
	linear := func(prefix string, outF, inF int, bias bool) {
		out = append(out, Param{prefix + ".weight", []int{outF, inF}})
		if bias {
			out = append(out, Param{prefix + ".bias", []int{outF}})
		}
	}
	for l := range c.NumHiddenLayers {
		p := fmt.Sprintf("model.layers.%d.", l)
		if c.FusedQKV {
			// Phi3Attention registers o_proj before qkv_proj.
			linear(p+"self_attn.o_proj", h, q, c.OutputBias)
			linear(p+"self_attn.qkv_proj", q+2*kv, h, c.AttentionBias)
		} else {
			linear(p+"self_attn.q_proj", q, h, c.AttentionBias)
			linear(p+"self_attn.k_proj", kv, h, c.AttentionBias)
			linear(p+"self_attn.v_proj", kv, h, c.AttentionBias)
			linear(p+"self_attn.o_proj", h, q, c.OutputBias)
		}
		if c.QKNorm {
			out = append(out, Param{p + "self_attn.q_norm.weight", []int{c.HeadDim}},
				Param{p + "self_attn.k_norm.weight", []int{c.HeadDim}})
		}
		if c.FusedGateUp {
			linear(p+"mlp.gate_up_proj", 2*ff, h, c.MLPBias)
		} else {
			linear(p+"mlp.gate_proj", ff, h, c.MLPBias)
			linear(p+"mlp.up_proj", ff, h, c.MLPBias)
		}
		linear(p+"mlp.down_proj", h, ff, c.MLPBias)
		out = append(out, Param{p + "input_layernorm.weight", []int{h}},
			Param{p + "post_attention_layernorm.weight", []int{h}})
		if c.SandwichNorms {
			out = append(out, Param{p + "pre_feedforward_layernorm.weight", []int{h}},
				Param{p + "post_feedforward_layernorm.weight", []int{h}})
		}
	}
	out = append(out, Param{"model.norm.weight", []int{h}})
	if !c.TieWordEmbeddings {
		out = append(out, Param{"lm_head.weight", []int{c.VocabSize, h}})
	}
	return out
}

// ParamCount is the number of weights (tied embeddings counted once).
func (c *Config) ParamCount() int64 {
	var n int64
	for _, p := range c.Params() {
		k := int64(1)
		for _, d := range p.Shape {
			k *= int64(d)
		}
		n += k
	}
	return n
}

// CheckWeights verifies that src holds every tensor the config implies, with
// the config's shape and a float dtype. A tied model may also carry
// lm_head.weight (some exporters write it); other extra tensors are listed in
// the error, since they mean the weights belong to a different architecture
// or config.
func (c *Config) CheckWeights(src safetensors.Source) error {
	var problems []string
	want := map[string]bool{}
	for _, p := range c.Params() {
		want[p.Name] = true
		info, ok := src.Info(p.Name)
		switch {
		case !ok:
			problems = append(problems, fmt.Sprintf("missing %s %v", p.Name, p.Shape))
		case !slices.Equal(info.Shape, p.Shape):
			problems = append(problems, fmt.Sprintf("%s has shape %v, config.json implies %v", p.Name, info.Shape, p.Shape))
		case !info.DType.IsFloat():
			problems = append(problems, fmt.Sprintf("%s is %s, not a float dtype", p.Name, info.DType))
		}
	}
	var extra []string
	for _, n := range src.Names() {
		if want[n] || (c.TieWordEmbeddings && n == "lm_head.weight") || strings.HasSuffix(n, "rotary_emb.inv_freq") {
			continue
		}
		extra = append(extra, n)
	}
	if len(extra) > 0 {
		shown := extra[:min(len(extra), 5)]
		problems = append(problems, fmt.Sprintf("%d tensors the config does not explain, e.g. %s", len(extra), strings.Join(shown, ", ")))
	}
	if len(problems) == 0 {
		return nil
	}
	if len(problems) > 8 {
		problems = append(problems[:8], fmt.Sprintf("and %d more", len(problems)-8))
	}
	return fmt.Errorf("hfmodel: weights do not match %s (%s, %d layers, hidden %d):\n  %s",
		c.Path, c.ModelType, c.NumHiddenLayers, c.HiddenSize, strings.Join(problems, "\n  "))
}
