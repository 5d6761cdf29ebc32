package tokenizer

import (
	"unicode"
	"unicode/utf8"
)

// piece is a pre-token: a byte range of pretok.buf.text.
type piece struct{ start, end int32 }

// pretok is Hugging Face's PreTokenizedString for one segment of text: the
// text of all pieces, back to back, and the pieces. When byteLevel is set
// the text is still raw bytes that a ByteLevel pre-tokenizer has yet to map
// to its characters; the mapping is done only if something needs it (the
// BPE model reads raw bytes directly).
type pretok struct {
	buf       textBuf
	pieces    []piece
	next      []piece
	matches   []int32
	flagged   []flaggedRange
	byteLevel bool
}

type flaggedRange struct {
	start, end int32
	match      bool
}

// splitBehavior is Hugging Face's SplitDelimiterBehavior.
type splitBehavior uint8

const (
	behaviorRemoved splitBehavior = iota
	behaviorIsolated
	behaviorMergedWithPrevious
	behaviorMergedWithNext
	behaviorContiguous
)

var behaviorNames = map[string]splitBehavior{
	"Removed":            behaviorRemoved,
	"Isolated":           behaviorIsolated,
	"MergedWithPrevious": behaviorMergedWithPrevious,
	"MergedWithNext":     behaviorMergedWithNext,
	"Contiguous":         behaviorContiguous,
}

type preTokenizer interface {
	preTokenize(p *pretok)
}

// splitBy splits every piece at the matches of pat, keeping or merging the
// matches as behavior says; empty pieces are dropped.
func (p *pretok) splitBy(pat pattern, behavior splitBehavior, invert bool) {
	p.materialize()
	text := p.buf.text
	out := p.next[:0]
	for _, pc := range p.pieces {
		s := text[pc.start:pc.end]
		m := pat.findAll(p.matches[:0], s)
		p.matches = m
		if behavior == behaviorIsolated {
			// Every match and every gap becomes a piece.
			prev := int32(0)
			for k := 0; k < len(m); k += 2 {
				if m[k] > prev {
					out = append(out, piece{pc.start + prev, pc.start + m[k]})
				}
				if m[k+1] > m[k] {
					out = append(out, piece{pc.start + m[k], pc.start + m[k+1]})
				}
				prev = m[k+1]
			}
			if int(prev) < len(s) {
				out = append(out, piece{pc.start + prev, pc.end})
			}
			continue
		}
		fl := p.flagged[:0]
		prev := int32(0)
		for k := 0; k < len(m); k += 2 {
			if m[k] != prev {
				fl = append(fl, flaggedRange{prev, m[k], invert})
			}
			fl = append(fl, flaggedRange{m[k], m[k+1], !invert})
			prev = m[k+1]
		}
		if int(prev) != len(s) {
			fl = append(fl, flaggedRange{prev, int32(len(s)), invert})
		}
		p.flagged = fl
		out = applyBehavior(out, fl, behavior, pc.start)
	}
	p.pieces, p.next = out, p.pieces
}

func applyBehavior(out []piece, fl []flaggedRange, behavior splitBehavior, base int32) []piece {
	emit := func(r flaggedRange) {
		if r.end > r.start {
			out = append(out, piece{base + r.start, base + r.end})
		}
	}
	switch behavior {
	case behaviorRemoved:
		for _, r := range fl {
			if !r.match {
				emit(r)
			}
		}
	case behaviorContiguous, behaviorMergedWithPrevious:
		var acc []flaggedRange
		prevMatch := false
		for _, r := range fl {
			merge := r.match == prevMatch
			if behavior == behaviorMergedWithPrevious {
				merge = r.match && !prevMatch
			}
			if merge && len(acc) > 0 {
				acc[len(acc)-1].end = r.end
			} else {
				acc = append(acc, r)
			}
			prevMatch = r.match
		}
		for _, r := range acc {
			emit(r)
		}
	case behaviorMergedWithNext:
		var acc []flaggedRange
		prevMatch := false
		for k := len(fl) - 1; k >= 0; k-- {
			r := fl[k]
			if r.match && !prevMatch && len(acc) > 0 {
				acc[len(acc)-1].start = r.start
			} else {
				acc = append(acc, r)
			}
			prevMatch = r.match
		}
		for k := len(acc) - 1; k >= 0; k-- {
			emit(acc[k])
		}
	}
	return out
}

// rebuild rewrites each piece's text with fn, which writes the new text of
// one piece through p.buf.put/copyRange and friends.
func (p *pretok) rebuild(fn func(pc piece)) {
	p.buf.begin()
	out := p.next[:0]
	for _, pc := range p.pieces {
		start := int32(len(p.buf.outText))
		fn(pc)
		if end := int32(len(p.buf.outText)); end > start {
			out = append(out, piece{start, end})
		}
	}
	p.buf.commit()
	p.pieces, p.next = out, p.pieces
}

// materialize performs a pending ByteLevel character mapping.
func (p *pretok) materialize() {
	if !p.byteLevel {
		return
	}
	p.byteLevel = false
	p.rebuild(func(pc piece) {
		for i := pc.start; i < pc.end; i++ {
			p.buf.putBytes([]byte(byteToCharUTF8[p.buf.text[i]]), p.buf.spanAt(int(i)))
		}
	})
}

// charPattern matches every single character for which fn is true
// (Hugging Face's Pattern for Fn(char) -> bool).
type charPattern func(rune) bool

