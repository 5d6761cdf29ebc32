// Package validate is the first stage of a run: it parses the config of each
// RunRequested with shared/config and answers ConfigValidated (the resolved
// config every later stage reads) or RunFailed at stage "validate" with each
// problem located by file, line and key.
package validate

import (
	"context"
	"errors"
	"fmt"

	"github.com/eftml/eft/events"
	"github.com/eftml/eft/services/stage"
	"github.com/eftml/eft/shared/bus"
	"github.com/eftml/eft/shared/config"
)

// Name is the service's name and durable consumer.
const Name = "validate"

// Service validates requested runs.
type Service struct {
	bus *bus.Bus
}

// New returns the validate service over b.
func New(b *bus.Bus) *Service { return &Service{bus: b} }

// Run consumes RunRequested until ctx ends.
func (s *Service) Run(ctx context.Context) error {
	return s.bus.Consume(ctx, bus.Consumer{
		Name:         Name,
		Subjects:     []string{events.TypeSubjects(events.TypeRunRequested)},
		Handler:      s.handle,
		OnDeadLetter: stage.FailOnDeadLetter(s.bus, Name, events.StageValidate),
	})
}

func (s *Service) handle(ctx context.Context, d bus.Delivery) error {
	req, err := events.PayloadAs[events.RunRequested](d.Envelope)
	if err != nil {
		return bus.Permanent(err)
	}
	_, err = s.bus.PublishCausedBy(ctx, d.Envelope, Name, Check(req))
	return err
}

// Check validates a request's config: ConfigValidated or RunFailed.
func Check(req events.RunRequested) events.Payload {
	cfg, warnings, err := config.Parse(req.Config.FileName, []byte(req.Config.YAML), req.Config.Overrides)
	if err != nil {
		failed := events.RunFailed{Stage: events.StageValidate, Error: err.Error()}
		var cerr *config.Error
		if errors.As(err, &cerr) {
			failed.Issues = issues(cerr.Issues)
		}
		return failed
	}
	resolved, err := cfg.YAML()
	if err != nil {
		return events.RunFailed{Stage: events.StageValidate, Error: fmt.Sprintf("%s: writing the resolved config: %v", req.Config.FileName, err)}
	}
	return events.ConfigValidated{Resolved: string(resolved), Warnings: issues(warnings), WorkDir: req.WorkDir}
}

func issues(in []config.Issue) []events.ConfigIssue {
	out := make([]events.ConfigIssue, len(in))
	for i, is := range in {
		out[i] = events.ConfigIssue{File: is.File, Line: is.Line, Column: is.Column, Key: is.Key, Message: is.Message}
	}
	return out
}
