package trainer

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/eftml/eft/events"
	"github.com/eftml/eft/services/runspec/runtest"
	"github.com/eftml/eft/shared/artifacts/artifactstest"
	"github.com/eftml/eft/shared/bus/bustest"
	"github.com/eftml/eft/shared/safetensors"
	"github.com/eftml/eft/shared/testfixtures"
)

// bf16Copy is the llama fixture with its weights stored in bf16, as most
// published models are.
func bf16Copy(t *testing.T) string {
	t.Helper()
	src := testfixtures.Path(t, "hf", "llama")
	dir := t.TempDir()
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.IsDir() || e.Name() == "model.safetensors" || e.Name() == "reference.safetensors" {
			continue
		}
		data, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, e.Name()), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	f, err := safetensors.Open(filepath.Join(src, "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var tensors []safetensors.NamedTensor
	for _, name := range f.Names() {
		vals, err := f.Float32s(name)
		if err != nil {
			t.Fatal(err)
		}
		info, _ := f.Info(name)
		bt, err := safetensors.FromFloat32(safetensors.BF16, info.Shape, vals)
		if err != nil {
			t.Fatal(err)
		}
		tensors = append(tensors, safetensors.NamedTensor{Name: name, Tensor: bt})
	}
	if err := safetensors.WriteFile(filepath.Join(dir, "model.safetensors"), tensors, map[string]string{"format": "pt"}); err != nil {
		t.Fatal(err)
	}
	return dir
}

// A full fine-tune (no adapter) through the trainer service: it learns,
// its checkpoints hold float32 weights (so resuming is exact), and its
// output model.safetensors is in the base's dtype (bf16 here) with every
// base tensor, beside the base's config.json, as the HF Trainer saves a
// model loaded in bf16.
func TestFullFineTuneOutputsTheBaseDType(t *testing.T) {
	base := bf16Copy(t)
	b, _ := bustest.New(t)
	startTrainer(t, b, Options{})
	yaml := fmt.Sprintf(`base_model: %s
datasets:
  - path: counting.jsonl
    type: completion
sequence_len: 32
sample_packing: true
micro_batch_size: 2
gradient_accumulation_steps: 1
num_epochs: 2
learning_rate: 0.01
logging_steps: 1
save_steps: 4
output_dir: ./out
seed: 7
`, base)
	_, cfg := runtest.Resolve(t, yaml)
	data := runtest.MakeData(t, b, cfg, 16, 0)
	run := runtest.Submit(t, b, yaml, data)
	envs := runtest.Follow(t, b, run.ID, 2*time.Minute, runtest.Ends)
	last := envs[len(envs)-1]
	if last.Type != events.TypeTrainingCompleted {
		t.Fatalf("run ended with %s: %s", last.Type, last.Payload)
	}
	started := runtest.Of[events.TrainingStarted](t, envs)[0]
	if started.Method != "full" {
		t.Fatalf("TrainingStarted %+v", started)
	}
	byStep := metricsByStep(t, envs)
	first, final := float64(byStep[1][0].Values["loss"]), float64(byStep[started.TotalSteps][0].Values["loss"])
	t.Logf("loss %v -> %v over %d steps", first, final, started.TotalSteps)
	if !(final < 0.9*first) {
		t.Fatalf("loss %v -> %v: the run did not learn", first, final)
	}
	done := runtest.Of[events.TrainingCompleted](t, envs)[0]
	if done.Kind != "full" {
		t.Fatalf("TrainingCompleted %+v", done)
	}
	out := t.TempDir()
	want := map[string]bool{"model.safetensors": false, "config.json": false, "checkpoint-4/model.safetensors": false}
	for _, f := range done.Files {
		if _, ok := want[f.Path]; !ok {
			continue
		}
		want[f.Path] = true
		st := artifactstest.Open(t, b.JetStream(), f.Artifact.Bucket)
		if err := st.GetFiles(t.Context(), []events.FileRef{f}, out); err != nil {
			t.Fatal(err)
		}
	}
	for path, seen := range want {
		if !seen {
			t.Fatalf("outputs lack %s: %+v", path, done.Files)
		}
	}
	baseFile, err := safetensors.Open(filepath.Join(base, "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer baseFile.Close()
	for path, dtype := range map[string]safetensors.DType{"model.safetensors": safetensors.BF16, "checkpoint-4/model.safetensors": safetensors.F32} {
		f, err := safetensors.Open(filepath.Join(out, path))
		if err != nil {
			t.Fatal(err)
		}
		changed := 0
		for _, name := range baseFile.Names() {
			info, ok := f.Info(name)
			if !ok || info.DType != dtype {
				t.Fatalf("%s: %s is %+v (present %v), want %s", path, name, info, ok, dtype)
			}
			got, _ := f.Float32s(name)
			was, _ := baseFile.Float32s(name)
			for i := range got {
				if got[i] != was[i] {
					changed++
					break
				}
			}
		}
		f.Close()
		if changed < len(baseFile.Names())/2 {
			t.Errorf("%s: only %d of %d tensors differ from the base: were the weights trained?", path, changed, len(baseFile.Names()))
		}
	}
}
