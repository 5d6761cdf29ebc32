package tokenizer

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"unicode"
)

// llamaFamily are the tokenizer classes whose add_bos_token/add_eos_token
// settings rebuild the post-processor in transformers
// (update_post_processor), so the flags in tokenizer_config.json win over
// tokenizer.json's template.
var llamaFamily = map[string]bool{
	"LlamaTokenizer": true, "LlamaTokenizerFast": true,
	"CodeLlamaTokenizer": true, "CodeLlamaTokenizerFast": true,
	"GemmaTokenizer": true, "GemmaTokenizerFast": true,
	"CohereTokenizer": true, "CohereTokenizerFast": true,
}

// applyConfig reads tokenizer_config.json: the tokens named bos/eos/pad/
// unk, tokens of added_tokens_decoder missing from tokenizer.json, and the
// add_bos_token/add_eos_token switches of Llama-family tokenizers.
func (t *Tokenizer) applyConfig(data []byte, file string) error {
	o, err := decodeObj(file, "", data)
	if err != nil {
		return err
	}
	if o.has("added_tokens_decoder") {
		var dec map[string]AddedToken
		if _, err := o.get("added_tokens_decoder", &dec); err != nil {
			return err
		}
		keys := make([]string, 0, len(dec))
		for k := range dec {
			keys = append(keys, k)
		}
		sort.Slice(keys, func(i, j int) bool {
			a, _ := strconv.Atoi(keys[i])
			b, _ := strconv.Atoi(keys[j])
			return a < b
		})
		var missing []AddedToken
		for _, k := range keys {
			if _, err := strconv.Atoi(k); err != nil {
				return o.errorf("added_tokens_decoder", "key %q is not an id", k)
			}
			if _, ok := t.TokenToID(dec[k].Content); !ok {
				missing = append(missing, dec[k])
			}
		}
		if len(missing) > 0 {
			t.addTokens(missing)
		}
	}
	roles := []struct {
		key  string
		name *string
		id   *int32
	}{
		{"bos_token", &t.special.BOS, &t.special.BOSID},
		{"eos_token", &t.special.EOS, &t.special.EOSID},
		{"pad_token", &t.special.PAD, &t.special.PADID},
		{"unk_token", &t.special.UNK, &t.special.UNKID},
	}
	for _, r := range roles {
		content, err := tokenContent(o, r.key)
		if err != nil {
			return err
		}
		if content == "" {
			continue
		}
		if err := t.SetSpecialToken(r.key, content); err != nil {
			return o.errorf(r.key, "%v", err)
		}
	}
	class, err := o.str("tokenizer_class", "")
	if err != nil {
		return err
	}
	if llamaFamily[class] && (o.has("add_bos_token") || o.has("add_eos_token")) {
		addBOS, err := o.boolean("add_bos_token", true)
		if err != nil {
			return err
		}
		addEOS, err := o.boolean("add_eos_token", false)
		if err != nil {
			return err
		}
		if err := t.SetAddBOSEOS(addBOS, addEOS); err != nil {
			return o.errorf("add_bos_token", "%v", err)
		}
	}
	return nil
}

