package tokenizer

import (
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// normalizer rewrites a segment's text in place (keeping alignments).
type normalizer interface {
	normalize(b *textBuf)
}

type sequenceNormalizer []normalizer

func (s sequenceNormalizer) normalize(b *textBuf) {
	for _, n := range s {
		n.normalize(b)
	}
}

// unicodeNormalizer applies NFC, NFD, NFKC or NFKD. Alignments follow the
// normalization segments: the characters a segment produces take the spans
// of the characters it came from, one for one, extra ones sharing the last
// span and missing ones dropped.
type unicodeNormalizer struct{ form norm.Form }

func (u unicodeNormalizer) normalize(b *textBuf) {
	if u.form.IsNormal(b.text) {
		return
	}
	t := b.startTransform(0)
	var it norm.Iter
	it.Init(u.form, b.text)
	src := 0
	for !it.Done() {
		start := src
		seg := it.Next()
		src = it.Pos()
		inChars := utf8.RuneCount(b.text[start:src])
		outChars := utf8.RuneCount(seg)
		k := 0
		for len(seg) > 0 {
			r, n := utf8.DecodeRune(seg)
			seg = seg[n:]
			change := 0
			switch {
			case k >= inChars:
				change = 1
			case k == outChars-1 && inChars > outChars:
				change = -(inChars - outChars)
			}
			t.emit(r, change)
			k++
		}
	}
	t.done()
}

// lowercaseNormalizer lowercases like Rust's char::to_lowercase (full
// mapping: U+0130 becomes two characters).
type lowercaseNormalizer struct{}

func (lowercaseNormalizer) normalize(b *textBuf) {
	t := b.startTransform(0)
	for i := 0; i < len(b.text); {
		r, n := utf8.DecodeRune(b.text[i:])
		i += n
		if r == 0x130 {
			t.emit('i', 0)
			t.emit(0x307, 1)
			continue
		}
		t.emit(unicode.ToLower(r), 0)
	}
	t.done()
}

// stripNormalizer removes leading and/or trailing whitespace.
type stripNormalizer struct{ left, right bool }

func (s stripNormalizer) normalize(b *textBuf) {
	start, end := 0, len(b.text)
	if s.left {
		for start < end {
			r, n := utf8.DecodeRune(b.text[start:end])
			if !unicode.IsSpace(r) {
				break
			}
			start += n
		}
	}
	if s.right {
		for end > start {
			r, n := utf8.DecodeLastRune(b.text[start:end])
			if !unicode.IsSpace(r) {
				break
			}
			end -= n
		}
	}
	if start == 0 && end == len(b.text) {
		return
	}
	b.begin()
	b.copyRange(start, end)
	b.commit()
}

// filterNormalizer drops the characters for which drop is true and maps
// the rest (StripAccents, Nmt, Bert's clean_text).
type filterNormalizer struct {
	drop func(rune) bool
	mapc func(rune) rune
}

func (f filterNormalizer) normalize(b *textBuf) {
	b.begin()
	for i := 0; i < len(b.text); {
		r, n := utf8.DecodeRune(b.text[i:])
		if f.drop == nil || !f.drop(r) {
			if f.mapc != nil {
				if m := f.mapc(r); m != r {
					b.put(m, b.spanAt(i))
					i += n
					continue
				}
			}
			b.copyRange(i, i+n)
		}
		i += n
	}
	b.commit()
}

func stripAccentsNormalizer() normalizer {
	return filterNormalizer{drop: unicode.IsMark}
}

func nmtNormalizer() normalizer {
	return filterNormalizer{
		drop: func(r rune) bool {
			return (r >= 0x1 && r <= 0x8) || r == 0xB || (r >= 0xE && r <= 0x1F) || r == 0x7F || r == 0x8F || r == 0x9F
		},
		mapc: func(r rune) rune {
			switch {
			case r == 0x9, r == 0xA, r == 0xC, r == 0xD, r == 0x1680, r >= 0x200B && r <= 0x200F,
				r == 0x2028, r == 0x2029, r == 0x2581, r == 0xFEFF, r == 0xFFFD:
				return ' '
			}
			return r
		},
	}
}

// prependNormalizer puts a string in front of non-empty text; the new
// characters take the span of the first character.
type prependNormalizer struct{ prefix string }

func (p prependNormalizer) normalize(b *textBuf) {
	if len(b.text) == 0 {
		return
	}
	b.begin()
	s := b.spanAt(0)
	for _, c := range p.prefix {
		b.put(c, s)
	}
	b.copyRange(0, len(b.text))
	b.commit()
}

// replaceNormalizer replaces every match of a pattern; the replacement
// characters take the span of the match's last byte (Hugging Face's
// NormalizedString::replace).
type replaceNormalizer struct {
	pat     pattern
	content string
	scratch []int32
}

func (r *replaceNormalizer) normalize(b *textBuf) {
	m := r.pat.findAll(nil, b.text)
	if len(m) == 0 {
		return
	}
	b.begin()
	last := 0
	for k := 0; k < len(m); k += 2 {
		start, end := int(m[k]), int(m[k+1])
		b.copyRange(last, start)
		s := b.spanAt(end - 1)
		for _, c := range r.content {
			b.put(c, s)
		}
		last = end
	}
	b.copyRange(last, len(b.text))
	b.commit()
}

// byteLevelNormalizer maps every byte to its GPT-2 byte-level character.
type byteLevelNormalizer struct{}

func (byteLevelNormalizer) normalize(b *textBuf) {
	b.begin()
	for i, c := range b.text {
		b.putBytes([]byte(byteToCharUTF8[c]), b.spanAt(i))
	}
	b.commit()
}

// bertNormalizer is Hugging Face's BertNormalizer.
type bertNormalizer struct {
	cleanText, handleChinese, stripAccents, lowercase bool
}

func (bn bertNormalizer) normalize(b *textBuf) {
	if bn.cleanText {
		filterNormalizer{
			drop: func(r rune) bool {
				if r == 0 || r == 0xFFFD {
					return true
				}
				if r == '\t' || r == '\n' || r == '\r' {
					return false
				}
				return unicode.In(r, unicode.Cc, unicode.Cf, unicode.Co, unicode.Cs) || !unicode.In(r, unicode.L, unicode.M, unicode.N, unicode.P, unicode.S, unicode.Z)
			},
			mapc: func(r rune) rune {
				if r == '\t' || r == '\n' || r == '\r' || unicode.IsSpace(r) {
					return ' '
				}
				return r
			},
		}.normalize(b)
	}
	if bn.handleChinese {
		t := b.startTransform(0)
		for i := 0; i < len(b.text); {
			r, n := utf8.DecodeRune(b.text[i:])
			i += n
			if isChineseChar(r) {
				t.emit(' ', 0)
				t.emit(r, 1)
				t.emit(' ', 1)
			} else {
				t.emit(r, 0)
			}
		}
		t.done()
	}
	if bn.stripAccents {
		unicodeNormalizer{norm.NFD}.normalize(b)
		filterNormalizer{drop: func(r rune) bool { return unicode.Is(unicode.Mn, r) }}.normalize(b)
	}
	if bn.lowercase {
		lowercaseNormalizer{}.normalize(b)
	}
}

func isChineseChar(r rune) bool {
	return (r >= 0x4E00 && r <= 0x9FFF) || (r >= 0x3400 && r <= 0x4DBF) || (r >= 0x20000 && r <= 0x2A6DF) ||
		(r >= 0x2A700 && r <= 0x2B73F) || (r >= 0x2B740 && r <= 0x2B81F) || (r >= 0x2B920 && r <= 0x2CEAF) ||
		(r >= 0xF900 && r <= 0xFAFF) || (r >= 0x2F800 && r <= 0x2FA1F)
}
