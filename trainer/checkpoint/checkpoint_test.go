package checkpoint

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/eftml/eft/shared/hfmodel"
	"github.com/eftml/eft/shared/safetensors"
	"github.com/eftml/eft/shared/testfixtures"
	"github.com/eftml/eft/trainer/optim"
	"github.com/eftml/eft/trainer/peft"
	"github.com/eftml/eft/trainer/schedule"
)

// adapterRun loads the llama-lora fixture as trainable parameters with an
// AdamW that has taken a few steps on made-up gradients.
func adapterRun(t *testing.T, steps int) (*peft.Adapter, []*optim.Param, *optim.AdamW) {
	t.Helper()
	a, err := peft.Load(testfixtures.Path(t, "hf", "llama-lora"))
	if err != nil {
		t.Fatal(err)
	}
	var params []*optim.Param
	for _, module := range sortedKeys(a.LoRA) {
		p := a.LoRA[module]
		params = append(params,
			&optim.Param{Name: module + ".lora_A", Data: p.A, Grad: make([]float32, len(p.A))},
			&optim.Param{Name: module + ".lora_B", Data: p.B, Grad: make([]float32, len(p.B))})
	}
	o, _ := optim.NewAdamW(0.9, 0.999, 1e-8, 0.01)
	rng := rand.New(rand.NewPCG(1, 2))
	for range steps {
		stepWith(params, o, rng)
	}
	return a, params, o
}

func stepWith(params []*optim.Param, o optim.Optimizer, rng *rand.Rand) {
	for _, p := range params {
		for i := range p.Grad {
			p.Grad[i] = float32(rng.NormFloat64() * 0.01)
		}
	}
	o.Step(params, 1e-3)
}

