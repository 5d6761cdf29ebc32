package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/eftml/eft/events"
	"github.com/eftml/eft/shared/artifacts/artifactstest"
	"github.com/eftml/eft/shared/bus/bustest"
)

// The end of a successful run: TrainingCompleted's files land in output_dir,
// and with merge_lora the run ends only after ModelMerged's files do too.
func TestRunWatcherCopiesOutputs(t *testing.T) {
	b, _ := bustest.New(t)
	ctx := t.Context()
	store := artifactstest.Open(t, b.JetStream(), "")
	adapter, _ := store.Put(ctx, strings.NewReader("adapter bytes"))
	merged, _ := store.Put(ctx, strings.NewReader("merged bytes"))
	work := t.TempDir()
	cfg := "base_model: ./m\nadapter: lora\nlora_r: 8\nlora_alpha: 16\nlora_target_linear: true\nmerge_lora: true\nlearning_rate: 2e-4\nmicro_batch_size: 1\ngradient_accumulation_steps: 1\noutput_dir: ./out\ndatasets:\n  - path: d.jsonl\n    type: completion\n"
	var out bytes.Buffer
	w := newRunWatcher(b, events.RunRequested{Config: events.ConfigSource{FileName: "c.yml", YAML: cfg}, WorkDir: work}, &out)
	if !w.outputs.merge || w.outputDir != filepath.Join(work, "out") {
		t.Fatalf("watcher merge=%v outputDir=%q (config parse failed?)", w.outputs.merge, w.outputDir)
	}
	done, _ := events.New("r", "trainer", events.TrainingCompleted{Steps: 5, Kind: "adapter", Files: []events.FileRef{{Path: "adapter_model.safetensors", Artifact: adapter}}})
	if stop, err := w.handle(done); err != nil || stop {
		t.Fatalf("after TrainingCompleted with merge_lora: stop=%v err=%v", stop, err)
	}
	mergedEnv, _ := events.New("r", "merger", events.ModelMerged{Dir: "merged", Files: []events.FileRef{{Path: "model.safetensors", Artifact: merged}}})
	if stop, err := w.handle(mergedEnv); err != nil || !stop || w.result != nil {
		t.Fatalf("after ModelMerged: stop=%v err=%v result=%v", stop, err, w.result)
	}
	for path, want := range map[string]string{"out/adapter_model.safetensors": "adapter bytes", "out/merged/model.safetensors": "merged bytes"} {
		got, err := os.ReadFile(filepath.Join(work, path))
		if err != nil || string(got) != want {
			t.Fatalf("%s: %q %v", path, got, err)
		}
	}
	if !strings.Contains(out.String(), "completed  5 steps") || !strings.Contains(out.String(), "wrote 1 files to") {
		t.Fatalf("display:\n%s", out.String())
	}
}
