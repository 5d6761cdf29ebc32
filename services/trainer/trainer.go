// Package trainer is the trainer service: takes TrainJobs from the work queue one at a time and trains → TrainingStarted, MetricsLogged, CheckpointSaved, TrainingCompleted.
//
// It is not built yet: until it is, New returns the stand-in that answers
// each run reaching this stage with RunFailed naming the stage, so that
// "eft train" ends plainly instead of waiting or pretending.
package trainer

import (
	"github.com/eftml/eft/events"
	"github.com/eftml/eft/services/stage"
	"github.com/eftml/eft/shared/bus"
)

// Name is the service's name and durable consumer.
const Name = "trainer"

// New returns the trainer service over b.
func New(b *bus.Bus) *stage.Unavailable {
	return stage.NewUnavailable(b, Name, events.StageTrain, events.TypeTrainJob)
}
