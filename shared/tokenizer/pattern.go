package tokenizer

import (
	"bytes"
	"fmt"
	"unicode"
	"unicode/utf8"

	"github.com/dlclark/regexp2/v2"
)

// pattern finds the non-overlapping matches of a Split or Replace pattern.
// findAll appends each match as a start, end byte pair to dst.
type pattern interface {
	findAll(dst []int32, s []byte) []int32
}

// literalPattern matches a fixed string (Hugging Face escapes string
// patterns into a regex; for a literal that is leftmost non-overlapping
// search).
type literalPattern struct{ lit []byte }

func (p literalPattern) findAll(dst []int32, s []byte) []int32 {
	if len(p.lit) == 0 {
		return dst
	}
	for i := 0; i <= len(s)-len(p.lit); {
		k := bytes.Index(s[i:], p.lit)
		if k < 0 {
			break
		}
		dst = append(dst, int32(i+k), int32(i+k+len(p.lit)))
		i += k + len(p.lit)
	}
	return dst
}

// regexPattern is the general fallback: a backtracking engine with
// lookaround (Hugging Face uses Oniguruma), working on runes.
type regexPattern struct {
	re *regexp2.Regexp
}

func (p regexPattern) findAll(dst []int32, s []byte) []int32 {
	if len(s) == 0 {
		return dst
	}
	m, err := p.re.FindStringMatch(string(s))
	for err == nil && m != nil {
		start, n := m.ByteRange()
		dst = append(dst, int32(start), int32(start+n))
		m, err = p.re.FindNextMatch(m)
	}
	return dst
}

func compileRegex(expr string) (pattern, error) {
	switch expr {
	case gpt2Pattern:
		return gpt2Splitter{}, nil
	case llama3Pattern:
		return llamaSplitter{maxDigits: 3}, nil
	case qwenPattern:
		return llamaSplitter{maxDigits: 1}, nil
	}
	return compileRegexGeneral(expr)
}

func compileRegexGeneral(expr string) (pattern, error) {
	re, err := regexp2.Compile(expr, regexp2.None)
	if err != nil {
		return nil, fmt.Errorf("regex %q: %w", expr, err)
	}
	return regexPattern{re: re}, nil
}

