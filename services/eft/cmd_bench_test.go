package main

import (
	"bytes"
	"encoding/json"
	"math"
	"strings"
	"testing"

	"github.com/eftml/eft/trainer/cpu"
	"github.com/eftml/eft/trainer/model"
)

func runBenchJSON(t *testing.T, args ...string) benchResult {
	t.Helper()
	var out, errOut bytes.Buffer
	if code := run(append([]string{"bench", "--json"}, args...), strings.NewReader(""), &out, &errOut); code != 0 {
		t.Fatalf("eft bench %v: exit %d: %s", args, code, errOut.String())
	}
	var r benchResult
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatalf("eft bench --json printed %q: %v", out.String(), err)
	}
	return r
}

// TestBenchOnCPU runs eft bench on the tiny shape on this machine's CPU, as
// LoRA and as a full fine-tune, and checks its figures hang together.
func TestBenchOnCPU(t *testing.T) {
	cfg := benchShapes["tiny"]
	for _, full := range []bool{false, true} {
		args := []string{"--shape", "tiny", "--device", "cpu", "--batch", "2", "--seq", "32", "--steps", "2", "--warmup", "1", "--lora-r", "4"}
		if full {
			args = append(args, "--full")
		}
		r := runBenchJSON(t, args...)
		wantTrainable := cfg.ParamCount()
		if !full {
			// r·(in+out) per adapted linear: q, k, v, o, gate, up, down.
			qd, kvd := cfg.Heads*cfg.HeadDim, cfg.KVHeads*cfg.HeadDim
			perLayer := (cfg.Hidden + qd) + 2*(cfg.Hidden+kvd) + (qd + cfg.Hidden) + 3*(cfg.Hidden+cfg.Intermediate)
			wantTrainable = cfg.Layers * 4 * perLayer
		}
		if r.TrainableParams != wantTrainable || r.Params != cfg.ParamCount() {
			t.Errorf("full=%v: %d of %d params trainable, want %d of %d", full, r.TrainableParams, r.Params, wantTrainable, cfg.ParamCount())
		}
		if r.Device != "cpu" || r.Steps != 2 || r.StepSeconds <= 0 || r.MinStepSeconds > r.StepSeconds {
			t.Errorf("full=%v: device %q, %d steps of %v s (fastest %v)", full, r.Device, r.Steps, r.StepSeconds, r.MinStepSeconds)
		}
		if got := r.TokensPerSecond * r.StepSeconds; math.Abs(got-64) > 1e-6 {
			t.Errorf("full=%v: tokens/s × step time = %v, want the 64 tokens of a step", full, got)
		}
		// Random tokens over 512 ids: the loss starts near ln 512.
		if math.Abs(r.FinalLoss-math.Log(512)) > 0.5 {
			t.Errorf("full=%v: loss %v, want about ln 512 = %.2f", full, r.FinalLoss, math.Log(512))
		}
		if r.PeakTFLOPs <= 0 || r.MFU <= 0 || r.MFU > 1 || r.PeakMemoryBytes <= 0 {
			t.Errorf("full=%v: MFU %v of peak %v TFLOP/s, peak memory %d", full, r.MFU, r.PeakTFLOPs, r.PeakMemoryBytes)
		}
	}
}

// TestBenchQLoRA: --qlora trains the adapters over an NF4 base, which
// changes the product but not the loss's start.
func TestBenchQLoRA(t *testing.T) {
	r := runBenchJSON(t, "--shape", "tiny", "--device", "cpu", "--batch", "2", "--seq", "32", "--steps", "2", "--warmup", "1", "--lora-r", "4", "--qlora")
	if !strings.HasPrefix(r.Mode, "qlora r=4") {
		t.Errorf("mode %q, want qlora r=4", r.Mode)
	}
	if math.Abs(r.FinalLoss-math.Log(512)) > 0.5 || r.StepSeconds <= 0 {
		t.Errorf("loss %v (want about ln 512), step %v s", r.FinalLoss, r.StepSeconds)
	}
}

// TestModelFLOPsCountsTheProducts: the formula's matrix part equals 2 FLOPs
// per multiply-add of each product a step runs (forward, input gradients,
// weight gradients of trained weights), counted here from the shapes.
func TestModelFLOPsCountsTheProducts(t *testing.T) {
	c := benchShapes["tiny"]
	m, err := model.New(c, cpu.New(1), fastRandomWeights(1, 0.02))
	if err != nil {
		t.Fatal(err)
	}
	tokens, seq := 2*32, 32
	var fwd float64
	for _, lin := range m.Layers[0].Linears() {
		fwd += 2 * float64(tokens*lin.In*lin.Out)
	}
	fwd = fwd*float64(c.Layers) + 2*float64(tokens*c.Hidden*c.Vocab)
	attnFwd := float64(c.Layers) * 2 * 2 * float64(tokens) * float64(seq/2) * float64(c.Heads*c.HeadDim)
	if got, want := modelFLOPs(c, 2, seq, true, m), 3*fwd+3*attnFwd; math.Abs(got-want) > 1e-6*want {
		t.Errorf("full fine-tune: %v FLOPs, want %v", got, want)
	}
	if got, want := modelFLOPs(c, 2, seq, false, m), 2*fwd+3*attnFwd; math.Abs(got-want) > 1e-6*want {
		t.Errorf("frozen weights (no adapters): %v FLOPs, want %v", got, want)
	}
}

func TestBenchRejectsBadFlags(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--shape", "gpt-5"}, `unknown --shape "gpt-5"`},
		{[]string{"--device", "tpu"}, `--device "tpu"`},
		{[]string{"--batch", "0"}, "--batch 0"},
		{[]string{"--lora-r", "0"}, "--lora-r 0"},
		{[]string{"--qlora", "--full"}, "cannot go with --full"},
	} {
		var out, errOut bytes.Buffer
		if code := run(append([]string{"bench", "--shape", "tiny"}, c.args...), strings.NewReader(""), &out, &errOut); code == 0 || !strings.Contains(errOut.String(), c.want) {
			t.Errorf("eft bench %v: exit %d, stderr %q; want an error mentioning %q", c.args, code, errOut.String(), c.want)
		}
	}
}
