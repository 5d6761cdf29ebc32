package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/eftml/eft/events"
	"github.com/eftml/eft/shared/artifacts/artifactstest"
	"github.com/eftml/eft/shared/bus/bustest"
)

// A run whose last checkpoint is still being evaluated when training
// completes is not over: `eft train` waits for that evaluation, then writes
// trainer_state.json with the training logs and every evaluation in the HF
// Trainer's layout. Metric lines carry an ETA.
func TestTrainWaitsForEvaluationsAndWritesTrainerState(t *testing.T) {
	b, _ := bustest.New(t)
	ctx := t.Context()
	store := artifactstest.Open(t, b.JetStream(), "")
	adapter, _ := store.Put(ctx, strings.NewReader("adapter bytes"))
	batches, _ := store.Put(ctx, strings.NewReader("batches"))
	work := t.TempDir()
	cfg := "base_model: ./m\nadapter: lora\nlora_r: 8\nlora_alpha: 16\nlora_target_linear: true\nlearning_rate: 2e-4\n" +
		"micro_batch_size: 1\ngradient_accumulation_steps: 2\nmax_steps: 4\nlogging_steps: 2\nval_set_size: 0.1\neval_steps: 2\n" +
		"output_dir: ./out\ndatasets:\n  - path: d.jsonl\n    type: completion\n"
	var out bytes.Buffer
	w := newRunWatcher(b, events.RunRequested{Config: events.ConfigSource{FileName: "c.yml", YAML: cfg}, WorkDir: work}, &out)
	feed := func(p events.Payload) bool {
		t.Helper()
		env, err := events.New("r", "test", p)
		if err != nil {
			t.Fatal(err)
		}
		stop, err := w.handle(env)
		if err != nil || w.result != nil {
			t.Fatalf("%s: %v %v", env.Type, err, w.result)
		}
		return stop
	}
	ref := &batches
	steps := []events.Payload{
		events.DatasetTokenized{Train: batches, Eval: ref, Format: "f", MicroBatches: 8, SequenceLen: 8, MicroBatchSize: 1},
		events.TrainingStarted{Worker: "w", Method: "lora", TotalSteps: 4},
		events.MetricsLogged{Step: 2, Epoch: 0.5, Values: map[string]events.Metric{"loss": 2.5, "learning_rate": 1e-4, "grad_norm": 1.5, "elapsed_seconds": 10}},
		events.CheckpointSaved{Step: 2, Name: "checkpoint-2", Kind: "adapter", Files: []events.FileRef{{Path: "a", Artifact: adapter}}},
		events.EvalCompleted{Step: 2, Epoch: 0.5, Loss: 2.75, Perplexity: 15.6, StartedAt: time.Unix(100, 0), FinishedAt: time.Unix(102, 0), Samples: 4},
		events.MetricsLogged{Step: 4, Epoch: 1, Values: map[string]events.Metric{"loss": 1.25, "learning_rate": 0, "grad_norm": 0.5, "elapsed_seconds": 20}},
		events.CheckpointSaved{Step: 4, Name: "checkpoint-4", Kind: "adapter", Files: []events.FileRef{{Path: "a", Artifact: adapter}}},
		events.TrainingCompleted{Steps: 4, Epochs: 1, Kind: "adapter", RuntimeSeconds: 20, Files: []events.FileRef{{Path: "adapter_model.safetensors", Artifact: adapter}}},
	}
	for _, p := range steps {
		if feed(p) {
			t.Fatalf("the run ended at %s, before the evaluation of checkpoint-4", p.EventType())
		}
	}
	if !strings.Contains(out.String(), "step 2/4  loss 2.5000") || !strings.Contains(out.String(), "eta 10s") {
		t.Fatalf("display:\n%s", out.String())
	}
	if !feed(events.EvalCompleted{Step: 4, Epoch: 1, Loss: 1.5, Perplexity: 4.48}) {
		t.Fatal("the run did not end after the last evaluation")
	}
	data, err := os.ReadFile(filepath.Join(work, "out", "trainer_state.json"))
	if err != nil {
		t.Fatal(err)
	}
	var state struct {
		GlobalStep int              `json:"global_step"`
		MaxSteps   int              `json:"max_steps"`
		LogHistory []map[string]any `json:"log_history"`
	}
	if err := json.Unmarshal(data, &state); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range state.LogHistory {
		var keys []string
		for _, k := range []string{"loss", "eval_loss", "train_runtime"} {
			if v, ok := e[k]; ok {
				keys = append(keys, k+"="+jsonNum(v))
			}
		}
		got = append(got, jsonNum(e["step"])+":"+strings.Join(keys, ","))
	}
	want := "2:loss=2.5 2:eval_loss=2.75 4:loss=1.25 4:eval_loss=1.5 4:train_runtime=20"
	if strings.Join(got, " ") != want || state.GlobalStep != 4 || state.MaxSteps != 4 {
		t.Fatalf("trainer_state.json: %s (global %d, max %d), want %s\n%s", strings.Join(got, " "), state.GlobalStep, state.MaxSteps, want, data)
	}
	if !bytes.Contains(data, []byte(`"learning_rate": 0.0001,`)) || !bytes.Contains(data, []byte("\n  \"log_history\": [\n    {\n")) {
		t.Fatalf("not written as Python's json.dumps(indent=2, sort_keys=True):\n%s", data)
	}
}

func jsonNum(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
