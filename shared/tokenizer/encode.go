package tokenizer

import (
	"runtime"
	"strings"
	"unicode/utf8"
	"unsafe"

	"github.com/eftml/eft/shared/parallel"
)

// Offset is a byte range [Start, End) of the text given to Encode.
type Offset struct{ Start, End int }

// Encoding is the result of EncodeOffsets.
type Encoding struct {
	IDs []int32
	// Offsets are byte offsets into the encoded text, one per id; tokens
	// added by the post-processor (bos/eos...) have (0, 0).
	Offsets []Offset
	// SpecialMask marks the tokens added by the post-processor.
	SpecialMask []bool

	// values holds, for added tokens matched with surrounding whitespace
	// (lstrip/rstrip), the matched text; offset trimming reads it.
	values map[int]string
}

// CharOffsets converts byte offsets into character (code point) offsets of
// text, the way Hugging Face reports them to Python and JavaScript.
func CharOffsets(text string, offsets []Offset) []Offset {
	charAt := make([]int, len(text)+1)
	n := 0
	for i := range text {
		charAt[i] = n
		n++
	}
	// Continuation bytes map to the character they belong to.
	last := 0
	for i := 0; i < len(text); i++ {
		if utf8.RuneStart(text[i]) {
			last = charAt[i]
		} else {
			charAt[i] = last
		}
	}
	charAt[len(text)] = n
	out := make([]Offset, len(offsets))
	for i, o := range offsets {
		if o.Start < 0 || o.End > len(text) || o.Start > o.End {
			out[i] = o
			continue
		}
		start := charAt[o.Start]
		end := charAt[o.End]
		if o.End == len(text) && o.End > 0 && o.Start < o.End {
			end = charAt[o.End-1] + 1
		}
		if o.Start == len(text) && o.Start == o.End {
			start, end = o.Start, o.End
		}
		out[i] = Offset{start, end}
	}
	return out
}

// encoder holds the buffers of one encoding goroutine; Tokenizer keeps a
// pool of them so the hot path allocates nothing but its result.
type encoder struct {
	t     *Tokenizer
	segs  []segment
	nsegs []segment
	norm  textBuf
	pre   pretok
	toks  []token
	bpe   modelScratch
	ids   []int32
	offs  []Offset
	word  []byte
	wmap  []int32
	track bool
	text  string         // the text being encoded (valid UTF-8)
	vals  map[int]string // matched text of added tokens, when tracking
}

// getEncoder takes an idle encoder. Encoders live in a free list rather
// than a sync.Pool so their BPE word caches survive garbage collections.
func (t *Tokenizer) getEncoder() *encoder {
	select {
	case e := <-t.free:
		return e
	default:
		return &encoder{t: t}
	}
}

func (t *Tokenizer) putEncoder(e *encoder) {
	select {
	case t.free <- e:
	default:
	}
}

// run encodes text without post-processing into e.ids (and e.offs when
// offsets is set).
func (e *encoder) run(text string, offsets bool) {
	t := e.t
	e.ids = e.ids[:0]
	e.offs = e.offs[:0]
	e.track = offsets || t.needAlign
	text = validUTF8(text)
	e.text = text
	clear(e.vals)
	e.segs = t.added.split(e.segs[:0], t.added.rawTrie, text)
	for _, seg := range e.segs {
		if seg.id >= 0 {
			e.emitAdded(seg.id, seg.start, seg.end, text[seg.start:seg.end])
			continue
		}
		if seg.end <= seg.start {
			continue
		}
		e.norm.reset(text[seg.start:seg.end], seg.start, e.track)
		if t.normalizer != nil {
			t.normalizer.normalize(&e.norm)
		}
		if len(e.norm.text) == 0 {
			continue
		}
		if t.added.normTrie == nil {
			e.model(0, len(e.norm.text))
			continue
		}
		ntext := unsafe.String(&e.norm.text[0], len(e.norm.text))
		e.nsegs = t.added.split(e.nsegs[:0], t.added.normTrie, ntext)
		for _, sub := range e.nsegs {
			if sub.id >= 0 {
				s := e.norm.spanAt(sub.start)
				en := e.norm.spanAt(sub.end - 1)
				e.emitAdded(sub.id, int(s.start), int(en.end), ntext[sub.start:sub.end])
				continue
			}
			if sub.end > sub.start {
				e.model(sub.start, sub.end)
			}
		}
	}
}

