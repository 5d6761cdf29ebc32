package merger

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/eftml/eft/events"
	"github.com/eftml/eft/services/runspec/runtest"
	"github.com/eftml/eft/services/trainer"
	"github.com/eftml/eft/shared/artifacts/artifactstest"
	"github.com/eftml/eft/shared/bus/bustest"
	"github.com/eftml/eft/shared/safetensors"
	"github.com/eftml/eft/shared/testfixtures"
	"github.com/eftml/eft/trainer/cpu"
	"github.com/eftml/eft/trainer/lora"
	"github.com/eftml/eft/trainer/model"
	"github.com/eftml/eft/trainer/peft"
)

func maxAbsDiff(a, b []float32) float64 {
	var worst float64
	for i := range a {
		worst = max(worst, math.Abs(float64(a[i]-b[i])))
	}
	return worst
}

// The fixture's merged.* is PEFT's merge_and_unload of the adapter after
// its 5 AdamW steps (after5.*): an adapter directory holding those weights,
// merged by MergeDir into sharded safetensors, gives the same tensors.
func TestMergeMatchesPEFT(t *testing.T) {
	base, loraDir := testfixtures.Path(t, "hf", "llama"), testfixtures.Path(t, "hf", "llama-lora")
	ref, err := safetensors.Open(filepath.Join(loraDir, "reference.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Close()
	a, err := peft.Load(loraDir)
	if err != nil {
		t.Fatal(err)
	}
	for module, p := range a.LoRA {
		for kind, dst := range map[string]*[]float32{peft.LoraA: &p.A, peft.LoraB: &p.B} {
			v, err := ref.Float32s("after5." + peft.MemoryKey(peft.SavedKey(module, kind), peft.DefaultAdapterName))
			if err != nil {
				t.Fatal(err)
			}
			*dst = v
		}
	}
	adapterDir := filepath.Join(t.TempDir(), "after5")
	if err := a.Save(adapterDir, safetensors.F32); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "merged")
	written, err := MergeDir(base, adapterDir, base, out, MergeOptions{MaxShardSize: 400 << 10})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"model.safetensors.index.json", "model-00001-of-00003.safetensors", "config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"} {
		if !slices.Contains(written, want) {
			t.Fatalf("merged files %v lack %s", written, want)
		}
	}
	got, err := safetensors.OpenModel(out, "model")
	if err != nil {
		t.Fatal(err)
	}
	defer got.Close()
	n := 0
	for _, name := range ref.Names() {
		param, ok := strings.CutPrefix(name, "merged.")
		if !ok {
			continue
		}
		want, _ := ref.Float32s(name)
		have, err := got.Float32s(param)
		if err != nil {
			t.Fatal(err)
		}
		if d := maxAbsDiff(want, have); d > 1e-6 {
			t.Fatalf("merged %s differs from PEFT's by %g", param, d)
		}
		n++
	}
	if n == 0 || n != len(got.Names()) {
		t.Fatalf("compared %d tensors; the merged model has %d", n, len(got.Names()))
	}
}

// loadLogits runs the fixture batch through a model.
func loadLogits(t *testing.T, m *model.Model) []float32 {
	t.Helper()
	ref, err := safetensors.Open(filepath.Join(testfixtures.Path(t, "hf", "llama-lora"), "reference.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Close()
	ids, err := ref.Int64s("input_ids")
	if err != nil {
		t.Fatal(err)
	}
	b := &model.Batch{Rows: 2, Cols: len(ids) / 2, Tokens: make([]int32, len(ids))}
	for i, v := range ids {
		b.Tokens[i] = int32(v)
	}
	logits, err := m.Logits(b)
	if err != nil {
		t.Fatal(err)
	}
	return logits
}

func adapterOnBase(t *testing.T, base, adapter string) []float32 {
	t.Helper()
	m, err := model.Load(base, cpu.New(0))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lora.Load(m, adapter); err != nil {
		t.Fatal(err)
	}
	return loadLogits(t, m)
}

func mergedLogits(t *testing.T, dir string) []float32 {
	t.Helper()
	m, err := model.Load(dir, cpu.New(0))
	if err != nil {
		t.Fatal(err)
	}
	return loadLogits(t, m)
}

// A LoRA run with merge_lora: the merger answers TrainingCompleted with
// ModelMerged, a model directory whose logits equal the trained adapter
// applied to the base model.
func TestMergerServiceMergesTheTrainedAdapter(t *testing.T) {
	b, _ := bustest.New(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = trainer.New(b, trainer.Options{ScratchDir: t.TempDir()}).Run(ctx) }()
	go func() { _ = New(b, Options{ScratchDir: t.TempDir()}).Run(ctx) }()
	base := testfixtures.Path(t, "hf", "llama")
	yaml := fmt.Sprintf(`base_model: %s
adapter: lora
lora_r: 4
lora_alpha: 8
lora_target_modules: [q_proj, v_proj, down_proj]
merge_lora: true
datasets:
  - path: counting.jsonl
    type: completion
sequence_len: 32
sample_packing: true
micro_batch_size: 2
gradient_accumulation_steps: 1
max_steps: 4
learning_rate: 0.01
output_dir: ./out
`, base)
	_, cfg := runtest.Resolve(t, yaml)
	run := runtest.Submit(t, b, yaml, runtest.MakeData(t, b, cfg, 16, 0))
	envs := runtest.Follow(t, b, run.ID, 2*time.Minute, func(e events.Envelope) bool {
		return e.Type == events.TypeModelMerged || events.Terminal(e.Type)
	})
	last := envs[len(envs)-1]
	if last.Type != events.TypeModelMerged {
		t.Fatalf("run ended with %s: %s", last.Type, last.Payload)
	}
	merged, err := events.PayloadAs[events.ModelMerged](last)
	if err != nil {
		t.Fatal(err)
	}
	done := runtest.Of[events.TrainingCompleted](t, envs)[0]
	store := artifactstest.Open(t, b.JetStream(), "")
	out := t.TempDir()
	if err := store.GetFiles(ctx, done.Files, out); err != nil {
		t.Fatal(err)
	}
	mergedDir := filepath.Join(out, merged.Dir)
	if merged.Dir != MergedDir {
		t.Fatalf("merged into %q", merged.Dir)
	}
	if err := store.GetFiles(ctx, merged.Files, mergedDir); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"model.safetensors", "config.json", "tokenizer.json"} {
		if _, err := os.Stat(filepath.Join(mergedDir, f)); err != nil {
			t.Fatalf("merged model: %v", err)
		}
	}
	want := adapterOnBase(t, base, out)
	got := mergedLogits(t, mergedDir)
	if d := maxAbsDiff(want, got); d > 1e-4 {
		t.Fatalf("merged logits differ from adapter-on-base logits by %g", d)
	}
	// The adapter changed the model: the comparison is not base against base.
	if d := maxAbsDiff(mergedLogits(t, base), got); d < 1e-3 {
		t.Fatalf("the merged model's logits are the base model's (diff %g): nothing was trained or merged", d)
	}
}
