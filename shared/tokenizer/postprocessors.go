package tokenizer

import "unicode"

// postProcessor adds special tokens around an encoded sequence and may
// adjust its offsets (Hugging Face's PostProcessor, single sequences).
type postProcessor interface {
	process(t *Tokenizer, e *Encoding, addSpecial bool)
}

// templatePiece is one item of a TemplateProcessing template: the input
// sequence, or the ids of a special token.
type templatePiece struct {
	sequence bool
	ids      []int32
}

type templateProcessor struct {
	single []templatePiece
}

func (tp *templateProcessor) process(_ *Tokenizer, e *Encoding, addSpecial bool) {
	if !addSpecial {
		return
	}
	e.wrap(tp.single)
}

// wrap surrounds the encoding's ids (and offsets) with the template's
// special ids, which get (0, 0) offsets.
func (e *Encoding) wrap(tmpl []templatePiece) {
	n := 0
	for _, p := range tmpl {
		if p.sequence {
			n += len(e.IDs)
		} else {
			n += len(p.ids)
		}
	}
	if n == len(e.IDs) {
		return
	}
	ids := make([]int32, 0, n)
	var offs []Offset
	if e.Offsets != nil {
		offs = make([]Offset, 0, n)
	}
	special := make([]bool, 0, n)
	for _, p := range tmpl {
		if p.sequence {
			ids = append(ids, e.IDs...)
			if offs != nil {
				offs = append(offs, e.Offsets...)
			}
			if e.SpecialMask != nil {
				special = append(special, e.SpecialMask...)
			} else {
				special = append(special, make([]bool, len(e.IDs))...)
			}
			continue
		}
		ids = append(ids, p.ids...)
		for range p.ids {
			if offs != nil {
				offs = append(offs, Offset{})
			}
			special = append(special, true)
		}
	}
	if len(e.values) > 0 {
		shift := 0
		for _, p := range tmpl {
			if p.sequence {
				break
			}
			shift += len(p.ids)
		}
		moved := make(map[int]string, len(e.values))
		for k, v := range e.values {
			moved[k+shift] = v
		}
		e.values = moved
	}
	e.IDs, e.Offsets, e.SpecialMask = ids, offs, special
}

// byteLevelProcessor trims the offsets of tokens that begin or end with
// spaces, when trimOffsets is set.
type byteLevelProcessor struct {
	trimOffsets    bool
	addPrefixSpace bool
}

func (b *byteLevelProcessor) process(t *Tokenizer, e *Encoding, _ bool) {
	if b.trimOffsets && e.Offsets != nil {
		trimByteLevelOffsets(t, e, b.addPrefixSpace)
	}
}

// trimByteLevelOffsets is Hugging Face's process_offsets.
func trimByteLevelOffsets(t *Tokenizer, e *Encoding, addPrefixSpace bool) {
	isSpace := func(c rune) bool { return c == byteToChar[' '] || unicode.IsSpace(c) }
	for i, id := range e.IDs {
		tok, ok := e.values[i]
		if !ok {
			tok, _ = t.IDToToken(id)
		}
		chars := []rune(tok)
		leading, trailing := 0, 0
		for leading < len(chars) && isSpace(chars[leading]) {
			leading++
		}
		for trailing < len(chars) && isSpace(chars[len(chars)-1-trailing]) {
			trailing++
		}
		o := &e.Offsets[i]
		if leading > 0 {
			isFirst := i == 0 || o.Start == 0
			if isFirst && addPrefixSpace && leading == 1 {
				leading = 0
			}
			o.Start = min(o.Start+leading, o.End)
		}
		if trailing > 0 && o.End >= trailing {
			o.End = max(o.End-trailing, o.Start)
		}
	}
}

// robertaProcessor is <s> A </s> with optional offset trimming.
type robertaProcessor struct {
	cls, sep                    int32
	trimOffsets, addPrefixSpace bool
}

func (r *robertaProcessor) process(t *Tokenizer, e *Encoding, addSpecial bool) {
	if r.trimOffsets && e.Offsets != nil {
		trimByteLevelOffsets(t, e, r.addPrefixSpace)
	}
	if addSpecial {
		e.wrap([]templatePiece{{ids: []int32{r.cls}}, {sequence: true}, {ids: []int32{r.sep}}})
	}
}

// bertProcessor is [CLS] A [SEP].
type bertProcessor struct{ cls, sep int32 }

func (b *bertProcessor) process(_ *Tokenizer, e *Encoding, addSpecial bool) {
	if addSpecial {
		e.wrap([]templatePiece{{ids: []int32{b.cls}}, {sequence: true}, {ids: []int32{b.sep}}})
	}
}

type sequenceProcessor []postProcessor

func (s sequenceProcessor) process(t *Tokenizer, e *Encoding, addSpecial bool) {
	for _, p := range s {
		p.process(t, e, addSpecial)
	}
}
