package main

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/eftml/eft/trainer/cuda"
)

// --device is checked before anything starts: an unknown device, and cuda
// on a machine without a usable GPU, end the command with the reason (eft
// train, serve, inference, evaluate).
func TestTrainDeviceFlagIsChecked(t *testing.T) {
	cfg, _ := tinyConfig(t)
	home := t.TempDir()
	code, _, stderr := runCLI(t, "--home", home, "train", cfg, "--device", "gpu")
	if code != 1 || !strings.Contains(stderr, `device "gpu": use auto, cpu or cuda`) {
		t.Fatalf("--device gpu: exit %d, %s", code, stderr)
	}
	code, _, stderr = runCLI(t, "--home", home, "serve", "trainer", "--device", "tpu")
	if code != 1 || !strings.Contains(stderr, `device "tpu"`) {
		t.Fatalf("serve --device tpu: exit %d, %s", code, stderr)
	}
	for _, cmd := range []string{"inference", "evaluate"} {
		code, _, stderr = runCLI(t, "--home", home, cmd, cfg, "--device", "tpu")
		if code != 1 || !strings.Contains(stderr, `device "tpu"`) {
			t.Fatalf("%s --device tpu: exit %d, %s", cmd, code, stderr)
		}
	}
	if cuda.Available() == nil {
		return // a GPU machine: cuda is a fine choice there
	}
	code, _, stderr = runCLI(t, "--home", home, "inference", cfg, "--device", "cuda")
	if code != 1 || !strings.Contains(stderr, "inference: --device cuda: cuda:") {
		t.Fatalf("inference --device cuda without a GPU: exit %d, %s", code, stderr)
	}
	code, _, stderr = runCLI(t, "--home", home, "train", cfg, "--device", "cuda")
	if code != 1 || !strings.Contains(stderr, "--device cuda: no usable GPU: cuda:") {
		t.Fatalf("--device cuda without a GPU: exit %d, %s", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(home, "nats")); err == nil {
		t.Fatalf("--device cuda without a GPU started the embedded server before refusing")
	}
}

// tinyLosses trains the tiny example for steps steps on device and returns
// the loss of every step and the evaluation loss at the last one, read from
// the trainer_state.json eft train writes.
func tinyLosses(t *testing.T, device string, steps int) (losses []float64, evalLoss float64, display string) {
	t.Helper()
	cfg, outDir := tinyConfig(t)
	code, out, stderr := runCLI(t, "--home", t.TempDir(), "train", cfg, "--device", device,
		"--max-steps", strconv.Itoa(steps), "--logging-steps", "1", "--eval-steps", strconv.Itoa(steps), "--save-steps", strconv.Itoa(steps), "--merge-lora", "false")
	if code != 0 {
		t.Fatalf("eft train --device %s: exit %d\n%s\n%s", device, code, out, stderr)
	}
	losses = readLosses(t, outDir, steps)
	evalLoss = readEvalLoss(t, outDir)
	return losses, evalLoss, out
}

// logHistory is trainer_state.json's log_history in outDir.
func logHistory(t *testing.T, outDir string) []map[string]any {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(outDir, "trainer_state.json"))
	if err != nil {
		t.Fatal(err)
	}
	var state struct {
		LogHistory []map[string]any `json:"log_history"`
	}
	if err := json.Unmarshal(data, &state); err != nil {
		t.Fatal(err)
	}
	return state.LogHistory
}

// readLosses is every logged training loss in outDir's trainer_state.json;
// it fails the test unless there are steps of them.
func readLosses(t *testing.T, outDir string, steps int) []float64 {
	t.Helper()
	var losses []float64
	for _, e := range logHistory(t, outDir) {
		if v, ok := e["loss"].(float64); ok {
			losses = append(losses, v)
		}
	}
	if len(losses) != steps {
		t.Fatalf("trainer_state.json holds %d losses, want %d", len(losses), steps)
	}
	return losses
}

// readEvalLoss is the last eval_loss in outDir's trainer_state.json.
func readEvalLoss(t *testing.T, outDir string) float64 {
	t.Helper()
	var last float64
	for _, e := range logHistory(t, outDir) {
		if v, ok := e["eval_loss"].(float64); ok {
			last = v
		}
	}
	if last == 0 {
		t.Fatal("trainer_state.json holds no eval_loss")
	}
	return last
}

// TestTinyExampleTrainsOnCUDA trains examples/tiny for 8 steps through eft
// train with --device cpu and with --device cuda (bf16 products, frozen
// weights stored in bf16, the device AdamW): every step's loss and the
// evaluator's loss of the final adapter agree within 2e-2 relative, the
// tolerance trainer/cuda's TestLossCurveMatchesCPU holds bf16 to. It skips
// without a usable GPU; on a GPU machine run its test binary (built here
// with CGO_ENABLED=0 go test -c ./services/eft) from services/eft.
func TestTinyExampleTrainsOnCUDA(t *testing.T) {
	if err := cuda.Available(); err != nil {
		t.Skipf("no usable GPU: %v", err)
	}
	t.Setenv("HF_HUB_OFFLINE", "1")
	const steps, tol = 8, 2e-2
	want, wantEval, _ := tinyLosses(t, "cpu", steps)
	got, gotEval, display := tinyLosses(t, "cuda", steps)
	if !strings.Contains(display, "training   lora on cuda:0 bf16") {
		t.Fatalf("TrainingStarted does not say the run trains on cuda:0 in bf16:\n%s", display)
	}
	for i := range want {
		if d := math.Abs(got[i] - want[i]); d > tol*want[i] {
			t.Errorf("step %d: loss %.5f on cuda, %.5f on the cpu (|diff| %.2g > %.0e relative)", i+1, got[i], want[i], d, tol)
		}
	}
	if d := math.Abs(gotEval - wantEval); d > tol*wantEval {
		t.Errorf("eval_loss of the final adapter: %.5f trained on cuda, %.5f on the cpu", gotEval, wantEval)
	}
	t.Logf("losses cuda %.4f\n       cpu  %.4f\neval_loss cuda %.5f cpu %.5f", got, want, gotEval, wantEval)
}
