package prompt

import (
	"fmt"

	"github.com/eftml/eft/shared/datasets"
	"github.com/eftml/eft/shared/packing"
)

// inputOutput is Axolotl's input_output strategy: a row's "segments" are
// {text, label} pairs tokenized one by one without special tokens (the text
// carries BOS/EOS itself if it wants them); a segment is trained when its
// label is true or train_on_inputs is set.
type inputOutput struct {
	enc           *encoder
	trainOnInputs bool
}

func (s *inputOutput) Name() string { return "input_output" }

func (s *inputOutput) Tokenize(dst []packing.Sample, row datasets.Object) ([]packing.Sample, error) {
	v, _ := row.Get("segments")
	segments, ok := v.([]any)
	if !ok {
		return dst, fmt.Errorf("field \"segments\" is %s, want a list of {text, label}", datasets.Kind(v))
	}
	var ids []int32
	var trainedRuns [][2]int // token ranges of the trained segments
	for i, seg := range segments {
		obj, ok := seg.(datasets.Object)
		if !ok {
			return dst, fmt.Errorf("segments[%d] is %s, want an object with text and label", i, datasets.Kind(seg))
		}
		text, err := field(obj, "text", false)
		if err != nil {
			return dst, fmt.Errorf("segments[%d]: %w", i, err)
		}
		lv, ok := obj.Get("label")
		label, isBool := lv.(bool)
		if !ok || !isBool {
			return dst, fmt.Errorf("segments[%d]: label is %s, want true or false", i, datasets.Kind(lv))
		}
		start := len(ids)
		ids = s.enc.encode(ids, text, false, 0)
		if label || s.trainOnInputs {
			trainedRuns = append(trainedRuns, [2]int{start, len(ids)})
		}
	}
	trained := make([]uint64, packing.MaskWords(len(ids)))
	for _, r := range trainedRuns {
		packing.MarkTrained(trained, r[0], r[1])
	}
	return append(dst, packing.Sample{InputIDs: ids, TrainedMask: trained}), nil
}