// The split regexes of GPT-2 (also the ByteLevel pre-tokenizer's), Llama-3
// and Qwen2/3. They are matched by hand-written scanners that follow the
// backtracking semantics exactly; tests hold them against the general
// engine on random text.
const (
	gpt2Pattern   = `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
	llama3Pattern = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	qwenPattern   = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
)

// Character classes of the split regexes.
const (
	clsOther  = 0 // [^\s\p{L}\p{N}]
	clsLetter = 1 // \p{L}
	clsNumber = 2 // \p{N}
	clsSpace  = 3 // \s
)

var asciiClass = func() (t [utf8.RuneSelf]uint8) {
	for c := 0; c < utf8.RuneSelf; c++ {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
			t[c] = clsLetter
		case c >= '0' && c <= '9':
			t[c] = clsNumber
		case c == ' ', c >= '\t' && c <= '\r':
			t[c] = clsSpace
		}
	}
	return t
}()

func runeClass(r rune) uint8 {
	if r < utf8.RuneSelf {
		return asciiClass[r]
	}
	switch {
	case unicode.IsLetter(r):
		return clsLetter
	case unicode.IsNumber(r):
		return clsNumber
	case unicode.IsSpace(r):
		return clsSpace
	}
	return clsOther
}

// decodeAt returns the rune at s[i] and its size (0, 0 at the end).
func decodeAt(s []byte, i int) (rune, int) {
	if i >= len(s) {
		return -1, 0
	}
	if c := s[i]; c < utf8.RuneSelf {
		return rune(c), 1
	}
	return utf8.DecodeRune(s[i:])
}

// classAt returns the class of the rune at s[i], its size, and the rune.
func classAt(s []byte, i int) (uint8, int, rune) {
	if i >= len(s) {
		return 255, 0, -1
	}
	if c := s[i]; c < utf8.RuneSelf {
		return asciiClass[c], 1, rune(c)
	}
	r, n := utf8.DecodeRune(s[i:])
	return runeClass(r), n, r
}

// runOf returns the end of the run of class cls starting at i.
func runOf(s []byte, i int, cls uint8) int {
	for i < len(s) {
		c, n, _ := classAt(s, i)
		if c != cls {
			break
		}
		i += n
	}
	return i
}

// contraction matches 's|'t|'re|'ve|'m|'ll|'d at i (case-insensitively with
// Unicode simple case folding when fold is set) and returns its length.
func contraction(s []byte, i int, fold bool) int {
	if i >= len(s) || s[i] != '\'' {
		return 0
	}
	r1, n1 := decodeAt(s, i+1)
	if n1 == 0 {
		return 0
	}
	l1 := lowerForMatch(r1, fold)
	switch l1 {
	case 's', 't', 'm', 'd':
		return 1 + n1
	case 'r', 'v', 'l':
		r2, n2 := decodeAt(s, i+1+n1)
		if n2 == 0 {
			return 0
		}
		want := rune('e')
		if l1 == 'l' {
			want = 'l'
		}
		if lowerForMatch(r2, fold) == want {
			return 1 + n1 + n2
		}
	}
	return 0
}

// lowerForMatch folds r for the contraction alternatives: exact when fold
// is off; otherwise ASCII case plus the one other character whose case
// folding lands on one of the letters involved (U+017F LONG S folds to s).
func lowerForMatch(r rune, fold bool) rune {
	if !fold {
		return r
	}
	switch {
	case r >= 'A' && r <= 'Z':
		return r + ('a' - 'A')
	case r == 0x17F:
		return 's'
	}
	return r
}

// spaceMatch matches \s+(?!\S)|\s+ at i, where the whitespace run ends at
// end: the run minus its last character when a non-space follows it and
// the run is longer than one character, else the whole run.
func spaceMatch(s []byte, i, end int) int {
	if end == len(s) {
		return end
	}
	// Find the start of the run's last character.
	last := end - 1
	for last > i && !utf8.RuneStart(s[last]) {
		last--
	}
	if last > i {
		return last
	}
	return end
}

// gpt2Splitter matches gpt2Pattern.
type gpt2Splitter struct{}

func (gpt2Splitter) findAll(dst []int32, s []byte) []int32 {
	for i := 0; i < len(s); {
		e := gpt2Match(s, i)
		dst = append(dst, int32(i), int32(e))
		i = e
	}
	return dst
}

func gpt2Match(s []byte, i int) int {
	if n := contraction(s, i, false); n > 0 {
		return i + n
	}
	c0, n0, r0 := classAt(s, i)
	if r0 == ' ' {
		if c1, _, _ := classAt(s, i+1); c1 != clsSpace && c1 != 255 {
			return runOf(s, i+1, c1)
		}
	}
	if c0 != clsSpace {
		return runOf(s, i, c0)
	}
	return spaceMatch(s, i, runOf(s, i+n0, clsSpace))
}

// llamaSplitter matches llama3Pattern (maxDigits 3) and qwenPattern
// (maxDigits 1).
type llamaSplitter struct{ maxDigits int }

func (p llamaSplitter) findAll(dst []int32, s []byte) []int32 {
	for i := 0; i < len(s); {
		e := p.match(s, i)
		dst = append(dst, int32(i), int32(e))
		i = e
	}
	return dst
}

func (p llamaSplitter) match(s []byte, i int) int {
	if n := contraction(s, i, true); n > 0 {
		return i + n
	}
	c0, n0, r0 := classAt(s, i)
	// [^\r\n\p{L}\p{N}]?\p{L}+
	if c0 == clsLetter {
		return runOf(s, i+n0, clsLetter)
	}
	c1, n1, _ := classAt(s, i+n0)
	if c0 != clsNumber && r0 != '\r' && r0 != '\n' && c1 == clsLetter {
		return runOf(s, i+n0+n1, clsLetter)
	}
	// \p{N}{1,k}
	if c0 == clsNumber {
		e := i + n0
		for k := 1; k < p.maxDigits; k++ {
			c, n, _ := classAt(s, e)
			if c != clsNumber {
				break
			}
			e += n
		}
		return e
	}
	// ' ?[^\s\p{L}\p{N}]+[\r\n]*'
	if c0 == clsOther || (r0 == ' ' && c1 == clsOther) {
		e := runOf(s, i+n0, clsOther)
		for e < len(s) && (s[e] == '\r' || s[e] == '\n') {
			e++
		}
		return e
	}
	// c0 is whitespace. \s*[\r\n]+ ends after the run's last newline.
	end := runOf(s, i+n0, clsSpace)
	for k := end - 1; k >= i; k-- {
		if s[k] == '\r' || s[k] == '\n' {
			return k + 1
		}
	}
	return spaceMatch(s, i, end)
}
