package main

import (
	"math"
	"regexp"
	"strings"
	"testing"

	"github.com/eftml/eft/trainer/cuda"
)

// eft train with world_size 2 runs both ranks in this process (data
// parallel over the embedded server): the tiny example trains 6 steps of
// one micro-batch per rank as one trainer accumulating two
// (gradient_accumulation_steps 2): the same losses, step for step, to
// float32 reduction order (1e-5 relative; seen: 2e-7).
func TestTrainRunsADataParallelConfigInOneProcess(t *testing.T) {
	t.Setenv("HF_HUB_OFFLINE", "1")
	losses := func(extra ...string) ([]float64, string) {
		cfg, outDir := tinyConfig(t)
		args := append([]string{"--home", t.TempDir(), "train", cfg, "--device", "cpu", "--max-steps", "6", "--logging-steps", "1",
			"--eval-steps", "6", "--save-steps", "6", "--merge-lora", "false"}, extra...)
		code, out, stderr := runCLI(t, args...)
		if code != 0 {
			t.Fatalf("eft train %s: exit %d\n%s\n%s", strings.Join(extra, " "), code, out, stderr)
		}
		return readLosses(t, outDir, 6), out
	}
	want, _ := losses("--gradient-accumulation-steps", "2")
	got, display := losses("--world-size", "2")
	if !regexp.MustCompile(`training   lora on cpu by \S+/[01],\S+/[01], 6 steps`).MatchString(display) {
		t.Fatalf("the display does not name both ranks' trainers:\n%s", display)
	}
	worst := 0.0
	for i := range want {
		d := math.Abs(got[i]-want[i]) / want[i]
		worst = max(worst, d)
		if d > 1e-5 {
			t.Fatalf("step %d: loss %v on 2 ranks, %v on one trainer accumulating 2\n2 ranks: %v\none:     %v", i+1, got[i], want[i], got, want)
		}
	}
	t.Logf("losses %.4f, within %.2g of one trainer", got, worst)
}

// TestDataParallelOnCUDA is the same on the GPU: two ranks in this process
// on one GPU (so they sum device gradients over NATS: NCCL refuses two
// ranks on one device) against one trainer accumulating 2 on the same GPU,
// within 1e-3 relative (the host sums group the float32 additions
// differently; bf16 products are the same on both). It skips without a GPU.
func TestDataParallelOnCUDA(t *testing.T) {
	if err := cuda.Available(); err != nil {
		t.Skipf("no usable GPU: %v", err)
	}
	t.Setenv("HF_HUB_OFFLINE", "1")
	run := func(extra ...string) []float64 {
		cfg, outDir := tinyConfig(t)
		args := append([]string{"--home", t.TempDir(), "train", cfg, "--device", "cuda", "--max-steps", "6", "--logging-steps", "1",
			"--eval-steps", "6", "--save-steps", "6", "--merge-lora", "false"}, extra...)
		code, out, stderr := runCLI(t, args...)
		if code != 0 {
			t.Fatalf("eft train %s: exit %d\n%s\n%s", strings.Join(extra, " "), code, out, stderr)
		}
		return readLosses(t, outDir, 6)
	}
	want := run("--gradient-accumulation-steps", "2")
	got := run("--world-size", "2")
	for i := range want {
		if d := math.Abs(got[i]-want[i]) / want[i]; d > 1e-3 {
			t.Errorf("step %d: loss %.6f on 2 ranks, %.6f on one trainer accumulating 2", i+1, got[i], want[i])
		}
	}
	t.Logf("losses 2 ranks %.5f\n       one     %.5f", got, want)
}
