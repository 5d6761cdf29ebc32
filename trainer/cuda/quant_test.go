package cuda

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/eftml/eft/trainer/cpu"
	"github.com/eftml/eft/trainer/quant"
)

// MatMulQuant against the CPU backend's, both ways (forward y = x·Wᵀ and
// input gradient dx = dy·W), for NF4 with and without double quantization
// and FP4, on a shape whose element count is odd and not a multiple of the
// block size (a short last block, a padded last byte), with beta 0 and 1.
// At fp32 precision the dequantized values are exactly the CPU's; at bf16
// they are rounded to bf16 before the product.
func TestMatMulQuantAgainstCPU(t *testing.T) {
	for _, p := range []Precision{PrecisionFP32, PrecisionBF16} {
		t.Run(p.String(), func(t *testing.T) {
			forEach(t, p, func(t *testing.T, u underTest, c *cpu.CPU, rng *rand.Rand) {
				b := u.b
				const rows, cols, m = 37, 91, 11 // 3367 elements: odd, not a multiple of 64
				for _, o := range []quant.Options{quant.QLoRA(), {Type: quant.NF4, BlockSize: 64}, {Type: quant.FP4, BlockSize: 128, DoubleQuant: true}} {
					w, err := quant.Quantize(randomVals(rng, rows*cols, 0.05), rows, cols, o)
					if err != nil {
						t.Fatal(err)
					}
					name := fmt.Sprintf("%v block %d double %v", o.Type, o.BlockSize, o.DoubleQuant)
					for _, beta := range []float32{0, 1} {
						x, y := randPair(b, rng, m, cols), randPair(b, rng, m, rows)
						c.MatMulQuant(y.h, x.h, w, true, beta)
						b.MatMulQuant(y.d, x.d, w, true, beta)
						y.check(t, b, fmt.Sprintf("%s: forward, beta %v", name, beta), u.tol)
						dy, dx := randPair(b, rng, m, rows), randPair(b, rng, m, cols)
						c.MatMulQuant(dx.h, dy.h, w, false, beta)
						b.MatMulQuant(dx.d, dy.d, w, false, beta)
						dx.check(t, b, fmt.Sprintf("%s: input gradient, beta %v", name, beta), u.tol)
					}
				}
			})
		})
	}
}
