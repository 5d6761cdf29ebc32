package trainer

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/eftml/eft/events"
	"github.com/eftml/eft/services/runspec"
	"github.com/eftml/eft/services/runspec/runtest"
	"github.com/eftml/eft/shared/batches"
	"github.com/eftml/eft/shared/bus"
	"github.com/eftml/eft/shared/bus/bustest"
	"github.com/eftml/eft/shared/config"
	"github.com/eftml/eft/shared/packing"
	"github.com/eftml/eft/shared/safetensors"
	"github.com/eftml/eft/trainer/cpu"
	"github.com/eftml/eft/trainer/model"
	"github.com/eftml/eft/trainer/train"
)

// benchModelDir writes a random llama (2 layers of width 256, 4 heads of 64
// over 2 kv heads, MLP 688, vocabulary 4096: 4.2M parameters) as a Hugging
// Face model directory.
func benchModelDir(b *testing.B) string {
	dir := b.TempDir()
	cfg := map[string]any{
		"architectures": []string{"LlamaForCausalLM"}, "model_type": "llama", "hidden_size": 256, "intermediate_size": 688,
		"num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 64, "vocab_size": 4096,
		"max_position_embeddings": 2048, "rms_norm_eps": 1e-5, "hidden_act": "silu", "tie_word_embeddings": false,
		"rope_theta": 10000.0, "bos_token_id": 1, "eos_token_id": 2,
	}
	data, _ := json.Marshal(cfg)
	if err := os.WriteFile(filepath.Join(dir, "config.json"), data, 0o644); err != nil {
		b.Fatal(err)
	}
	return writeRandomWeights(b, dir)
}

// writeRandomWeights fills dir (holding config.json) with random weights.
func writeRandomWeights(b *testing.B, dir string) string {
	h, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		b.Fatal(err)
	}
	var raw struct {
		Hidden, Inter, Layers, Heads, KV, HeadDim, Vocab int
	}
	var m map[string]any
	_ = json.Unmarshal(h, &m)
	raw.Hidden, raw.Inter, raw.Layers = int(m["hidden_size"].(float64)), int(m["intermediate_size"].(float64)), int(m["num_hidden_layers"].(float64))
	raw.Heads, raw.KV, raw.HeadDim, raw.Vocab = int(m["num_attention_heads"].(float64)), int(m["num_key_value_heads"].(float64)), int(m["head_dim"].(float64)), int(m["vocab_size"].(float64))
	c := model.Config{
		Arch: "llama", Vocab: raw.Vocab, Hidden: raw.Hidden, Intermediate: raw.Inter, Layers: raw.Layers, Heads: raw.Heads,
		KVHeads: raw.KV, HeadDim: raw.HeadDim, NormEps: 1e-5, LayerWindow: make([]int, raw.Layers), MaxPositions: 2048,
		Rope: model.RopeParams{Type: "default", Theta: 10000},
	}
	rm, err := model.NewRandom(c, cpu.New(0), 1, 0.02)
	if err != nil {
		b.Fatal(err)
	}
	tensors, err := rm.StateDict(safetensors.F32)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := safetensors.WriteModel(dir, "model", tensors, map[string]string{"format": "pt"}, 0); err != nil {
		b.Fatal(err)
	}
	return dir
}