func TestAdapterCheckpointResumesExactly(t *testing.T) {
	a, params, o := adapterRun(t, 3)
	sched, _ := schedule.New(schedule.Cosine, 1e-3, 2, 10, schedule.Options{})
	src := rand.NewPCG(7, 9)
	rng := rand.New(src)
	rng.Uint64() // advance the stream
	rngState, _ := src.MarshalBinary()
	out := t.TempDir()
	dir := filepath.Join(out, Name(3))
	state := State{Step: 3, Epoch: 0.75, Schedule: sched, RNG: map[string][]byte{"dropout": rngState},
		Data:      DataPosition{Epoch: 0, NextBatch: 3, Seed: 42, SamplesSeen: 12, TokensSeen: 4096},
		Optimizer: OptimizerInfo{Hyper: map[string]float64{"beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.01}},
		Extra:     map[string]json.RawMessage{"best_metric": json.RawMessage(`1.25`)}}
	if err := Save(dir, Contents{Adapter: a, Optimizer: o.State(), State: state}); err != nil {
		t.Fatal(err)
	}
	// The checkpoint is a PEFT adapter directory; its config is PEFT's file.
	got, _ := os.ReadFile(filepath.Join(dir, peft.ConfigFile))
	want, _ := os.ReadFile(testfixtures.Path(t, "hf", "llama-lora", peft.ConfigFile))
	if !bytes.Equal(got, want) {
		t.Error("checkpoint adapter_config.json differs from PEFT's")
	}

	// The uninterrupted run takes two more steps...
	wantRNG := rng.Uint64()
	stepRNG := rand.New(rand.NewPCG(5, 5))
	stepWith(params, o, stepRNG)
	stepWith(params, o, stepRNG)

	// ...and so must the resumed one, from the files alone.
	l, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if l.State.Step != 3 || l.State.Epoch != 0.75 || l.State.Data.NextBatch != 3 || l.State.Data.TokensSeen != 4096 ||
		l.State.Schedule.LR(5) != sched.LR(5) || string(l.State.Extra["best_metric"]) != "1.25" || l.State.Optimizer.Hyper["eps"] != 1e-8 {
		t.Errorf("state came back as %+v", l.State)
	}
	restored := rand.NewPCG(0, 0)
	if err := restored.UnmarshalBinary(l.State.RNG["dropout"]); err != nil || rand.New(restored).Uint64() != wantRNG {
		t.Errorf("RNG stream not restored: %v", err)
	}
	a2, err := peft.Load(l.Dir)
	if err != nil {
		t.Fatal(err)
	}
	var params2 []*optim.Param
	for _, module := range sortedKeys(a2.LoRA) {
		p := a2.LoRA[module]
		params2 = append(params2,
			&optim.Param{Name: module + ".lora_A", Data: p.A, Grad: make([]float32, len(p.A))},
			&optim.Param{Name: module + ".lora_B", Data: p.B, Grad: make([]float32, len(p.B))})
	}
	o2, _ := optim.NewAdamW(0.9, 0.999, 1e-8, 0.01)
	if err := o2.LoadState(l.Optimizer); err != nil {
		t.Fatal(err)
	}
	stepRNG = rand.New(rand.NewPCG(5, 5))
	stepWith(params2, o2, stepRNG)
	stepWith(params2, o2, stepRNG)
	for i := range params {
		for j := range params[i].Data {
			if params[i].Data[j] != params2[i].Data[j] {
				t.Fatalf("resumed weights differ at %s[%d]", params[i].Name, j)
			}
		}
	}
}

func TestFullCheckpointIsAModelDirectory(t *testing.T) {
	base := testfixtures.Path(t, "hf", "qwen2")
	d, err := hfmodel.Open(base)
	if err != nil {
		t.Fatal(err)
	}
	src, err := d.OpenWeights()
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	var tensors []safetensors.NamedTensor
	var params []*optim.Param
	for _, p := range d.Config.Params() {
		values, _ := src.Float32s(p.Name)
		tt, _ := safetensors.ViewFloat32(p.Shape, values)
		tensors = append(tensors, safetensors.NamedTensor{Name: p.Name, Tensor: tt})
		params = append(params, &optim.Param{Name: p.Name, Data: values, Grad: make([]float32, len(values))})
	}
	o, _ := optim.NewSGD(0.9, 0, 0, false)
	stepWith(params, o, rand.New(rand.NewPCG(3, 3)))
	dir := filepath.Join(t.TempDir(), Name(1))
	full := &Full{Tensors: tensors, MaxShardSize: 300_000,
		CopyFiles: []string{filepath.Join(base, "config.json"), filepath.Join(base, "generation_config.json"), filepath.Join(base, "tokenizer.json")}}
	if err := Save(dir, Contents{Full: full, Optimizer: o.State(), State: State{Step: 1}}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "model.safetensors.index.json")); err != nil {
		t.Errorf("no shard index above the threshold: %v", err)
	}
	cd, err := hfmodel.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !cd.HasTokenizer() || cd.GenerationConfig == "" {
		t.Errorf("copied files missing: %+v", cd)
	}
	w, err := cd.OpenWeights()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for _, p := range params {
		got, _ := w.Float32s(p.Name)
		for i := range got {
			if got[i] != p.Data[i] {
				t.Fatalf("%s[%d] = %v, saved %v", p.Name, i, got[i], p.Data[i])
			}
		}
	}
	l, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if l.State.Kind != KindFull || l.Optimizer.Kind != "sgd" || len(l.Optimizer.Params) != len(params) ||
		len(l.Optimizer.Params["model.norm.weight"].Buffers["momentum_buffer"]) != 64 {
		t.Errorf("loaded %+v", l.State)
	}
	if err := Save(dir, Contents{Full: &Full{Tensors: tensors}, Optimizer: o.State()}); err == nil || !strings.Contains(err.Error(), "config.json") {
		t.Errorf("full checkpoint without config.json: %v", err)
	}
}

// A save that fails half-way leaves the previous checkpoint as it was and
// nothing that Latest would pick up.
func TestFailedSaveLeavesPreviousCheckpoint(t *testing.T) {
	a, _, o := adapterRun(t, 1)
	out := t.TempDir()
	if err := Save(filepath.Join(out, Name(1)), Contents{Adapter: a, Optimizer: o.State(), State: State{Step: 1}}); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(filepath.Join(out, Name(1), OptimizerFile))

	// Overwriting checkpoint-1 with an adapter whose rank is invalid fails in
	// the middle of writing (after the temp directory exists).
	bad := *a
	badCfg := *a.Config
	badCfg.R = 0
	bad.Config = &badCfg
	if err := Save(filepath.Join(out, Name(1)), Contents{Adapter: &bad, Optimizer: o.State(), State: State{Step: 1}}); err == nil {
		t.Fatal("saving an invalid adapter succeeded")
	}
	after, _ := os.ReadFile(filepath.Join(out, Name(1), OptimizerFile))
	if !bytes.Equal(before, after) {
		t.Error("a failed save changed the existing checkpoint")
	}
	entries, _ := os.ReadDir(out)
	if len(entries) != 1 {
		t.Errorf("a failed save left %d entries: %v", len(entries), entries)
	}
	// A crash (simulated: a stray temporary directory and a checkpoint
	// directory without its state file) is ignored by Latest.
	os.MkdirAll(filepath.Join(out, ".checkpoint-2.tmp-123"), 0o755)
	os.MkdirAll(filepath.Join(out, Name(5)), 0o755)
	if latest, err := Latest(out); err != nil || latest != filepath.Join(out, Name(1)) {
		t.Errorf("Latest = %q, %v", latest, err)
	}
	// Replacing a checkpoint with a good save works.
	if err := Save(filepath.Join(out, Name(1)), Contents{Adapter: a, Optimizer: o.State(), State: State{Step: 1, Epoch: 2}}); err != nil {
		t.Fatal(err)
	}
	if l, err := Load(filepath.Join(out, Name(1))); err != nil || l.State.Epoch != 2 {
		t.Errorf("replaced checkpoint: %v %+v", err, l)
	}
}

func TestListLatestRotate(t *testing.T) {
	a, _, o := adapterRun(t, 1)
	out := t.TempDir()
	for _, step := range []int64{9, 10, 2, 30} {
		if err := Save(filepath.Join(out, Name(step)), Contents{Adapter: a, Optimizer: o.State(), State: State{Step: step}}); err != nil {
			t.Fatal(err)
		}
	}
	if latest, _ := Latest(out); filepath.Base(latest) != "checkpoint-30" {
		t.Errorf("Latest = %s", latest)
	}
	removed, err := Rotate(out, 2, filepath.Join(out, Name(2)))
	if err != nil {
		t.Fatal(err)
	}
	list, _ := List(out)
	var names []string
	for _, d := range list {
		names = append(names, filepath.Base(d))
	}
	if len(removed) != 2 || strings.Join(names, " ") != "checkpoint-2 checkpoint-30" {
		t.Errorf("after Rotate(2, protect 2): removed %v, left %v", removed, names)
	}
	if l, _ := Latest(filepath.Join(out, "absent")); l != "" {
		t.Errorf("Latest of a missing directory = %q", l)
	}
}

func TestLoadErrors(t *testing.T) {
	a, _, o := adapterRun(t, 2)
	good := filepath.Join(t.TempDir(), Name(2))
	if err := Save(good, Contents{Adapter: a, Optimizer: o.State(), State: State{Step: 2}}); err != nil {
		t.Fatal(err)
	}
	copyDir := func() string {
		dir := filepath.Join(t.TempDir(), Name(2))
		os.MkdirAll(dir, 0o755)
		entries, _ := os.ReadDir(good)
		for _, e := range entries {
			b, _ := os.ReadFile(filepath.Join(good, e.Name()))
			os.WriteFile(filepath.Join(dir, e.Name()), b, 0o644)
		}
		return dir
	}
	stateOf := func(dir string) string { b, _ := os.ReadFile(filepath.Join(dir, StateFile)); return string(b) }
	cases := []struct {
		name    string
		corrupt func(dir string)
		want    string
	}{
		{"no state", func(d string) { os.Remove(filepath.Join(d, StateFile)) }, "is not an eft checkpoint"},
		{"bad json", func(d string) { os.WriteFile(filepath.Join(d, StateFile), []byte("{"), 0o644) }, StateFile},
		{"unknown key", func(d string) {
			os.WriteFile(filepath.Join(d, StateFile), []byte(strings.Replace(stateOf(d), `"kind"`, `"knd"`, 1)), 0o644)
		}, `unknown field "knd"`},
		{"newer format", func(d string) {
			os.WriteFile(filepath.Join(d, StateFile), []byte(strings.Replace(stateOf(d), `"format_version": 1`, `"format_version": 9`, 1)), 0o644)
		}, "format_version 9"},
		{"no adapter", func(d string) { os.Remove(filepath.Join(d, peft.WeightsFile)) }, "missing adapter_model.safetensors"},
		{"truncated optimizer", func(d string) {
			b, _ := os.ReadFile(filepath.Join(d, OptimizerFile))
			os.WriteFile(filepath.Join(d, OptimizerFile), b[:len(b)/2], 0o644)
		}, "truncated"},
		{"missing moments", func(d string) {
			os.WriteFile(filepath.Join(d, StateFile), []byte(strings.Replace(stateOf(d), `"steps": {`, `"steps": {"extra.param": 4, `, 1)), 0o644)
		}, `AdamW moments of "extra.param" are missing`},
	}
	for _, c := range cases {
		dir := copyDir()
		c.corrupt(dir)
		_, err := Load(dir)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
	if _, err := Load(copyDir()); err != nil {
		t.Errorf("the unbroken copy fails: %v", err)
	}
}
