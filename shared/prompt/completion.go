package prompt

import (
	"github.com/eftml/eft/shared/config"
	"github.com/eftml/eft/shared/datasets"
	"github.com/eftml/eft/shared/packing"
)

// completion is Axolotl's completion strategy: the text of one field,
// tokenized with special tokens and EOS (cut at 64 × sequence_len tokens
// first), then split into pieces of sequence_len tokens, each a sample
// trained on every token.
type completion struct {
	field  string
	enc    *encoder
	seqLen int
}

func newCompletion(cfg *config.Config, ds *config.Dataset, enc *encoder) *completion {
	return &completion{field: orDefault(ds.Field, "text"), enc: enc, seqLen: cfg.SequenceLen}
}

func (c *completion) Name() string { return "completion" }

func (c *completion) Tokenize(dst []packing.Sample, row datasets.Object) ([]packing.Sample, error) {
	text, err := field(row, c.field, false)
	if err != nil {
		return dst, err
	}
	ids := c.enc.tokenize(nil, text, 64*c.seqLen, true, false)
	// Every token is trained: each piece's mask is all ones.
	for i := 0; i < len(ids); i += c.seqLen {
		end := min(i+c.seqLen, len(ids))
		trained := make([]uint64, packing.MaskWords(end-i))
		packing.MarkTrained(trained, 0, end-i)
		dst = append(dst, packing.Sample{InputIDs: ids[i:end:end], TrainedMask: trained})
	}
	return dst, nil
}