// emitAdded appends an added token whose matched text is value.
func (e *encoder) emitAdded(id int32, start, end int, value string) {
	if e.track {
		if tok := e.t.added.byID[id]; value != tok.Content {
			if e.vals == nil {
				e.vals = map[int]string{}
			}
			e.vals[len(e.ids)] = string([]byte(value))
		}
		e.offs = append(e.offs, Offset{start, end})
	}
	e.ids = append(e.ids, id)
}

// model pre-tokenizes e.norm.text[a:b] and runs the model on each piece.
func (e *encoder) model(a, b int) {
	t := e.t
	p := &e.pre
	p.buf.track = e.track
	p.buf.base = e.norm.spanAt(a).start
	p.buf.text = append(p.buf.text[:0], e.norm.text[a:b]...)
	if e.track {
		p.buf.align = append(p.buf.align[:0], e.norm.align[a:b]...)
	}
	p.pieces = append(p.pieces[:0], piece{0, int32(b - a)})
	p.byteLevel = false
	if t.preTok != nil {
		t.preTok.preTokenize(p)
	}
	bpe, _ := t.model.(*bpeModel)
	for _, pc := range p.pieces {
		word := p.buf.text[pc.start:pc.end]
		toks := e.toks[:0]
		switch {
		case p.byteLevel && bpe != nil && bpe.byteVocab != nil:
			var ok bool
			toks, ok = bpe.tokenizeBytes(&e.bpe, word, toks)
			if !ok {
				toks = e.viaCharacters(word, toks)
			}
		case p.byteLevel:
			toks = e.viaCharacters(word, toks)
		default:
			toks = t.model.tokenize(&e.bpe, word, toks)
		}
		e.toks = toks
		for _, tk := range toks {
			e.ids = append(e.ids, tk.id)
			if e.track {
				s := p.buf.align[pc.start+tk.start]
				en := p.buf.align[pc.start+tk.end-1]
				e.offs = append(e.offs, Offset{int(s.start), int(en.end)})
			}
		}
	}
}

// viaCharacters maps a raw-byte piece to byte-level characters, runs the
// model on them, and maps the tokens' ranges back to raw bytes.
func (e *encoder) viaCharacters(raw []byte, toks []token) []token {
	w := e.word[:0]
	m := e.wmap[:0]
	for i, b := range raw {
		c := byteToCharUTF8[b]
		for range len(c) {
			m = append(m, int32(i))
		}
		w = append(w, c...)
	}
	m = append(m, int32(len(raw)))
	e.word, e.wmap = w, m
	n := len(toks)
	toks = e.t.model.tokenize(&e.bpe, w, toks)
	for k := n; k < len(toks); k++ {
		toks[k].start = m[toks[k].start]
		toks[k].end = m[toks[k].end-1] + 1
	}
	return toks
}

// Encode returns the token ids of text; addSpecial adds the special tokens
// of the post-processor (bos/eos), like Hugging Face's add_special_tokens.
// It is safe for concurrent use.
func (t *Tokenizer) Encode(text string, addSpecial bool) []int32 {
	return t.AppendEncode(nil, text, addSpecial)
}

// AppendEncode appends the token ids of text to dst and returns it; with a
// reused dst the hot path allocates nothing.
func (t *Tokenizer) AppendEncode(dst []int32, text string, addSpecial bool) []int32 {
	e := t.getEncoder()
	e.run(text, false)
	if addSpecial {
		dst = append(dst, t.prefixIDs...)
	}
	dst = append(dst, e.ids...)
	if addSpecial {
		dst = append(dst, t.suffixIDs...)
	}
	t.putEncoder(e)
	return dst
}

