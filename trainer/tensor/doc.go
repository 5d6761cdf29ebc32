// Package tensor owns the engine's tensor value: a shape, a dtype and a
// contiguous buffer, plus the Arena that hands out such buffers and reuses
// them from step to step so a training step makes no garbage to speak of.
//
// Compute happens in float32. BF16 and F16 are storage types: weights load
// from them and the GPU backend keeps frozen weights in them (the
// conversions themselves are shared/safetensors'). A tensor's host data is
// F32 (float32 compute) or Raw (bf16/f16 bits); a backend that keeps data
// elsewhere hangs its own handle on Device. The package does no math: ops
// live behind trainer/backend.
package tensor
