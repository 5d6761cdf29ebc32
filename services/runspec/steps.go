package runspec

import (
	"fmt"

	"github.com/eftml/eft/shared/config"
)

// Steps is a run's step plan: config.Plan (total, warmup, logging, save and
// eval intervals, computed as Axolotl and the transformers Trainer do) for
// the number of optimizer steps an epoch holds.
//
// An optimizer step accumulates gradient_accumulation_steps micro-batches;
// an epoch is the micro-batches of the batch file in the run's seeded order
// (batches.Plan), cut into StepsPerEpoch groups. Micro-batches left over
// after the last whole group of an epoch are not trained that epoch (the
// order changes every epoch, so no micro-batch is always left out); an
// epoch shorter than one group is one step.
type Steps struct {
	config.Plan
	// MicroBatches is the number of micro-batches an epoch reads.
	MicroBatches int
	// GradAccum is gradient_accumulation_steps.
	GradAccum int
}

// NewSteps plans a run of cfg over microBatches micro-batches per epoch.
func NewSteps(cfg *config.Config, microBatches int) (Steps, error) {
	if microBatches <= 0 {
		return Steps{}, fmt.Errorf("runspec: the run has %d training micro-batches; there is nothing to train on", microBatches)
	}
	ga := max(cfg.GradientAccumulationSteps, 1)
	perEpoch := max(microBatches/ga, 1)
	return Steps{Plan: cfg.Plan(perEpoch), MicroBatches: microBatches, GradAccum: ga}, nil
}

// Group returns the range [lo, hi) of positions in an epoch's micro-batch
// order that step (0-based within the epoch) trains on.
func (s Steps) Group(stepInEpoch int) (lo, hi int) {
	lo = stepInEpoch * s.GradAccum
	hi = min(lo+s.GradAccum, s.MicroBatches)
	return lo, hi
}

// EpochOf splits a 0-based global step index into its epoch and its step
// within the epoch.
func (s Steps) EpochOf(step int) (epoch, inEpoch int) {
	return step / s.StepsPerEpoch, step % s.StepsPerEpoch
}

// Epoch is the fractional epoch reached after done optimizer steps, as the
// transformers Trainer reports it (epoch + steps in it / steps per epoch).
func (s Steps) Epoch(done int) float64 {
	return float64(done) / float64(s.StepsPerEpoch)
}

func (s Steps) epochEnd(done int) bool { return done%s.StepsPerEpoch == 0 }

// LogAt reports whether the trainer logs metrics after done steps: every
// logging_steps steps and after the last one.
func (s Steps) LogAt(done int) bool {
	return done > 0 && (done%s.LoggingSteps == 0 || done == s.TotalSteps)
}

// SaveAt reports whether the trainer saves a checkpoint (one that is kept in
// output_dir) after done steps: every save_steps steps and after the last
// step with save_strategy steps; at every epoch end (the last step too) with
// save_strategy epoch; never with "no".
func (s Steps) SaveAt(done int) bool {
	if done <= 0 {
		return false
	}
	switch s.SaveStrategy {
	case "steps":
		return done%s.SaveSteps == 0 || done == s.TotalSteps
	case "epoch":
		return s.epochEnd(done) || done == s.TotalSteps
	}
	return false
}

// EvalAt reports whether the evaluator evaluates the checkpoint of done
// steps: every eval_steps steps with eval_strategy steps, at every epoch
// end with eval_strategy epoch.
func (s Steps) EvalAt(done int) bool {
	if done <= 0 {
		return false
	}
	switch s.EvalStrategy {
	case "steps":
		return done%s.EvalSteps == 0
	case "epoch":
		return s.epochEnd(done) || done == s.TotalSteps
	}
	return false
}

// CheckpointAt reports whether the trainer publishes a checkpoint after
// done steps: to keep (SaveAt) or for the evaluator (EvalAt), which reads
// the weights of that step from it.
func (s Steps) CheckpointAt(done int) bool { return s.SaveAt(done) || s.EvalAt(done) }
