package prompt

import (
	"fmt"
	"math"

	"github.com/eftml/eft/shared/datasets"
	"github.com/eftml/eft/shared/packing"
)

// pretokenized passes rows that are already tokenized through: input_ids,
// with labels (default: the input ids, masked nowhere) and attention_mask
// (positions where it is 0 are padding and are left out; packing pads again).
type pretokenized struct {
	enc *encoder
}

func (s *pretokenized) Name() string { return "pretokenized" }

func (s *pretokenized) Tokenize(dst []packing.Sample, row datasets.Object) ([]packing.Sample, error) {
	ids, err := intList(row, "input_ids", true, int64(s.enc.tok.VocabSize()))
	if err != nil {
		return dst, err
	}
	labels, err := intList(row, "labels", false, int64(s.enc.tok.VocabSize()))
	if err != nil {
		return dst, err
	}
	if labels == nil {
		labels = append([]int32(nil), ids...)
	}
	mask, err := intList(row, "attention_mask", false, 2)
	if err != nil {
		return dst, err
	}
	if len(labels) != len(ids) {
		return dst, fmt.Errorf("labels has %d values, input_ids %d", len(labels), len(ids))
	}
	if mask != nil {
		if len(mask) != len(ids) {
			return dst, fmt.Errorf("attention_mask has %d values, input_ids %d", len(mask), len(ids))
		}
		n := 0
		for i := range ids {
			if mask[i] != 0 {
				ids[n], labels[n] = ids[i], labels[i]
				n++
			}
		}
		ids, labels = ids[:n:n], labels[:n:n]
	}
	return append(dst, packing.Sample{InputIDs: ids, Labels: labels}), nil
}

// intList reads a list of integers in [0, limit) (labels may also be -100).
func intList(row datasets.Object, name string, required bool, limit int64) ([]int32, error) {
	v, ok := row.Get(name)
	if !ok || v == nil {
		if required {
			return nil, fmt.Errorf("field %q is missing", name)
		}
		return nil, nil
	}
	list, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("field %q is %s, want a list of integers", name, datasets.Kind(v))
	}
	out := make([]int32, len(list))
	for i, x := range list {
		n, ok := x.(int64)
		if !ok {
			if f, isFloat := x.(float64); isFloat && f == math.Trunc(f) {
				n, ok = int64(f), true
			}
		}
		if !ok {
			return nil, fmt.Errorf("%s[%d] is %s, want an integer", name, i, datasets.Kind(x))
		}
		if (n < 0 || n >= limit) && !(name == "labels" && n == IgnoreIndex) {
			return nil, fmt.Errorf("%s[%d] = %d is outside [0, %d)", name, i, n, limit)
		}
		out[i] = int32(n)
	}
	return out, nil
}
