package model

import (
	"fmt"
	"slices"

	"github.com/eftml/eft/shared/safetensors"
	"github.com/eftml/eft/trainer/backend"
	"github.com/eftml/eft/trainer/quant"
	"github.com/eftml/eft/trainer/tensor"
)

// WeightFunc returns the float32 values of the weight called name (its
// Hugging Face state-dict name), which must have the given shape.
type WeightFunc func(name string, shape []int) ([]float32, error)

// Options choose how a model holds its weights. The zero value holds every
// weight in float32 on the backend.
type Options struct {
	// Quantize4bit, when set, holds the weight of every decoder linear
	// layer (q, k, v, o, gate, up and down projections, or phi3's fused
	// qkv and gate_up ones, each as one matrix) 4-bit quantized in
	// this format, frozen, each quantized as it is read so that the float32
	// matrix never stays: QLoRA's load_in_4bit. transformers' bitsandbytes
	// integration replaces every nn.Linear but the output head the same
	// way; embeddings, norms, biases and lm_head stay as they are.
	Quantize4bit *quant.Options
}

// New builds a model of config c on be, its weights from weights. All
// weights start frozen: call SetTrainable (or trainer/lora) to choose what
// trains.
func New(c Config, be backend.Backend, weights WeightFunc) (*Model, error) {
	return NewWith(c, be, weights, Options{})
}

// NewWith is New holding the weights as o says.
func NewWith(c Config, be backend.Backend, weights WeightFunc, o Options) (*Model, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	m := &Model{Config: c, Backend: be}
	m.arena.Device = deviceMemory(be)
	if o.Quantize4bit != nil {
		if err := o.Quantize4bit.Validate(); err != nil {
			return nil, fmt.Errorf("model: load_in_4bit: %w", err)
		}
		qm, ok := be.(backend.QuantMatMul)
		if !ok {
			return nil, fmt.Errorf("model: the %s backend cannot multiply by 4-bit weights, so it cannot load a model in 4 bits (load_in_4bit)", be.Name())
		}
		m.quantMM = qm
	}
	load := func(name string, shape ...int) (*Param, error) {
		vals, err := weights(name, shape)
		if err != nil {
			return nil, err
		}
		if off := c.normOffset(name); off != 0 {
			vals = slices.Clone(vals) // the weight source may own vals
			for i := range vals {
				vals[i] += off
			}
		}
		p := &Param{Name: name, W: be.Alloc(shape...)}
		be.Upload(p.W, vals)
		return p, nil
	}
	var err error
	must := func(name string, shape ...int) *Param {
		if err != nil {
			return nil
		}
		var p *Param
		p, err = load(name, shape...)
		return p
	}
	quantized := func(name string, out, in int) *Param {
		if err != nil {
			return nil
		}
		var vals []float32
		if vals, err = weights(name, []int{out, in}); err != nil {
			return nil
		}
		p := &Param{Name: name, W: tensor.OnDevice(tensor.F32, nil, out, in)}
		if p.Quant, err = quant.Quantize(vals, out, in, *o.Quantize4bit); err != nil {
			err = fmt.Errorf("model: quantizing %s: %w", name, err)
		}
		return p
	}
	// linear loads one module; with more than one part size it is a fused
	// projection whose output splits into those parts.
	linear := func(module string, in int, bias bool, parts ...int) *Linear {
		lin := &Linear{Module: module, In: in}
		for _, n := range parts {
			lin.Out += n
		}
		if len(parts) > 1 {
			lin.Split = parts
		}
		if o.Quantize4bit != nil {
			lin.W = quantized(module+".weight", lin.Out, in)
			if err == nil && lin.Split != nil {
				err = lin.splitQuantized()
			}
		} else {
			lin.W = must(module+".weight", lin.Out, in)
		}
		if bias {
			lin.Bias = must(module+".bias", lin.Out)
		}
		return lin
	}
	D, F := c.Hidden, c.Intermediate
	qd, kvd := c.Heads*c.HeadDim, c.KVHeads*c.HeadDim
	m.Embed = must("model.embed_tokens.weight", c.Vocab, D)
	m.Layers = make([]Layer, c.Layers)
	for l := range m.Layers {
		p := fmt.Sprintf("model.layers.%d.", l)
		ly := &m.Layers[l]
		ly.InputNorm = must(p+"input_layernorm.weight", D)
		if c.SandwichNorms {
			ly.AttnOutNorm = must(p+"post_attention_layernorm.weight", D)
			ly.PostNorm = must(p+"pre_feedforward_layernorm.weight", D)
			ly.MLPOutNorm = must(p+"post_feedforward_layernorm.weight", D)
		} else {
			ly.PostNorm = must(p+"post_attention_layernorm.weight", D)
		}
		if c.FusedQKV {
			ly.QKV = []*Linear{linear(p+"self_attn.qkv_proj", D, c.AttentionBias, qd, kvd, kvd)}
		} else {
			ly.QKV = []*Linear{
				linear(p+"self_attn.q_proj", D, c.AttentionBias, qd),
				linear(p+"self_attn.k_proj", D, c.AttentionBias, kvd),
				linear(p+"self_attn.v_proj", D, c.AttentionBias, kvd),
			}
		}
		ly.O = linear(p+"self_attn.o_proj", qd, c.OutputBias, D)
		if c.QKNorm {
			ly.QNorm = must(p+"self_attn.q_norm.weight", c.HeadDim)
			ly.KNorm = must(p+"self_attn.k_norm.weight", c.HeadDim)
		}
		if c.FusedGateUp {
			ly.GateUp = []*Linear{linear(p+"mlp.gate_up_proj", D, c.MLPBias, F, F)}
		} else {
			ly.GateUp = []*Linear{linear(p+"mlp.gate_proj", D, c.MLPBias, F), linear(p+"mlp.up_proj", D, c.MLPBias, F)}
		}
		ly.Down = linear(p+"mlp.down_proj", F, c.MLPBias, D)
		ly.Window = c.LayerWindow[l]
	}
	m.FinalNorm = must("model.norm.weight", D)
	if c.TieEmbeddings {
		m.LMHead = m.Embed
	} else {
		m.LMHead = must("lm_head.weight", c.Vocab, D)
	}
	if err != nil {
		return nil, err
	}
	return m, nil
}

// SafetensorsWeights reads weights from a safetensors file or sharded set
// (converted to float32 whatever their stored dtype). A missing tensor or one
// whose shape differs from what config.json implies is an error naming the
// source, the tensor and both shapes.
func SafetensorsWeights(src safetensors.Source, srcName, arch string) WeightFunc {
	return func(name string, shape []int) ([]float32, error) {
		info, ok := src.Info(name)
		if !ok {
			return nil, fmt.Errorf("model: %s has no tensor %q (a %s checkpoint needs it, shape %v)", srcName, name, arch, shape)
		}
		if !slices.Equal(info.Shape, shape) {
			return nil, fmt.Errorf("model: %s: tensor %q has shape %v, but config.json implies %v", srcName, name, info.Shape, shape)
		}
		vals, err := src.Float32s(name)
		if err != nil {
			return nil, fmt.Errorf("model: %s: %w", srcName, err)
		}
		return vals, nil
	}
}

// deviceMemory is be as an arena's memory when be keeps tensors off the
// host (the CUDA backend), else nil: step buffers then live where the ops
// run.
func deviceMemory(be backend.Backend) tensor.DeviceMemory {
	if d, ok := be.(tensor.DeviceMemory); ok {
		return d
	}
	return nil
}
