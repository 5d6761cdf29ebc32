package peft

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/eftml/eft/shared/safetensors"
)

// KeyPrefix starts every saved key of a causal-LM adapter: PeftModel wraps
// the LoraModel (base_model) which wraps the transformers model (model).
const KeyPrefix = "base_model.model."

// DefaultAdapterName is the adapter name PEFT puts in in-memory names.
const DefaultAdapterName = "default"

// LoRA weight kinds as they appear in key names.
const (
	LoraA          = "lora_A"
	LoraB          = "lora_B"
	LoraEmbeddingA = "lora_embedding_A"
	LoraEmbeddingB = "lora_embedding_B"
)

// SavedKey is the adapter_model.safetensors name of a module's LoRA weight:
// base_model.model.<module>.lora_A.weight (embedding LoRA weights are bare
// parameters: ...lora_embedding_A).
func SavedKey(module, kind string) string {
	if kind == LoraEmbeddingA || kind == LoraEmbeddingB {
		return KeyPrefix + module + "." + kind
	}
	return KeyPrefix + module + "." + kind + ".weight"
}

// MemoryKey is PEFT's in-memory parameter name for a saved key: the adapter
// name goes before the last component of LoRA weights
// (...lora_A.default.weight, ...lora_embedding_A.default) and after the
// wrapper of modules_to_save (...lm_head.modules_to_save.default.weight).
func MemoryKey(saved, adapterName string) string {
	module, kind, param, err := ParseKey(saved)
	if err != nil {
		return saved
	}
	switch kind {
	case LoraEmbeddingA, LoraEmbeddingB:
		return saved + "." + adapterName
	case LoraA, LoraB:
		return KeyPrefix + module + "." + kind + "." + adapterName + "." + param
	}
	return KeyPrefix + module + ".modules_to_save." + adapterName + "." + param
}

// ParseKey splits a saved key into the module path, the LoRA kind (empty for
// a modules_to_save tensor) and the parameter name ("weight", "bias").
func ParseKey(key string) (module, kind, param string, err error) {
	rest, ok := strings.CutPrefix(key, KeyPrefix)
	if !ok {
		return "", "", "", fmt.Errorf("key %q does not start with %q", key, KeyPrefix)
	}
	for _, k := range []string{LoraEmbeddingA, LoraEmbeddingB} {
		if m, ok := strings.CutSuffix(rest, "."+k); ok {
			return m, k, "", nil
		}
	}
	i := strings.LastIndex(rest, ".")
	if i <= 0 {
		return "", "", "", fmt.Errorf("key %q names no module", key)
	}
	head, param := rest[:i], rest[i+1:]
	for _, k := range []string{LoraA, LoraB} {
		if m, ok := strings.CutSuffix(head, "."+k); ok {
			if param != "weight" {
				return "", "", "", fmt.Errorf("key %q: LoRA %s has a %q (LoRA biases are not supported)", key, k, param)
			}
			return m, k, param, nil
		}
	}
	if strings.Contains(head, ".lora_") {
		return "", "", "", fmt.Errorf("key %q: unknown LoRA weight", key)
	}
	return head, "", param, nil
}

// Pair is one module's LoRA weights, row-major. A linear module has A
// [rank, in] and B [out, rank]; an embedding has lora_embedding_A
// [rank, num_embeddings] and lora_embedding_B [embedding_dim, rank].
type Pair struct {
	A, B      []float32
	Rank      int
	In, Out   int
	Embedding bool
}

// Tensor is a full float32 tensor (a modules_to_save parameter).
type Tensor struct {
	Shape []int
	Data  []float32
}

// Adapter is a loaded (or to-be-saved) LoRA adapter.
type Adapter struct {
	Config *Config
	// LoRA maps module paths ("model.layers.0.self_attn.q_proj") to weights.
	LoRA map[string]*Pair
	// Saved maps parameter paths of modules_to_save ("lm_head.weight") to
	// their full trained values.
	Saved map[string]*Tensor
}

