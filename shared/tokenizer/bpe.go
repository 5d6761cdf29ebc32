package tokenizer

import (
	"fmt"
	"unicode/utf8"
)

// bpeModel is Hugging Face's BPE model: words split into characters (or,
// for byte-level pipelines, bytes), then merged pairwise in merge-rank
// order, leftmost first.
type bpeModel struct {
	vocabulary
	merges *pairTable

	unkToken     string
	unkID        int32 // -1 when there is no unk token
	fuseUnk      bool
	byteFallback bool
	ignoreMerges bool
	prefix       string // continuing_subword_prefix
	suffix       string // end_of_word_suffix

	// fallbackIDs[b] is the id of "<0xXX>" (byte fallback), or -1.
	fallbackIDs [256]int32
	// charIDs maps single characters to ids (the common case of the first
	// step, without building a string).
	charIDs map[rune]int32

	// Byte-level fast path: the vocabulary keyed by the raw bytes that its
	// byte-level strings stand for, so pre-tokenized words never need the
	// byte-to-character mapping. byteIDs[b] is the id of byte b's character.
	byteVocab map[string]int32
	byteIDs   [256]int32
	byteReady bool // all 256 byte characters are in the vocabulary

	// metaCut holds the characters that can precede "▁" inside a token
	// (nil: long words are never cut).
	metaCut map[rune]bool
}

// bpeSymbol is one symbol of a word being merged (Hugging Face's Symbol).
type bpeSymbol struct {
	id         int32
	prev, next int32
	len        int32 // bytes of the word it covers; 0 once merged away
}

// modelScratch holds the per-encoder buffers and word caches of the models.
type modelScratch struct {
	best  []bestNode // unigram lattice
	syms  []bpeSymbol
	queue []uint64
	buf   []byte
	// cache maps a word to its tokens, packed as id | len<<24 (words of
	// fewer than 256 bytes only, like Hugging Face's cache).
	cache      map[string][]uint32
	cacheBytes map[string][]uint32
}

// A word cache takes words until it holds bpeCacheEntries, then keeps
// those, as Hugging Face's does: the frequent words come early, and a
// cache that was emptied when full (as ours was) thrashed on text with
// more distinct words than it holds, running BPE again for words it had
// just forgotten: SentencePiece-style words (whole "▁"-joined chunks) of
// Moby Dick ran at a third of the speed (BenchmarkEncodeMistralOneCore).
const (
	bpeCacheMaxWordLen = 256
	bpeCacheEntries    = 1 << 16
)

// rememberWord caches a word's tokens while the cache has room.
func rememberWord(cache *map[string][]uint32, word []byte, toks []token) {
	if *cache == nil {
		*cache = make(map[string][]uint32, 1024)
	}
	if len(*cache) < bpeCacheEntries {
		(*cache)[string(word)] = pack(toks)
	}
}

// finish builds the derived lookup tables once vocab and merges are set.
func (m *bpeModel) finish() error {
	m.charIDs = make(map[rune]int32)
	for tok, id := range m.vocab {
		if r, n := utf8.DecodeRuneInString(tok); n == len(tok) && (r != utf8.RuneError || n > 1) {
			m.charIDs[r] = id
		}
	}
	for b := 0; b < 256; b++ {
		m.fallbackIDs[b] = -1
		if id, ok := m.vocab[fmt.Sprintf("<0x%02X>", b)]; ok {
			m.fallbackIDs[b] = id
		}
	}
	m.unkID = -1
	if m.unkToken != "" {
		id, ok := m.vocab[m.unkToken]
		if !ok {
			return fmt.Errorf("unk_token %q is not in the vocabulary", m.unkToken)
		}
		m.unkID = id
	}
	m.prepareMetaCut()
	return nil
}

// prepareByteLevel builds the raw-byte vocabulary used when the model sits
// behind a ByteLevel pre-tokenizer.
func (m *bpeModel) prepareByteLevel() {
	if m.byteVocab != nil || m.prefix != "" || m.suffix != "" {
		return
	}
	m.byteVocab = make(map[string]int32, len(m.vocab))
	var buf []byte
	for tok, id := range m.vocab {
		buf = buf[:0]
		ok := true
		for _, c := range tok {
			b, in := charToByte[c]
			if !in {
				ok = false
				break
			}
			buf = append(buf, b)
		}
		if ok {
			m.byteVocab[string(buf)] = id
		}
	}
	m.byteReady = true
	for b := 0; b < 256; b++ {
		id, ok := m.vocab[byteToCharUTF8[b]]
		if !ok {
			id = -1
			m.byteReady = false
		}
		m.byteIDs[b] = id
	}
}

