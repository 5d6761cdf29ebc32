package lora_test

import (
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/eftml/eft/shared/safetensors"
	"github.com/eftml/eft/shared/testfixtures"
	"github.com/eftml/eft/trainer/cpu"
	"github.com/eftml/eft/trainer/internal/paritytest"
	"github.com/eftml/eft/trainer/lora"
	"github.com/eftml/eft/trainer/model"
	"github.com/eftml/eft/trainer/optim"
	"github.com/eftml/eft/trainer/peft"
	"github.com/eftml/eft/trainer/train"
)

// modules_to_save on a model whose lm_head shares embed_tokens' weight, as
// PEFT 0.21 treats it (see lora.Attach): without ensure_weight_tying each
// listed layer trains its own copy and the other keeps the original weight;
// with it the one weight trains for both uses.
type tiedCase struct {
	name   string
	saved  []string // lora_modules_to_save
	ensure bool     // ensure_weight_tying
	// What Attach must leave: modules_to_save as PEFT rewrites it, whether
	// the head still shares the embeddings' weight, and what trains.
	wantSaved               []string
	tied, embedTrains, head bool
}

var tiedCases = []tiedCase{
	{"lm_head", []string{"lm_head"}, false, []string{"lm_head"}, false, false, true},
	{"embed_tokens", []string{"embed_tokens"}, false, []string{"embed_tokens"}, false, true, false},
	{"both", []string{"embed_tokens", "lm_head"}, false, []string{"embed_tokens", "lm_head"}, false, true, true},
	{"lm_head ensure_weight_tying", []string{"lm_head"}, true, []string{"model.embed_tokens"}, true, true, true},
	{"embed_tokens ensure_weight_tying", []string{"embed_tokens"}, true, []string{"embed_tokens", "model.embed_tokens"}, true, true, true},
	{"both ensure_weight_tying", []string{"lm_head", "embed_tokens"}, true, []string{"embed_tokens", "model.embed_tokens"}, true, true, true},
}

func tiedCaseNamed(name string) tiedCase {
	for _, c := range tiedCases {
		if c.name == name {
			return c
		}
	}
	panic(name)
}

// attachTied loads the fixture arch and attaches a q_proj adapter (B zero,
// so the model computes what the base does) with c's modules_to_save.
func attachTied(t *testing.T, arch string, c tiedCase) (*model.Model, *peft.Config) {
	t.Helper()
	m, err := model.Load(testfixtures.Path(t, "hf", arch), cpu.New(0))
	if err != nil {
		t.Fatal(err)
	}
	if !m.HeadTied() {
		t.Fatalf("%s: the fixture does not tie its embeddings", arch)
	}
	cfg := peft.NewConfig(4, 8, 0, []string{"q_proj"})
	cfg.ModulesToSave = slices.Clone(c.saved)
	cfg.EnsureWeightTying = c.ensure
	if err := lora.Attach(m, cfg, 3); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(cfg.ModulesToSave, c.wantSaved) {
		t.Errorf("modules_to_save %q after Attach, want %q", cfg.ModulesToSave, c.wantSaved)
	}
	if m.HeadTied() != c.tied || m.Config.TieEmbeddings != c.tied {
		t.Errorf("head tied %v (config %v), want %v", m.HeadTied(), m.Config.TieEmbeddings, c.tied)
	}
	if m.Embed.Trainable() != c.embedTrains || m.LMHead.Trainable() != c.head {
		t.Errorf("embed_tokens trains %v, lm_head %v; want %v, %v", m.Embed.Trainable(), m.LMHead.Trainable(), c.embedTrains, c.head)
	}
	if !m.HeadTied() && m.LMHead.Name != "lm_head.weight" {
		t.Errorf("untied head is named %q", m.LMHead.Name)
	}
	return m, cfg
}

// rowsWhere copies the rows of a [vocab, hidden] matrix whose token id
// satisfies keep.
func rowsWhere(v []float32, hidden int, keep func(id int) bool) []float32 {
	var out []float32
	for id := range len(v) / hidden {
		if keep(id) {
			out = append(out, v[id*hidden:(id+1)*hidden]...)
		}
	}
	return out
}

