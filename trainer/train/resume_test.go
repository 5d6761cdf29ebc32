package train

import (
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/eftml/eft/trainer/checkpoint"
	"github.com/eftml/eft/trainer/lora"
	"github.com/eftml/eft/trainer/model"
	"github.com/eftml/eft/trainer/optim"
)

// Everything a LoRA run needs to resume exactly is in a checkpoint: the
// adapter and modules_to_save (PEFT files), the optimizer moments, and
// dropout masks that depend only on each micro-batch's seed. Four steps in a
// row and two steps, a checkpoint, a fresh process and two more steps give
// bit-identical weights.
func TestResumeFromCheckpointIsExact(t *testing.T) {
	cfg := allLinear(4, 8, 0.1, "lm_head")
	batches := make([]*model.Batch, 4)
	r := rand.New(rand.NewPCG(6, 6))
	for i := range batches {
		batches[i] = randomBatch(r, 96, 10, 1, 4)
		batches[i].DropoutSeed = uint64(1000 + i)
	}
	newRun := func() (*model.Model, *optim.AdamW) {
		m := tinyModel(t, tinyConfig())
		opt, err := optim.NewAdamW(0.9, 0.999, 1e-8, 0.01)
		if err != nil {
			t.Fatal(err)
		}
		return m, opt
	}
	steps := func(m *model.Model, opt *optim.AdamW, from, to int) {
		tr, err := New(m, opt, 1)
		if err != nil {
			t.Fatal(err)
		}
		for i := from; i < to; i++ {
			if _, err := tr.Step([]*model.Batch{batches[i]}, 1e-2); err != nil {
				t.Fatal(err)
			}
		}
	}

	straight, opt := newRun()
	if err := lora.Attach(straight, cfg, 9); err != nil {
		t.Fatal(err)
	}
	steps(straight, opt, 0, 4)

	first, opt := newRun()
	if err := lora.Attach(first, cfg, 9); err != nil {
		t.Fatal(err)
	}
	steps(first, opt, 0, 2)
	adapter, err := lora.Export(first, cfg)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), checkpoint.Name(2))
	if err := checkpoint.Save(dir, checkpoint.Contents{Adapter: adapter, Optimizer: opt.State(), State: checkpoint.State{Step: 2}}); err != nil {
		t.Fatal(err)
	}

	resumed, opt := newRun()
	if _, err := lora.Load(resumed, dir); err != nil {
		t.Fatal(err)
	}
	loaded, err := checkpoint.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := opt.LoadState(loaded.Optimizer); err != nil {
		t.Fatal(err)
	}
	steps(resumed, opt, 2, 4)

	want, got := straight.TrainableParams(), resumed.TrainableParams()
	if len(want) != len(got) {
		t.Fatalf("%d trainable parameters after resuming, want %d", len(got), len(want))
	}
	for i := range want {
		if want[i].Name != got[i].Name {
			t.Fatalf("parameter %d is %s after resuming, want %s", i, got[i].Name, want[i].Name)
		}
		for j := range want[i].W.F32 {
			if want[i].W.F32[j] != got[i].W.F32[j] {
				t.Fatalf("%s[%d] = %v after resuming, %v without a break", want[i].Name, j, got[i].W.F32[j], want[i].W.F32[j])
			}
		}
	}
}
