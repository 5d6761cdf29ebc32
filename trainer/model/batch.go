package model

import (
	"fmt"

	"github.com/eftml/eft/trainer/backend"
)

// Batch is one micro-batch: Rows rows of Cols tokens, flattened row-major.
type Batch struct {
	Rows, Cols int
	Tokens     []int32
	// Positions restart at 0 where a packed sample starts; attention never
	// crosses from one sample to another. Nil means 0..Cols-1 in every row.
	Positions []int32
	// Targets[t] is the token position t must predict (already shifted: the
	// label of position t+1), or backend.IgnoreIndex. Nil for forward only.
	Targets []int32
	// DropoutSeed keys LoRA dropout masks for this micro-batch.
	DropoutSeed uint64
}

// maxPosition bounds position ids: the rotary table covers every position
// up to the largest in use, so an absurd id would be an absurd allocation.
const maxPosition = 1 << 20

// Len is the number of tokens.
func (b *Batch) Len() int { return b.Rows * b.Cols }

func (b *Batch) validate(vocab int) error {
	n := b.Rows * b.Cols
	if b.Rows <= 0 || b.Cols <= 0 {
		return fmt.Errorf("model: batch of %d×%d tokens", b.Rows, b.Cols)
	}
	if len(b.Tokens) != n {
		return fmt.Errorf("model: batch of %d×%d has %d tokens", b.Rows, b.Cols, len(b.Tokens))
	}
	for i, t := range b.Tokens {
		if t < 0 || int(t) >= vocab {
			return fmt.Errorf("model: token %d at %d is outside the vocabulary of %d", t, i, vocab)
		}
	}
	if b.Positions != nil && len(b.Positions) != n {
		return fmt.Errorf("model: %d positions for %d tokens", len(b.Positions), n)
	}
	for i, p := range b.Positions {
		if p < 0 || p >= maxPosition {
			return fmt.Errorf("model: position %d at %d is outside [0, %d)", p, i, maxPosition)
		}
	}
	if b.Targets != nil {
		if len(b.Targets) != n {
			return fmt.Errorf("model: %d targets for %d tokens", len(b.Targets), n)
		}
		for i, t := range b.Targets {
			if t != backend.IgnoreIndex && (t < 0 || int(t) >= vocab) {
				return fmt.Errorf("model: target %d at %d is outside the vocabulary of %d", t, i, vocab)
			}
		}
	}
	return nil
}

// ShiftLabels turns Hugging Face labels (label t belongs to token t; the
// model shifts internally) into Targets: target t = label t+1, and the last
// token of each sample predicts nothing. Samples are told apart by positions
// restarting at 0 (a packed row, padding included); nil positions mean one
// sample per row. This is what transformers computes for a packed row whose
// first label of every sample is masked (DataCollatorWithFlattening).
func ShiftLabels(labels, positions []int32, rows, cols int) []int32 {
	out := make([]int32, len(labels))
	for r := range rows {
		for c := range cols {
			i := r*cols + c
			if c == cols-1 || (positions != nil && positions[i+1] == 0) {
				out[i] = backend.IgnoreIndex
				continue
			}
			out[i] = labels[i+1]
		}
	}
	return out
}

// fillPositions writes the batch's positions (or 0..Cols-1) into pos and the
// start of each token's sample into seg; it returns the largest position.
func (b *Batch) fillPositions(pos, seg []int32) int32 {
	var maxPos int32
	for r := range b.Rows {
		start := int32(0)
		for c := range b.Cols {
			i := r*b.Cols + c
			p := int32(c)
			if b.Positions != nil {
				p = b.Positions[i]
			}
			if p == 0 {
				start = int32(c)
			}
			pos[i], seg[i] = p, start
			maxPos = max(maxPos, p)
		}
	}
	return maxPos
}
