package tokenizer

import "unicode/utf8"

// GPT-2's byte-to-character table: printable bytes map to themselves, the
// others to U+0100 and up, so that any byte string is a printable string.
var (
	byteToChar [256]rune
	charToByte = map[rune]byte{}
	// byteToCharUTF8 holds each mapped character already UTF-8 encoded.
	byteToCharUTF8 [256]string
)

func init() {
	n := 0
	for b := 0; b < 256; b++ {
		printable := (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF)
		if printable {
			byteToChar[b] = rune(b)
		} else {
			byteToChar[b] = rune(256 + n)
			n++
		}
	}
	for b, c := range byteToChar {
		charToByte[c] = byte(b)
		byteToCharUTF8[b] = string(c)
	}
}

// byteLevelDecode turns a byte-level token string back into its bytes. A
// token with any character outside the table stays as it is, the way
// Hugging Face's ByteLevel decoder treats it.
func byteLevelDecode(dst []byte, tok string) []byte {
	start := len(dst)
	for _, c := range tok {
		b, ok := charToByte[c]
		if !ok {
			return append(dst[:start], tok...)
		}
		dst = append(dst, b)
	}
	return dst
}

// appendLossyUTF8 appends p to dst, replacing each maximal invalid UTF-8
// subsequence with U+FFFD exactly as Rust's String::from_utf8_lossy does
// (the Unicode "maximal subpart" practice; Go's strings.ToValidUTF8 merges
// runs and would differ).
func appendLossyUTF8(dst []byte, p []byte) []byte {
	for i := 0; i < len(p); {
		c := p[i]
		if c < utf8.RuneSelf {
			dst = append(dst, c)
			i++
			continue
		}
		r, n := utf8.DecodeRune(p[i:])
		if r != utf8.RuneError || n > 1 {
			dst = append(dst, p[i:i+n]...)
			i += n
			continue
		}
		dst = append(dst, "\uFFFD"...)
		i += invalidPrefixLen(p[i:])
	}
	return dst
}

// invalidPrefixLen is the length of the maximal subpart of an ill-formed
// sequence at the start of p: the longest prefix that could begin a valid
// sequence, at least one byte.
func invalidPrefixLen(p []byte) int {
	c := p[0]
	var need int
	lo, hi := byte(0x80), byte(0xBF)
	switch {
	case c >= 0xC2 && c <= 0xDF:
		need = 1
	case c == 0xE0:
		need, lo = 2, 0xA0
	case c >= 0xE1 && c <= 0xEC, c == 0xEE, c == 0xEF:
		need = 2
	case c == 0xED:
		need, hi = 2, 0x9F
	case c == 0xF0:
		need, lo = 3, 0x90
	case c >= 0xF1 && c <= 0xF3:
		need = 3
	case c == 0xF4:
		need, hi = 3, 0x8F
	default:
		return 1
	}
	n := 1
	for k := 0; k < need && n < len(p); k++ {
		b := p[n]
		if k > 0 {
			lo, hi = 0x80, 0xBF
		}
		if b < lo || b > hi {
			break
		}
		n++
	}
	return n
}

// validUTF8 returns s with invalid sequences replaced the Rust way.
func validUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return string(appendLossyUTF8(nil, []byte(s)))
}
