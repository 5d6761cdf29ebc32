package prompt

import (
	"math"
	"slices"
	"sync"
	"unicode/utf8"

	"github.com/eftml/eft/shared/tokenizer"
)

// encoder wraps the tokenizer with what Axolotl's strategies do around a
// call to it: truncation to max_length the way Hugging Face truncates (the
// text's tokens are cut so that they fit together with the special tokens
// the post-processor adds), EOS appended, BOS stripped.
type encoder struct {
	tok      *tokenizer.Tokenizer
	bos, eos int32 // -1 when the tokenizer has none

	lensOnce sync.Once
	// byteLens[id] is how many bytes of the text token id stands for, when
	// the tokenizer spells text byte for byte (byte-level BPE without a
	// normalizer); nil otherwise. 0 marks an id that is no token or stands
	// for more than 255 bytes (its texts take EncodeOffsets): one byte an
	// entry keeps the table of a 128k vocabulary in the CPU's cache.
	byteLens []uint8
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

// encodeOffsets is EncodeOffsets(text, false), except that a token holding
// part of a multi-byte character gets its own bytes rather than the whole
// character (Hugging Face widens such offsets to the character): both
// overlap the same character-aligned spans. For byte-level tokenizers it
// runs the cheaper Encode and adds up the tokens' byte lengths
// (byteOffsets).
//
// offsets is reused when it has room; the ids are always new.
func (e *encoder) encodeOffsets(text string, offsets []tokenizer.Offset) ([]int32, []tokenizer.Offset) {
	if e.spellsBytes() {
		// About 4 bytes a token: one allocation for most texts.
		ids := e.tok.AppendEncode(make([]int32, 0, len(text)/4+16), text, false)
		if offsets, ok := e.byteOffsets(text, ids, offsets); ok {
			return ids, offsets
		}
	}
	enc := e.tok.EncodeOffsets(text, false)
	return enc.IDs, enc.Offsets
}

// byteOffsets is the offsets of text's tokens ids from their byte lengths,
// checking that they spell exactly len(text) bytes (false when they do not,
// or the tokenizer has no byte lengths). offsets is reused when it has room.
func (e *encoder) byteOffsets(text string, ids []int32, offsets []tokenizer.Offset) ([]tokenizer.Offset, bool) {
	lens := e.byteLens
	if lens == nil {
		return offsets, false
	}
	offsets = slices.Grow(offsets[:0], len(ids))[:len(ids)]
	at := 0
	for i, id := range ids {
		if uint(id) >= uint(len(lens)) || lens[id] == 0 {
			return offsets, false
		}
		n := int(lens[id])
		offsets[i] = tokenizer.Offset{Start: at, End: at + n}
		at += n
	}
	return offsets, at == len(text)
}

// spellsBytes reports whether the tokenizer's tokens spell the text byte
// for byte (byteLens), so that their places follow from their lengths.
func (e *encoder) spellsBytes() bool {
	e.lensOnce.Do(e.initByteLens)
	return e.byteLens != nil
}

// offsetsOf is the offsets of text's tokens ids (Encode's), as
// encodeOffsets gives them: from the tokens' byte lengths when they spell
// the text, else from EncodeOffsets, whose ids then replace ids (nil when
// they differ, which they should not). offsets is reused when it has room.
func (e *encoder) offsetsOf(text string, ids []int32, offsets []tokenizer.Offset) ([]tokenizer.Offset, []int32) {
	if e.spellsBytes() {
		if offsets, ok := e.byteOffsets(text, ids, offsets); ok {
			return offsets, ids
		}
	}
	enc := e.tok.EncodeOffsets(text, false)
	if !slices.Equal(enc.IDs, ids) {
		return nil, nil
	}
	return enc.Offsets, ids
}

// tokenRanges finds, in one walk over the tokens' byte lengths, the tokens
// [start, end) that overlap each message's content: spans[i] is where
// message i's content is in the text (from -1: nowhere; an empty span has
// no tokens), and order lists the messages whose contents are in the text
// in the order they appear there. It appends one range per message to
// ranges and returns them, or nil when the byte lengths do not spell the
// text exactly or the spans are not in that order (the caller then uses
// offsets).
//
// A content [from, to) starts at the first token ending after from and
// ends after the first token ending at or after to (the tokens touching it,
// as tokenRange finds them by offsets): both are "the first token whose end
// passes a threshold", and the thresholds of contents in text order never
// decrease, so the walk compares each token's end with one number.
func (e *encoder) tokenRanges(ids []int32, textLen int, spans []span, order []int, ranges []tokenSpan) []tokenSpan {
	if !e.spellsBytes() {
		return nil
	}
	lens := e.byteLens
	ranges = slices.Grow(ranges[:0], len(spans))[:len(spans)]
	for i := range ranges {
		ranges[i] = tokenSpan{-1, -1}
	}
	var small [16]int
	thresholds := small[:0]
	for _, i := range order {
		sp := spans[i]
		if sp.from < 0 || sp.to <= sp.from {
			continue
		}
		if len(thresholds) > 0 && sp.from < thresholds[len(thresholds)-1]+1 {
			return nil // out of text order
		}
		thresholds = append(thresholds, sp.from, sp.to-1)
	}
	found := thresholds // reused: found[j] is the token that passed threshold j
	if !passThresholds(ids, lens, thresholds, textLen) {
		return nil
	}
	j := 0
	for _, i := range order {
		if sp := spans[i]; sp.from >= 0 && sp.to > sp.from {
			ranges[i] = tokenSpan{found[j], found[j+1] + 1}
			j += 2
		}
	}
	return ranges
}

// passThresholds replaces each threshold (bytes, ascending) with the index
// of the first token whose end passes it, walking the tokens' byte lengths;
// false when a token's length is unknown or the lengths do not add up to
// textLen. Its own function so that the walk, one pass over every token of
// the text, keeps its state in registers.
func passThresholds(ids []int32, lens []uint8, thresholds []int, textLen int) bool {
	next, th := 0, math.MaxInt
	if len(thresholds) > 0 {
		th = thresholds[0]
	}
	at := 0
	for k, id := range ids {
		i := uint(uint32(id))
		if i >= uint(len(lens)) || lens[i] == 0 {
			return false
		}
		if at += int(lens[i]); at <= th {
			continue
		}
		for at > th {
			thresholds[next] = k
			next++
			th = math.MaxInt
			if next < len(thresholds) {
				th = thresholds[next]
			}
		}
	}
	return at == textLen && next == len(thresholds)
}

// offsetProbe exercises what could make token lengths differ from text
// lengths: multi-byte characters, whitespace runs, special tokens.
const offsetProbe = "Hello, world!\n\n  Ünïcödé — 日本語 🐳\ttabs\r\n x  "

// initByteLens builds byteLens when the tokenizer's own offsets agree with
// them on the probe (and on its special tokens).
func (e *encoder) initByteLens() {
	added := e.tok.AddedTokens()
	n := e.tok.VocabSize()
	for id := range added {
		n = max(n, int(id)+1)
	}
	lens := make([]uint8, n)
	for id := range lens {
		size := 0
		if a, ok := added[int32(id)]; ok {
			size = len(a.Content)
		} else if tok, ok := e.tok.IDToToken(int32(id)); ok {
			// A byte-level token is one character per byte.
			size = utf8.RuneCountInString(tok)
		}
		if size <= 255 {
			lens[id] = uint8(size)
		}
	}
	probe := offsetProbe
	for _, a := range added {
		probe += a.Content + "x"
	}
	enc := e.tok.EncodeOffsets(probe, false)
	at := 0
	for i, id := range enc.IDs {
		if lens[id] == 0 || enc.Offsets[i] != widen(probe, tokenizer.Offset{Start: at, End: at + int(lens[id])}) {
			return
		}
		at += int(lens[id])
	}
	if at == len(probe) {
		e.byteLens = lens
	}
}

// widen extends a byte range to the characters it touches, as Hugging
// Face reports the offsets of tokens that split a character.
func widen(text string, o tokenizer.Offset) tokenizer.Offset {
	for o.Start > 0 && o.Start < len(text) && !utf8.RuneStart(text[o.Start]) {
		o.Start--
	}
	for o.End < len(text) && !utf8.RuneStart(text[o.End]) {
		o.End++
	}
	return o
}
