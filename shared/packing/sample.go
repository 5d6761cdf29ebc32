package packing

import (
	"fmt"
	"math/bits"
)

// IgnoreIndex is the label of a token that does not count in the loss.
const IgnoreIndex = -100

// Sample is one tokenized training example: its input ids and their labels,
// IgnoreIndex where a token is not trained. The labels are Labels (same
// length as InputIDs) or, when Labels is nil, TrainedMask: the compact form
// of labels that either copy their input id or ignore it, as chat templates
// make them — bit i%64 of word i/64 is set when token i is trained, and the
// bits past the last token are clear. The mask takes 1/32 of the memory and
// is what the batch file stores anyway.
type Sample struct {
	InputIDs    []int32
	Labels      []int32
	TrainedMask []uint64
}

// MaskWords is the length of the TrainedMask of n tokens.
func MaskWords(n int) int { return (n + 63) / 64 }

// MarkTrained sets the bits of tokens [from, to) in mask.
func MarkTrained(mask []uint64, from, to int) {
	for i := from; i < to; {
		w, b := i>>6, uint(i&63)
		n := min(64-int(b), to-i)
		mask[w] |= (^uint64(0) >> (64 - uint(n))) << b
		i += n
	}
}

// WithTrainedMask is s with its labels as a trained mask, when each copies
// or ignores its id (false otherwise, and s unchanged).
func (s Sample) WithTrainedMask() (Sample, bool) {
	if s.Masked() {
		return s, true
	}
	if len(s.Labels) != len(s.InputIDs) {
		return s, false
	}
	mask := make([]uint64, MaskWords(len(s.InputIDs)))
	for i, l := range s.Labels {
		switch l {
		case IgnoreIndex:
		case s.InputIDs[i]:
			mask[i>>6] |= 1 << (i & 63)
		default:
			return s, false
		}
	}
	return Sample{InputIDs: s.InputIDs, TrainedMask: mask}, true
}

// Check reports labels that do not match the ids in length.
func (s Sample) Check() error {
	if s.Labels != nil || s.TrainedMask == nil {
		if len(s.Labels) != len(s.InputIDs) {
			return fmt.Errorf("%d input ids but %d labels", len(s.InputIDs), len(s.Labels))
		}
		return nil
	}
	if len(s.TrainedMask) != MaskWords(len(s.InputIDs)) {
		return fmt.Errorf("%d input ids but a trained mask of %d words", len(s.InputIDs), len(s.TrainedMask))
	}
	if r := len(s.InputIDs) & 63; r != 0 && s.TrainedMask[len(s.TrainedMask)-1]>>r != 0 {
		return fmt.Errorf("its trained mask marks tokens past its %d", len(s.InputIDs))
	}
	return nil
}

// Masked reports whether the labels are the TrainedMask.
func (s Sample) Masked() bool { return s.Labels == nil && s.TrainedMask != nil }

// Label is token i's label.
func (s Sample) Label(i int) int32 {
	if !s.Masked() {
		return s.Labels[i]
	}
	if s.TrainedMask[i>>6]>>(i&63)&1 != 0 {
		return s.InputIDs[i]
	}
	return IgnoreIndex
}

// AppendLabels appends the labels, one per input id.
func (s Sample) AppendLabels(dst []int32) []int32 {
	if !s.Masked() {
		return append(dst, s.Labels...)
	}
	for i, id := range s.InputIDs {
		if s.TrainedMask[i>>6]>>(i&63)&1 == 0 {
			id = IgnoreIndex
		}
		dst = append(dst, id)
	}
	return dst
}

// CountTrained counts the tokens that count in the loss.
func (s Sample) CountTrained() int {
	n := 0
	if s.Masked() {
		for _, w := range s.TrainedMask {
			n += bits.OnesCount64(w)
		}
		return n
	}
	for _, l := range s.Labels {
		if l != IgnoreIndex {
			n++
		}
	}
	return n
}

// Prefix is the sample's first n tokens (n <= its length), sharing its
// memory: a mask's bits past them are cleared in place, so s itself is not
// to be used after.
func (s Sample) Prefix(n int) Sample {
	out := Sample{InputIDs: s.InputIDs[:n:n]}
	if !s.Masked() {
		out.Labels = s.Labels[:n:n]
		return out
	}
	w := MaskWords(n)
	out.TrainedMask = s.TrainedMask[:w:w]
	if r := n & 63; r != 0 {
		out.TrainedMask[w-1] &= ^uint64(0) >> (64 - r)
	}
	return out
}
