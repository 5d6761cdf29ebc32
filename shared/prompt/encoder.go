package prompt

import (
	"slices"

	"github.com/eftml/eft/shared/tokenizer"
)

// encoder wraps the tokenizer with what Axolotl's strategies do around a
// call to it: truncation to max_length the way Hugging Face truncates (the
// text's tokens are cut so that they fit together with the special tokens
// the post-processor adds), EOS appended, BOS stripped.
type encoder struct {
	tok      *tokenizer.Tokenizer
	bos, eos int32 // -1 when the tokenizer has none
}

func newEncoder(tok *tokenizer.Tokenizer) *encoder {
	sp := tok.Special()
	return &encoder{tok: tok, bos: sp.BOSID, eos: sp.EOSID}
}

// encode appends text's ids, with the post-processor's special tokens when
// addSpecial, truncated to at most maxLen ids (maxLen <= 0: no limit).
func (e *encoder) encode(dst []int32, text string, addSpecial bool, maxLen int) []int32 {
	start := len(dst)
	dst = e.tok.AppendEncode(dst, text, addSpecial)
	if maxLen <= 0 || len(dst)-start <= maxLen {
		return dst
	}
	full := dst[start:]
	if !addSpecial {
		return dst[:start+maxLen]
	}
	// Find the text's own ids inside the ids with special tokens: what comes
	// before them is the prefix (BOS), what comes after the suffix.
	plain := e.tok.Encode(text, false)
	added := len(full) - len(plain)
	prefix := 0
	for p := 0; p+len(plain) <= len(full); p++ {
		if slices.Equal(full[p:p+len(plain)], plain) {
			prefix = p
			break
		}
	}
	suffix := slices.Clone(full[prefix+len(plain):])
	keep := max(maxLen-added, 0)
	out := append(dst[:start+prefix], plain[:keep]...)
	return append(out, suffix...)
}

// tokenize is Axolotl's PromptTokenizingStrategy._tokenize: the text with
// special tokens, truncated to maxLen; EOS appended when addEOS, the text did
// not already end with it and there is room; a leading BOS removed when
// stripBOS. Empty text gives no ids at all (not even BOS).
func (e *encoder) tokenize(dst []int32, text string, maxLen int, addEOS, stripBOS bool) []int32 {
	if text == "" {
		return dst
	}
	start := len(dst)
	dst = e.encode(dst, text, true, maxLen)
	ids := dst[start:]
	if len(ids) == 0 {
		return dst
	}
	if addEOS && e.eos >= 0 && ids[len(ids)-1] != e.eos && (maxLen <= 0 || len(ids) < maxLen) {
		dst = append(dst, e.eos)
		ids = dst[start:]
	}
	if stripBOS && e.bos >= 0 && ids[0] == e.bos {
		copy(ids, ids[1:])
		dst = dst[:len(dst)-1]
	}
	return dst
}
