// Package backend defines the interface every compute backend implements:
// each op the decoder needs, forward and backward, on tensors the backend
// owns. The CPU backend (trainer/cpu) implements it with goroutine-parallel
// Go kernels and a GEMM from trainer/blas; the CUDA backend implements the
// same methods with the same semantics, so model code is written once.
//
// Conventions, for every method:
//   - Activations are matrices [tokens, features] in row-major order; a
//     tensor's shape beyond its element count only matters where stated.
//   - Backward methods that produce a parameter gradient ADD into it (the
//     caller zeroes gradients once per optimizer step, so gradient
//     accumulation across micro-batches is free). Input gradients are
//     overwritten unless the method says it accumulates.
//   - Integer inputs (token ids, positions, targets) are host []int32 slices:
//     they are small, and a device backend uploads them itself.
//   - A method never allocates per call beyond its own reusable scratch.
package backend

import (
	"math"

	"github.com/eftml/eft/trainer/tensor"
)

// Activation selects the gate nonlinearity of a gated MLP.
type Activation uint8

const (
	SiLU     Activation = iota // x·sigmoid(x) (llama, mistral, qwen)
	GELUTanh                   // tanh approximation of GELU (gemma's gelu_pytorch_tanh)
)

func (a Activation) String() string {
	switch a {
	case SiLU:
		return "silu"
	case GELUTanh:
		return "gelu_pytorch_tanh"
	}
	return "unknown"
}

// IgnoreIndex is the target value whose token does not count in the loss
// (PyTorch's cross_entropy default).
const IgnoreIndex = -100

// AttentionSpec describes one causal attention call over a batch of rows.
//
// Queries are Q [Batch*QLen, Heads*HeadDim]; keys and values are
// K, V [Batch*KVLen, KVHeads*HeadDim]; Heads must be a multiple of KVHeads
// (grouped-query attention: query head h reads kv head h/(Heads/KVHeads)).
// Query i of a row sits at kv index QOffset+i of that row (QOffset is 0 in
// training, the cache length in incremental decoding) and may attend kv index
// j when SegStart(i) <= j <= QOffset+i and, with a window, QOffset+i-j <
// Window. With SoftCap, each score s = Scale·q·k becomes
// SoftCap·tanh(s/SoftCap) before the mask and the softmax (Gemma-2's
// attn_logit_softcapping), and the backward pass carries its derivative.
type AttentionSpec struct {
	Batch, QLen, KVLen      int
	Heads, KVHeads, HeadDim int
	Scale                   float32 // multiplies q·k; usually 1/sqrt(HeadDim)
	SoftCap                 float32 // caps the scaled scores; 0 means none
	Window                  int     // sliding window in tokens; 0 means none
	QOffset                 int
	// SegStart, when set, holds for every kv position (Batch*KVLen entries)
	// the kv index where its sample starts inside the row: packed samples
	// never attend to each other. Nil means each row is one sample.
	SegStart []int32
}

// RoPETable holds the rotary embedding for positions 0..Positions-1:
// Cos and Sin are [Positions, RotaryDim/2] and already multiplied by the
// rope type's attention factor (yarn), exactly like transformers' cos/sin.
type RoPETable struct {
	Cos, Sin  *tensor.Tensor
	RotaryDim int // rotated features at the start of each head (== HeadDim unless partial)
}

// Positions is the number of positions the table covers.
func (r *RoPETable) Positions() int { return r.Cos.Rows() }

