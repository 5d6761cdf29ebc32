package prompt

import (
	"fmt"

	"github.com/eftml/eft/shared/packing"
)

// MinSampleLen is the shortest sample kept: Axolotl's min_sample_len
// default, which eft does not let a config change.
const MinSampleLen = 2

// Fit says what became of a sample under a LengthPolicy.
type Fit int

const (
	Kept Fit = iota
	Truncated
	DroppedLong  // longer than sequence_len under "drop"
	DroppedShort // shorter than MinSampleLen
)

// LengthPolicy is excess_length_strategy over sequence_len, as Axolotl's
// handle_long_seq_in_dataset applies it after tokenizing: "drop" (the
// default) leaves out samples longer than SequenceLen, "truncate" cuts them
// to it, "raise" fails. Samples shorter than MinSampleLen are always left out.
type LengthPolicy struct {
	SequenceLen int
	Strategy    string // drop, truncate or raise; "" means drop
}

// Apply returns the sample as it goes on (truncated when so) and what
// happened to it; under "raise" a long sample is an error.
func (p LengthPolicy) Apply(s packing.Sample) (packing.Sample, Fit, error) {
	n := len(s.InputIDs)
	if n < MinSampleLen {
		return s, DroppedShort, nil
	}
	if n <= p.SequenceLen {
		return s, Kept, nil
	}
	switch p.Strategy {
	case "truncate":
		return s.Prefix(p.SequenceLen), Truncated, nil
	case "raise":
		return s, Kept, fmt.Errorf("a sample of %d tokens exceeds sequence_len %d (excess_length_strategy: raise)", n, p.SequenceLen)
	case "", "drop":
		return s, DroppedLong, nil
	}
	return s, Kept, fmt.Errorf("excess_length_strategy %q is not one of drop, truncate, raise", p.Strategy)
}
