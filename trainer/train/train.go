// Package train is the engine's optimizer step: gradient accumulation over
// micro-batches with the loss normalised by the counted tokens of the whole
// step, global-norm clipping and the optimizer update. The loop around it
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

	params []*optim.Param
}

// New prepares a trainer for m's trainable parameters (choose them first:
// trainer/lora, or Model.SetTrainable for a full fine-tune). Biases and norm
// weights are exempt from weight decay, as in transformers' Trainer.
func New(m *model.Model, opt optim.Optimizer, maxGradNorm float64) (*Trainer, error) {
	t := &Trainer{Model: m, Optimizer: opt, MaxGradNorm: maxGradNorm}
	for _, p := range m.TrainableParams() {
		if p.W.F32 == nil || p.G.F32 == nil {
			return nil, fmt.Errorf("train: parameter %s is not in host memory (backend %s); this optimizer runs on the host", p.Name, m.Backend.Name())
		}
		t.params = append(t.params, &optim.Param{Name: p.Name, Data: p.W.F32, Grad: p.G.F32, NoDecay: optim.DecayExempt(p.Name)})
	}
	if len(t.params) == 0 {
		return nil, fmt.Errorf("train: the model has no trainable parameters")
	}
	return t, nil
}

// Params are the optimizer's views of the trainable parameters.
func (t *Trainer) Params() []*optim.Param { return t.params }

// StepResult reports one optimizer step.
type StepResult struct {
	Loss     float64 // mean cross-entropy over the step's counted tokens
	Tokens   int     // counted target tokens over all micro-batches
	GradNorm float64 // global gradient norm before clipping
}

// Step runs one optimizer step over micro-batches at learning rate lr:
//
//  1. count the target tokens of every micro-batch together;
//  2. zero the gradients;
//  3. forward and backward each micro-batch, scaling its gradient by
//     1/(all counted tokens), so the sum is the gradient of the step's mean
//     token loss — not a mean of per-batch means;
//  4. clip the global gradient norm;
//  5. update the weights.
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

	norm := optim.ClipGradNorm(t.params, t.MaxGradNorm) // measures only when MaxGradNorm is 0
	if math.IsNaN(norm) || math.IsInf(norm, 0) {
		return StepResult{}, fmt.Errorf("train: gradient norm is %v (loss %v); not updating", norm, lossSum/float64(total))
	}
	if err := t.Optimizer.Step(t.params, lr); err != nil {
		return StepResult{}, err
	}
	return StepResult{Loss: lossSum / float64(total), Tokens: total, GradNorm: norm}, nil
}