// BenchmarkTrainerOverBus compares the trainer service's throughput (a
// TrainJob on the embedded bus, a MetricsLogged published every step) with
// the engine's bare optimizer step on the same model, batches, order and
// schedule: what the bus, the events and the loop around the step cost.
// Steps 2..N are timed on both sides (step 1 sizes the buffers); each side
// runs three times, alternating, and keeps its best, so that the load of a
// shared machine weighs on both alike.
//
//	go test -run '^$' -bench TrainerOverBus -benchtime 1x ./services/trainer
func BenchmarkTrainerOverBus(b *testing.B) {
	const steps = 40
	dir := benchModelDir(b)
	yaml := fmt.Sprintf(`base_model: %s
adapter: lora
lora_r: 16
lora_alpha: 32
lora_target_linear: true
datasets:
  - path: bench.jsonl
    type: completion
sequence_len: 128
sample_packing: true
micro_batch_size: 4
gradient_accumulation_steps: 1
max_steps: %d
learning_rate: 0.001
logging_steps: 1
save_strategy: "no"
output_dir: ./out
`, dir, steps)
	bs, _ := bustest.New(b)
	_, cfg := runtest.Resolve(b, yaml)
	samples := runtest.CountingSamples(1, 640, 128, 4096)
	ref, n := runtest.StoreBatches(b, bs, samples, packing.Options{SequenceLen: 128, MicroBatchSize: 4, Pack: true, Seed: uint64(cfg.Seed)})
	mbs, _, _ := packing.Build(samples, packing.Options{SequenceLen: 128, MicroBatchSize: 4, Pack: true, Seed: uint64(cfg.Seed)})
	stop := startTrainer(b, bs, Options{})
	defer stop()
	for range b.N {
		var bestBare, bestService float64
		for range 3 {
			bare, service := benchRound(b, bs, cfg, yaml, dir, ref, n, mbs, len(samples), steps)
			bestBare, bestService = max(bestBare, bare), max(bestService, service)
		}
		b.ReportMetric(bestBare, "bare-tokens/s")
		b.ReportMetric(bestService, "service-tokens/s")
		b.ReportMetric(100*(1-bestService/bestBare), "overhead-%")
	}
}

func benchRound(b *testing.B, bs *bus.Bus, cfg *config.Config, yaml, dir string, ref events.ArtifactRef, n int, mbs []packing.MicroBatch, nSamples, steps int) (bare, service float64) {
	{
		// Bare: the engine's step in a loop.
		built, err := runspec.Resolver{}.Build(cfg, dir, "", cpu.New(0))
		if err != nil {
			b.Fatal(err)
		}
		opt, _, _ := runspec.NewOptimizer(cfg)
		plan, _ := runspec.NewSteps(cfg, n)
		sched, _ := runspec.NewSchedule(cfg, plan)
		tr, err := train.New(built.Model, opt, cfg.MaxGradNorm)
		if err != nil {
			b.Fatal(err)
		}
		order, _ := batches.Plan{N: n, Seed: uint64(cfg.Seed)}.Epoch(0)
		var bareStart time.Time
		tokens := 0
		for s := range steps {
			if s == 1 {
				bareStart = time.Now()
			}
			mb := mbs[order[s]]
			if _, err := tr.Step([]*model.Batch{train.FromPacked(&mb, dropoutSeed(uint64(cfg.Seed), 0, s))}, sched.LR(s)); err != nil {
				b.Fatal(err)
			}
			if s >= 1 {
				for _, l := range mb.RowLengths {
					tokens += int(l)
				}
			}
		}
		bare = float64(tokens) / time.Since(bareStart).Seconds()

		// The service: the same run as a job on the bus.
		run := runtest.Submit(b, bs, yaml, runtest.Data{Train: ref, TrainN: n, SequenceLen: 128, MicroBatchSize: 4, TrainedSamples: nSamples})
		envs := runtest.Follow(b, bs, run.ID, 10*time.Minute, runtest.Ends)
		var first, last time.Time
		for _, e := range envs {
			if e.Type != events.TypeMetricsLogged {
				continue
			}
			m, _ := events.PayloadAs[events.MetricsLogged](e)
			switch m.Step {
			case 1:
				first = e.Time
			case int64(steps):
				last = e.Time
			}
		}
		if first.IsZero() || last.IsZero() {
			b.Fatalf("the run logged no steps 1 and %d: %v", steps, runtest.Types(envs))
		}
		service = float64(tokens) / last.Sub(first).Seconds()
	}
	return bare, service
}
