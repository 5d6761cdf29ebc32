package config

import (
	"testing"
)

func TestPlanFollowsAxolotlsArithmetic(t *testing.T) {
	load := func(name string, overrides ...string) *Config {
		t.Helper()
		c, _, err := Load(configPath(t, name), overrides)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	for _, tc := range []struct {
		name          string
		c             *Config
		stepsPerEpoch int
		want          Plan
	}{
		{
			// 4 epochs x 100 steps; warmup_ratio 0.1; saves_per_epoch 1 is
			// 1/4 of the steps; evals_per_epoch 4 is 1/16.
			"llama3-lora", load("llama3-lora.yml"), 100,
			Plan{StepsPerEpoch: 100, TotalSteps: 400, WarmupSteps: 40, LoggingSteps: 1,
				SaveStrategy: "steps", SaveSteps: 100, EvalStrategy: "steps", EvalSteps: 25},
		},
		{
			// max_steps wins over num_epochs; eval_steps 0.25 of 1200.
			"sample-packing", load("sample-packing.yml"), 1000,
			Plan{StepsPerEpoch: 1000, TotalSteps: 1200, WarmupSteps: 50, LoggingSteps: 10,
				SaveStrategy: "steps", SaveSteps: 200, EvalStrategy: "steps", EvalSteps: 300},
		},
		{
			// test_datasets make eval data even with val_set_size 0;
			// ceil(4 x 33 / 16) = 9.
			"llama3-qlora", load("llama3-qlora.yml"), 33,
			Plan{StepsPerEpoch: 33, TotalSteps: 132, WarmupSteps: 10, LoggingSteps: 1,
				SaveStrategy: "steps", SaveSteps: 33, EvalStrategy: "steps", EvalSteps: 9},
		},
		{
			// Defaults: 3% warmup (capped at 100), logging 0.5% of the
			// steps within [1, 10], save each epoch, no eval data.
			"defaults 1000", mustCfg(t, base), 1000,
			Plan{StepsPerEpoch: 1000, TotalSteps: 1000, WarmupSteps: 30, LoggingSteps: 5, SaveStrategy: "epoch", EvalStrategy: "no"},
		},
		{
			"defaults 10000", mustCfg(t, base), 10000,
			Plan{StepsPerEpoch: 10000, TotalSteps: 10000, WarmupSteps: 100, LoggingSteps: 10, SaveStrategy: "epoch", EvalStrategy: "no"},
		},
		{
			"defaults tiny", mustCfg(t, base), 0,
			Plan{StepsPerEpoch: 1, TotalSteps: 1, WarmupSteps: 0, LoggingSteps: 1, SaveStrategy: "epoch", EvalStrategy: "no"},
		},
		{
			// Axolotl turns a one-step warmup into two.
			"one-step warmup", mustCfg(t, base+"warmup_steps: 1\n"), 50,
			Plan{StepsPerEpoch: 50, TotalSteps: 50, WarmupSteps: 2, LoggingSteps: 1, SaveStrategy: "epoch", EvalStrategy: "no"},
		},
		{
			// Half an epoch with one save per epoch: 1/(1 x 0.5) = 2 is not
			// below 1, so Axolotl keeps the epoch strategy; fractional
			// epochs round the total up.
			"fractional epochs", mustCfg(t, base+"num_epochs: 0.5\nsaves_per_epoch: 1\nval_set_size: 0.1\neval_strategy: epoch\n"), 7,
			Plan{StepsPerEpoch: 7, TotalSteps: 4, WarmupSteps: 0, LoggingSteps: 1, SaveStrategy: "epoch", EvalStrategy: "epoch"},
		},
	} {
		if got := tc.c.Plan(tc.stepsPerEpoch); got != tc.want {
			t.Errorf("%s: Plan(%d)\n got %+v\nwant %+v", tc.name, tc.stepsPerEpoch, got, tc.want)
		}
	}
}

func mustCfg(t *testing.T, src string) *Config {
	t.Helper()
	c, _ := mustParse(t, src)
	return c
}
