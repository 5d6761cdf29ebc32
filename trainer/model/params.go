package model

import (
	"fmt"

	"github.com/eftml/eft/trainer/backend"
	"github.com/eftml/eft/trainer/quant"
	"github.com/eftml/eft/trainer/tensor"
)

// Param is one weight and, when it trains, its gradient.
type Param struct {
	// Name is the Hugging Face state-dict name
	// ("model.layers.0.self_attn.q_proj.weight").
	Name string
	W    *tensor.Tensor
	// G accumulates d loss/d W; nil while the weight is frozen.
	G *tensor.Tensor
	// Quant, when set, holds the weight 4-bit quantized (QLoRA's base
	// weights): W is then only a header with the weight's shape and no
	// data, and the weight is frozen for good.
	Quant *quant.Matrix
}

// Trainable reports whether the parameter gets a gradient.
func (p *Param) Trainable() bool { return p != nil && p.G != nil }

// Quantized reports whether the weight is held 4-bit quantized.
func (p *Param) Quantized() bool { return p != nil && p.Quant != nil }

// LoRA is a low-rank adapter on a Linear, with PEFT's semantics:
// y += Scale · B·A·dropout(x), A [r, in], B [out, r].
type LoRA struct {
	A, B    *Param
	Scale   float32 // alpha/r, or alpha/sqrt(r) with rslora
	Dropout float32 // probability of dropping an input feature
}

// Rank is r.
func (l *LoRA) Rank() int { return l.A.W.Rows() }

// Linear is y = x·Wᵀ + b, W [out, in], optionally with a LoRA adapter.
type Linear struct {
	// Module is the module path ("model.layers.0.self_attn.q_proj"), the
	// name LoRA targets match against.
	Module  string
	In, Out int
	W       *Param
	Bias    *Param // nil when the layer has no bias
	LoRA    *LoRA  // nil when no adapter is attached
	// Split, when set, cuts the Out features into consecutive parts that
	// go to separate buffers: a fused projection (phi3's qkv_proj into q,
	// k and v, gate_up_proj into gate and up). Each part is computed from
	// its own rows of W, the bias and LoRA's B, so nothing is copied, and
	// the weights, the adapter and what is saved stay one module, as in
	// the checkpoint. Nil: one output of Out features.
	Split []int
	// quantParts hold each part's rows of a 4-bit W (see splitQuantized).
	quantParts []*quant.Matrix
}

// Layer is one decoder block.
type Layer struct {
	// InputNorm comes before the attention, PostNorm before the MLP
	// (llama's post_attention_layernorm, gemma2's pre_feedforward_layernorm).
	InputNorm, PostNorm *Param
	// AttnOutNorm and MLPOutNorm normalise the attention's and the MLP's
	// outputs before they join the residual stream (gemma2's
	// post_attention_layernorm and post_feedforward_layernorm); nil
	// elsewhere.
	AttnOutNorm, MLPOutNorm *Param
	QNorm, KNorm            *Param // qwen3 only
	// QKV makes q, k and v from the normed input: q_proj, k_proj and
	// v_proj, or phi3's one qkv_proj split three ways.
	QKV []*Linear
	O   *Linear
	// GateUp makes the MLP's gate and up: gate_proj and up_proj, or
	// phi3's one gate_up_proj split in two.
	GateUp []*Linear
	Down   *Linear
	Window int // sliding window, 0 for full attention
}

// Linears lists the block's linear layers in a fixed order: QKV, O,
// GateUp, Down (seven for llama, four for phi3). A linear's index in it
// keys its saved activations and its dropout mask.
func (l *Layer) Linears() []*Linear {
	out := make([]*Linear, 0, len(l.QKV)+len(l.GateUp)+2)
	out = append(out, l.QKV...)
	out = append(out, l.O)
	out = append(out, l.GateUp...)
	return append(out, l.Down)
}

// linearIndex returns the Linears index of O, of GateUp's first and of
// Down.
func (l *Layer) linearIndex() (o, gateUp, down int) {
	o = len(l.QKV)
	return o, o + 1, o + 1 + len(l.GateUp)
}

