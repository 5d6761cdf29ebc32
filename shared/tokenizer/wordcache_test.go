package tokenizer

import (
	"fmt"
	"slices"
	"testing"
)

// TestFullWordCacheKeepsWhatItHas: a word cache takes words until it holds
// bpeCacheEntries and then keeps them (Hugging Face's policy), and an
// encoder whose caches are full still encodes new words right.
func TestFullWordCacheKeepsWhatItHas(t *testing.T) {
	var m map[string][]uint32
	for i := range bpeCacheEntries + 10 {
		rememberWord(&m, fmt.Appendf(nil, "\x00w%d", i), []token{{id: int32(i), end: 1}})
	}
	if len(m) != bpeCacheEntries || m["\x00w0"] == nil || m[fmt.Sprintf("\x00w%d", bpeCacheEntries)] != nil {
		t.Fatalf("%d words cached; the first kept: %v", len(m), m["\x00w0"] != nil)
	}

	text := "The quick brown fox jumps over the lazy dog. It's 2024 — naïve café, 日本語!"
	for _, name := range []string{"llama3", "mistral_v01"} {
		want := loadTestTokenizer(t, name).Encode(text, true)
		tok := loadTestTokenizer(t, name)
		e := tok.getEncoder()
		for i := range bpeCacheEntries {
			w := fmt.Appendf(nil, "\x00w%d", i)
			rememberWord(&e.bpe.cache, w, []token{{id: 1, end: 1}})
			rememberWord(&e.bpe.cacheBytes, w, []token{{id: 1, end: 1}})
		}
		tok.putEncoder(e)
		for range 2 {
			if got := tok.Encode(text, true); !slices.Equal(got, want) {
				t.Fatalf("%s with full caches: %v, want %v", name, got, want)
			}
		}
	}
}