func (f charPattern) findAll(dst []int32, s []byte) []int32 {
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRune(s[i:])
		if f(r) {
			dst = append(dst, int32(i), int32(i+n))
		}
		i += n
	}
	return dst
}

// wordPunctPattern matches \w+|[^\w\s]+ (the Whitespace pre-tokenizer).
type wordPunctPattern struct{}

func (wordPunctPattern) findAll(dst []int32, s []byte) []int32 {
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRune(s[i:])
		switch {
		case isWordChar(r):
			e := i + n
			for e < len(s) {
				r2, n2 := utf8.DecodeRune(s[e:])
				if !isWordChar(r2) {
					break
				}
				e += n2
			}
			dst = append(dst, int32(i), int32(e))
			i = e
		case !unicode.IsSpace(r):
			e := i + n
			for e < len(s) {
				r2, n2 := utf8.DecodeRune(s[e:])
				if isWordChar(r2) || unicode.IsSpace(r2) {
					break
				}
				e += n2
			}
			dst = append(dst, int32(i), int32(e))
			i = e
		default:
			i += n
		}
	}
	return dst
}

// isWordChar is Rust regex's Unicode \w: Alphabetic, marks, decimal
// digits, connector punctuation and the joiners.
func isWordChar(r rune) bool {
	if r < utf8.RuneSelf {
		return r == '_' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9')
	}
	return unicode.IsLetter(r) || unicode.Is(unicode.Nl, r) || unicode.Is(unicode.Other_Alphabetic, r) ||
		unicode.IsMark(r) || unicode.Is(unicode.Nd, r) || unicode.Is(unicode.Pc, r) || r == 0x200C || r == 0x200D
}

func isPunctuation(r rune) bool {
	if r < utf8.RuneSelf {
		return (r >= '!' && r <= '/') || (r >= ':' && r <= '@') || (r >= '[' && r <= '`') || (r >= '{' && r <= '~')
	}
	return unicode.IsPunct(r)
}

// splitPreTokenizer is Hugging Face's Split.
type splitPreTokenizer struct {
	pat      pattern
	behavior splitBehavior
	invert   bool
}

func (s *splitPreTokenizer) preTokenize(p *pretok) { p.splitBy(s.pat, s.behavior, s.invert) }

// byteLevelPreTokenizer is Hugging Face's ByteLevel pre-tokenizer.
type byteLevelPreTokenizer struct {
	addPrefixSpace bool
	useRegex       bool
}

func (b *byteLevelPreTokenizer) preTokenize(p *pretok) {
	p.materialize()
	if b.addPrefixSpace {
		p.rebuild(func(pc piece) {
			if p.buf.text[pc.start] != ' ' {
				p.buf.put(' ', p.buf.spanAt(int(pc.start)))
			}
			p.buf.copyRange(int(pc.start), int(pc.end))
		})
	}
	if b.useRegex {
		p.splitBy(gpt2Splitter{}, behaviorIsolated, false)
	}
	p.byteLevel = true
}

// metaspacePreTokenizer is Hugging Face's Metaspace pre-tokenizer.
type metaspacePreTokenizer struct {
	replacement rune
	prepend     string // "always", "first" or "never"
	split       bool
}

func (m *metaspacePreTokenizer) preTokenize(p *pretok) {
	p.materialize()
	p.rebuild(func(pc piece) {
		text := p.buf.text[pc.start:pc.end]
		startsWith := false
		if r, _ := utf8.DecodeRune(text); r == ' ' || r == m.replacement {
			startsWith = true // after the replacement below it starts with it
		}
		if !startsWith && (m.prepend == "always" || (m.prepend == "first" && p.buf.spanAt(int(pc.start)).start == 0)) {
			p.buf.put(m.replacement, p.buf.spanAt(int(pc.start)))
		}
		for i := int(pc.start); i < int(pc.end); {
			if p.buf.text[i] == ' ' {
				p.buf.put(m.replacement, p.buf.spanAt(i))
				i++
				continue
			}
			_, n := utf8.DecodeRune(p.buf.text[i:pc.end])
			p.buf.copyRange(i, i+n)
			i += n
		}
	})
	if m.split {
		r := m.replacement
		p.splitBy(charPattern(func(c rune) bool { return c == r }), behaviorMergedWithNext, false)
	}
}

// fixedLengthPreTokenizer splits into chunks of length characters.
type fixedLengthPreTokenizer struct{ length int }

func (f *fixedLengthPreTokenizer) preTokenize(p *pretok) {
	p.materialize()
	text := p.buf.text
	out := p.next[:0]
	for _, pc := range p.pieces {
		i := int(pc.start)
		for i < int(pc.end) {
			start := i
			for k := 0; k < f.length && i < int(pc.end); k++ {
				_, n := utf8.DecodeRune(text[i:pc.end])
				i += n
			}
			out = append(out, piece{int32(start), int32(i)})
		}
	}
	p.pieces, p.next = out, p.pieces
}

// patternPreTokenizer splits by a fixed pattern and behaviour (Whitespace,
// WhitespaceSplit, Digits, Punctuation, CharDelimiterSplit).
type patternPreTokenizer struct {
	pat      pattern
	behavior splitBehavior
	invert   bool
}

func (s *patternPreTokenizer) preTokenize(p *pretok) { p.splitBy(s.pat, s.behavior, s.invert) }

// sequencePreTokenizer runs pre-tokenizers in order.
type sequencePreTokenizer []preTokenizer

func (s sequencePreTokenizer) preTokenize(p *pretok) {
	for _, pt := range s {
		pt.preTokenize(p)
	}
}
