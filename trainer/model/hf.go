package model

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/eftml/eft/shared/hfmodel"
	"github.com/eftml/eft/shared/safetensors"
	"github.com/eftml/eft/trainer/backend"
)

// FromHF maps a parsed config.json onto the decoder's switches.
func FromHF(h *hfmodel.Config) (Config, error) {
	c := Config{
		Arch:               h.ModelType,
		Vocab:              h.VocabSize,
		Hidden:             h.HiddenSize,
		Intermediate:       h.IntermediateSize,
		Layers:             h.NumHiddenLayers,
		Heads:              h.NumAttentionHeads,
		KVHeads:            h.NumKeyValueHeads,
		HeadDim:            h.HeadDim,
		NormEps:            float32(h.RMSNormEps),
		AttentionBias:      h.AttentionBias,
		OutputBias:         h.OutputBias,
		MLPBias:            h.MLPBias,
		QKNorm:             h.QKNorm,
		EmbedScale:         h.EmbedScale,
		NormOffset:         h.NormOffset,
		FusedQKV:           h.FusedQKV,
		FusedGateUp:        h.FusedGateUp,
		AttnSoftCap:        float32(h.AttnSoftCap),
		FinalSoftCap:       float32(h.FinalSoftCap),
		SandwichNorms:      h.SandwichNorms,
		QueryPreAttnScalar: h.QueryPreAttnScalar,
		TieEmbeddings:      h.TieWordEmbeddings,
		LayerWindow:        h.LayerWindow(),
		MaxPositions:       h.MaxPositionEmbeddings,
		Rope: RopeParams{
			Type: h.RoPE.Type, Theta: h.RoPE.Theta, Factor: h.RoPE.Factor, PartialRotary: h.RoPE.PartialRotary,
			LowFreqFactor: h.RoPE.LowFreqFactor, HighFreqFactor: h.RoPE.HighFreqFactor,
			OriginalMaxPositions: h.RoPE.OriginalMaxPositions, AttentionFactor: h.RoPE.AttentionFactor,
			BetaFast: h.RoPE.BetaFast, BetaSlow: h.RoPE.BetaSlow, Mscale: h.RoPE.Mscale, MscaleAllDim: h.RoPE.MscaleAllDim,
			Truncate: h.RoPE.Truncate, ShortFactor: h.RoPE.ShortFactor, LongFactor: h.RoPE.LongFactor,
		},
	}
	switch h.HiddenAct {
	case "silu":
		c.Act = backend.SiLU
	case "gelu_pytorch_tanh":
		c.Act = backend.GELUTanh
	default:
		return Config{}, fmt.Errorf("model: %s: hidden_act %q is not supported (silu, gelu_pytorch_tanh)", h.Path, h.HiddenAct)
	}
	if err := c.Validate(); err != nil {
		return Config{}, fmt.Errorf("%s: %w", h.Path, err)
	}
	return c, nil
}

// Load reads a Hugging Face model directory (config.json and the
// model.safetensors file or sharded index) onto be. Every weight starts
// frozen.
func Load(dir string, be backend.Backend) (*Model, error) { return LoadWith(dir, be, Options{}) }

// LoadWith is Load holding the weights as o says.
func LoadWith(dir string, be backend.Backend, o Options) (*Model, error) {
	if err := checkArchitecture(filepath.Join(dir, "config.json")); err != nil {
		return nil, err
	}
	h, err := hfmodel.LoadConfig(filepath.Join(dir, "config.json"))
	if err != nil {
		return nil, err
	}
	c, err := FromHF(h)
	if err != nil {
		return nil, err
	}
	src, err := safetensors.OpenModel(dir, "model")
	if err != nil {
		return nil, err
	}
	defer src.Close()
	name := filepath.Join(dir, "model.safetensors")
	if _, err := os.Stat(name + ".index.json"); err == nil {
		name += ".index.json"
	}
	if c.TieEmbeddings {
		if c.TieEmbeddings, err = headIsEmbeddings(src, name); err != nil {
			return nil, err
		}
	}
	return NewWith(c, be, SafetensorsWeights(src, name, c.Arch), o)
}

// headIsEmbeddings reports whether a checkpoint whose config ties the head
// to the embeddings holds no lm_head.weight of its own, or one equal to
// model.embed_tokens.weight (some checkpoints store a redundant copy). A
// different one is a model whose two weights parted (PEFT's merge of an
// adapter that trained a copy of either, saved by transformers with
// tie_word_embeddings still true): transformers 5 loads both weights and
// leaves them untied (huggingface/transformers#42507), and so does eft.
//
// Only raw bytes are compared, never decoded values: a tied pair is one
// torch tensor, which savers write once or as a clone of the same dtype, so
// a head stored in another dtype is not the tied copy.
func headIsEmbeddings(src safetensors.Source, srcName string) (bool, error) {
	head, ok := src.Info("lm_head.weight")
	if !ok {
		return true, nil
	}
	embed, ok := src.Info("model.embed_tokens.weight")
	if !ok || !slices.Equal(head.Shape, embed.Shape) {
		return false, nil // the untied load reports what is missing or misshapen
	}
	if head.DType != embed.DType {
		return false, nil
	}
	h, err := src.Tensor("lm_head.weight")
	if err != nil {
		return false, fmt.Errorf("model: %s: %w", srcName, err)
	}
	e, err := src.Tensor("model.embed_tokens.weight")
	if err != nil {
		return false, fmt.Errorf("model: %s: %w", srcName, err)
	}
	return bytes.Equal(h.Data, e.Data), nil
}

// ErrUnsupported marks an architecture the engine cannot run yet, as opposed
// to a broken or inconsistent model directory.
var ErrUnsupported = errors.New("architecture not supported")

// IsUnsupported reports whether err is (or wraps) ErrUnsupported.
func IsUnsupported(err error) bool { return errors.Is(err, ErrUnsupported) }

// checkArchitecture returns an ErrUnsupported error when config.json names a
// model_type outside hfmodel.Supported, so callers can tell "not yet" from
// "broken"; any other problem is left for hfmodel to report.
func checkArchitecture(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var head struct {
		ModelType string `json:"model_type"`
	}
	if json.Unmarshal(data, &head) != nil || head.ModelType == "" || slices.Contains(hfmodel.Supported, head.ModelType) {
		return nil
	}
	return fmt.Errorf("model: %s: model_type %q: %w (supported: %v)", path, head.ModelType, ErrUnsupported, hfmodel.Supported)
}