// The fixtures' reference gradient of a tied weight (transformers, one
// tensor) is the sum of the head's use, dlogitsᵀ·h over every vocabulary
// row, and the embeddings' use, a scatter-add into the rows of the tokens
// in the batch only. So: an untied lm_head copy's gradient equals the
// reference on every row of a token absent from the batch; an embed_tokens
// copy's gradient is zero there; the two add up to the reference
// everywhere; training both gives each its own part unchanged; and with
// ensure_weight_tying the one weight's gradient is the reference itself.
// On every tied fixture (gemma's embedding scale and gemma2's soft cap
// included).
func TestTiedModulesToSaveGradients(t *testing.T) {
	for _, arch := range []string{"qwen2", "gemma", "gemma2"} {
		t.Run(arch, func(t *testing.T) {
			ref := paritytest.OpenReference(t, testfixtures.Path(t, "hf", arch))
			b := ref.Batch()
			want := ref.F32("grad.model.embed_tokens.weight")
			inBatch := map[int]bool{}
			for _, id := range b.Tokens {
				inBatch[int(id)] = true
			}
			absent := func(id int) bool { return !inBatch[id] }
			present := func(id int) bool { return inBatch[id] }
			n := countTargets(b)

			type grads struct{ embed, head []float32 }
			got := map[string]grads{}
			var hidden int
			for _, c := range tiedCases {
				m, _ := attachTied(t, arch, c)
				hidden = m.Config.Hidden
				sum, _, err := m.ForwardBackward(b, 1/float32(n))
				if err != nil {
					t.Fatal(err)
				}
				if lw := ref.F32("loss")[0]; math.Abs(sum/float64(n)-float64(lw)) > tolAbs {
					t.Errorf("%s: loss %.6f, want %.6f", c.name, sum/float64(n), lw)
				}
				var g grads
				if m.Embed.Trainable() {
					g.embed = download(m, m.Embed, true)
				}
				if m.LMHead.Trainable() {
					g.head = download(m, m.LMHead, true)
				}
				got[c.name] = g
			}

			head, embed := got["lm_head"].head, got["embed_tokens"].embed
			paritytest.Compare(t, "lm_head copy's gradient on rows of tokens not in the batch", rowsWhere(head, hidden, absent), rowsWhere(want, hidden, absent), tolGrad, true)
			for i, v := range rowsWhere(embed, hidden, absent) {
				if v != 0 {
					t.Fatalf("embed_tokens copy's gradient is %g at %d of a row whose token is not in the batch", v, i)
				}
			}
			sum := make([]float32, len(want))
			for i := range sum {
				sum[i] = head[i] + embed[i]
			}
			paritytest.Compare(t, "lm_head + embed_tokens copies' gradients", sum, want, tolGrad, true)
			// The embeddings' part is a real share of the batch rows' gradient
			// (not all of it left to the head).
			inRows := rowsWhere(embed, hidden, present)
			if part, total := maxAbsOf(inRows), maxAbsOf(rowsWhere(want, hidden, present)); part < 1e-2*total {
				t.Errorf("embed_tokens copy's gradient on the batch's rows is at most %.3g of a reference %.3g", part, total)
			}

			both := got["both"]
			paritytest.Compare(t, "both: lm_head copy", both.head, head, 1e-6, true)
			paritytest.Compare(t, "both: embed_tokens copy", both.embed, embed, 1e-6, true)

			for _, c := range tiedCases {
				if c.ensure {
					d := paritytest.Compare(t, c.name+": the tied weight", got[c.name].embed, want, tolGrad, true)
					t.Logf("%s: tied gradient %.2g of max from transformers'", c.name, d)
				}
			}
		})
	}
}

func maxAbsOf(v []float32) float64 {
	var m float64
	for _, x := range v {
		m = max(m, math.Abs(float64(x)))
	}
	return m
}

func snapshot(m *model.Model) map[string][]float32 {
	out := map[string][]float32{}
	for _, p := range append(m.Params(), m.LoRAParams()...) {
		out[p.Name] = download(m, p, false)
	}
	return out
}

