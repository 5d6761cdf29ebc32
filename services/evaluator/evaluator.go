// Package evaluator is the evaluator service: CheckpointSaved → eval loss and perplexity on the validation split → EvalCompleted.
//
// It is not built yet: until it is, New returns the stand-in that answers
// each run reaching this stage with RunFailed naming the stage, so that
// "eft train" ends plainly instead of waiting or pretending.
package evaluator

import (
	"github.com/eftml/eft/events"
	"github.com/eftml/eft/services/stage"
	"github.com/eftml/eft/shared/bus"
)

// Name is the service's name and durable consumer.
const Name = "evaluator"

// New returns the evaluator service over b.
func New(b *bus.Bus) *stage.Unavailable {
	return stage.NewUnavailable(b, Name, events.StageEvaluate, events.TypeCheckpointSaved)
}
