package model

import (
	"bytes"
	"testing"

	"github.com/eftml/eft/shared/safetensors"
)

// headIsEmbeddings compares stored bytes, never decoded values: a head in
// another dtype than the embeddings is untied even when it holds the same
// values, since a tied pair is saved as one tensor or a same-dtype copy.
func TestHeadIsEmbeddingsComparesBytes(t *testing.T) {
	values := []float32{1, -2, 0.5, 3, 0.25, -1} // exact in BF16
	other := []float32{1, -2, 0.5, 3, 0.25, -1.5}
	tensor := func(dtype safetensors.DType, v []float32) safetensors.Tensor {
		x, err := safetensors.FromFloat32(dtype, []int{3, 2}, v)
		if err != nil {
			t.Fatal(err)
		}
		return x
	}
	embed := safetensors.NamedTensor{Name: "model.embed_tokens.weight", Tensor: tensor(safetensors.F32, values)}
	for _, c := range []struct {
		name string
		head []safetensors.NamedTensor
		want bool
	}{
		{"no head", nil, true},
		{"same dtype, same bytes", []safetensors.NamedTensor{{Name: "lm_head.weight", Tensor: tensor(safetensors.F32, values)}}, true},
		{"same dtype, other values", []safetensors.NamedTensor{{Name: "lm_head.weight", Tensor: tensor(safetensors.F32, other)}}, false},
		{"BF16 head, same values", []safetensors.NamedTensor{{Name: "lm_head.weight", Tensor: tensor(safetensors.BF16, values)}}, false},
	} {
		var buf bytes.Buffer
		if err := safetensors.Encode(&buf, append(c.head, embed), nil); err != nil {
			t.Fatal(err)
		}
		src, err := safetensors.Parse(c.name, buf.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		if got, err := headIsEmbeddings(src, c.name); err != nil || got != c.want {
			t.Errorf("%s: headIsEmbeddings = %v, %v; want %v", c.name, got, err, c.want)
		}
	}
}
