package backend

import (
	"github.com/eftml/eft/trainer/quant"
	"github.com/eftml/eft/trainer/tensor"
)

// QuantMatMul is the optional op of backends that multiply by frozen
// weights held 4-bit quantized (QLoRA's NF4 base weights, trainer/quant).
// A model loads in 4 bits only on a backend that implements it.
type QuantMatMul interface {
	// MatMulQuant sets C = A·op(W) + beta·C, W [w.Rows, w.Cols] quantized:
	// with transW, op(W) = Wᵀ — a linear layer's forward pass y = x·Wᵀ,
	// A [m, w.Cols], C [m, w.Rows]; without, op(W) = W — its input
	// gradient dx = dy·W, A [m, w.Rows], C [m, w.Cols]. The backend
	// dequantizes W a tile at a time into its compute type (float32 on the
	// CPU, like bitsandbytes' dequantize-then-matmul with compute dtype
	// float32) and never holds the whole dense W. There is no weight
	// gradient: quantized weights are frozen.
	MatMulQuant(c, a *tensor.Tensor, w *quant.Matrix, transW bool, beta float32)
}
