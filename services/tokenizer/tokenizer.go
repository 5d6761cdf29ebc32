// Package tokenizer is the tokenizer service: DatasetIngested → rows tokenized, masked and packed into micro-batches → DatasetTokenized and the TrainJob.
//
// It is not built yet: until it is, New returns the stand-in that answers
// each run reaching this stage with RunFailed naming the stage, so that
// "eft train" ends plainly instead of waiting or pretending.
package tokenizer

import (
	"github.com/eftml/eft/events"
	"github.com/eftml/eft/services/stage"
	"github.com/eftml/eft/shared/bus"
)

// Name is the service's name and durable consumer.
const Name = "tokenizer"

// New returns the tokenizer service over b.
func New(b *bus.Bus) *stage.Unavailable {
	return stage.NewUnavailable(b, Name, events.StageTokenize, events.TypeDatasetIngested)
}
