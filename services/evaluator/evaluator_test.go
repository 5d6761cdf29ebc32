package evaluator

import (
	"context"
	"fmt"
	"math"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/eftml/eft/events"
	"github.com/eftml/eft/services/runspec"
	"github.com/eftml/eft/services/runspec/runtest"
	"github.com/eftml/eft/services/trainer"
	"github.com/eftml/eft/shared/artifacts/artifactstest"
	"github.com/eftml/eft/shared/bus/bustest"
	"github.com/eftml/eft/shared/testfixtures"
	"github.com/eftml/eft/trainer/cpu"
	"github.com/eftml/eft/trainer/model"
)

func runConfig(t testing.TB) string {
	return fmt.Sprintf(`base_model: %s
adapter: lora
lora_r: 8
lora_alpha: 16
lora_target_linear: true
datasets:
  - path: counting.jsonl
    type: completion
val_set_size: 0.2
sequence_len: 32
sample_packing: true
micro_batch_size: 2
eval_batch_size: 1
gradient_accumulation_steps: 1
max_steps: 16
learning_rate: 0.01
logging_steps: 1
save_steps: 8
eval_steps: 4
output_dir: ./out
`, testfixtures.Path(t, "hf", "llama"))
}

// Checkpoints at eval steps are evaluated while the trainer goes on: some
// training step is logged between an evaluation's start and finish. The
// adapter the run leaves, loaded on the base model by the engine, scores the
// validation split exactly as the evaluator scored the last checkpoint.
func TestEvaluatesBesideTrainingAndTheAdapterReproducesTheLastEvalLoss(t *testing.T) {
	b, _ := bustest.New(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Training is paced at ~15 ms a step so that the run outlasts an evaluation.
	go func() {
		_ = trainer.New(b, trainer.Options{ScratchDir: t.TempDir(), AfterStep: func(int) { time.Sleep(15 * time.Millisecond) }}).Run(ctx)
	}()
	scratch := t.TempDir()
	go func() { _ = New(b, Options{ScratchDir: scratch, MaxNewTokens: 8}).Run(ctx) }()
	yaml := runConfig(t)
	_, cfg := runtest.Resolve(t, yaml)
	data := runtest.MakeData(t, b, cfg, 32, 120)
	run := runtest.Submit(t, b, yaml, data)

	evals := 0
	envs := runtest.Follow(t, b, run.ID, 2*time.Minute, func(e events.Envelope) bool {
		if e.Type == events.TypeEvalCompleted {
			evals++
		}
		return evals == 4 || events.Terminal(e.Type)
	})
	got := runtest.Of[events.EvalCompleted](t, envs)
	if len(got) != 4 {
		t.Fatalf("%d evaluations (%v), want 4: at steps 4, 8, 12, 16", len(got), runtest.Types(envs))
	}
	overlap := false
	for i, ev := range got {
		if ev.Step != int64(4*(i+1)) || ev.Checkpoint != fmt.Sprintf("checkpoint-%d", ev.Step) {
			t.Fatalf("evaluation %d: step %d of %s", i, ev.Step, ev.Checkpoint)
		}
		if ev.Tokens == 0 || ev.Samples != 120 || math.Abs(float64(ev.Perplexity)-math.Exp(float64(ev.Loss))) > 1e-9*float64(ev.Perplexity) {
			t.Fatalf("evaluation %+v", ev)
		}
		if len(ev.Generations) != 2 || ev.Generations[0].Prompt == "" || ev.Generations[0].Output == "" {
			t.Fatalf("generations %+v", ev.Generations)
		}
		for _, e := range envs {
			if e.Type == events.TypeMetricsLogged && e.Time.After(ev.StartedAt) && e.Time.Before(ev.FinishedAt) {
				overlap = true
			}
		}
	}
	if !overlap {
		for _, ev := range got {
			t.Logf("eval step %d: %s .. %s", ev.Step, ev.StartedAt.Format(time.StampMicro), ev.FinishedAt.Format(time.StampMicro))
		}
		t.Fatal("no training step was logged while an evaluation ran")
	}
	if !(got[3].Loss < got[0].Loss) {
		t.Fatalf("eval loss %v at step 4, %v at step 16: no learning", got[0].Loss, got[3].Loss)
	}

	done := runtest.Of[events.TrainingCompleted](t, runtest.Follow(t, b, run.ID, time.Minute, runtest.Ends))
	if len(done) != 1 {
		t.Fatal("training did not complete")
	}
	out := t.TempDir()
	store := artifactstest.Open(t, b.JetStream(), "")
	if err := store.GetFiles(ctx, done[0].Files, out); err != nil {
		t.Fatal(err)
	}
	m, err := LoadCheckpoint(testfixtures.Path(t, "hf", "llama"), out, cpu.New(0), model.Options{})
	if err != nil {
		t.Fatal(err)
	}
	evalPath := filepath.Join(t.TempDir(), "eval.batches")
	if err := store.GetFile(ctx, data.Eval, evalPath); err != nil {
		t.Fatal(err)
	}
	res, err := EvaluateFile(m, evalPath, GenerateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Loss != float64(got[3].Loss) {
		t.Fatalf("the final adapter scores %v on the validation split; the evaluator said %v for checkpoint-16", res.Loss, got[3].Loss)
	}
}

// A QLoRA run is evaluated on the NF4 base it trains on, as Axolotl does:
// the adapter the run leaves, on the base loaded with the run's
// runspec.LoadOptions, scores exactly what the evaluator reported, and on
// the float32 base it scores something else.
func TestQLoRAIsEvaluatedOnTheQuantizedBase(t *testing.T) {
	b, _ := bustest.New(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = trainer.New(b, trainer.Options{ScratchDir: t.TempDir()}).Run(ctx) }()
	go func() { _ = New(b, Options{ScratchDir: t.TempDir(), Generations: -1}).Run(ctx) }()
	yaml := strings.Replace(runConfig(t), "adapter: lora\n", "adapter: qlora\nload_in_4bit: true\n", 1)
	yaml = strings.Replace(strings.Replace(yaml, "max_steps: 16", "max_steps: 4", 1), "save_steps: 8", "save_steps: 4", 1)
	_, cfg := runtest.Resolve(t, yaml)
	if runspec.Quantization(cfg) == nil {
		t.Fatal("the test config does not quantize its base")
	}
	data := runtest.MakeData(t, b, cfg, 16, 40)
	run := runtest.Submit(t, b, yaml, data)
	envs := runtest.Follow(t, b, run.ID, 2*time.Minute, func(e events.Envelope) bool {
		return e.Type == events.TypeEvalCompleted || events.Terminal(e.Type)
	})
	evals := runtest.Of[events.EvalCompleted](t, envs)
	if len(evals) != 1 || evals[0].Step != 4 {
		t.Fatalf("%s: want one evaluation, at step 4", runtest.Types(envs))
	}
	done := runtest.Of[events.TrainingCompleted](t, runtest.Follow(t, b, run.ID, time.Minute, runtest.Ends))
	if len(done) != 1 || done[0].Steps != 4 {
		t.Fatalf("training did not complete in 4 steps: %+v", done)
	}
	store := artifactstest.Open(t, b.JetStream(), "")
	out, evalPath := t.TempDir(), filepath.Join(t.TempDir(), "eval.batches")
	if err := store.GetFiles(ctx, done[0].Files, out); err != nil {
		t.Fatal(err)
	}
	if err := store.GetFile(ctx, data.Eval, evalPath); err != nil {
		t.Fatal(err)
	}
	score := func(base model.Options) float64 {
		m, err := LoadCheckpoint(testfixtures.Path(t, "hf", "llama"), out, cpu.New(0), base)
		if err != nil {
			t.Fatal(err)
		}
		res, err := EvaluateFile(m, evalPath, GenerateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return res.Loss
	}
	nf4, f32 := score(runspec.LoadOptions(cfg)), score(model.Options{})
	if nf4 != float64(evals[0].Loss) {
		t.Fatalf("the adapter on the NF4 base scores %v; the evaluator said %v", nf4, evals[0].Loss)
	}
	if f32 == nf4 {
		t.Fatalf("the adapter scores %v on the float32 base too: the quantized base changed nothing", f32)
	}
	t.Logf("eval loss %.6f on the NF4 base, %.6f on the float32 base", nf4, f32)
}
