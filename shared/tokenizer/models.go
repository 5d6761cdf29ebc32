package tokenizer

import "unicode/utf8"

// model turns one pre-tokenized word into tokens (Hugging Face's Model).
type model interface {
	tokenize(sc *modelScratch, word []byte, out []token) []token
	tokenToID(s string) (int32, bool)
	idToToken(id int32) (string, bool)
	vocabSize() int
	vocabMap() map[string]int32
}

// vocabulary is the token<->id maps shared by the simple models.
type vocabulary struct {
	vocab  map[string]int32
	vocabR []string
}

func (v *vocabulary) vocabSize() int { return len(v.vocab) }

func (v *vocabulary) vocabMap() map[string]int32 { return v.vocab }

func (v *vocabulary) tokenToID(s string) (int32, bool) {
	id, ok := v.vocab[s]
	return id, ok
}

func (v *vocabulary) idToToken(id int32) (string, bool) {
	if id < 0 || int(id) >= len(v.vocabR) {
		return "", false
	}
	tok := v.vocabR[id]
	if tok == "" {
		if got, ok := v.vocab[""]; !ok || got != id {
			return "", false
		}
	}
	return tok, true
}

func reverseVocab(vocab map[string]int32) []string {
	maxID := int32(-1)
	for _, id := range vocab {
		maxID = max(maxID, id)
	}
	r := make([]string, maxID+1)
	for tok, id := range vocab {
		if id >= 0 {
			r[id] = tok
		}
	}
	return r
}

// wordPieceModel is greedy longest-match-first WordPiece (BERT).
type wordPieceModel struct {
	vocabulary
	unkID        int32
	prefix       string
	maxInputChar int
}

func (w *wordPieceModel) tokenize(sc *modelScratch, word []byte, out []token) []token {
	if utf8.RuneCount(word) > w.maxInputChar {
		return append(out, token{id: w.unkID, start: 0, end: int32(len(word))})
	}
	n := len(out)
	for start := 0; start < len(word); {
		end := len(word)
		found := false
		for start < end {
			buf := sc.buf[:0]
			if start > 0 {
				buf = append(buf, w.prefix...)
			}
			buf = append(buf, word[start:end]...)
			sc.buf = buf
			if id, ok := w.vocab[string(buf)]; ok {
				out = append(out, token{id: id, start: int32(start), end: int32(end)})
				found = true
				break
			}
			_, size := utf8.DecodeLastRune(word[start:end])
			end -= size
		}
		if !found {
			return append(out[:n], token{id: w.unkID, start: 0, end: int32(len(word))})
		}
		start = end
	}
	return out
}

// wordLevelModel maps whole words to ids.
type wordLevelModel struct {
	vocabulary
	unkID int32 // -1 when there is none
}

func (w *wordLevelModel) tokenize(_ *modelScratch, word []byte, out []token) []token {
	if id, ok := w.vocab[string(word)]; ok {
		return append(out, token{id: id, start: 0, end: int32(len(word))})
	}
	if w.unkID >= 0 {
		return append(out, token{id: w.unkID, start: 0, end: int32(len(word))})
	}
	return out
}
