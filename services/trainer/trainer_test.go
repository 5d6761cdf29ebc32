package trainer

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eftml/eft/events"
	"github.com/eftml/eft/services/runspec/runtest"
	"github.com/eftml/eft/shared/bus"
	"github.com/eftml/eft/shared/bus/bustest"
	"github.com/eftml/eft/shared/testfixtures"
)

// loraConfig is a LoRA run on the llama fixture: 48 counting samples packed
// into 32-token rows, 2 rows a micro-batch, 2 micro-batches a step.
func loraConfig(t testing.TB, extra string) string {
	return fmt.Sprintf(`base_model: %s
adapter: lora
lora_r: 8
lora_alpha: 16
lora_dropout: 0.1
lora_target_linear: true
datasets:
  - path: counting.jsonl
    type: completion
val_set_size: 0.1
sequence_len: 32
sample_packing: true
micro_batch_size: 2
gradient_accumulation_steps: 2
num_epochs: 2
learning_rate: 0.01
lr_scheduler: cosine
warmup_steps: 2
logging_steps: 1
save_steps: 4
eval_steps: 4
save_total_limit: 2
output_dir: ./out
seed: 7
%s`, testfixtures.Path(t, "hf", "llama"), extra)
}

// startTrainer runs a trainer in this process until the returned stop (or
// the test's end).
func startTrainer(t testing.TB, b *bus.Bus, opts Options) (stop func()) {
	t.Helper()
	if opts.ScratchDir == "" {
		opts.ScratchDir = t.TempDir()
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- New(b, opts).Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("trainer: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func metricsByStep(t testing.TB, envs []events.Envelope) map[int64][]events.MetricsLogged {
	out := map[int64][]events.MetricsLogged{}
	for _, m := range runtest.Of[events.MetricsLogged](t, envs) {
		out[m.Step] = append(out[m.Step], m)
	}
	return out
}

// A LoRA run goes from the job to TrainingCompleted: every step logged once
// with the metrics the display needs, the loss falls, checkpoints at the
// save/eval steps, and the outputs in output_dir's layout.
func TestLoRARunPublishesItsLifecycle(t *testing.T) {
	b, _ := bustest.New(t)
	startTrainer(t, b, Options{})
	yaml := loraConfig(t, "")
	_, cfg := runtest.Resolve(t, yaml)
	data := runtest.MakeData(t, b, cfg, 48, 8)
	run := runtest.Submit(t, b, yaml, data)
	envs := runtest.Follow(t, b, run.ID, 2*time.Minute, runtest.Ends)

	last := envs[len(envs)-1]
	if last.Type != events.TypeTrainingCompleted {
		t.Fatalf("run ended with %s: %s", last.Type, last.Payload)
	}
	started := runtest.Of[events.TrainingStarted](t, envs)
	if len(started) != 1 || started[0].Method != "lora" || started[0].ResumedFromStep != 0 || started[0].TrainableParams == 0 {
		t.Fatalf("TrainingStarted %+v", started)
	}
	total := started[0].TotalSteps
	if want := int64(2 * (data.TrainN / 2)); total != want {
		t.Fatalf("total steps %d, want %d (2 epochs of %d micro-batches, 2 per step)", total, want, data.TrainN)
	}
	byStep := metricsByStep(t, envs)
	for s := int64(1); s <= total; s++ {
		ms := byStep[s]
		if len(ms) != 1 {
			t.Fatalf("step %d logged %d times", s, len(ms))
		}
		for _, name := range []string{"loss", "learning_rate", "grad_norm", "tokens_per_second", "elapsed_seconds", "memory_bytes"} {
			if _, ok := ms[0].Values[name]; !ok {
				t.Fatalf("step %d has no %s: %v", s, name, ms[0].Values)
			}
		}
	}
	first, final := float64(byStep[1][0].Values["loss"]), float64(byStep[total][0].Values["loss"])
	t.Logf("loss %v -> %v over %d steps", first, final, total)
	if !(final < 0.9*first) {
		t.Fatalf("loss %v -> %v: the run did not learn", first, final)
	}
	var ckpts []int64
	for _, c := range runtest.Of[events.CheckpointSaved](t, envs) {
		ckpts = append(ckpts, c.Step)
		if c.Kind != "adapter" || c.Name != fmt.Sprintf("checkpoint-%d", c.Step) {
			t.Fatalf("checkpoint %+v", c)
		}
	}
	var wantCkpts []int64
	for s := int64(4); s <= total; s += 4 {
		wantCkpts = append(wantCkpts, s)
	}
	if total%4 != 0 {
		wantCkpts = append(wantCkpts, total)
	}
	if !slices.Equal(ckpts, wantCkpts) {
		t.Fatalf("checkpoints at %v, want %v", ckpts, wantCkpts)
	}
	done := runtest.Of[events.TrainingCompleted](t, envs)[0]
	var paths []string
	for _, f := range done.Files {
		paths = append(paths, f.Path)
	}
	for _, want := range []string{"adapter_config.json", "adapter_model.safetensors", "tokenizer.json", "trainer_state.json",
		fmt.Sprintf("checkpoint-%d/adapter_model.safetensors", wantCkpts[len(wantCkpts)-1]),
		fmt.Sprintf("checkpoint-%d/trainer_state.json", wantCkpts[len(wantCkpts)-2])} {
		if !slices.Contains(paths, want) {
			t.Fatalf("outputs lack %s: %v", want, paths)
		}
	}
	for _, p := range paths { // save_total_limit 2
		if strings.HasPrefix(p, "checkpoint-") && !strings.HasPrefix(p, fmt.Sprintf("checkpoint-%d/", wantCkpts[len(wantCkpts)-1])) &&
			!strings.HasPrefix(p, fmt.Sprintf("checkpoint-%d/", wantCkpts[len(wantCkpts)-2])) {
			t.Fatalf("output %s is beyond save_total_limit 2", p)
		}
	}
	if done.Steps != total || done.Kind != "adapter" || float64(done.FinalLoss) != float64(byStep[total][0].Values["loss"]) {
		t.Fatalf("TrainingCompleted %+v", done)
	}
}

// What cannot be trained fails the run with the reason, and the job (with
// a data-parallel run's seats) is done, not retried: a missing base model
// at once, a world_size 2 run with one trainer when the rendezvous times out.
func TestUntrainableConfigFailsTheRun(t *testing.T) {
	b, _ := bustest.New(t)
	startTrainer(t, b, Options{RendezvousTimeout: time.Second})
	base := loraConfig(t, "")
	for name, yaml := range map[string]string{
		"data parallel": base + "world_size: 2\n",
		"no base":       strings.Replace(base, testfixtures.Path(t, "hf", "llama"), "/nonexistent/model", 1),
	} {
		_, cfg := runtest.Resolve(t, yaml)
		run := runtest.Submit(t, b, yaml, runtest.MakeData(t, b, cfg, 8, 0))
		envs := runtest.Follow(t, b, run.ID, time.Minute, runtest.Ends)
		failed := runtest.Of[events.RunFailed](t, envs)
		want := map[string]string{"data parallel": "world_size 2 needs 2 trainers of the default pool free at once; they did not all arrive within 1s: rendezvous: 1 of 2 ranks", "no base": "/nonexistent/model"}[name]
		if len(failed) != 1 || failed[0].Stage != events.StageTrain || !strings.Contains(failed[0].Error, want) {
			t.Fatalf("%s: %s, want RunFailed at stage train naming %q", name, runtest.Types(envs), want)
		}
	}
	// Both jobs were acked: the work queue is empty.
	jobsQueueDrains(t, b)
}

// RunCancelled stops the run before its next step: no more steps, no
// checkpoint, no TrainingCompleted, and the job leaves the queue.
func TestCancelStopsAtTheNextStep(t *testing.T) {
	b, _ := bustest.New(t)
	var runID string
	var mu sync.Mutex
	startTrainer(t, b, Options{AfterStep: func(done int) {
		if done == 2 {
			mu.Lock()
			id := runID
			mu.Unlock()
			if _, err := b.PublishNew(context.Background(), id, "test", events.RunCancelled{Reason: "test"}); err != nil {
				t.Error(err)
			}
		}
		time.Sleep(50 * time.Millisecond) // the cancel arrives well before the next step ends
	}})
	yaml := loraConfig(t, "")
	_, cfg := runtest.Resolve(t, yaml)
	data := runtest.MakeData(t, b, cfg, 48, 0)
	mu.Lock()
	run := runtest.Submit(t, b, yaml, data)
	runID = run.ID
	mu.Unlock()
	runtest.Follow(t, b, run.ID, time.Minute, func(e events.Envelope) bool { return e.Type == events.TypeRunCancelled })
	time.Sleep(500 * time.Millisecond) // what a trainer that ignored the cancel would publish by now
	envs := runtest.All(t, b, run.ID)
	last := int64(0)
	for _, e := range envs {
		if e.Type == events.TypeTrainingCompleted || e.Type == events.TypeCheckpointSaved {
			t.Fatalf("a cancelled run published %s", e.Type)
		}
	}
	for _, m := range runtest.Of[events.MetricsLogged](t, envs) {
		last = max(last, m.Step)
	}
	if last < 2 || last > 3 {
		t.Fatalf("steps logged up to %d after a cancel at step 2", last)
	}
}
