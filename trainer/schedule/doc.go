// Package schedule computes learning rates per optimizer step as transformers'
// get_scheduler defines them (constant, constant_with_warmup, linear, cosine,
// cosine_with_min_lr, plus cosine_with_restarts, polynomial and inverse_sqrt),
// and the number of warmup steps from Axolotl's warmup_steps / warmup_ratio.
//
// A schedule is a pure function of the step, like torch's LambdaLR: the
// learning rate of the update that follows `step` completed updates is
// BaseLR·Factor(step). So with warmup the very first update runs at lr 0, as
// in the Hugging Face Trainer, and resuming needs nothing but the step count.
package schedule
