// Package merger is the merger service: TrainingCompleted of a LoRA run with merge_lora → the adapter merged into the base model → ModelMerged.
//
// It is not built yet: until it is, New returns the stand-in that answers
// each run reaching this stage with RunFailed naming the stage, so that
// "eft train" ends plainly instead of waiting or pretending.
package merger

import (
	"github.com/eftml/eft/events"
	"github.com/eftml/eft/services/stage"
	"github.com/eftml/eft/shared/bus"
)

// Name is the service's name and durable consumer.
const Name = "merger"

// New returns the merger service over b.
func New(b *bus.Bus) *stage.Unavailable {
	return stage.NewUnavailable(b, Name, events.StageMerge, events.TypeTrainingCompleted)
}