// tokenContent reads a special token given as a string or as an
// AddedToken object.
func tokenContent(o jsonObj, key string) (string, error) {
	if !o.has(key) {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(o.m[key], &s); err == nil {
		return s, nil
	}
	var tok AddedToken
	if err := json.Unmarshal(o.m[key], &tok); err != nil {
		return "", o.errorf(key, "want a string or a token object: %v", err)
	}
	return tok.Content, nil
}

// SetSpecialToken names the token for a role ("bos_token", "eos_token",
// "pad_token" or "unk_token"), adding it as a special token when the
// vocabulary lacks it (Axolotl's special_tokens config key).
func (t *Tokenizer) SetSpecialToken(role, content string) error {
	var name *string
	var id *int32
	switch role {
	case "bos_token":
		name, id = &t.special.BOS, &t.special.BOSID
	case "eos_token":
		name, id = &t.special.EOS, &t.special.EOSID
	case "pad_token":
		name, id = &t.special.PAD, &t.special.PADID
	case "unk_token":
		name, id = &t.special.UNK, &t.special.UNKID
	default:
		return fmt.Errorf("unknown special token role %q", role)
	}
	if content == "" {
		return fmt.Errorf("%s: empty token", role)
	}
	tid, ok := t.TokenToID(content)
	if !ok {
		t.addTokens([]AddedToken{{Content: content, Special: true}})
		tid, _ = t.TokenToID(content)
	}
	*name, *id = content, tid
	t.finish()
	return nil
}

// SetAddBOSEOS rebuilds the post-processor as bos? $A eos? (what
// transformers does for Llama-family tokenizers from add_bos_token and
// add_eos_token).
func (t *Tokenizer) SetAddBOSEOS(addBOS, addEOS bool) error {
	tp := &templateProcessor{}
	if addBOS {
		if t.special.BOSID < 0 {
			return fmt.Errorf("add_bos_token is set but there is no bos_token")
		}
		tp.single = append(tp.single, templatePiece{ids: []int32{t.special.BOSID}})
	}
	tp.single = append(tp.single, templatePiece{sequence: true})
	if addEOS {
		if t.special.EOSID < 0 {
			return fmt.Errorf("add_eos_token is set but there is no eos_token")
		}
		tp.single = append(tp.single, templatePiece{ids: []int32{t.special.EOSID}})
	}
	// Keep a ByteLevel offset processor if there was one.
	var keep sequenceProcessor
	switch p := t.post.(type) {
	case *byteLevelProcessor:
		keep = append(keep, p)
	case sequenceProcessor:
		for _, q := range p {
			if bl, ok := q.(*byteLevelProcessor); ok {
				keep = append(keep, bl)
			}
		}
	}
	if len(keep) > 0 {
		t.post = append(keep, tp)
	} else {
		t.post = tp
	}
	t.finish()
	return nil
}

// AddTokens adds tokens to the vocabulary (Axolotl's tokens config key and
// transformers' add_tokens); it returns how many were new. Call it before
// encoding, not concurrently with it.
func (t *Tokenizer) AddTokens(tokens ...AddedToken) int {
	n := t.addTokens(tokens)
	t.finish()
	return n
}

// TokenToID returns the id of a token string (added tokens first).
func (t *Tokenizer) TokenToID(tok string) (int32, bool) {
	if id, ok := t.added.ids[tok]; ok {
		return id, true
	}
	return t.model.tokenToID(tok)
}

// IDToToken returns the token string of an id.
func (t *Tokenizer) IDToToken(id int32) (string, bool) {
	if tok, ok := t.added.byID[id]; ok {
		return tok.Content, true
	}
	return t.model.idToToken(id)
}

// VocabSize is the number of distinct ids: the model's vocabulary plus the
// added tokens that are not in it.
func (t *Tokenizer) VocabSize() int {
	n := t.model.vocabSize()
	for _, id := range t.sortedAddedTokens() {
		tok := t.added.byID[id]
		if _, inModel := t.model.tokenToID(tok.Content); !inModel {
			n++
		}
	}
	return n
}

// Vocab returns the token -> id map, added tokens included (Hugging Face's
// get_vocab(with_added_tokens=True)).
func (t *Tokenizer) Vocab() map[string]int32 {
	v := t.model.vocabMap()
	out := make(map[string]int32, len(v)+len(t.added.ids))
	for k, id := range v {
		out[k] = id
	}
	for k, id := range t.added.ids {
		out[k] = id
	}
	return out
}

// Special returns the bos/eos/pad/unk tokens and ids.
func (t *Tokenizer) Special() SpecialTokens { return t.special }

// AddedTokens returns the added tokens by id.
func (t *Tokenizer) AddedTokens() map[int32]AddedToken {
	out := make(map[int32]AddedToken, len(t.added.byID))
	for id, tok := range t.added.byID {
		out[id] = tok
	}
	return out
}

// IsSpecial reports whether id is a special added token.
func (t *Tokenizer) IsSpecial(id int32) bool {
	tok, ok := t.added.byID[id]
	return ok && t.added.special[tok.Content]
}

func isNumeric(r rune) bool { return unicode.IsNumber(r) }

func isUnicodeSpace(r rune) bool { return unicode.IsSpace(r) }