// Load reads a PEFT adapter directory and checks weights against the config.
func Load(dir string) (*Adapter, error) {
	cfg, err := LoadConfig(filepath.Join(dir, ConfigFile))
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dir, WeightsFile)
	f, err := safetensors.Open(path)
	if errors.Is(err, fs.ErrNotExist) && exists(filepath.Join(dir, "adapter_model.bin")) {
		return nil, fmt.Errorf("peft: %s has only adapter_model.bin: PyTorch pickles are not read; save the adapter with safe_serialization", dir)
	}
	if err != nil {
		return nil, fmt.Errorf("peft: %w", err)
	}
	defer f.Close()
	a := &Adapter{Config: cfg, LoRA: map[string]*Pair{}, Saved: map[string]*Tensor{}}
	fail := func(format string, args ...any) error {
		return fmt.Errorf("peft: %s: %s", path, fmt.Sprintf(format, args...))
	}
	for _, key := range f.Names() {
		module, kind, param, err := ParseKey(key)
		if err != nil {
			return nil, fail("%v", err)
		}
		t, _ := f.Tensor(key)
		values, err := t.Float32s()
		if err != nil {
			return nil, fail("tensor %q: %v", key, err)
		}
		if kind == "" {
			// With ensure_weight_tying PEFT also saves the head it tied to
			// the embeddings' copy, though modules_to_save no longer lists
			// it (TieModulesToSave); lora.Load checks it against the model.
			tiedHead := cfg.EnsureWeightTying && module == OutputHead
			if _, ok := matchesName(cfg.ModulesToSave, module); !ok && !tiedHead {
				return nil, fail("tensor %q is neither a LoRA weight nor in modules_to_save %v", key, cfg.ModulesToSave)
			}
			a.Saved[module+"."+param] = &Tensor{Shape: t.Shape, Data: values}
			continue
		}
		if len(t.Shape) != 2 {
			return nil, fail("tensor %q has shape %v; LoRA weights are matrices", key, t.Shape)
		}
		p := a.LoRA[module]
		if p == nil {
			p = &Pair{Rank: cfg.Rank(module), Embedding: kind == LoraEmbeddingA || kind == LoraEmbeddingB}
			a.LoRA[module] = p
		}
		switch kind {
		case LoraA, LoraEmbeddingA:
			p.A, p.In = values, t.Shape[1]
			if t.Shape[0] != p.Rank {
				return nil, fail("tensor %q has shape %v but the rank of %s is %d", key, t.Shape, module, p.Rank)
			}
		case LoraB, LoraEmbeddingB:
			p.B, p.Out = values, t.Shape[0]
			if t.Shape[1] != p.Rank {
				return nil, fail("tensor %q has shape %v but the rank of %s is %d", key, t.Shape, module, p.Rank)
			}
		}
	}
	for module, p := range a.LoRA {
		if p.A == nil || p.B == nil {
			return nil, fail("module %s has only one of its LoRA A and B weights", module)
		}
	}
	if len(a.LoRA) == 0 {
		return nil, fail("no LoRA weights")
	}
	return a, nil
}

// Save writes adapter_config.json and adapter_model.safetensors into dir
// (created if needed), each atomically, with weights stored as dtype (F32,
// BF16 or F16) and PEFT's {"format": "pt"} metadata.
func (a *Adapter) Save(dir string, dtype safetensors.DType) error {
	if err := a.Config.Validate(); err != nil {
		return fmt.Errorf("peft: %v", err)
	}
	cfg, err := a.Config.Encode()
	if err != nil {
		return err
	}
	var tensors []safetensors.NamedTensor
	add := func(name string, shape []int, values []float32) error {
		t, err := safetensors.FromFloat32(dtype, shape, values)
		if err != nil {
			return fmt.Errorf("peft: %s: %v", name, err)
		}
		tensors = append(tensors, safetensors.NamedTensor{Name: name, Tensor: t})
		return nil
	}
	for _, module := range sortedKeys(a.LoRA) {
		p := a.LoRA[module]
		kindA, kindB := LoraA, LoraB
		if p.Embedding {
			kindA, kindB = LoraEmbeddingA, LoraEmbeddingB
		}
		if err := add(SavedKey(module, kindA), []int{p.Rank, p.In}, p.A); err != nil {
			return err
		}
		if err := add(SavedKey(module, kindB), []int{p.Out, p.Rank}, p.B); err != nil {
			return err
		}
	}
	for _, name := range sortedKeys(a.Saved) {
		if err := add(KeyPrefix+name, a.Saved[name].Shape, a.Saved[name].Data); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("peft: %w", err)
	}
	if err := safetensors.WriteFile(filepath.Join(dir, WeightsFile), tensors, map[string]string{"format": "pt"}); err != nil {
		return err
	}
	return safetensors.WriteAtomic(filepath.Join(dir, ConfigFile), func(w io.Writer) error {
		_, err := io.Copy(w, bytes.NewReader(cfg))
		return err
	})
}

// Merge adds a LoRA pair into its base weight in place, as PEFT's
// merge_and_unload does: W += scaling·(B·A) for a linear weight [out, in];
// W += scaling·(B·A)ᵀ for an embedding weight [num_embeddings, dim]. The
// delta is formed in float32 like torch's, accumulated in float64.
func Merge(w []float32, p *Pair, scaling float64) error {
	if len(p.A) != p.Rank*p.In || len(p.B) != p.Out*p.Rank {
		return fmt.Errorf("peft: LoRA pair sizes A %d, B %d do not match rank %d, in %d, out %d", len(p.A), len(p.B), p.Rank, p.In, p.Out)
	}
	if len(w) != p.Out*p.In {
		return fmt.Errorf("peft: base weight has %d values, LoRA pair implies %d×%d", len(w), p.Out, p.In)
	}
	s := float32(scaling)
	row := make([]float64, p.In)
	for o := range p.Out {
		clear(row)
		for r := range p.Rank {
			b := float64(p.B[o*p.Rank+r])
			a := p.A[r*p.In : (r+1)*p.In]
			for i, av := range a {
				row[i] += b * float64(av)
			}
		}
		for i, d := range row {
			delta := float32(d) * s
			if p.Embedding {
				w[i*p.Out+o] += delta
			} else {
				w[o*p.In+i] += delta
			}
		}
	}
	return nil
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
