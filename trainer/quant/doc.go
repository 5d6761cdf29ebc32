// Package quant owns eft's 4-bit weight format for QLoRA: NF4 (and FP4)
// blockwise quantization exactly as bitsandbytes defines it — the 16 code
// values, the nearest-code decision thresholds of its CUDA kernels, two
// codes per byte with the first element in the high nibble, one absmax per
// block of 64 (or another power of two) over the row-major flattened
// matrix, a zero-padded last block, and optional double quantization of
// the absmax values (bnb_4bit_use_double_quant: the absmax less their mean,
// 8-bit with bitsandbytes' dynamic code in blocks of 256).
//
// A Matrix holds only the packed codes and the scales (about 0.52 bytes per
// weight with double quantization); it is dequantized a range of rows at a
// time (DequantizeRows) into a caller's scratch tile, which is how the CPU
// backend multiplies by it (trainer/cpu MatMulQuant) without ever holding
// the dense weight.
//
// It does not own the matrix products (backends do), which layers are
// quantized (trainer/model), or bitsandbytes' serialized checkpoint layout.
package quant
