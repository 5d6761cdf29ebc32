package tokenizer

import (
	"fmt"
	"math"
	"unicode/utf8"
)

// unigramModel is SentencePiece's unigram model as Hugging Face runs it:
// the best-scoring segmentation by dynamic programming over the pieces that
// start at each character, unknown characters fused into one unk token.
type unigramModel struct {
	vocabulary
	scores       []float64
	trie         *trie
	unkID        int32 // -1 when there is none
	byteFallback bool
	minScore     float64
}

type unigramPiece struct {
	token string
	score float64
}

// unkPenalty is subtracted from the lowest piece score for unknown text.
const unkPenalty = 10.0

func parseUnigramVocab(s *jsonScanner) ([]unigramPiece, error) {
	var out []unigramPiece
	var buf []byte
	err := s.eachElement(func(i int) error {
		if err := s.expect('['); err != nil {
			return err
		}
		tok, nb, err := s.readString(buf)
		buf = nb
		if err != nil {
			return err
		}
		if err := s.expect(','); err != nil {
			return err
		}
		score, err := s.readFloat()
		if err != nil {
			return err
		}
		out = append(out, unigramPiece{token: string(tok), score: score})
		return s.expect(']')
	})
	if out == nil {
		out = []unigramPiece{}
	}
	return out, err
}

func newUnigram(pieces []unigramPiece, o jsonObj) (model, error) {
	u := &unigramModel{unkID: -1, minScore: math.Inf(1)}
	u.vocab = make(map[string]int32, len(pieces))
	u.vocabR = make([]string, len(pieces))
	u.scores = make([]float64, len(pieces))
	patterns := make(map[string]int32, len(pieces))
	for i, p := range pieces {
		u.vocab[p.token] = int32(i)
		u.vocabR[i] = p.token
		u.scores[i] = p.score
		patterns[p.token] = int32(i)
		u.minScore = math.Min(u.minScore, p.score)
	}
	u.trie = buildTrie(patterns)
	var unk *int
	if _, err := o.get("unk_id", &unk); err != nil {
		return nil, err
	}
	if unk != nil {
		if *unk < 0 || *unk >= len(pieces) {
			return nil, o.errorf("unk_id", "%d is not in the vocabulary", *unk)
		}
		u.unkID = int32(*unk)
	}
	var err error
	if u.byteFallback, err = o.boolean("byte_fallback", false); err != nil {
		return nil, err
	}
	return u, nil
}

type bestNode struct {
	id     int32
	score  float64
	starts int32 // -1 while unreached
}

func (u *unigramModel) tokenize(sc *modelScratch, word []byte, out []token) []token {
	if len(word) == 0 {
		return out
	}
	unkScore := u.minScore - unkPenalty
	best := sc.best[:0]
	for range len(word) + 1 {
		best = append(best, bestNode{starts: -1})
	}
	sc.best = best
	for start := 0; start < len(word); {
		base := best[start].score
		_, mblen := utf8.DecodeRune(word[start:])
		single := false
		u.eachPrefix(word, start, func(id int32, end int) {
			cand := u.scores[id] + base
			if n := &best[end]; n.starts < 0 || cand > n.score {
				n.score, n.starts, n.id = cand, int32(start), id
			}
			if end-start == mblen {
				single = true
			}
		})
		if !single {
			if n := &best[start+mblen]; n.starts < 0 || unkScore+base > n.score {
				n.score, n.starts, n.id = unkScore+base, int32(start), u.unkID
			}
		}
		start += mblen
	}
	return u.emit(word, best, out)
}

// emit rebuilds the best path and turns it into tokens.
func (u *unigramModel) emit(word []byte, best []bestNode, out []token) []token {
	type rng struct {
		start, end int32
		unk        bool
	}
	var path []rng
	for end := int32(len(word)); end > 0; {
		n := best[end]
		isUnk := u.unkID >= 0 && n.id == u.unkID
		if isUnk && len(path) > 0 && path[len(path)-1].unk {
			path[len(path)-1].start = n.starts
		} else {
			path = append(path, rng{n.starts, end, isUnk})
		}
		end = n.starts
	}
	for k := len(path) - 1; k >= 0; k-- {
		r := path[k]
		s := word[r.start:r.end]
		if id, ok := u.vocab[string(s)]; ok {
			out = append(out, token{id: id, start: r.start, end: r.end})
			continue
		}
		if u.byteFallback {
			all := true
			ids := make([]int32, 0, len(s))
			for _, b := range s {
				id, ok := u.vocab[fmt.Sprintf("<0x%02X>", b)]
				if !ok {
					all = false
					break
				}
				ids = append(ids, id)
			}
			if all {
				for _, id := range ids {
					out = append(out, token{id: id, start: r.start, end: r.end})
				}
				continue
			}
		}
		if u.unkID >= 0 {
			out = append(out, token{id: u.unkID, start: r.start, end: r.end})
		}
	}
	return out
}

// eachPrefix calls fn for every vocabulary piece that starts at word[i].
func (u *unigramModel) eachPrefix(word []byte, i int, fn func(id int32, end int)) {
	t := u.trie
	if t == nil {
		return
	}
	cur := t.root[word[i]]
	j := i + 1
	for cur >= 0 {
		if id := t.nodes[cur].id; id >= 0 {
			fn(id, j)
		}
		if j >= len(word) {
			return
		}
		b := word[j]
		next := int32(-1)
		for _, e := range t.nodes[cur].edges {
			if e.b == b {
				next = e.to
				break
			}
		}
		cur = next
		j++
	}
}
