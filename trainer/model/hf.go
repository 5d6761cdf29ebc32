package model

import (
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
	return NewWith(c, be, SafetensorsWeights(src, name, c.Arch), o)
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
