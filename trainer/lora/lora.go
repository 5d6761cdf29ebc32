package lora

import (
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"strings"

	"github.com/eftml/eft/trainer/model"
	"github.com/eftml/eft/trainer/peft"
)

// outputHead is the module all-linear leaves out, as PEFT does.
const outputHead = peft.OutputHead

// Attach puts a fresh adapter on every linear layer cfg targets (rank and
// scaling per module, rank_pattern and alpha_pattern included), freezes every
// base weight, and makes the adapters and cfg.ModulesToSave trainable. seed
// draws the initial values. A target that matches nothing, or names a module
// that cannot carry an adapter here, is an error that says so.
//
// On a model with tied embeddings, modules_to_save naming lm_head or
// embed_tokens does what PEFT does (see tieOrUntie): by default the head
// is untied and each listed layer trains its own copy; with
// ensure_weight_tying the one shared weight trains and cfg.ModulesToSave
// is rewritten as PEFT rewrites it.
func Attach(m *model.Model, cfg *peft.Config, seed uint64) error {
	if cfg.LoraDropout < 0 || cfg.LoraDropout >= 1 {
		return fmt.Errorf("lora: lora_dropout %g outside [0, 1)", cfg.LoraDropout)
	}
	for _, t := range cfg.TargetModules {
		if t == outputHead || t == "embed_tokens" {
			return fmt.Errorf("lora: target module %q cannot carry an adapter here; list it in lora_modules_to_save to train it in full", t)
		}
	}
	byName := map[string]*model.Linear{}
	var names []string
	for _, lin := range linears(m) {
		byName[lin.Module] = lin
		names = append(names, lin.Module)
	}
	targets, err := cfg.SelectTargets(names, outputHead)
	if err != nil {
		return fmt.Errorf("lora: %s model: %w", m.Config.Arch, err)
	}
	init, err := initScheme(cfg.InitLoraWeights)
	if err != nil {
		return err
	}
	for _, p := range append(m.Params(), m.LoRAParams()...) {
		m.SetTrainable(p, false)
	}
	rng := rand.New(rand.NewPCG(seed, 0x10ad))
	be := m.Backend
	for _, module := range targets {
		lin := byName[module]
		r := cfg.Rank(module)
		if r <= 0 {
			return fmt.Errorf("lora: rank of %s is %d; it must be positive", module, r)
		}
		a := &model.Param{Name: peft.SavedKey(module, peft.LoraA), W: be.Alloc(r, lin.In)}
		b := &model.Param{Name: peft.SavedKey(module, peft.LoraB), W: be.Alloc(lin.Out, r)}
		av, bv := init(rng, r, lin.In, lin.Out)
		be.Upload(a.W, av)
		be.Upload(b.W, bv)
		lin.LoRA = &model.LoRA{A: a, B: b, Scale: float32(cfg.Scaling(module)), Dropout: float32(cfg.LoraDropout)}
		m.SetTrainable(a, true)
		m.SetTrainable(b, true)
	}
	tieOrUntie(m, cfg)
	_, err = modulesToSave(m, cfg.ModulesToSave, true)
	return err
}

// tieOrUntie settles a tied head for modules_to_save as PEFT (0.21) does
// when one of the tied layers is listed (tuners_utils
// BaseTuner._check_tied_modules, utils/other ModulesToSaveWrapper.update;
// docs/source/package_reference/lora.md, "Weight tying"):
//
//   - ensure_weight_tying false (PEFT's default, and what Axolotl passes
//     unless peft_ensure_weight_tying is set): each listed layer is wrapped
//     in a ModulesToSaveWrapper whose trainable copy is a deepcopy of the
//     module, so the copy of lm_head no longer shares the embeddings'
//     weight. The listed layers train their copies and the others keep the
//     frozen original: the model is untied (model.UntieHead). Its saved
//     adapter holds base_model.model.lm_head.weight and/or
//     base_model.model.model.embed_tokens.weight, and merge_and_unload
//     returns the copies: a model whose head and embeddings differ.
//   - ensure_weight_tying true: the embeddings get the one copy and
//     lm_head is a wrapper around that same weight, so the gradient is
//     the sum of both uses and the layers stay tied through training, save
//     (both keys, equal values) and merge.
//
// PEFT warns in the first case that merging may go wrong: transformers'
// save_pretrained then writes both tensors under tie_word_embeddings true.
// eft's merger writes tie_word_embeddings false instead (services/merger).
func tieOrUntie(m *model.Model, cfg *peft.Config) {
	if !m.HeadTied() || !cfg.NamesEmbeddingLayer() {
		return
	}
	if !cfg.TieModulesToSave(moduleOf(m.Embed)) {
		m.UntieHead()
	}
}