// Backend is the set of ops the engine runs. See the package comment for the
// conventions every method follows.
type Backend interface {
	// Name identifies the backend in logs ("cpu", "cuda:0").
	Name() string

	// Alloc returns a zeroed float32 tensor owned by the backend. Model code
	// allocates step buffers from a tensor.Arena instead; Alloc is for
	// long-lived state (weights, gradients, caches).
	Alloc(shape ...int) *tensor.Tensor
	// Upload copies host float32 values into t; Download copies t to host.
	Upload(t *tensor.Tensor, src []float32)
	Download(dst []float32, t *tensor.Tensor)

	// Zero sets every element of t to 0.
	Zero(t *tensor.Tensor)
	// Copy sets dst = src (same element count).
	Copy(dst, src *tensor.Tensor)
	// Add sets dst += alpha*src (same element count).
	Add(dst, src *tensor.Tensor, alpha float32)
	// Scale sets t *= s.
	Scale(t *tensor.Tensor, s float32)
	// SumSquares returns the sum of squared elements, accumulated in float64.
	SumSquares(t *tensor.Tensor) float64

	// MatMul sets C = alpha·op(A)·op(B) + beta·C for row-major matrices, where
	// op(X) is X or its transpose. Shapes: op(A) [m,k], op(B) [k,n], C [m,n];
	// A and B are read as matrices of their last dimension's columns.
	MatMul(c, a, b *tensor.Tensor, transA, transB bool, alpha, beta float32)
	// BatchedMatMul is MatMul over the leading dimension of 3-D tensors:
	// C[i] = alpha·op(A[i])·op(B[i]) + beta·C[i].
	BatchedMatMul(c, a, b *tensor.Tensor, transA, transB bool, alpha, beta float32)
	// AddBias adds bias [n] to every row of y [rows, n].
	AddBias(y, bias *tensor.Tensor)
	// BiasBackward adds the column sums of dy [rows, n] into dbias [n].
	BiasBackward(dbias, dy *tensor.Tensor)

	// Embedding sets out[t] = table[ids[t]] for out [len(ids), dim].
	Embedding(out, table *tensor.Tensor, ids []int32)
	// EmbeddingBackward scatter-adds dout rows into dtable rows ids[t].
	EmbeddingBackward(dtable, dout *tensor.Tensor, ids []int32)

	// RMSNorm normalises each row of x (row width = len(w), so per-head
	// norms work on [tokens, heads*headDim] with w [headDim]):
	// out = x / sqrt(mean(x²)+eps) * w, saving 1/rms per row in rstd.
	RMSNorm(out, rstd, x, w *tensor.Tensor, eps float32)
	// RMSNormBackward ADDS d loss/dx into dx (the residual stream carries
	// gradients from two branches) and, when dw is not nil, into dw.
	RMSNormBackward(dx, dw, dout, x, w, rstd *tensor.Tensor)

	// RoPE rotates, in place, each head of x [tokens, heads*headDim] by the
	// angle of its token's position (transformers' rotate_half layout).
	RoPE(x *tensor.Tensor, table *RoPETable, positions []int32, heads, headDim int)
	// RoPEBackward maps d loss/d rotated x to d loss/d x, in place.
	RoPEBackward(dx *tensor.Tensor, table *RoPETable, positions []int32, heads, headDim int)

	// Attention computes softmax(scale·QKᵀ + mask)·V into out
	// [Batch*QLen, Heads*HeadDim] and saves each query's log-sum-exp in lse
	// [Batch*Heads*QLen] for the backward pass.
	Attention(out, lse, q, k, v *tensor.Tensor, spec AttentionSpec)
	// AttentionBackward overwrites dq, dk, dv from dout, recomputing the
	// attention weights from q, k and lse.
	AttentionBackward(dq, dk, dv, dout, out, lse, q, k, v *tensor.Tensor, spec AttentionSpec)

	// GatedAct sets h = act(gate) ⊙ up.
	GatedAct(h, gate, up *tensor.Tensor, act Activation)
	// GatedActBackward overwrites dgate and dup from dh.
	GatedActBackward(dgate, dup, dh, gate, up *tensor.Tensor, act Activation)

	// Dropout sets out = x ⊙ mask where mask[i] is 0 with probability p and
	// 1/(1-p) otherwise, drawn from a counter-based generator keyed by seed,
	// so the same seed gives the same mask on every backend. mask is saved
	// for the backward pass (dx = dout ⊙ mask, via Mul).
	Dropout(out, mask, x *tensor.Tensor, p float32, seed uint64)
	// Mul sets dst = a ⊙ b, or dst += a ⊙ b when accumulate is set.
	Mul(dst, a, b *tensor.Tensor, accumulate bool)

	// CrossEntropy scores logits [rows, vocab] against targets (one per row;
	// IgnoreIndex rows do not count). It returns the summed loss of counted
	// rows and their number. When grad is set it overwrites logits with
	// gradScale·d(summed loss)/d logits (zero rows for ignored targets), so
	// one chunk of logits serves forward and backward and the full
	// [tokens, vocab] matrix never needs to exist twice. A softCap above 0
	// scores softCap·tanh(logits/softCap) instead (Gemma-2's
	// final_logit_softcapping), the gradient still being d/d logits.
	CrossEntropy(logits *tensor.Tensor, targets []int32, softCap float32, grad bool, gradScale float32) (lossSum float64, counted int)
}

// SoftCapped is cap·tanh(x/cap) as torch computes it in float32 (Gemma-2's
// soft-capping of attention scores and final logits).
func SoftCapped(x, cap float32) float32 {
	return cap * float32(math.Tanh(float64(x/cap)))
}
