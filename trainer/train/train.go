// Package train is the engine's optimizer step: gradient accumulation over
// micro-batches with the loss normalised by the counted tokens of the whole
// step, global-norm clipping and the optimizer update. With a Collective
// the step is one rank's part of a data-parallel step: the token count and
// the gradients are summed over the ranks, so every rank updates with the
// gradient one process would compute on the union of their micro-batches. The loop around it
// (schedules, checkpoints, events) belongs to the trainer service; this
// package knows nothing about where batches come from.
package train

import (
	"fmt"
	"math"

	"github.com/eftml/eft/trainer/backend"
	"github.com/eftml/eft/trainer/model"
	"github.com/eftml/eft/trainer/optim"
)

// Trainer steps one model with one optimizer.
type Trainer struct {
	Model     *model.Model
	Optimizer optim.Optimizer
	// MaxGradNorm clips the global gradient norm before each update; 0 turns
	// clipping off.
	MaxGradNorm float64

	// Collective, when set, makes each Step one rank's share of a
	// data-parallel step (world_size > 1).
	Collective Collective

	params []*optim.Param
	// device is set when the parameters live off the host (a GPU backend):
	// the optimizer then measures and updates them where they are.
	device  DeviceOptimizer
	mparams []*model.Param
}

// DeviceOptimizer is an optimizer that updates parameters where a device
// backend keeps them (trainer/cuda's AdamW): Trainer hands it the model's
// parameters instead of host slices. Its State and LoadState still speak
// host buffers, so checkpoints do not care where training ran.
type DeviceOptimizer interface {
	optim.Optimizer
	// GradNorm is the global L2 norm of the gradients, measured as
	// optim.ClipGradNorm measures it (per-tensor norms in float32).
	GradNorm(params []*model.Param) float64
	// StepDevice multiplies every gradient by gradScale (the clipping
	// coefficient; 1 when not clipping) and updates the parameters at
	// learning rate lr.
	StepDevice(params []*model.Param, lr float64, gradScale float32) error
}

// Collective joins the ranks of a data-parallel run. Every rank calls its
// methods in the same order with the same shapes; every rank must get the
// same bits back (sums in rank order), or their weights drift apart.
type Collective interface {
	// SumCounts replaces each count by its sum over the ranks.
	SumCounts(counts []int64) error
	// SumGradients replaces the gradient of every parameter by its sum over
	// the ranks, and returns the sum of the ranks' loss sums.
	SumGradients(params []*model.Param, lossSum float64) (float64, error)
}

// New prepares a trainer for m's trainable parameters (choose them first:
// trainer/lora, or Model.SetTrainable for a full fine-tune). Biases and norm
// weights are exempt from weight decay, as in transformers' Trainer.
func New(m *model.Model, opt optim.Optimizer, maxGradNorm float64) (*Trainer, error) {
	t := &Trainer{Model: m, Optimizer: opt, MaxGradNorm: maxGradNorm}
	t.mparams = m.TrainableParams()
	if len(t.mparams) == 0 {
		return nil, fmt.Errorf("train: the model has no trainable parameters")
	}
	if dev, ok := opt.(DeviceOptimizer); ok {
		t.device = dev
		return t, nil
	}
	for _, p := range t.mparams {
		if p.W.F32 == nil || p.G.F32 == nil {
			return nil, fmt.Errorf("train: parameter %s is not in host memory (backend %s); this optimizer runs on the host: use the backend's own (cuda: Backend.Optimizer)", p.Name, m.Backend.Name())
		}
		t.params = append(t.params, &optim.Param{Name: p.Name, Data: p.W.F32, Grad: p.G.F32, NoDecay: optim.DecayExempt(p.Name)})
	}
	return t, nil
}

// Params are the optimizer's views of the trainable parameters (nil when a
// DeviceOptimizer updates them where they live).
func (t *Trainer) Params() []*optim.Param { return t.params }

// StepResult reports one optimizer step.
type StepResult struct {
	Loss     float64 // mean cross-entropy over the step's counted tokens
	Tokens   int     // counted target tokens over all micro-batches
	GradNorm float64 // global gradient norm before clipping
}

// Step runs one optimizer step over micro-batches at learning rate lr:
//
//  1. count the target tokens of every micro-batch together (with a
//     Collective: of every rank's micro-batches);
//  2. zero the gradients;
//  3. forward and backward each micro-batch, scaling its gradient by
//     1/(all counted tokens), so the sum is the gradient of the step's mean
//     token loss — not a mean of per-batch means;
//  4. with a Collective, sum the gradients over the ranks;
//  5. clip the global gradient norm;
//  6. update the weights.
func (t *Trainer) Step(micro []*model.Batch, lr float64) (StepResult, error) {
	total := 0
	for i, b := range micro {
		if b.Targets == nil {
			return StepResult{}, fmt.Errorf("train: micro-batch %d has no targets", i)
		}
		for _, tg := range b.Targets {
			if tg != backend.IgnoreIndex {
				total++
			}
		}
	}
	if t.Collective != nil {
		counts := []int64{int64(total)}
		if err := t.Collective.SumCounts(counts); err != nil {
			return StepResult{}, fmt.Errorf("train: summing the step's token count over the ranks: %w", err)
		}
		total = int(counts[0])
	}
	if total == 0 {
		return StepResult{}, fmt.Errorf("train: the %d micro-batches of this step have no target tokens to learn from", len(micro))
	}

	t.Model.ZeroGrads()
	var lossSum float64
	for i, b := range micro {
		s, _, err := t.Model.ForwardBackward(b, 1/float32(total))
		if err != nil {
			return StepResult{}, fmt.Errorf("train: micro-batch %d: %w", i, err)
		}
		lossSum += s
	}
	if t.Collective != nil {
		var err error
		if lossSum, err = t.Collective.SumGradients(t.mparams, lossSum); err != nil {
			return StepResult{}, fmt.Errorf("train: summing gradients over the ranks: %w", err)
		}
	}

	if t.device != nil {
		return t.deviceUpdate(lossSum, total, lr)
	}
	norm := optim.ClipGradNorm(t.params, t.MaxGradNorm) // measures only when MaxGradNorm is 0
	if math.IsNaN(norm) || math.IsInf(norm, 0) {
		return StepResult{}, fmt.Errorf("train: gradient norm is %v (loss %v); not updating", norm, lossSum/float64(total))
	}
	if err := t.Optimizer.Step(t.params, lr); err != nil {
		return StepResult{}, err
	}
	return StepResult{Loss: lossSum / float64(total), Tokens: total, GradNorm: norm}, nil
}

// deviceUpdate is steps 4 and 5 for parameters off the host: the clipping
// coefficient of optim.ClipGradNorm, folded into the device update.
func (t *Trainer) deviceUpdate(lossSum float64, total int, lr float64) (StepResult, error) {
	norm := t.device.GradNorm(t.mparams)
	if math.IsNaN(norm) || math.IsInf(norm, 0) {
		return StepResult{}, fmt.Errorf("train: gradient norm is %v (loss %v); not updating", norm, lossSum/float64(total))
	}
	scale := float32(1)
	if coef := t.MaxGradNorm / (norm + 1e-6); t.MaxGradNorm > 0 && coef < 1 {
		scale = float32(coef)
	}
	if err := t.device.StepDevice(t.mparams, lr, scale); err != nil {
		return StepResult{}, err
	}
	return StepResult{Loss: lossSum / float64(total), Tokens: total, GradNorm: norm}, nil
}
