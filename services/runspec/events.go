package runspec

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/eftml/eft/events"
	"github.com/eftml/eft/shared/bus"
)

// LastEvent returns the latest event of type typ for runID in the log of
// record (EFT_EVENTS), and false when the run has none: how a stage reads
// what an earlier stage said about a run (its resolved config, its batches,
// its last checkpoint) without keeping state of its own.
func LastEvent(ctx context.Context, b *bus.Bus, runID, typ string) (events.Envelope, bool, error) {
	s, err := b.JetStream().Stream(ctx, bus.EventsStream)
	if err != nil {
		return events.Envelope{}, false, fmt.Errorf("runspec: stream %s: %w", bus.EventsStream, err)
	}
	msg, err := s.GetLastMsgForSubject(ctx, events.Subject(runID, typ))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return events.Envelope{}, false, nil
	}
	if err != nil {
		return events.Envelope{}, false, fmt.Errorf("runspec: last %s of run %s: %w", typ, runID, err)
	}
	env, err := events.Decode(msg.Data)
	if err != nil {
		return events.Envelope{}, false, fmt.Errorf("runspec: last %s of run %s: %w", typ, runID, err)
	}
	return env, true, nil
}

// LastPayload is LastEvent decoded into its payload type.
func LastPayload[T events.Payload](ctx context.Context, b *bus.Bus, runID string) (T, bool, error) {
	var zero T
	env, ok, err := LastEvent(ctx, b, runID, zero.EventType())
	if err != nil || !ok {
		return zero, ok, err
	}
	p, err := events.PayloadAs[T](env)
	if err != nil {
		return zero, false, err
	}
	return p, true, nil
}

// Ended reports whether runID has ended: failed, cancelled, or (for the
// stages before it) completed training. It returns the type that ended it.
func Ended(ctx context.Context, b *bus.Bus, runID string, types ...string) (string, error) {
	for _, typ := range types {
		_, ok, err := LastEvent(ctx, b, runID, typ)
		if err != nil {
			return "", err
		}
		if ok {
			return typ, nil
		}
	}
	return "", nil
}
