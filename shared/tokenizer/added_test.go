package tokenizer

import (
	"math/rand/v2"
	"strings"
	"testing"
)

// TestTrieNextSkipsOnlyWhatCannotMatch: the added-token scan jumps from a
// position to the next one where a pattern may start; it must never jump
// over a position where one does (longestAt), whether the patterns share
// one first byte (searched with IndexByte) or start with several.
func TestTrieNextSkipsOnlyWhatCannotMatch(t *testing.T) {
	for first, patterns := range map[int]map[string]int32{
		'<': {"<|eot_id|>": 1, "<|start_header_id|>": 2, "<s>": 3, "<": 4},
		-1:  {"<|endoftext|>": 1, "[INST]": 2, "\n\n": 3, "é": 4},
	} {
		tr := buildTrie(patterns)
		if tr.first != first {
			t.Fatalf("patterns %v: first byte %d, want %d", patterns, tr.first, first)
		}
		pieces := []string{"<", "|", "<|", "eot_id", "|>", "[", "INST]", "\n", "é", "a b", "<s", ">", "\xc3"}
		for _, k := range []string{"<|eot_id|>", "[INST]"} {
			if _, ok := patterns[k]; ok {
				pieces = append(pieces, k)
			}
		}
		rng := rand.New(rand.NewPCG(3, 4))
		for range 2000 {
			var sb strings.Builder
			for range rng.IntN(12) {
				sb.WriteString(pieces[rng.IntN(len(pieces))])
			}
			s := sb.String()
			for i := 0; i <= len(s); i++ {
				j := tr.next(s, min(i, len(s)))
				// Every position from i up to j cannot start a pattern.
				for k := i; k < j; k++ {
					if id, _ := tr.longestAt(s, k); id >= 0 {
						t.Fatalf("patterns %v, text %q: next(%d) = %d skips the match at %d", patterns, s, i, j, k)
					}
				}
				if j < len(s) && tr.root[s[j]] < 0 {
					t.Fatalf("patterns %v, text %q: next(%d) = %d, where no pattern starts", patterns, s, i, j)
				}
			}
		}
	}
}