// A few AdamW steps move the adapter and exactly the copies that train;
// the adapter saved holds PEFT's keys, loads onto a fresh base to the same
// logits, and merges (merge_and_unload) into a model whose state dict is
// untied or tied as PEFT's merge leaves it and whose logits are the
// adapter's.
func TestTiedModulesToSaveTrainSaveLoadMerge(t *testing.T) {
	const arch = "qwen2"
	ref := paritytest.OpenReference(t, testfixtures.Path(t, "hf", arch))
	b := ref.Batch()
	for _, name := range []string{"lm_head", "embed_tokens", "both", "lm_head ensure_weight_tying"} {
		c := tiedCaseNamed(name)
		t.Run(name, func(t *testing.T) {
			m, cfg := attachTied(t, arch, c)
			before := snapshot(m)
			opt, err := optim.NewAdamW(0.9, 0.999, 1e-8, 0)
			if err != nil {
				t.Fatal(err)
			}
			tr, err := train.New(m, opt, 1)
			if err != nil {
				t.Fatal(err)
			}
			var losses []float64
			for range 3 {
				res, err := tr.Step([]*model.Batch{b}, 1e-2)
				if err != nil {
					t.Fatal(err)
				}
				losses = append(losses, res.Loss)
			}
			if !(losses[2] < losses[0]) {
				t.Errorf("losses %v do not fall", losses)
			}
			after := snapshot(m)
			trains := map[string]bool{}
			for _, p := range m.TrainableParams() {
				trains[p.Name] = true
			}
			wantTrains := map[string]bool{}
			if c.embedTrains {
				wantTrains["model.embed_tokens.weight"] = true
			}
			if c.head && !c.tied {
				wantTrains["lm_head.weight"] = true
			}
			for _, p := range m.LoRAParams() {
				wantTrains[p.Name] = true
			}
			if !maps.Equal(trains, wantTrains) {
				t.Fatalf("trainable %v, want %v", slices.Sorted(maps.Keys(trains)), slices.Sorted(maps.Keys(wantTrains)))
			}
			for _, name := range slices.Sorted(maps.Keys(after)) {
				old, ok := before[name]
				moved := ok && !slices.Equal(old, after[name])
				if name == "lm_head.weight" {
					// The copy started as the embeddings.
					moved = !slices.Equal(before["model.embed_tokens.weight"], after[name])
				}
				if strings.Contains(name, "lora_A") {
					continue // A moves only once B is no longer zero; B is checked
				}
				if moved != wantTrains[name] {
					t.Errorf("%s moved %v, trains %v", name, moved, wantTrains[name])
				}
			}
			if c.tied != m.HeadTied() {
				t.Errorf("head tied %v after training, want %v", m.HeadTied(), c.tied)
			}

			dir := saveAdapter(t, m, cfg)
			f, err := safetensors.Open(filepath.Join(dir, peft.WeightsFile))
			if err != nil {
				t.Fatal(err)
			}
			var full []string
			for _, k := range f.Names() {
				if !strings.Contains(k, ".lora_") {
					full = append(full, k)
				}
			}
			f.Close()
			var wantKeys []string
			if c.embedTrains {
				wantKeys = append(wantKeys, "base_model.model.model.embed_tokens.weight")
			}
			if c.head {
				wantKeys = append(wantKeys, "base_model.model.lm_head.weight")
			}
			slices.Sort(full)
			slices.Sort(wantKeys)
			if !slices.Equal(full, wantKeys) {
				t.Errorf("adapter's full weights %q, want %q", full, wantKeys)
			}
			saved, err := os.ReadFile(filepath.Join(dir, peft.ConfigFile))
			if err != nil {
				t.Fatal(err)
			}
			wantEnsure := `"ensure_weight_tying": false`
			if c.ensure {
				wantEnsure = `"ensure_weight_tying": true`
			}
			if !strings.Contains(string(saved), wantEnsure) {
				t.Errorf("adapter_config.json lacks %s", wantEnsure)
			}

			adapted, err := m.Logits(b)
			if err != nil {
				t.Fatal(err)
			}
			fresh, err := model.Load(testfixtures.Path(t, "hf", arch), cpu.New(0))
			if err != nil {
				t.Fatal(err)
			}
			back, err := lora.Load(fresh, dir)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(back.ModulesToSave, c.wantSaved) || back.EnsureWeightTying != c.ensure || fresh.HeadTied() != c.tied {
				t.Errorf("loaded: modules_to_save %q, ensure_weight_tying %v, tied %v", back.ModulesToSave, back.EnsureWeightTying, fresh.HeadTied())
			}
			loaded, err := fresh.Logits(b)
			if err != nil {
				t.Fatal(err)
			}
			paritytest.Compare(t, "logits of the loaded adapter", loaded, adapted, 1e-6, false)

			lora.Merge(m)
			sd, err := m.StateDict(safetensors.F32)
			if err != nil {
				t.Fatal(err)
			}
			hasHead := slices.ContainsFunc(sd, func(nt safetensors.NamedTensor) bool { return nt.Name == "lm_head.weight" })
			if hasHead == c.tied {
				t.Errorf("merged state dict holds lm_head.weight: %v; the merged model is tied: %v", hasHead, c.tied)
			}
			merged, err := m.Logits(b)
			if err != nil {
				t.Fatal(err)
			}
			paritytest.Compare(t, "merged logits", merged, adapted, tolAbs, false)
		})
	}
}

// What eft cannot take: an ensure_weight_tying adapter whose saved head is
// not its embeddings (PEFT saves clones of one weight), and a saved head
// that no modules_to_save entry or tie accounts for on the model it is
// loaded onto.
func TestTiedModulesToSaveBadAdapters(t *testing.T) {
	m, cfg := attachTied(t, "qwen2", tiedCaseNamed("lm_head ensure_weight_tying"))
	a, err := lora.Export(m, cfg)
	if err != nil {
		t.Fatal(err)
	}
	head := *a.Saved["lm_head.weight"]
	head.Data = slices.Clone(head.Data)
	head.Data[0] += 1
	a.Saved["lm_head.weight"] = &head
	dir := t.TempDir()
	if err := a.Save(dir, safetensors.F32); err != nil {
		t.Fatal(err)
	}
	fresh, err := model.Load(testfixtures.Path(t, "hf", "qwen2"), cpu.New(0))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lora.Load(fresh, dir); err == nil || !strings.Contains(err.Error(), "saved lm_head.weight differs from the saved model.embed_tokens.weight") {
		t.Errorf("a tied adapter whose head differs from its embeddings: %v", err)
	}

	// The same file onto the model untied (as a checkpoint saved with
	// tie_word_embeddings false would be): nothing there accounts for the
	// saved head.
	untied, err := model.Load(testfixtures.Path(t, "hf", "qwen2"), cpu.New(0))
	if err != nil {
		t.Fatal(err)
	}
	untied.UntieHead()
	if _, err := lora.Load(untied, dir); err == nil || !strings.Contains(err.Error(), "lm_head.weight, which is no weight of modules_to_save") {
		t.Errorf("a saved tied head on an untied model: %v", err)
	}
}
