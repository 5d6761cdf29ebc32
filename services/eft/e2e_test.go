package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/eftml/eft/shared/testfixtures"
)

// tinyConfig is examples/tiny/config.yml with its paths made absolute and
// output_dir in a temporary folder.
func tinyConfig(t testing.TB) (path, outDir string) {
	t.Helper()
	tiny := filepath.Join(testfixtures.Root(t), "examples", "tiny")
	data, err := os.ReadFile(filepath.Join(tiny, "config.yml"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	outDir = filepath.Join(dir, "out")
	text := strings.ReplaceAll(string(data), "examples/tiny/out", outDir)
	text = strings.ReplaceAll(text, "examples/tiny/", tiny+"/")
	path = filepath.Join(dir, "tiny.yml")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path, outDir
}

// The README's path, shortened to 8 steps: eft train runs every stage on
// the embedded server and leaves the adapter, checkpoints, the merged model
// and trainer_state.json (with the last evaluation, which comes after
// training completed) in output_dir; eft inference generates from the
// result; eft evaluate scores it exactly as the evaluator scored the last
// checkpoint.
func TestTinyExampleTrainInferenceEvaluate(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HF_HUB_OFFLINE", "1")
	cfg, outDir := tinyConfig(t)
	code, out, stderr := runCLI(t, "--home", home, "train", cfg, "--max-steps", "8", "--eval-steps", "4", "--save-steps", "4", "--logging-steps", "2")
	if code != 0 {
		t.Fatalf("eft train: exit %d\n%s\n%s", code, out, stderr)
	}
	for _, want := range []string{"training   lora on cpu", "step 2/8  loss ", "eta ", "checkpoint checkpoint-4", "eval       step 8: loss", "merged     "} {
		if !strings.Contains(out, want) {
			t.Fatalf("the display lacks %q:\n%s", want, out)
		}
	}
	for _, f := range []string{"adapter_config.json", "adapter_model.safetensors", "tokenizer.json", "trainer_state.json",
		"checkpoint-4/adapter_model.safetensors", "checkpoint-8/optimizer.safetensors", "merged/model.safetensors", "merged/config.json"} {
		if _, err := os.Stat(filepath.Join(outDir, f)); err != nil {
			t.Fatalf("output_dir: %v", err)
		}
	}
	history := logHistory(t, outDir)
	var lastEval float64
	losses := 0
	for _, e := range history {
		if _, ok := e["loss"]; ok {
			losses++
		}
		if v, ok := e["eval_loss"].(float64); ok && e["step"] == 8.0 {
			lastEval = v
		}
	}
	if losses != 4 || lastEval == 0 {
		t.Fatalf("trainer_state.json: %d loss entries (want 4), eval_loss at step 8 %v\n%v", losses, lastEval, history)
	}

	var iout, ierr bytes.Buffer
	if code := run([]string{"--home", home, "inference", cfg, "--instruct", "--max-new-tokens", "6"}, strings.NewReader("What does the cow say?\n"), &iout, &ierr); code != 0 {
		t.Fatalf("eft inference: exit %d\n%s", code, ierr.String())
	}
	if strings.TrimSpace(iout.String()) == "" {
		t.Fatalf("eft inference printed %q for one prompt", iout.String())
	}
	if !strings.Contains(ierr.String(), "with adapter "+outDir) {
		t.Fatalf("eft inference did not apply the trained adapter: %s", ierr.String())
	}

	// --chat: two user turns of one conversation, rendered with the
	// tokenizer's ChatML template, answered one line each.
	iout.Reset()
	if code := run([]string{"--home", home, "inference", cfg, "--chat", "--max-new-tokens", "4"}, strings.NewReader("Hello\nAnd then?\n"), &iout, &ierr); code != 0 {
		t.Fatalf("eft inference --chat: exit %d\n%s", code, ierr.String())
	}
	if strings.Count(iout.String(), "\n") < 2 || strings.TrimSpace(iout.String()) == "" {
		t.Fatalf("eft inference --chat printed %q for two turns", iout.String())
	}

	code, eout, estderr := runCLI(t, "--home", home, "evaluate", cfg, "--generations", "0")
	if code != 0 {
		t.Fatalf("eft evaluate: exit %d\n%s\n%s", code, eout, estderr)
	}
	m := regexp.MustCompile(`eval_loss ([0-9.]+)`).FindStringSubmatch(eout)
	if m == nil {
		t.Fatalf("eft evaluate printed no eval_loss:\n%s", eout)
	}
	got, _ := strconv.ParseFloat(m[1], 64)
	if fmt.Sprintf("%.6f", got) != fmt.Sprintf("%.6f", lastEval) {
		t.Fatalf("eft evaluate: eval_loss %v; the evaluator scored the final checkpoint %v", got, lastEval)
	}
}
