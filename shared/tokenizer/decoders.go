package tokenizer

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// decoder is one step of Hugging Face's decoder chain: it maps the list of
// token strings to a new list; the final list is concatenated.
type decoder interface {
	decodeChain(tokens []string) []string
}

type sequenceDecoder []decoder

func (s sequenceDecoder) decodeChain(tokens []string) []string {
	for _, d := range s {
		tokens = d.decodeChain(tokens)
	}
	return tokens
}

// byteLevelDecoder joins the tokens' bytes and decodes them as UTF-8,
// replacing invalid sequences.
type byteLevelDecoder struct{}

func (byteLevelDecoder) decodeChain(tokens []string) []string {
	var raw []byte
	for _, t := range tokens {
		raw = byteLevelDecode(raw, t)
	}
	return []string{string(appendLossyUTF8(nil, raw))}
}

// replaceDecoder replaces pattern matches in each token.
type replaceDecoder struct {
	pat     pattern
	content string
}

func (r replaceDecoder) decodeChain(tokens []string) []string {
	out := make([]string, len(tokens))
	var m []int32
	for i, t := range tokens {
		m = r.pat.findAll(m[:0], []byte(t))
		if len(m) == 0 {
			out[i] = t
			continue
		}
		var sb strings.Builder
		last := int32(0)
		for k := 0; k < len(m); k += 2 {
			sb.WriteString(t[last:m[k]])
			sb.WriteString(r.content)
			last = m[k+1]
		}
		sb.WriteString(t[last:])
		out[i] = sb.String()
	}
	return out
}

// byteFallbackDecoder turns runs of <0xXX> tokens back into text; a run
// that is not valid UTF-8 becomes one U+FFFD per byte.
type byteFallbackDecoder struct{}

func (byteFallbackDecoder) decodeChain(tokens []string) []string {
	out := make([]string, 0, len(tokens))
	var pending []byte
	flush := func() {
		if len(pending) == 0 {
			return
		}
		if utf8.Valid(pending) {
			out = append(out, string(pending))
		} else {
			for range pending {
				out = append(out, "\uFFFD")
			}
		}
		pending = pending[:0]
	}
	for _, t := range tokens {
		if len(t) == 6 && strings.HasPrefix(t, "<0x") && t[5] == '>' {
			if v, err := strconv.ParseUint(t[3:5], 16, 8); err == nil {
				pending = append(pending, byte(v))
				continue
			}
		}
		flush()
		out = append(out, t)
	}
	flush()
	return out
}

// fuseDecoder concatenates all tokens into one.
type fuseDecoder struct{}

func (fuseDecoder) decodeChain(tokens []string) []string {
	return []string{strings.Join(tokens, "")}
}

// stripDecoder removes up to start leading and stop trailing copies of
// content from each token.
type stripDecoder struct {
	content     rune
	start, stop int
}

func (s stripDecoder) decodeChain(tokens []string) []string {
	out := make([]string, len(tokens))
	for i, t := range tokens {
		chars := []rune(t)
		startCut := 0
		for k := 0; k < s.start && k < len(chars); k++ {
			if chars[k] != s.content {
				break
			}
			startCut = k + 1
		}
		stopCut := len(chars)
		for k := 0; k < s.stop; k++ {
			idx := len(chars) - k - 1
			if idx < 0 || chars[idx] != s.content {
				break
			}
			stopCut = idx
		}
		if stopCut < startCut {
			stopCut = startCut
		}
		out[i] = string(chars[startCut:stopCut])
	}
	return out
}

// metaspaceDecoder turns the replacement character back into spaces,
// dropping it at the start of the first token unless prepending is off.
type metaspaceDecoder struct {
	replacement rune
	prepend     string
}

func (m metaspaceDecoder) decodeChain(tokens []string) []string {
	out := make([]string, len(tokens))
	for i, t := range tokens {
		var sb strings.Builder
		for _, c := range t {
			if c == m.replacement {
				if i == 0 && m.prepend != "never" {
					continue
				}
				c = ' '
			}
			sb.WriteRune(c)
		}
		out[i] = sb.String()
	}
	return out
}

// wordPieceDecoder joins continuation pieces and optionally cleans up
// spaces before punctuation.
type wordPieceDecoder struct {
	prefix  string
	cleanup bool
}

func (w wordPieceDecoder) decodeChain(tokens []string) []string {
	out := make([]string, len(tokens))
	for i, t := range tokens {
		if i != 0 {
			if rest, ok := strings.CutPrefix(t, w.prefix); ok {
				t = rest
			} else {
				t = " " + t
			}
		}
		if w.cleanup {
			t = cleanupSpaces(t)
		}
		out[i] = t
	}
	return out
}

var cleanupReplacer = []struct{ from, to string }{
	{" .", "."}, {" ?", "?"}, {" !", "!"}, {" ,", ","}, {" ' ", "'"}, {" n't", "n't"},
	{" 'm", "'m"}, {" do not", " don't"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"},
}

// cleanupSpaces applies WordPiece's clean-up replacements in order.
func cleanupSpaces(s string) string {
	for _, r := range cleanupReplacer {
		s = strings.ReplaceAll(s, r.from, r.to)
	}
	return s
}

// bpeDecoder replaces the end-of-word suffix with a space (none after the
// last token).
type bpeDecoder struct{ suffix string }

func (b bpeDecoder) decodeChain(tokens []string) []string {
	out := make([]string, len(tokens))
	for i, t := range tokens {
		rep := " "
		if i == len(tokens)-1 {
			rep = ""
		}
		out[i] = strings.ReplaceAll(t, b.suffix, rep)
	}
	return out
}

// ctcDecoder removes repeats and padding (speech models).
type ctcDecoder struct {
	pad, wordDelimiter string
	cleanup            bool
}

func (c ctcDecoder) decodeChain(tokens []string) []string {
	var out []string
	for i, t := range tokens {
		if i > 0 && t == tokens[i-1] {
			continue
		}
		t = strings.ReplaceAll(t, c.pad, "")
		if c.cleanup {
			t = strings.ReplaceAll(cleanupSpaces(t), c.wordDelimiter, " ")
		}
		if t != "" {
			out = append(out, t)
		}
	}
	return out
}
