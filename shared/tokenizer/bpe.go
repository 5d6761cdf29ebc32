package tokenizer

import (
	"fmt"
	"unicode/utf8"
)

// bpeModel is Hugging Face's BPE model: words split into characters (or,
// for byte-level pipelines, bytes), then merged pairwise in merge-rank
// order, leftmost first.
type bpeModel struct {
	vocab  map[string]int32
	vocabR []string
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
}

// bpeSymbol is one symbol of a word being merged (Hugging Face's Symbol).
type bpeSymbol struct {
	id         int32
	prev, next int32
	len        int32 // bytes of the word it covers; 0 once merged away
}

// bpeMerge is a candidate merge in the queue.
type bpeMerge struct {
	pos    int32
	rank   int32
	merged int32
}

// bpeScratch holds the per-encoder buffers and word cache of the BPE model.
type bpeScratch struct {
	syms  []bpeSymbol
	queue []bpeMerge
	buf   []byte
	// cache maps a word to its tokens, packed as id | len<<24 (words of
	// fewer than 256 bytes only, like Hugging Face's cache).
	cache      map[string][]uint32
	cacheBytes map[string][]uint32
}

const (
	bpeCacheMaxWordLen = 256
	bpeCacheEntries    = 1 << 15
)

func (m *bpeModel) vocabSize() int { return len(m.vocab) }

func (m *bpeModel) tokenToID(s string) (int32, bool) {
	id, ok := m.vocab[s]
	return id, ok
}

func (m *bpeModel) idToToken(id int32) (string, bool) {
	if id < 0 || int(id) >= len(m.vocabR) || (m.vocabR[id] == "" && m.vocab[""] != id) {
		return "", false
	}
	return m.vocabR[id], true
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
func (m *bpeModel) tokenizeBytes(sc *bpeScratch, word []byte, out []token) ([]token, bool) {
	if len(word) == 0 {
		return out, true
	}
	if m.ignoreMerges {
		if id, ok := m.byteVocab[string(word)]; ok {
			return append(out, token{id: id, start: 0, end: int32(len(word))}), true
		}
	}
	cacheable := len(word) < bpeCacheMaxWordLen
	if cacheable {
		if hit, ok := sc.cacheBytes[string(word)]; ok {
			return appendPacked(out, hit), true
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
	n := len(out)
	out = appendSymbols(out, syms)
	if cacheable {
		if sc.cacheBytes == nil || len(sc.cacheBytes) >= bpeCacheEntries {
			sc.cacheBytes = make(map[string][]uint32, 1024)
		}
		sc.cacheBytes[string(word)] = pack(out[n:])
	}
	return out, true
}

// tokenize tokenizes a word of normalized, pre-tokenized text.
func (m *bpeModel) tokenize(sc *bpeScratch, word []byte, out []token) []token {
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
		if sc.cache == nil || len(sc.cache) >= bpeCacheEntries {
			sc.cache = make(map[string][]uint32, 1024)
		}
		sc.cache[string(word)] = pack(out[n:])
	}
	return out
}

// initialSymbols splits a word into characters and looks each up, with
// prefix/suffix, byte fallback and unknown handling as Hugging Face's
// BPE::merge_word does.
func (m *bpeModel) initialSymbols(sc *bpeScratch, word []byte) []bpeSymbol {
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
// candidate pairs (Hugging Face's Word::merge_all without dropout).
func (m *bpeModel) mergeAll(sc *bpeScratch, syms []bpeSymbol) []bpeSymbol {
	if len(syms) < 2 {
		return syms
	}
	q := sc.queue[:0]
	for i := 0; i+1 < len(syms); i++ {
		if rank, merged, ok := m.merges.get(syms[i].id, syms[i+1].id); ok {
			q = heapPush(q, bpeMerge{pos: int32(i), rank: rank, merged: merged})
		}
	}
	for len(q) > 0 {
		var top bpeMerge
		top, q = heapPop(q)
		cur := &syms[top.pos]
		if cur.len == 0 || cur.next < 0 {
			continue
		}
		nextPos := cur.next
		right := syms[nextPos]
		if _, merged, ok := m.merges.get(cur.id, right.id); !ok || merged != top.merged {
			continue
		}
		cur.id = top.merged
		cur.len += right.len
		cur.next = right.next
		syms[nextPos].len = 0
		if right.next >= 0 {
			syms[right.next].prev = top.pos
		}
		if cur.prev >= 0 {
			if rank, merged, ok := m.merges.get(syms[cur.prev].id, cur.id); ok {
				q = heapPush(q, bpeMerge{pos: cur.prev, rank: rank, merged: merged})
			}
		}
		if cur.next >= 0 {
			if rank, merged, ok := m.merges.get(cur.id, syms[cur.next].id); ok {
				q = heapPush(q, bpeMerge{pos: top.pos, rank: rank, merged: merged})
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

func mergeLess(a, b bpeMerge) bool {
	if a.rank != b.rank {
		return a.rank < b.rank
	}
	return a.pos < b.pos
}

func heapPush(q []bpeMerge, x bpeMerge) []bpeMerge {
	q = append(q, x)
	i := len(q) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !mergeLess(q[i], q[p]) {
			break
		}
		q[i], q[p] = q[p], q[i]
		i = p
	}
	return q
}

func heapPop(q []bpeMerge) (bpeMerge, []bpeMerge) {
	top := q[0]
	last := len(q) - 1
	q[0] = q[last]
	q = q[:last]
	i := 0
	for {
		l := 2*i + 1
		if l >= len(q) {
			break
		}
		c := l
		if r := l + 1; r < len(q) && mergeLess(q[r], q[l]) {
			c = r
		}
		if !mergeLess(q[c], q[i]) {
			break
		}
		q[i], q[c] = q[c], q[i]
		i = c
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
