package runspec

import (
	"bytes"
	"slices"
	"strings"
	"testing"

	"github.com/eftml/eft/events"
	"github.com/eftml/eft/shared/config"
	"github.com/eftml/eft/trainer/peft"
)

func parse(t *testing.T, extra string) *config.Config {
	t.Helper()
	cfg, _, err := config.Parse("t.yml", []byte("base_model: m\nlearning_rate: 0.1\nmicro_batch_size: 1\ngradient_accumulation_steps: 3\n"+
		"datasets:\n  - path: d.jsonl\n    type: completion\n"+extra), nil)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func stepsWhere(s Steps, at func(int) bool) []int {
	var out []int
	for d := 0; d <= s.TotalSteps; d++ {
		if at(d) {
			out = append(out, d)
		}
	}
	return out
}

// The plan follows the HF Trainer: 10 micro-batches at 3 per step are 3
// steps an epoch (the tenth is left over); logs every logging_steps and at
// the end; saves every save_steps and at the end; evaluates every
// eval_steps, or at epoch ends.
func TestStepsPlan(t *testing.T) {
	s, err := NewSteps(parse(t, "num_epochs: 3\nlogging_steps: 4\nsave_steps: 4\nval_set_size: 0.1\neval_steps: 3\n"), 10)
	if err != nil {
		t.Fatal(err)
	}
	if s.StepsPerEpoch != 3 || s.TotalSteps != 9 {
		t.Fatalf("%d steps an epoch, %d in all; want 3 and 9", s.StepsPerEpoch, s.TotalSteps)
	}
	if lo, hi := s.Group(2); lo != 6 || hi != 9 {
		t.Fatalf("step 2 of an epoch reads positions [%d, %d)", lo, hi)
	}
	for name, c := range map[string]struct {
		at   func(int) bool
		want []int
	}{
		"log":  {s.LogAt, []int{4, 8, 9}},
		"save": {s.SaveAt, []int{4, 8, 9}},
		"eval": {s.EvalAt, []int{3, 6, 9}},
		"ckpt": {s.CheckpointAt, []int{3, 4, 6, 8, 9}},
	} {
		if got := stepsWhere(s, c.at); !slices.Equal(got, c.want) {
			t.Errorf("%s at %v, want %v", name, got, c.want)
		}
	}
	e, _ := NewSteps(parse(t, "num_epochs: 2\nval_set_size: 0.1\neval_strategy: epoch\nsave_strategy: epoch\n"), 9)
	if got := stepsWhere(e, e.EvalAt); !slices.Equal(got, []int{3, 6}) {
		t.Errorf("epoch evaluations at %v", got)
	}
	if got := stepsWhere(e, e.SaveAt); !slices.Equal(got, []int{3, 6}) {
		t.Errorf("epoch saves at %v", got)
	}
	if _, err := NewSteps(parse(t, ""), 0); err == nil {
		t.Error("no micro-batches planned without an error")
	}
}

func TestPeftConfigFromAxolotlKeys(t *testing.T) {
	pc, err := PeftConfig(parse(t, "adapter: lora\nlora_r: 8\nlora_alpha: 16\nlora_dropout: 0.05\nlora_target_linear: true\nlora_modules_to_save: [lm_head]\npeft_use_rslora: true\n"))
	if err != nil {
		t.Fatal(err)
	}
	if pc.R != 8 || pc.LoraAlpha != 16 || pc.LoraDropout != 0.05 || pc.TargetRegex != peft.AllLinear || !pc.UseRSLoRA ||
		!slices.Equal(pc.ModulesToSave, []string{"lm_head"}) || pc.BaseModelNameOrPath == nil || *pc.BaseModelNameOrPath != "m" {
		t.Fatalf("%+v", pc)
	}
	if pc.EnsureWeightTying {
		t.Fatal("ensure_weight_tying without peft_ensure_weight_tying")
	}
	pc, err = PeftConfig(parse(t, "adapter: lora\nlora_r: 4\nlora_alpha: 8\nlora_target_modules: [q_proj, v_proj]\nlora_modules_to_save: [embed_tokens, lm_head]\npeft_ensure_weight_tying: true\n"))
	if err != nil || !slices.Equal(pc.TargetModules, []string{"q_proj", "v_proj"}) || pc.TargetRegex != "" || !pc.EnsureWeightTying {
		t.Fatalf("%+v %v", pc, err)
	}
}

// trainer_state.json is spelled as Python's json.dumps(indent=2,
// sort_keys=True) spells it: floats as repr, nested objects indented, empty
// ones as {}.
func TestHistoryJSONIsPythons(t *testing.T) {
	cfg := parse(t, "max_steps: 4\n")
	s, _ := NewSteps(cfg, 12)
	h := NewHistory(cfg, s)
	h.AddMetrics(events.MetricsLogged{Step: 1, Epoch: 0.5, Values: map[string]events.Metric{"loss": 1e-5, "learning_rate": 3}})
	out := string(h.JSON(1))
	for _, want := range []string{`"loss": 1e-05`, `"learning_rate": 3.0`, `"epoch": 0.5`, "{\n  \"best_global_step\": null,",
		`"stateful_callbacks": {},`, "\n    {\n      \"epoch\""} {
		if !strings.Contains(out, want) {
			t.Errorf("trainer_state.json lacks %q:\n%s", want, out)
		}
	}
}

// A trainer_state.json read back (a resumed run's checkpoint) gives the same
// file again, and JSON(step) leaves out later entries.
func TestHistoryRoundTrip(t *testing.T) {
	cfg := parse(t, "max_steps: 4\nval_set_size: 0.1\neval_steps: 2\n")
	s, _ := NewSteps(cfg, 12)
	h := NewHistory(cfg, s)
	for step := int64(1); step <= 4; step++ {
		h.AddMetrics(events.MetricsLogged{Step: step, Epoch: float64(step) / 4, Values: map[string]events.Metric{"loss": events.Metric(3 - float64(step)/2), "learning_rate": 1e-5, "grad_norm": 0.5}})
	}
	h.AddEval(events.EvalCompleted{Step: 2, Loss: 2.25, Perplexity: 9.49})
	h.AddCompleted(events.TrainingCompleted{Steps: 4, Epochs: 1, RuntimeSeconds: 12.5})
	full := h.JSON(4)
	again := NewHistory(cfg, s)
	if err := again.Load(full); err != nil {
		t.Fatal(err)
	}
	if got := again.JSON(4); !bytes.Equal(got, full) {
		t.Fatalf("read back:\n%s\nwant\n%s", got, full)
	}
	if v, ok := again.EvalLoss(2); !ok || v != 2.25 {
		t.Fatalf("eval loss at 2: %v %v", v, ok)
	}
	if part := h.JSON(2); bytes.Contains(part, []byte(`"step": 3`)) || !bytes.Contains(part, []byte(`"eval_loss": 2.25`)) {
		t.Fatalf("state at step 2:\n%s", part)
	}
}
