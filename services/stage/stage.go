// Package stage holds what every stage service shares: ending a run with
// RunFailed when its handler gives up, and the stand-in for a stage that is
// not built yet, which fails each run that reaches it with a message naming
// the stage rather than pretending it succeeded.
package stage

import (
	"context"
	"errors"
	"fmt"

	"github.com/eftml/eft/events"
	"github.com/eftml/eft/shared/bus"
)

// Fail publishes RunFailed for cause's run, as producer's reaction to cause
// (a derived event id, so failing twice for the same cause stores one event).
func Fail(ctx context.Context, b *bus.Bus, cause events.Envelope, producer, stageName string, err error, retryable bool) error {
	_, perr := b.PublishCausedBy(ctx, cause, producer, events.RunFailed{Stage: stageName, Error: err.Error(), Retryable: retryable})
	return perr
}

// FailOnDeadLetter returns a bus.Consumer.OnDeadLetter that fails the run of
// a message the stage gave up on, so that a run never waits forever on a
// stage that will not answer. A message that is not an event fails the run
// its subject names (eft.run.<run>.<type>), if any.
func FailOnDeadLetter(b *bus.Bus, producer, stageName string) func(ctx context.Context, d bus.Delivery, data []byte, err error) {
	return func(ctx context.Context, d bus.Delivery, _ []byte, err error) {
		if d.Envelope.ID == "" {
			runID, eventType, perr := events.ParseSubject(d.Subject)
			if perr != nil {
				return // no run to fail
			}
			failed := events.RunFailed{Stage: stageName, Error: fmt.Sprintf("an undecodable %s message reached %s: %v", eventType, producer, err)}
			if _, ferr := b.PublishNew(ctx, runID, producer, failed); ferr != nil {
				b.Logger().Error("stage: could not publish RunFailed", "stage", stageName, "run", runID, "error", ferr)
			}
			return
		}
		if ferr := Fail(ctx, b, d.Envelope, producer, stageName, err, !bus.IsPermanent(err)); ferr != nil {
			b.Logger().Error("stage: could not publish RunFailed", "stage", stageName, "run", d.Envelope.RunID, "error", ferr)
		}
	}
}

// Unavailable is a stage that is not built yet: it consumes the stage's
// input and answers every run with RunFailed naming the stage.
type Unavailable struct {
	bus     *bus.Bus
	service string
	stage   string
	input   string
}

// NewUnavailable returns the stand-in for stageName, run by service (also its
// consumer name), consuming events of type input (events.TypeTrainJob: the
// train-job work queue).
func NewUnavailable(b *bus.Bus, service, stageName, input string) *Unavailable {
	return &Unavailable{bus: b, service: service, stage: stageName, input: input}
}

// Message is the error every run reaching this stage fails with.
func (u *Unavailable) Message() string {
	return fmt.Sprintf("the %s stage is not available yet in this build of eft: the run cannot go past it", u.stage)
}

// Run consumes until ctx ends.
func (u *Unavailable) Run(ctx context.Context) error {
	fail := func(ctx context.Context, env events.Envelope) error {
		return Fail(ctx, u.bus, env, u.service, u.stage, errors.New(u.Message()), false)
	}
	if u.input == events.TypeTrainJob {
		return u.bus.ServeJobs(ctx, bus.JobConsumer{Name: u.service, Handler: func(ctx context.Context, j *bus.Job) error {
			return fail(ctx, j.Envelope)
		}})
	}
	return u.bus.Consume(ctx, bus.Consumer{
		Name:         u.service,
		Subjects:     []string{events.TypeSubjects(u.input)},
		Handler:      func(ctx context.Context, d bus.Delivery) error { return fail(ctx, d.Envelope) },
		OnDeadLetter: FailOnDeadLetter(u.bus, u.service, u.stage),
	})
}
