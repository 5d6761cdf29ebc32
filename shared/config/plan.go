package config

import "math"

// Plan is a run's step arithmetic once the number of optimizer steps per
// epoch is known, computed the way Axolotl's trainer builder and the
// transformers Trainer compute it.
type Plan struct {
	StepsPerEpoch int
	TotalSteps    int // max_steps, else ceil(num_epochs * steps per epoch)
	WarmupSteps   int
	LoggingSteps  int
	SaveStrategy  string // "no", "steps" or "epoch"
	SaveSteps     int    // with SaveStrategy "steps"
	EvalStrategy  string // "no", "steps" or "epoch"
	EvalSteps     int    // with EvalStrategy "steps"
}

// HasEvalData reports whether the run evaluates on anything: a held-out
// val_set_size or test_datasets.
func (c *Config) HasEvalData() bool { return c.ValSetSize > 0 || len(c.TestDatasets) > 0 }

// Plan computes the step plan for stepsPerEpoch optimizer steps per epoch
// (micro-batches per epoch divided by gradient_accumulation_steps, at
// least 1).
func (c *Config) Plan(stepsPerEpoch int) Plan {
	stepsPerEpoch = max(stepsPerEpoch, 1)
	p := Plan{StepsPerEpoch: stepsPerEpoch}
	if c.MaxSteps > 0 {
		p.TotalSteps = c.MaxSteps
	} else {
		p.TotalSteps = max(int(math.Ceil(c.NumEpochs*float64(stepsPerEpoch))), 1)
	}
	total := float64(p.TotalSteps)

	// Axolotl's _configure_warmup_and_logging: warmup_steps, else
	// warmup_ratio of the steps, else 3% of the steps capped at 100; a
	// warmup of exactly 1 step becomes 2.
	switch {
	case c.WarmupSteps != nil:
		p.WarmupSteps = *c.WarmupSteps
	case c.WarmupRatio != nil:
		p.WarmupSteps = max(int(*c.WarmupRatio*total), 0)
	default:
		p.WarmupSteps = min(int(0.03*total), 100)
	}
	if p.WarmupSteps == 1 {
		p.WarmupSteps = 2
	}
	if c.LoggingSteps > 0 {
		p.LoggingSteps = c.LoggingSteps
	} else {
		p.LoggingSteps = max(min(int(0.005*total), 10), 1)
	}

	// normalize_config turns saves_per_epoch into a fraction of the total
	// steps when that fraction is below 1; the Trainer rounds fractions up.
	saveSteps := c.SaveSteps
	if c.SavesPerEpoch > 0 {
		if f := 1 / (float64(c.SavesPerEpoch) * c.NumEpochs); f < 1 {
			saveSteps = f
		}
	}
	switch {
	case saveSteps > 0:
		p.SaveStrategy, p.SaveSteps = "steps", stepsOf(saveSteps, total)
	case c.SaveStrategy != "":
		p.SaveStrategy = c.SaveStrategy
	default:
		p.SaveStrategy = "epoch"
	}

	evalSteps := c.EvalSteps
	if c.HasEvalData() && c.EvalsPerEpoch > 0 {
		if f := 1 / (float64(c.EvalsPerEpoch) * c.NumEpochs); f < 1 {
			evalSteps = f
		}
	}
	switch {
	case !c.HasEvalData():
		p.EvalStrategy = "no"
	case evalSteps > 0:
		p.EvalStrategy, p.EvalSteps = "steps", stepsOf(evalSteps, total)
	case c.EvalStrategy != "":
		p.EvalStrategy = c.EvalStrategy
	default:
		p.EvalStrategy = "no"
	}
	return p
}

// stepsOf reads an interval: whole steps from 1 up, or a fraction of the
// total steps below 1, rounded up as the transformers Trainer does.
func stepsOf(v, total float64) int {
	if v >= 1 {
		return int(v)
	}
	return max(int(math.Ceil(total*v)), 1)
}

// ChatTemplateFor says which chat template a dataset is rendered with, as
// Axolotl resolves it: the dataset's own chat_template (and
// chat_template_jinja) when it names one other than tokenizer_default;
// otherwise the top-level chat_template, which Axolotl installs as the
// tokenizer's template; otherwise the tokenizer's own (tokenizer_default).
func (c *Config) ChatTemplateFor(ds *Dataset) (name, jinja string) {
	if ds.ChatTemplate != "" && ds.ChatTemplate != "tokenizer_default" {
		return ds.ChatTemplate, ds.ChatTemplateJinja
	}
	if c.ChatTemplate != "" {
		return c.ChatTemplate, c.ChatTemplateJinja
	}
	return "tokenizer_default", ""
}