// tokenizeBytes tokenizes a word given as raw bytes that a ByteLevel
// pre-tokenizer would have mapped to characters. It reports false when the
// word needs the general path (a byte whose character is missing).
func (m *bpeModel) tokenizeBytes(sc *modelScratch, word []byte, out []token) ([]token, bool) {
	if len(word) == 0 {
		return out, true
	}
	// The small per-encoder cache first: it holds the frequent words and
	// stays in the CPU cache, unlike the vocabulary map.
	cacheable := len(word) < bpeCacheMaxWordLen
	if cacheable {
		if hit, ok := sc.cacheBytes[string(word)]; ok {
			return appendPacked(out, hit), true
		}
	}
	n := len(out)
	if m.ignoreMerges {
		if id, ok := m.byteVocab[string(word)]; ok {
			out = append(out, token{id: id, start: 0, end: int32(len(word))})
			if cacheable {
				rememberWord(&sc.cacheBytes, word, out[n:])
			}
			return out, true
		}
	}
	if !m.byteReady {
		for _, b := range word {
			if m.byteIDs[b] < 0 {
				return out, false
			}
		}
	}
	syms := sc.syms[:0]
	for i, b := range word {
		syms = append(syms, bpeSymbol{id: m.byteIDs[b], prev: int32(i - 1), next: int32(i + 1), len: 1})
	}
	syms[len(syms)-1].next = -1
	syms = m.mergeAll(sc, syms)
	sc.syms = syms
	out = appendSymbols(out, syms)
	if cacheable {
		rememberWord(&sc.cacheBytes, word, out[n:])
	}
	return out, true
}

// tokenize tokenizes a word of normalized, pre-tokenized text. Long words
// (SentencePiece-style models see a whole segment as one word) are cut
// before each "▁" that no merge can join to the character before it: when
// no vocabulary token contains that pair of characters, no symbol can ever
// span the cut, so the pieces merge exactly as the whole would, and short
// pieces hit the word cache.
func (m *bpeModel) tokenize(sc *modelScratch, word []byte, out []token) []token {
	if m.metaCut == nil || len(word) < 2*len(metaChar) {
		return m.tokenizeWord(sc, word, out)
	}
	start := 0
	prev := rune(-1)
	for i := 0; i < len(word); {
		r, n := utf8.DecodeRune(word[i:])
		if r == metaRune && i > start && !m.metaCut[prev] {
			if _, known := m.charIDs[prev]; known {
				out = m.tokenizeChunk(sc, word, start, i, out)
				start = i
			}
		}
		prev = r
		i += n
	}
	return m.tokenizeChunk(sc, word, start, len(word), out)
}

func (m *bpeModel) tokenizeChunk(sc *modelScratch, word []byte, start, end int, out []token) []token {
	n := len(out)
	out = m.tokenizeWord(sc, word[start:end], out)
	for k := n; k < len(out); k++ {
		out[k].start += int32(start)
		out[k].end += int32(start)
	}
	return out
}

const (
	metaRune = '▁'
	metaChar = "▁"
)

// prepareMetaCut finds the characters that some vocabulary token has right
// before "▁"; tokenize never cuts after them.
func (m *bpeModel) prepareMetaCut() {
	if m.ignoreMerges || m.prefix != "" || m.suffix != "" {
		return
	}
	if _, ok := m.charIDs[metaRune]; !ok {
		return
	}
	m.metaCut = map[rune]bool{}
	for tok := range m.vocab {
		prev := rune(-1)
		for _, r := range tok {
			if r == metaRune && prev >= 0 {
				m.metaCut[prev] = true
			}
			prev = r
		}
	}
}

// tokenizeWord runs BPE on one word (through the cache).
func (m *bpeModel) tokenizeWord(sc *modelScratch, word []byte, out []token) []token {
	if len(word) == 0 {
		return out
	}
	if m.ignoreMerges {
		if id, ok := m.vocab[string(word)]; ok {
			return append(out, token{id: id, start: 0, end: int32(len(word))})
		}
	}
	cacheable := len(word) < bpeCacheMaxWordLen
	if cacheable {
		if hit, ok := sc.cache[string(word)]; ok {
			return appendPacked(out, hit)
		}
	}
	syms := m.initialSymbols(sc, word)
	syms = m.mergeAll(sc, syms)
	sc.syms = syms
	n := len(out)
	out = appendSymbols(out, syms)
	if cacheable {
		rememberWord(&sc.cache, word, out[n:])
	}
	return out
}