// moduleOf is a parameter's module path ("model.embed_tokens").
func moduleOf(p *model.Param) string { return p.Name[:strings.LastIndex(p.Name, ".")] }

// initFunc returns A [r, in] and B [out, r].
type initFunc func(rng *rand.Rand, r, in, out int) ([]float32, []float32)

// initScheme is PEFT's init_lora_weights: true (A as nn.Linear's kaiming
// uniform, U(±1/sqrt(in)); B zero, so a fresh adapter changes nothing),
// false (both as nn.Linear: B too is U(±1/sqrt(r))) or "gaussian"
// (A normal with std 1/r, B zero).
func initScheme(v any) (initFunc, error) {
	uniform := func(rng *rand.Rand, n int, bound float64) []float32 {
		out := make([]float32, n)
		for i := range out {
			out[i] = float32((2*rng.Float64() - 1) * bound)
		}
		return out
	}
	switch v {
	case nil, true:
		return func(rng *rand.Rand, r, in, out int) ([]float32, []float32) {
			return uniform(rng, r*in, 1/math.Sqrt(float64(in))), make([]float32, out*r)
		}, nil
	case false:
		return func(rng *rand.Rand, r, in, out int) ([]float32, []float32) {
			return uniform(rng, r*in, 1/math.Sqrt(float64(in))), uniform(rng, out*r, 1/math.Sqrt(float64(r)))
		}, nil
	case "gaussian":
		return func(rng *rand.Rand, r, in, out int) ([]float32, []float32) {
			a := make([]float32, r*in)
			for i := range a {
				a[i] = float32(rng.NormFloat64() / float64(r))
			}
			return a, make([]float32, out*r)
		}, nil
	}
	return nil, fmt.Errorf("lora: init_lora_weights %v is not supported (true, false, \"gaussian\")", v)
}

func linears(m *model.Model) []*model.Linear {
	var out []*model.Linear
	for i := range m.Layers {
		out = append(out, m.Layers[i].Linears()...)
	}
	return out
}

// modulesToSave returns the base parameters the named modules hold (names
// match a parameter's module path exactly or as a dotted suffix, as PEFT
// matches them), making them trainable when train is set.
func modulesToSave(m *model.Model, names []string, train bool) ([]*model.Param, error) {
	var out []*model.Param
	for _, name := range names {
		matched := false
		for _, p := range m.Params() {
			module := moduleOf(p)
			if module == name || strings.HasSuffix(module, "."+name) {
				if p.Quantized() {
					return nil, fmt.Errorf("lora: modules_to_save entry %q names %s, which is loaded in 4 bits (load_in_4bit) and cannot train or be saved", name, p.Name)
				}
				if train {
					m.SetTrainable(p, true)
				}
				if !slices.Contains(out, p) {
					out = append(out, p)
				}
				matched = true
			}
		}
		if !matched {
			return nil, fmt.Errorf("lora: modules_to_save entry %q names no module of this %s model", name, m.Config.Arch)
		}
	}
	return out, nil
}

// Load attaches the PEFT adapter in dir to m with its saved weights
// (modules_to_save included) and returns its config. Adapters train unless
// the caller freezes them.
func Load(m *model.Model, dir string) (*peft.Config, error) {
	a, err := peft.Load(dir)
	if err != nil {
		return nil, err
	}
	if err := Attach(m, a.Config, 0); err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	be := m.Backend
	adapted := map[string]*model.Linear{}
	for _, lin := range linears(m) {
		if lin.LoRA != nil {
			adapted[lin.Module] = lin
		}
	}
	for module, lin := range adapted {
		p, ok := a.LoRA[module]
		switch {
		case !ok:
			return nil, fmt.Errorf("lora: %s: adapter_config.json targets %s but the weights file has no LoRA weights for it", dir, module)
		case p.Embedding || p.In != lin.In || p.Out != lin.Out || p.Rank != lin.LoRA.Rank():
			return nil, fmt.Errorf("lora: %s: LoRA weights of %s are %d×%d (A) and %d×%d (B); the model wants %d×%d and %d×%d",
				dir, module, p.Rank, p.In, p.Out, p.Rank, lin.LoRA.Rank(), lin.In, lin.Out, lin.LoRA.Rank())
		}
		be.Upload(lin.LoRA.A.W, p.A)
		be.Upload(lin.LoRA.B.W, p.B)
	}
	for module := range a.LoRA {
		if adapted[module] == nil {
			return nil, fmt.Errorf("lora: %s: the weights file holds LoRA weights for %s, which adapter_config.json does not target", dir, module)
		}
	}
	saved, err := modulesToSave(m, a.Config.ModulesToSave, false)
	if err != nil {
		return nil, err
	}
	used := map[string]bool{}
	for _, p := range saved {
		t, ok := a.Saved[p.Name]
		if !ok {
			return nil, fmt.Errorf("lora: %s: modules_to_save lists %s but the weights file has no %s", dir, p.Name, peft.KeyPrefix+p.Name)
		}
		if t.Shape[0]*max(1, product(t.Shape[1:])) != p.W.Len() {
			return nil, fmt.Errorf("lora: %s: saved %s has shape %v, want %v", dir, p.Name, t.Shape, p.W.Shape())
		}
		be.Upload(p.W, t.Data)
		used[p.Name] = true
	}
	if tiedHeadSaved(m, a.Config, saved) {
		// PEFT saved the tied head's weight too, a clone of the embeddings'.
		head, embed := a.Saved[headWeight], a.Saved[m.Embed.Name]
		if head == nil {
			return nil, fmt.Errorf("lora: %s: ensure_weight_tying ties lm_head to the saved embeddings but the weights file has no %s", dir, peft.KeyPrefix+headWeight)
		}
		if !slices.Equal(head.Shape, embed.Shape) || !slices.Equal(head.Data, embed.Data) {
			return nil, fmt.Errorf("lora: %s: ensure_weight_tying ties lm_head to the embeddings, but the saved %s differs from the saved %s", dir, headWeight, m.Embed.Name)
		}
		used[headWeight] = true
	}
	for _, name := range slices.Sorted(maps.Keys(a.Saved)) {
		if !used[name] {
			return nil, fmt.Errorf("lora: %s: the weights file holds %s, which is no weight of modules_to_save %v on this %s model (tie_word_embeddings %v)",
				dir, peft.KeyPrefix+name, a.Config.ModulesToSave, m.Config.Arch, m.HeadTied())
		}
	}
	return a.Config, nil
}

