package train

import (
	"github.com/eftml/eft/shared/packing"
	"github.com/eftml/eft/trainer/model"
)

// FromPacked turns a packed (or padded) micro-batch into the engine's batch:
// positions as packed, and targets shifted within each sample so no sample's
// last token learns to predict the next sample's first (or padding).
// dropoutSeed keys the LoRA dropout masks; derive it from the run seed and
// the micro-batch's place in the run so a resumed run draws the same masks.
func FromPacked(mb *packing.MicroBatch, dropoutSeed uint64) *model.Batch {
	return &model.Batch{
		Rows:        mb.Rows,
		Cols:        mb.Width,
		Tokens:      mb.InputIDs,
		Positions:   mb.PositionIDs,
		Targets:     model.ShiftLabels(mb.Labels, mb.PositionIDs, mb.Rows, mb.Width),
		DropoutSeed: dropoutSeed,
	}
}
