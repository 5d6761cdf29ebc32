// Package optim updates parameters from their gradients with the semantics of
// torch.optim: AdamW (decoupled weight decay applied as p -= lr·wd·p before
// the Adam update, bias correction, eps added outside the square root) and
// SGD (momentum, dampening, nesterov, L2 weight decay), plus global
// gradient-norm clipping as torch.nn.utils.clip_grad_norm_ does it.
//
// Parameters are plain float32 slices (Param{Name, Data, Grad}); the engine
// owns the tensors and hands their host buffers here. A parameter whose Grad
// is nil is frozen and skipped, as torch skips p.grad is None. Optimizer
// state (per-parameter step and moment buffers) is exported and restored by
// name so trainer/checkpoint can resume a run exactly.
//
// Learning-rate schedules live in trainer/schedule; the caller passes each
// step's learning rate to Step.
package optim