// EncodeOffsets returns the ids of text with the byte offsets of each
// token in text (Hugging Face's encode in Rust).
func (t *Tokenizer) EncodeOffsets(text string, addSpecial bool) Encoding {
	return t.encodeOffsets(text, addSpecial, false)
}

// EncodeCharOffsets is EncodeOffsets with offsets in characters (code
// points), computed the way Hugging Face's Python and JavaScript bindings
// do: converted before post-processing trims them.
func (t *Tokenizer) EncodeCharOffsets(text string, addSpecial bool) Encoding {
	return t.encodeOffsets(text, addSpecial, true)
}

func (t *Tokenizer) encodeOffsets(text string, addSpecial, chars bool) Encoding {
	e := t.getEncoder()
	e.run(text, true)
	enc := Encoding{
		IDs:     append([]int32(nil), e.ids...),
		Offsets: append([]Offset{}, e.offs...),
	}
	if len(e.vals) > 0 {
		enc.values = make(map[int]string, len(e.vals))
		for k, v := range e.vals {
			enc.values[k] = v
		}
	}
	if chars {
		enc.Offsets = CharOffsets(e.text, enc.Offsets)
	}
	t.putEncoder(e)
	enc.SpecialMask = make([]bool, len(enc.IDs))
	if t.post != nil {
		t.post.process(t, &enc, addSpecial)
	}
	return enc
}

// EncodeBatch encodes texts on all cores (GOMAXPROCS goroutines); the
// result is in input order.
func (t *Tokenizer) EncodeBatch(texts []string, addSpecial bool) [][]int32 {
	out := make([][]int32, len(texts))
	const chunk = 8
	encoders := make([]*encoder, runtime.GOMAXPROCS(0)) // one per worker, taken when it starts
	parallel.Chunks(len(texts), chunk, len(encoders), func(worker, i0, i1 int) bool {
		e := encoders[worker]
		if e == nil {
			e = t.getEncoder()
			encoders[worker] = e
		}
		// One backing array per chunk, cut into the rows.
		var flat []int32
		var ends [chunk]int
		for i := i0; i < i1; i++ {
			e.run(texts[i], false)
			if addSpecial {
				flat = append(flat, t.prefixIDs...)
			}
			flat = append(flat, e.ids...)
			if addSpecial {
				flat = append(flat, t.suffixIDs...)
			}
			ends[i-i0] = len(flat)
		}
		start := 0
		for i := i0; i < i1; i++ {
			end := ends[i-i0]
			out[i] = flat[start:end:end]
			start = end
		}
		return true
	})
	for _, e := range encoders {
		if e != nil {
			t.putEncoder(e)
		}
	}
	return out
}

// Decode turns ids back into text. skipSpecial drops special added tokens.
// Unknown ids are skipped, as Hugging Face does.
func (t *Tokenizer) Decode(ids []int32, skipSpecial bool) string {
	tokens := make([]string, 0, len(ids))
	for _, id := range ids {
		tok, ok := t.decodeToken(id)
		if !ok {
			continue
		}
		if skipSpecial && t.added.special[tok] {
			continue
		}
		tokens = append(tokens, tok)
	}
	if t.decoder == nil {
		return strings.Join(tokens, " ")
	}
	return strings.Join(t.decoder.decodeChain(tokens), "")
}

// decodeToken is the string an id decodes from: a normalized added token's
// normalized form, else its content, else the model's token.
func (t *Tokenizer) decodeToken(id int32) (string, bool) {
	if tok, ok := t.added.byID[id]; ok {
		if n, ok := t.added.normForm[id]; ok {
			return n, true
		}
		return tok.Content, true
	}
	return t.model.idToToken(id)
}
