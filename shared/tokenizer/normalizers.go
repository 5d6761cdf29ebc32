package tokenizer

import (
	"sync"
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

// unicodeNormalizer applies NFC, NFD, NFKC or NFKD, producing the same
// (char, change) alignment stream as the unicode-normalization-alignments
// crate Hugging Face uses: each decomposed character is 0 for the first of
// its source character and +1 for the rest, canonical reordering carries
// the changes along, and a composition adds the absorbed character's
// change minus one to the composite.
type unicodeNormalizer struct{ form norm.Form }

type normChar struct {
	r      rune
	change int
	ccc    uint8
}

func (u unicodeNormalizer) normalize(b *textBuf) {
	if u.form.IsNormal(b.text) {
		return
	}
	decomp := norm.NFD
	if u.form == norm.NFKC || u.form == norm.NFKD {
		decomp = norm.NFKD
	}
	var chars []normChar
	for i := 0; i < len(b.text); {
		r, n := utf8.DecodeRune(b.text[i:])
		i += n
		first := len(chars)
		for _, c := range decomposeRune(decomp, r) {
			change := 1
			if len(chars) == first {
				change = 0
			}
			chars = append(chars, normChar{r: c, change: change, ccc: cccOf(c)})
		}
	}
	// Canonical ordering: stable sort of every run of non-starters.
	for i := 0; i < len(chars); {
		if chars[i].ccc == 0 {
			i++
			continue
		}
		j := i
		for j < len(chars) && chars[j].ccc != 0 {
			j++
		}
		run := chars[i:j]
		for x := 1; x < len(run); x++ {
			for y := x; y > 0 && run[y-1].ccc > run[y].ccc; y-- {
				run[y-1], run[y] = run[y], run[y-1]
			}
		}
		i = j
	}
	t := b.startTransform(0)
	if u.form == norm.NFC || u.form == norm.NFKC {
		chars = recompose(chars)
	}
	for _, c := range chars {
		t.emit(c.r, c.change)
	}
	t.done()
}

// recompose is the canonical composition pass of the alignments crate.
func recompose(in []normChar) []normChar {
	out := make([]normChar, 0, len(in))
	var buffer []normChar
	var composee *normChar
	var lastCCC int = -1
	for _, ch := range in {
		if composee == nil {
			if ch.ccc != 0 {
				out = append(out, ch)
				continue
			}
			c := ch
			composee = &c
			continue
		}
		if lastCCC < 0 {
			if r, ok := composePair(composee.r, ch.r); ok {
				composee.r, composee.change = r, composee.change+ch.change-1
				composee.ccc = cccOf(r)
				continue
			}
			if ch.ccc == 0 {
				out = append(out, *composee)
				c := ch
				composee = &c
				continue
			}
			buffer = append(buffer, ch)
			lastCCC = int(ch.ccc)
			continue
		}
		if lastCCC >= int(ch.ccc) {
			if ch.ccc == 0 {
				out = append(out, *composee)
				out = append(out, buffer...)
				buffer = buffer[:0]
				c := ch
				composee = &c
				lastCCC = -1
				continue
			}
			buffer = append(buffer, ch)
			lastCCC = int(ch.ccc)
			continue
		}
		if r, ok := composePair(composee.r, ch.r); ok {
			composee.r, composee.change = r, composee.change+ch.change-1
			continue
		}
		buffer = append(buffer, ch)
		lastCCC = int(ch.ccc)
	}
	if composee != nil {
		out = append(out, *composee)
	}
	return append(out, buffer...)
}

const (
	hangulSBase  = 0xAC00
	hangulLBase  = 0x1100
	hangulVBase  = 0x1161
	hangulTBase  = 0x11A7
	hangulLCount = 19
	hangulVCount = 21
	hangulTCount = 28
	hangulNCount = hangulVCount * hangulTCount
	hangulSCount = hangulLCount * hangulNCount
)

// decomposeRune is the full decomposition of r in form (NFD or NFKD).
func decomposeRune(form norm.Form, r rune) []rune {
	if r >= hangulSBase && r < hangulSBase+hangulSCount {
		s := r - hangulSBase
		out := []rune{hangulLBase + s/hangulNCount, hangulVBase + (s%hangulNCount)/hangulTCount}
		if t := s % hangulTCount; t != 0 {
			out = append(out, hangulTBase+t)
		}
		return out
	}
	var buf [utf8.UTFMax]byte
	n := utf8.EncodeRune(buf[:], r)
	if d := form.Properties(buf[:n]).Decomposition(); d != nil {
		return []rune(string(d))
	}
	return []rune{r}
}

func cccOf(r rune) uint8 {
	var buf [utf8.UTFMax]byte
	n := utf8.EncodeRune(buf[:], r)
	return norm.NFD.Properties(buf[:n]).CCC()
}

var composeCache sync.Map // [2]rune -> rune (or -1)

// composePair is the primary composite of a and b, if any.
func composePair(a, b rune) (rune, bool) {
	if a >= hangulLBase && a < hangulLBase+hangulLCount && b >= hangulVBase && b < hangulVBase+hangulVCount {
		return hangulSBase + ((a-hangulLBase)*hangulVCount+(b-hangulVBase))*hangulTCount, true
	}
	if a >= hangulSBase && a < hangulSBase+hangulSCount && (a-hangulSBase)%hangulTCount == 0 && b > hangulTBase && b < hangulTBase+hangulTCount {
		return a + (b - hangulTBase), true
	}
	key := [2]rune{a, b}
	if v, ok := composeCache.Load(key); ok {
		r := v.(rune)
		return r, r >= 0
	}
	r := rune(-1)
	if c := []rune(norm.NFC.String(string([]rune{a, b}))); len(c) == 1 {
		r = c[0]
	}
	composeCache.Store(key, r)
	return r, r >= 0
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
}

func (r *replaceNormalizer) normalize(b *textBuf) {
	m := r.pat.findAll(b.matches[:0], b.text)
	b.matches = m
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
				// Control, format, private use and surrogates, not the
				// unassigned code points (Cn), which Hugging Face keeps.
				return unicode.In(r, unicode.Cc, unicode.Cf, unicode.Co, unicode.Cs)
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
