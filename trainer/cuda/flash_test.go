package cuda

import (
	"math/rand/v2"
	"testing"

	"github.com/eftml/eft/trainer/backend"
	"github.com/eftml/eft/trainer/cpu"
)

// The flash kernels against the CPU backend, for every head size they are
// built for, across the cases their tiling must get right: query and key
// tiles that do not fill 64 rows, several tiles per row, GQA groups,
// packed segments that start inside a tile, a sliding window that leaves
// whole tiles masked, tiles no query masks (the kernels' unmasked path),
// queries offset into a longer key range (decode), and soft-capped scores.
// Inputs and probabilities are rounded to bf16 inside the kernels, hence
// the bf16 tolerance.
func TestFlashAttentionAgainstCPU(t *testing.T) {
	packed := make([]int32, 150)
	for i := range packed {
		switch {
		case i < 37:
			packed[i] = int32(i)
		case i < 101:
			packed[i] = int32(i - 37)
		default:
			packed[i] = int32(i - 101)
		}
	}
	cases := []attentionCase{
		{"causal GQA hd64", backend.AttentionSpec{Batch: 2, QLen: 70, KVLen: 70, Heads: 4, KVHeads: 2, HeadDim: 64}, nil},
		{"packed hd16", backend.AttentionSpec{Batch: 2, QLen: 150, KVLen: 150, Heads: 2, KVHeads: 1, HeadDim: 16}, packed},
		{"sliding window hd32", backend.AttentionSpec{Batch: 1, QLen: 140, KVLen: 140, Heads: 3, KVHeads: 1, HeadDim: 32, Window: 20}, nil},
		{"decode offset hd128", backend.AttentionSpec{Batch: 1, QLen: 9, KVLen: 75, QOffset: 66, Heads: 2, KVHeads: 1, HeadDim: 128}, nil},
		{"unmasked tiles hd32", backend.AttentionSpec{Batch: 1, QLen: 192, KVLen: 192, Heads: 2, KVHeads: 1, HeadDim: 32}, nil},
		{"two tiles hd128", backend.AttentionSpec{Batch: 1, QLen: 80, KVLen: 80, Heads: 2, KVHeads: 2, HeadDim: 128}, nil},
		// Gemma-2's soft cap, masked and unmasked tiles, packed and windowed.
		{"soft cap packed hd16", backend.AttentionSpec{Batch: 2, QLen: 150, KVLen: 150, Heads: 2, KVHeads: 1, HeadDim: 16, SoftCap: 0.7}, packed},
		{"soft cap window unmasked tiles hd64", backend.AttentionSpec{Batch: 1, QLen: 192, KVLen: 192, Heads: 4, KVHeads: 2, HeadDim: 64,
			Window: 100, SoftCap: 0.6}, nil},
	}
	forEach(t, PrecisionBF16, func(t *testing.T, u underTest, c *cpu.CPU, rng *rand.Rand) {
		for _, ac := range cases {
			if !u.b.useFlash(&ac.spec) {
				t.Fatalf("%s: the flash kernels are not used", ac.name)
			}
			checkAttentionCase(t, u.b, c, rng, ac, u.tol)
		}
	})
}
