package generate

import (
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/eftml/eft/shared/safetensors"
	"github.com/eftml/eft/shared/testfixtures"
	"github.com/eftml/eft/trainer/cpu"
	"github.com/eftml/eft/trainer/model"
)

func TestGreedyGenerationParity(t *testing.T) {
	root := testfixtures.ParityDir(t)
	entries, err := os.ReadDir(root)
	if err != nil {
		t.Fatal(err)
	}
	ran := 0
	for _, e := range entries {
		dir := filepath.Join(root, e.Name())
		if _, err := os.Stat(filepath.Join(dir, "adapter_config.json")); err == nil {
			continue // adapters are checked in trainer/lora
		}
		if _, err := os.Stat(filepath.Join(dir, "config.json")); err != nil {
			continue
		}
		t.Run(e.Name(), func(t *testing.T) {
			m, err := model.Load(dir, cpu.New(0))
			if err != nil {
				if model.IsUnsupported(err) {
					t.Skipf("%v", err)
				}
				t.Fatal(err)
			}
			ref, err := safetensors.Open(filepath.Join(dir, "reference.safetensors"))
			if err != nil {
				t.Fatal(err)
			}
			defer ref.Close()
			prompt64, err := ref.Int64s("generate.prompt")
			if err != nil {
				t.Fatal(err)
			}
			want64, err := ref.Int64s("generate.output")
			if err != nil {
				t.Fatal(err)
			}
			prompt := make([]int32, len(prompt64))
			for i, v := range prompt64 {
				prompt[i] = int32(v)
			}
			got, err := Generate(m, prompt, Options{MaxNewTokens: len(want64) - len(prompt)})
			if err != nil {
				t.Fatal(err)
			}
			full := append(append([]int32{}, prompt...), got...)
			if len(full) != len(want64) {
				t.Fatalf("generated %v, want %v", full, want64)
			}
			for i := range full {
				if int64(full[i]) != want64[i] {
					t.Fatalf("generated %v, want %v (first difference at %d)", full, want64, i)
				}
			}
			ran++
		})
	}
	if ran == 0 {
		t.Fatal("no model directory was generated from")
	}
}

// The cached decoding path must give the full forward pass's logits.
func TestDecodeMatchesForward(t *testing.T) {
	m, err := model.Load(testfixtures.Path(t, "hf", "qwen3"), cpu.New(0))
	if err != nil {
		t.Fatal(err)
	}
	tokens := []int32{5, 17, 300, 2000, 9, 44, 1, 7, 12}
	full, err := m.Logits(&model.Batch{Rows: 1, Cols: len(tokens), Tokens: tokens})
	if err != nil {
		t.Fatal(err)
	}
	cache := m.NewKVCache(len(tokens))
	V := m.Config.Vocab
	check := func(pos int, got []float32) {
		want := full[pos*V : (pos+1)*V]
		for i := range want {
			if math.Abs(float64(got[i]-want[i])) > 1e-4 {
				t.Fatalf("position %d token %d: cached decode %g, forward %g", pos, i, got[i], want[i])
			}
		}
	}
	got, err := m.Decode(cache, tokens[:4]) // prefill several at once
	if err != nil {
		t.Fatal(err)
	}
	check(3, got)
	for i := 4; i < len(tokens); i++ {
		if got, err = m.Decode(cache, tokens[i:i+1]); err != nil {
			t.Fatal(err)
		}
		check(i, got)
	}
	if _, err := m.Decode(cache, []int32{1}); err == nil {
		t.Fatal("decoding past the cache's length did not fail")
	}
}

func TestSampler(t *testing.T) {
	logits := []float32{1, 3, 2, 0.5, 2.9}
	greedy := newSampler(Options{}, len(logits))
	if got := greedy.pick(logits); got != 1 {
		t.Fatalf("greedy picked %d, want 1", got)
	}
	// top_k 1 and a tiny top_p both leave only the best token.
	for _, opt := range []Options{{Temperature: 1, TopK: 1}, {Temperature: 5, TopP: 0.01}} {
		s := newSampler(opt, len(logits))
		for range 50 {
			if got := s.pick(logits); got != 1 {
				t.Fatalf("%+v picked %d, want 1", opt, got)
			}
		}
	}
	// Sampling at temperature T follows softmax(logits/T) restricted by top-k.
	const draws = 200000
	s := newSampler(Options{Temperature: 2, TopK: 3, Seed: 9}, len(logits))
	counts := make([]int, len(logits))
	for range draws {
		counts[s.pick(logits)]++
	}
	kept := []int{1, 4, 2}
	var z float64
	for _, i := range kept {
		z += math.Exp(float64(logits[i]) / 2)
	}
	for i := range logits {
		want := 0.0
		for _, k := range kept {
			if k == i {
				want = math.Exp(float64(logits[i])/2) / z
			}
		}
		if got := float64(counts[i]) / draws; math.Abs(got-want) > 0.005 {
			t.Errorf("token %d drawn %.4f of the time, want %.4f", i, got, want)
		}
	}
	// top_p 0.6 over softmax(logits): the two best tokens reach it.
	s = newSampler(Options{Temperature: 1, TopP: 0.6, Seed: 3}, len(logits))
	seen := map[int32]bool{}
	for range 2000 {
		seen[s.pick(logits)] = true
	}
	if len(seen) != 2 || !seen[1] || !seen[4] {
		t.Errorf("top_p 0.6 sampled %v, want tokens 1 and 4", seen)
	}
}

func TestStopToken(t *testing.T) {
	m, err := model.Load(testfixtures.Path(t, "hf", "llama"), cpu.New(0))
	if err != nil {
		t.Fatal(err)
	}
	prompt := []int32{1, 50, 60, 70}
	free, err := Generate(m, prompt, Options{MaxNewTokens: 6})
	if err != nil {
		t.Fatal(err)
	}
	stopped, err := Generate(m, prompt, Options{MaxNewTokens: 6, StopTokens: []int32{free[2]}})
	if err != nil {
		t.Fatal(err)
	}
	if len(stopped) > 3 || stopped[len(stopped)-1] != free[2] {
		t.Fatalf("with stop token %d generated %v (free run %v)", free[2], stopped, free)
	}
}

// OnToken sees every token as it is chosen, in order, and can end decoding.
func TestOnTokenStreams(t *testing.T) {
	m, err := model.Load(testfixtures.Path(t, "hf", "llama"), cpu.New(0))
	if err != nil {
		t.Fatal(err)
	}
	prompt := []int32{1, 50, 60, 70}
	var streamed []int32
	out, err := Generate(m, prompt, Options{MaxNewTokens: 6, OnToken: func(id int32) bool {
		streamed = append(streamed, id)
		return true
	}})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 6 || !slices.Equal(streamed, out) {
		t.Fatalf("streamed %v, returned %v", streamed, out)
	}
	cut, err := Generate(m, prompt, Options{MaxNewTokens: 6, OnToken: func(int32) bool { return false }})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(cut, out[:1]) {
		t.Fatalf("OnToken returning false after the first token gave %v", cut)
	}
}
