package tokenizer

import "unicode/utf8"

// span is a byte range [start, end) of the caller's original text.
type span struct{ start, end int32 }

// textBuf is text being normalized or pre-tokenized, with, when offsets are
// wanted, the original span of every byte (Hugging Face's NormalizedString
// alignments, kept absolute instead of relative to each slice). All bytes of
// one character share a span. The second buffer pair lets each step write
// its output without allocating.
type textBuf struct {
	text  []byte
	align []span // nil unless track
	track bool
	// base is the original offset of the segment's start; inserted text at
	// the very front aligns to (base, base) like Hugging Face's (0, 0).
	base int32

	outText  []byte
	outAlign []span
	// matches is scratch space for pattern matches.
	matches []int32
}

// reset loads src (which starts at original offset base) into the buffer.
func (b *textBuf) reset(src string, base int, track bool) {
	b.text = append(b.text[:0], src...)
	b.track = track
	b.base = int32(base)
	b.align = b.align[:0]
	if !track {
		return
	}
	for i := 0; i < len(src); {
		_, n := utf8.DecodeRuneInString(src[i:])
		s := span{int32(base + i), int32(base + i + n)}
		for k := 0; k < n; k++ {
			b.align = append(b.align, s)
		}
		i += n
	}
}

// begin starts writing a transformed copy of the text.
func (b *textBuf) begin() {
	b.outText = b.outText[:0]
	b.outAlign = b.outAlign[:0]
}

// commit makes the transformed copy the current text.
func (b *textBuf) commit() {
	b.text, b.outText = b.outText, b.text
	b.align, b.outAlign = b.outAlign, b.align
}

// copyRange appends text[i:j] unchanged.
func (b *textBuf) copyRange(i, j int) {
	b.outText = append(b.outText, b.text[i:j]...)
	if b.track {
		b.outAlign = append(b.outAlign, b.align[i:j]...)
	}
}

// put appends c with original span s.
func (b *textBuf) put(c rune, s span) {
	n := len(b.outText)
	b.outText = utf8.AppendRune(b.outText, c)
	if b.track {
		for k := n; k < len(b.outText); k++ {
			b.outAlign = append(b.outAlign, s)
		}
	}
}

// putBytes appends raw bytes that all carry span s.
func (b *textBuf) putBytes(p []byte, s span) {
	b.outText = append(b.outText, p...)
	if b.track {
		for range p {
			b.outAlign = append(b.outAlign, s)
		}
	}
}

// spanAt is the span of text byte i, or the base for i < 0.
func (b *textBuf) spanAt(i int) span {
	if !b.track {
		return span{}
	}
	if i < 0 {
		return span{b.base, b.base}
	}
	return b.align[i]
}

// transform rewrites the text the way Hugging Face's
// NormalizedString::transform does: each emitted (char, change) replaces
// the next source character (change 0), is inserted after the previous one
// (change > 0, taking its span), or replaces one and removes -change more
// (change < 0). Source characters never reached are removed.
type transform struct {
	b      *textBuf
	offset int // byte offset of the next source character
}

func (b *textBuf) startTransform(initialRemoved int) transform {
	b.begin()
	t := transform{b: b}
	for k := 0; k < initialRemoved; k++ {
		t.consume()
	}
	return t
}

func (t *transform) consume() {
	if t.offset >= len(t.b.text) {
		return
	}
	_, n := utf8.DecodeRune(t.b.text[t.offset:])
	t.offset += n
}

func (t *transform) emit(c rune, change int) {
	var s span
	if change > 0 {
		s = t.b.spanAt(t.offset - 1)
	} else if t.offset < len(t.b.text) {
		s = t.b.spanAt(t.offset)
	} else {
		s = t.b.spanAt(len(t.b.text) - 1)
	}
	if change <= 0 {
		t.consume()
	}
	for ; change < 0; change++ {
		t.consume()
	}
	t.b.put(c, s)
}

func (t *transform) done() { t.b.commit() }
