package main

import (
	"math"
	"regexp"
	"strings"
	"testing"
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
