package peft

import (
	"regexp"
	"slices"
	"strings"
)

// OutputHead is the module name of a causal LM's output projection, the
// layer transformers ties to the input embeddings (tie_word_embeddings).
const OutputHead = "lm_head"

// embeddingLayerNames are the layer names PEFT treats as a tied pair
// (peft.utils.constants.EMBEDDING_LAYER_NAMES).
var embeddingLayerNames = []string{"embed_tokens", OutputHead}

// NamesEmbeddingLayer reports whether an entry of modules_to_save names the
// input embeddings or the output head by its last component, the test PEFT
// makes (BaseTuner._check_tied_modules) before it ties or warns.
func (c *Config) NamesEmbeddingLayer() bool {
	for _, m := range c.ModulesToSave {
		if slices.Contains(embeddingLayerNames, m[strings.LastIndex(m, ".")+1:]) {
			return true
		}
	}
	return false
}

// TieModulesToSave rewrites modules_to_save for a model whose head
// (OutputHead) shares the weight of its input embeddings (module path
// inputEmbeddings, "model.embed_tokens") as PEFT 0.21's
// LoraModel._add_modules_to_save_to_tie does: with ensure_weight_tying set
// and an entry naming either layer, the embeddings' path is appended unless
// listed, the first entry naming the head is removed, and it reports true:
// the embeddings get the one trainable copy and the head is tied to it. The
// list it leaves is what PEFT writes to adapter_config.json ("lm_head" →
// ["model.embed_tokens"]). Otherwise it changes nothing and reports false,
// and each listed layer gets its own copy (PEFT's default, "treat as
// separate"). Applying it twice changes nothing more.
func (c *Config) TieModulesToSave(inputEmbeddings string) bool {
	if !c.EnsureWeightTying || !c.NamesEmbeddingLayer() {
		return false
	}
	saved := slices.Clone(c.ModulesToSave)
	if !slices.Contains(saved, inputEmbeddings) {
		saved = append(saved, inputEmbeddings)
	}
	// PEFT matches each entry as a regex against the tied module's name:
	// re.match(rf"(^|.*\.){m}($|\..*)", "lm_head") (an entry that is no
	// regex matches nothing here; PEFT would raise).
	for i, m := range saved {
		re, err := regexp.Compile(`^(?:|.*\.)(?:` + m + `)(?:$|\..*)`)
		if err == nil && re.MatchString(OutputHead) {
			saved = slices.Delete(saved, i, i+1)
			break
		}
	}
	c.ModulesToSave = saved
	return true
}
