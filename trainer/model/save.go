package model

import (
	"fmt"

	"github.com/eftml/eft/shared/safetensors"
)

// StateDict returns the model's weights under their Hugging Face names in
// state-dict order, converted to dtype (F32, BF16 or F16), ready for
// safetensors.WriteModel or a full checkpoint. Tied embeddings appear once,
// as transformers saves them. Adapters are not included: merge them first
// (lora.Merge) or export them (lora.Export). Quantized weights are saved
// dequantized.
func (m *Model) StateDict(dtype safetensors.DType) ([]safetensors.NamedTensor, error) {
	var out []safetensors.NamedTensor
	for _, p := range m.Params() {
		vals := make([]float32, p.W.Len())
		if p.Quantized() {
			p.Quant.Dequantize(vals)
		} else {
			m.Backend.Download(vals, p.W)
		}
		if off := m.Config.normOffset(p.Name); off != 0 {
			for i := range vals {
				vals[i] -= off
			}
		}
		var t safetensors.Tensor
		var err error
		if dtype == safetensors.F32 {
			t, err = safetensors.ViewFloat32(p.W.Shape(), vals)
		} else {
			t, err = safetensors.FromFloat32(dtype, p.W.Shape(), vals)
		}
		if err != nil {
			return nil, fmt.Errorf("model: saving %s as %s: %w", p.Name, dtype, err)
		}
		out = append(out, safetensors.NamedTensor{Name: p.Name, Tensor: t})
	}
	return out, nil
}
