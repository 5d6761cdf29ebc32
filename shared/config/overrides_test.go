package config

import (
	"reflect"
	"strings"
	"testing"
)

func TestOverridesAreTypedByTheSchema(t *testing.T) {
	c, _, err := Load(configPath(t, "llama3-lora.yml"), []string{
		"--learning-rate", "2e-4",
		"--lora-r=8",
		"--no-sample-packing",
		"--gradient-checkpointing=false",
		"--bf16", "false",
		"--tf32",
		"--num-epochs", "1.5",
		"--output-dir", "./out: with colon",
		"--special-tokens.pad-token", "<|eot_id|>",
		"--lora-target-modules", "[q_proj, v_proj]",
		"--max-steps", "100",
		"--warmup-steps", "5",
		"--warmup-ratio", "0",
		"--trainer-pool", "a100",
		"--world-size", "4",
		"--model-revision", "v2",
	})
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"learning_rate", c.LearningRate, 2e-4},
		{"lora_r", c.LoraR, 8},
		{"sample_packing", c.SamplePacking, false},
		{"pad_to_sequence_len follows the overridden packing", c.PadToSequenceLen, false},
		{"gradient_checkpointing", c.GradientCheckpointing, false},
		{"bf16", c.BF16, False},
		{"tf32", c.TF32, True},
		{"num_epochs", c.NumEpochs, 1.5},
		{"output_dir", c.OutputDir, "./out: with colon"},
		{"special_tokens.pad_token", c.SpecialTokens.PadToken, "<|eot_id|>"},
		{"lora_target_modules", c.LoraTargetModules.Names, []string{"q_proj", "v_proj"}},
		{"max_steps", c.MaxSteps, 100},
		{"warmup_steps", *c.WarmupSteps, 5},
		{"warmup_ratio", *c.WarmupRatio, 0.0},
		{"trainer_pool", c.TrainerPool, "a100"},
		{"world_size", c.WorldSize, 4},
		{"revision_of_model", c.RevisionOfModel, "v2"},
		{"lora_alpha (from the file)", c.LoraAlpha, 16},
	}
	for _, ch := range checks {
		if !reflect.DeepEqual(ch.got, ch.want) {
			t.Errorf("%s = %#v, want %#v", ch.name, ch.got, ch.want)
		}
	}
}

func TestBoolOverrideForms(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want bool
	}{
		{[]string{"--sample-packing"}, true},
		{[]string{"--sample-packing=true"}, true},
		{[]string{"--sample-packing", "true"}, true},
		{[]string{"--sample-packing=false"}, false},
		{[]string{"--sample-packing", "false"}, false},
		{[]string{"--no-sample-packing"}, false},
		{[]string{"--sample-packing", "--lora-dropout", "0"}, true},
	} {
		c, _ := mustParse(t, base+"sample_packing: false\n", tc.args...)
		if c.SamplePacking != tc.want {
			t.Errorf("%v: sample_packing = %v, want %v", tc.args, c.SamplePacking, tc.want)
		}
		if !c.IsSet("sample_packing") {
			t.Errorf("%v: an overridden key counts as set", tc.args)
		}
	}
}

func TestOverrideAddsDatasetsAndNestedKeys(t *testing.T) {
	c, _ := mustParse(t, noLR,
		"--learning-rate", "1e-5",
		"--test-datasets", "[{path: ./eval.jsonl, type: alpaca}]",
		"--special-tokens.eos-token", "</s>")
	if len(c.TestDatasets) != 1 || c.TestDatasets[0].Path != "./eval.jsonl" {
		t.Errorf("test_datasets override: %+v", c.TestDatasets)
	}
	if c.SpecialTokens.EOSToken != "</s>" {
		t.Errorf("special_tokens.eos_token = %q", c.SpecialTokens.EOSToken)
	}
}

func TestOverrideErrorsNameTheFlag(t *testing.T) {
	for _, tc := range []struct {
		args       []string
		file, want string
	}{
		{[]string{"--learning-rate", "fast"}, "--learning-rate", "expected a number"},
		{[]string{"--lora-r"}, "--lora-r", "needs a value"},
		{[]string{"--lora-r", "--seed", "3"}, "--lora-r", "needs a value"},
		{[]string{"--learning-rte", "1"}, "--learning-rte", "unknown flag"},
		{[]string{"learning_rate=1"}, "learning_rate=1", "expected a --key value override"},
		{[]string{"--no-learning-rate"}, "--no-learning-rate", "unknown flag"},
		{[]string{"--no-sample-packing=true"}, "--no-sample-packing", "takes no value"},
		{[]string{"--deepspeed", "zero3.json"}, "--deepspeed", "not supported by eft"},
		{[]string{"--special-tokens.pad-tokn", "x"}, "--special-tokens.pad-tokn", "unknown flag"},
		{[]string{"--lora-target-modules", "[q_proj"}, "--lora-target-modules", "YAML syntax error"},
		{[]string{"--sample-packing=perhaps"}, "--sample-packing", "expected true or false"},
		{[]string{"--seed=-1"}, "--seed", "must not be negative"},
		{[]string{"--output-dir", "caf\xe9"}, "--output-dir", "not valid UTF-8"},
	} {
		issues := mustFail(t, base, tc.args...)
		found := false
		for _, is := range issues {
			if is.File == tc.file && is.Line == 0 && strings.Contains(is.Message, tc.want) {
				found = true
			}
		}
		if !found {
			t.Errorf("%v: no issue for %s containing %q; got %v", tc.args, tc.file, tc.want, issues)
		}
	}
}

func TestLegacyFlagOverride(t *testing.T) {
	c, _ := mustParse(t, base, "--flash-attention")
	if c.AttnImplementation != "flash_attention_2" {
		t.Errorf("--flash-attention: attn_implementation = %q", c.AttnImplementation)
	}
	noGAS := strings.Replace(base, "gradient_accumulation_steps: 1\n", "", 1)
	c, _ = mustParse(t, noGAS, "--batch-size", "8")
	if c.GradientAccumulationSteps != 4 {
		t.Errorf("--batch-size 8 with micro_batch_size 2: gradient_accumulation_steps = %d, want 4", c.GradientAccumulationSteps)
	}
}

func TestOverrideTakesValue(t *testing.T) {
	for arg, want := range map[string]bool{
		"--lora-r": true, "--learning-rate": true, "--special-tokens.pad-token": true, "--datasets": true,
		"--deepspeed": true, "--sample-packing": false, "--no-sample-packing": false, "--bf16": false,
		"--flash-attention": false, "--lora-r=8": false, "--no-such-key": false, "cfg.yml": false,
	} {
		if got := OverrideTakesValue(arg); got != want {
			t.Errorf("OverrideTakesValue(%q) = %v, want %v", arg, got, want)
		}
	}
}
