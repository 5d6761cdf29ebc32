package tokenizer

import (
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"
)

// AddedToken is a token added on top of the model's vocabulary (Hugging
// Face's AddedToken): it is matched in the text before the model sees it.
type AddedToken struct {
	Content string `json:"content"`
	// SingleWord: only match when not inside a word.
	SingleWord bool `json:"single_word"`
	// LStrip / RStrip: swallow the whitespace on the left / right.
	LStrip bool `json:"lstrip"`
	RStrip bool `json:"rstrip"`
	// Normalized: match against the normalized text instead of the raw text.
	Normalized bool `json:"normalized"`
	// Special: skipped by Decode with skipSpecial.
	Special bool `json:"special"`
}

// addedVocab is Hugging Face's AddedVocabulary.
type addedVocab struct {
	byID     map[int32]AddedToken
	ids      map[string]int32
	normForm map[int32]string // normalized content, when it differs
	special  map[string]bool
	rawTrie  *trie // tokens matched in the raw text
	normTrie *trie // tokens matched in the normalized text
}

func newAddedVocab() *addedVocab {
	return &addedVocab{
		byID:     map[int32]AddedToken{},
		ids:      map[string]int32{},
		normForm: map[int32]string{},
		special:  map[string]bool{},
	}
}

// segment is a piece of the input: either an added token (id >= 0) or
// text for the model (id < 0).
type segment struct {
	start, end int
	id         int32
}

// trie matches a set of strings, leftmost-longest, without overlap.
type trie struct {
	nodes []trieNode
	root  [256]int32 // child of the root per first byte, -1 if none
	// first is the byte every pattern starts with, -1 when they start with
	// several: most tokenizers' added tokens all start with '<', and text
	// is then searched for it (IndexByte) rather than tried byte by byte.
	first int
}

type trieNode struct {
	edges []trieEdge
	id    int32 // token ending here, -1 if none
}

type trieEdge struct {
	b  byte
	to int32
}

func buildTrie(patterns map[string]int32) *trie {
	if len(patterns) == 0 {
		return nil
	}
	t := &trie{nodes: []trieNode{{id: -1}}}
	for i := range t.root {
		t.root[i] = -1
	}
	keys := make([]string, 0, len(patterns))
	for k := range patterns {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if k == "" {
			continue
		}
		cur := int32(0)
		for i := 0; i < len(k); i++ {
			b := k[i]
			next := int32(-1)
			if cur == 0 {
				next = t.root[b]
			} else {
				for _, e := range t.nodes[cur].edges {
					if e.b == b {
						next = e.to
						break
					}
				}
			}
			if next < 0 {
				next = int32(len(t.nodes))
				t.nodes = append(t.nodes, trieNode{id: -1})
				if cur == 0 {
					t.root[b] = next
				} else {
					t.nodes[cur].edges = append(t.nodes[cur].edges, trieEdge{b, next})
				}
			}
			cur = next
		}
		t.nodes[cur].id = patterns[k]
	}
	t.first = -1
	for b, child := range t.root {
		if child >= 0 {
			if t.first >= 0 {
				t.first = -1
				break
			}
			t.first = b
		}
	}
	return t
}

// next is the first position from i where a pattern may start, len(s)
// when none can.
func (t *trie) next(s string, i int) int {
	if t.first >= 0 {
		if j := strings.IndexByte(s[i:], byte(t.first)); j >= 0 {
			return i + j
		}
		return len(s)
	}
	for i < len(s) && t.root[s[i]] < 0 {
		i++
	}
	return i
}

// longestAt returns the id and end of the longest pattern starting at i.
func (t *trie) longestAt(s string, i int) (int32, int) {
	cur := t.root[s[i]]
	if cur < 0 {
		return -1, 0
	}
	bestID, bestEnd := int32(-1), 0
	j := i + 1
	for {
		if id := t.nodes[cur].id; id >= 0 {
			bestID, bestEnd = id, j
		}
		if j >= len(s) {
			break
		}
		b := s[j]
		next := int32(-1)
		for _, e := range t.nodes[cur].edges {
			if e.b == b {
				next = e.to
				break
			}
		}
		if next < 0 {
			break
		}
		cur = next
		j++
	}
	return bestID, bestEnd
}

// split cuts s into added tokens and the text between them, applying
// single_word, lstrip and rstrip like Hugging Face's find_matches. Matches
// are found first (leftmost-longest, non-overlapping) and filtered after,
// so a discarded match still hides the text it covered from other matches.
func (a *addedVocab) split(dst []segment, t *trie, s string) []segment {
	if t == nil || len(s) == 0 {
		return append(dst, segment{0, len(s), -1})
	}
	startOffset := 0
	for i := t.next(s, 0); i < len(s); i = t.next(s, i) {
		id, end := t.longestAt(s, i)
		if id < 0 {
			i++
			continue
		}
		start, stop := i, end
		i = end
		tok := a.byID[id]
		if tok.SingleWord {
			startOK := start == 0 || !endsWithWordChar(s[:start])
			stopOK := stop == len(s) || !startsWithWordChar(s[stop:])
			if !startOK || !stopOK {
				continue
			}
		}
		if tok.LStrip {
			ns := start
			for ns > 0 {
				r, n := utf8.DecodeLastRuneInString(s[:ns])
				if !unicode.IsSpace(r) {
					break
				}
				ns -= n
			}
			start = max(ns, startOffset)
		}
		if tok.RStrip {
			for stop < len(s) {
				r, n := utf8.DecodeRuneInString(s[stop:])
				if !unicode.IsSpace(r) {
					break
				}
				stop += n
			}
		}
		if startOffset < start {
			dst = append(dst, segment{startOffset, start, -1})
		}
		dst = append(dst, segment{start, stop, id})
		startOffset = stop
	}
	if startOffset != len(s) {
		dst = append(dst, segment{startOffset, len(s), -1})
	}
	return dst
}

func endsWithWordChar(s string) bool {
	r, _ := utf8.DecodeLastRuneInString(s)
	return isWordChar(r)
}

func startsWithWordChar(s string) bool {
	r, _ := utf8.DecodeRuneInString(s)
	return isWordChar(r)
}