// Model is a loaded decoder with its weights on a backend. It is not safe
// for concurrent use: passes share the model's step buffers.
type Model struct {
	Config  Config
	Backend backend.Backend

	Embed     *Param
	Layers    []Layer
	FinalNorm *Param
	// LMHead is the output projection; with tied embeddings it is the same
	// *Param as Embed, so gradients from both uses add up in one place.
	LMHead *Param

	// GradientCheckpointing keeps only each layer's input during the forward
	// pass and recomputes the layer before its backward pass.
	GradientCheckpointing bool
	// LossChunkTokens bounds how many tokens' logits exist at once in the
	// loss head (0: as many as fit in 4M floats).
	LossChunkTokens int

	// quantMM multiplies by 4-bit weights: the backend, when a linear
	// layer is quantized.
	quantMM backend.QuantMatMul

	rope     ropeCache
	training bool // LoRA dropout is on (ForwardBackward) or off
	arena    tensor.Arena
	acts     *activations
	actsKey  actsKey
	views    views // tensor headers for sub-views, reused so slicing allocates nothing
}

// Params lists every parameter once, in state-dict order: embeddings, each
// layer's weights, final norm, then the head unless tied. LoRA weights are
// not included (see LoRAParams).
func (m *Model) Params() []*Param {
	ps := []*Param{m.Embed}
	for i := range m.Layers {
		l := &m.Layers[i]
		ps = append(ps, l.InputNorm)
		for _, lin := range l.Linears() {
			ps = append(ps, lin.W)
			if lin.Bias != nil {
				ps = append(ps, lin.Bias)
			}
		}
		if l.QNorm != nil {
			ps = append(ps, l.QNorm, l.KNorm)
		}
		ps = append(ps, l.PostNorm)
		if l.AttnOutNorm != nil {
			ps = append(ps, l.AttnOutNorm, l.MLPOutNorm)
		}
	}
	ps = append(ps, m.FinalNorm)
	if m.LMHead != m.Embed {
		ps = append(ps, m.LMHead)
	}
	return ps
}

// HeadTied reports whether the output head shares the input embeddings'
// weight (tie_word_embeddings).
func (m *Model) HeadTied() bool { return m.LMHead == m.Embed }

// UntieHead gives a tied head its own weight, lm_head.weight, starting as a
// copy of the embeddings, and marks the model untied (Config.TieEmbeddings
// false, so a saved state dict holds both). It is what PEFT's
// ModulesToSaveWrapper does to a tied model when lm_head or embed_tokens is
// in modules_to_save: the listed layer trains a copy and the other keeps the
// original, so the two part. The copy is frozen; an untied head is left as
// it is.
func (m *Model) UntieHead() {
	if !m.HeadTied() {
		return
	}
	head := &Param{Name: "lm_head.weight", W: m.Backend.Alloc(m.Embed.W.Shape()...)}
	m.Backend.Copy(head.W, m.Embed.W)
	m.LMHead = head
	m.Config.TieEmbeddings = false
}

// LoRAParams lists the adapter weights (A then B of each adapted linear, in
// layer order).
func (m *Model) LoRAParams() []*Param {
	var ps []*Param
	for i := range m.Layers {
		for _, lin := range m.Layers[i].Linears() {
			if lin.LoRA != nil {
				ps = append(ps, lin.LoRA.A, lin.LoRA.B)
			}
		}
	}
	return ps
}

// TrainableParams lists every parameter that has a gradient.
func (m *Model) TrainableParams() []*Param {
	var ps []*Param
	for _, p := range append(m.Params(), m.LoRAParams()...) {
		if p.Trainable() {
			ps = append(ps, p)
		}
	}
	return ps
}

// SetTrainable gives p a zeroed gradient (train) or drops it (freeze). A
// quantized weight cannot train: asking for it is a programming error
// (callers such as trainer/lora check Quantized first).
func (m *Model) SetTrainable(p *Param, train bool) {
	switch {
	case train && p.Quantized():
		panic(fmt.Sprintf("model: %s is held 4-bit quantized and cannot train", p.Name))
	case train && p.G == nil:
		p.G = m.Backend.Alloc(p.W.Shape()...)
	case !train:
		p.G = nil
	}
}

// ZeroGrads clears every gradient.
func (m *Model) ZeroGrads() {
	for _, p := range m.TrainableParams() {
		m.Backend.Zero(p.G)
	}
}

// views are headers for views into larger buffers (a LoRA buffer sized for
// the widest layer, a chunk of rows), one per use so none is overwritten
// while still needed.
type views struct {
	xd, mask, u, du, dxd tensor.Tensor // LoRA
	logits, rows, dRows  tensor.Tensor // loss head
	w, bias, loraB       tensor.Tensor // one part's rows of a fused linear
}