// headWeight is the output head's parameter name.
const headWeight = peft.OutputHead + ".weight"

// tiedHeadSaved reports whether an adapter of m saves lm_head.weight beside
// the embeddings because ensure_weight_tying tied the head to their
// trainable copy (PEFT's lm_head wrapper around that weight saves it too).
func tiedHeadSaved(m *model.Model, cfg *peft.Config, saved []*model.Param) bool {
	return cfg.EnsureWeightTying && m.HeadTied() && slices.Contains(saved, m.Embed)
}

func product(dims []int) int {
	n := 1
	for _, d := range dims {
		n *= d
	}
	return n
}

// Export copies the model's adapters (and modules_to_save) into a
// peft.Adapter under cfg, ready for Save.
func Export(m *model.Model, cfg *peft.Config) (*peft.Adapter, error) {
	a := &peft.Adapter{Config: cfg, LoRA: map[string]*peft.Pair{}, Saved: map[string]*peft.Tensor{}}
	be := m.Backend
	for _, lin := range linears(m) {
		if lin.LoRA == nil {
			continue
		}
		p := &peft.Pair{Rank: lin.LoRA.Rank(), In: lin.In, Out: lin.Out,
			A: make([]float32, lin.LoRA.A.W.Len()), B: make([]float32, lin.LoRA.B.W.Len())}
		be.Download(p.A, lin.LoRA.A.W)
		be.Download(p.B, lin.LoRA.B.W)
		a.LoRA[lin.Module] = p
	}
	if len(a.LoRA) == 0 {
		return nil, fmt.Errorf("lora: the model has no adapters to export")
	}
	saved, err := modulesToSave(m, cfg.ModulesToSave, false)
	if err != nil {
		return nil, err
	}
	for _, p := range saved {
		t := &peft.Tensor{Shape: slices.Clone(p.W.Shape()), Data: make([]float32, p.W.Len())}
		be.Download(t.Data, p.W)
		a.Saved[p.Name] = t
	}
	if tiedHeadSaved(m, cfg, saved) {
		a.Saved[headWeight] = a.Saved[m.Embed.Name]
	}
	return a, nil
}

// Merge folds every adapter into its base weight on the model's backend,
// W += scale·B·A, and removes the adapters (PEFT's merge_and_unload). A
// 4-bit base weight is dequantized into float32 first and stays float32
// (PEFT would quantize the merged weight again). modules_to_save weights
// are already the model's own: a head that Attach untied stays untied, as
// merge_and_unload returns PEFT's separate copies.
func Merge(m *model.Model) {
	for _, lin := range linears(m) {
		if lin.LoRA == nil {
			continue
		}
		if lin.W.Quantized() {
			vals := make([]float32, lin.W.W.Len())
			lin.W.Quant.Dequantize(vals)
			lin.W.W, lin.W.Quant = m.Backend.Alloc(lin.Out, lin.In), nil
			m.Backend.Upload(lin.W.W, vals)
		}
		m.Backend.MatMul(lin.W.W, lin.LoRA.B.W, lin.LoRA.A.W, false, false, lin.LoRA.Scale, 1)
		lin.LoRA = nil
	}
}