// initialSymbols splits a word into characters and looks each up, with
// prefix/suffix, byte fallback and unknown handling as Hugging Face's
// BPE::merge_word does.
func (m *bpeModel) initialSymbols(sc *modelScratch, word []byte) []bpeSymbol {
	syms := sc.syms[:0]
	add := func(id int32, n int) {
		syms = append(syms, bpeSymbol{id: id, prev: int32(len(syms) - 1), next: -1, len: int32(n)})
		if len(syms) > 1 {
			syms[len(syms)-2].next = int32(len(syms) - 1)
		}
	}
	unkID, unkLen := int32(-1), 0
	plain := m.prefix == "" && m.suffix == ""
	for i := 0; i < len(word); {
		r, n := utf8.DecodeRune(word[i:])
		isFirst, isLast := i == 0, i+n == len(word)
		var id int32
		var found bool
		var piece []byte
		if plain {
			id, found = m.charIDs[r]
			piece = word[i : i+n]
		} else {
			buf := sc.buf[:0]
			if !isFirst {
				buf = append(buf, m.prefix...)
			}
			buf = append(buf, word[i:i+n]...)
			if isLast {
				buf = append(buf, m.suffix...)
			}
			sc.buf = buf
			id, found = m.vocab[string(buf)]
			piece = buf
		}
		i += n
		if found {
			if unkID >= 0 {
				add(unkID, unkLen)
				unkID = -1
			}
			add(id, n)
			continue
		}
		if m.byteFallback {
			all := true
			for _, b := range piece {
				if m.fallbackIDs[b] < 0 {
					all = false
					break
				}
			}
			if all {
				for _, b := range piece {
					add(m.fallbackIDs[b], 1)
				}
				continue
			}
		}
		if m.unkID >= 0 {
			switch {
			case unkID >= 0 && m.fuseUnk:
				unkLen += n
			case unkID >= 0:
				add(unkID, unkLen)
				unkLen = n
			default:
				unkID, unkLen = m.unkID, n
			}
		}
	}
	if unkID >= 0 {
		add(unkID, unkLen)
	}
	return syms
}

// mergeAll applies merges in rank order, leftmost first, with a min-heap of
// candidate pairs (Hugging Face's Word::merge_all without dropout). A queue
// entry is rank<<32 | position, so entries compare as plain integers; an
// entry is stale when the pair now at its position has another rank (a
// rank names exactly one pair, so this is Hugging Face's check on the
// merged id).
func (m *bpeModel) mergeAll(sc *modelScratch, syms []bpeSymbol) []bpeSymbol {
	if len(syms) < 2 {
		return syms
	}
	q := sc.queue[:0]
	for i := 0; i+1 < len(syms); i++ {
		if rank, _, ok := m.merges.get(syms[i].id, syms[i+1].id); ok {
			q = heapPush(q, uint64(rank)<<32|uint64(i))
		}
	}
	for len(q) > 0 {
		var top uint64
		top, q = heapPop(q)
		pos := int32(uint32(top))
		cur := &syms[pos]
		if cur.len == 0 || cur.next < 0 {
			continue
		}
		nextPos := cur.next
		right := syms[nextPos]
		rank, merged, ok := m.merges.get(cur.id, right.id)
		if !ok || uint64(rank) != top>>32 {
			continue
		}
		cur.id = merged
		cur.len += right.len
		cur.next = right.next
		syms[nextPos].len = 0
		if right.next >= 0 {
			syms[right.next].prev = pos
		}
		if cur.prev >= 0 {
			if rank, _, ok := m.merges.get(syms[cur.prev].id, cur.id); ok {
				q = heapPush(q, uint64(rank)<<32|uint64(cur.prev))
			}
		}
		if cur.next >= 0 {
			if rank, _, ok := m.merges.get(cur.id, syms[cur.next].id); ok {
				q = heapPush(q, uint64(rank)<<32|uint64(pos))
			}
		}
	}
	sc.queue = q
	// Compact the surviving symbols.
	k := 0
	for _, s := range syms {
		if s.len != 0 {
			syms[k] = s
			k++
		}
	}
	return syms[:k]
}

func heapPush(q []uint64, x uint64) []uint64 {
	q = append(q, x)
	i := len(q) - 1
	for i > 0 {
		p := (i - 1) / 2
		if q[p] <= x {
			break
		}
		q[i] = q[p]
		i = p
	}
	q[i] = x
	return q
}

func heapPop(q []uint64) (uint64, []uint64) {
	top := q[0]
	last := len(q) - 1
	x := q[last]
	q = q[:last]
	n := len(q)
	i := 0
	for {
		c := 2*i + 1
		if c >= n {
			break
		}
		if r := c + 1; r < n && q[r] < q[c] {
			c = r
		}
		if x <= q[c] {
			break
		}
		q[i] = q[c]
		i = c
	}
	if n > 0 {
		q[i] = x
	}
	return top, q
}

// token is a model token with its byte range in the word it came from.
type token struct {
	id         int32
	start, end int32
}

func appendSymbols(out []token, syms []bpeSymbol) []token {
	pos := int32(0)
	for _, s := range syms {
		out = append(out, token{id: s.id, start: pos, end: pos + s.len})
		pos += s.len
	}
	return out
}

func pack(toks []token) []uint32 {
	p := make([]uint32, len(toks))
	for i, t := range toks {
		p[i] = uint32(t.id) | uint32(t.end-t.start)<<24
	}
	return p
}

func appendPacked(out []token, p []uint32) []token {
	pos := int32(0)
	for _, v := range p {
		n := int32(v >> 24)
		out = append(out, token{id: int32(v & 0xFFFFFF), start: pos, end: pos + n})
		pos += n
	}
	return out
}
