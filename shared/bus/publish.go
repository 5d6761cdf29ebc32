package bus

import (
	"context"
	"fmt"

	wmjs "github.com/ThreeDotsLabs/watermill-nats/v2/pkg/jetstream"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/eftml/eft/events"
)

// Message headers the bus sets besides Nats-Msg-Id and the W3C trace context.
const (
	HeaderEventType = "Eft-Type"
	HeaderRunID     = "Eft-Run"
)

// publisher publishes watermill messages on the bus's connection. The
// watermill JetStream publisher takes its NATS subject from the stream
// configurator's Name, so the configurator maps a topic to itself.
type publisher struct {
	wm *wmjs.Publisher
}

func newPublisher(b *Bus) (*publisher, error) {
	wm, err := wmjs.NewPublisher(wmjs.PublisherConfig{
		Conn:   b.nc,
		Logger: b.logger,
		ConfigureStream: func(subject string) jetstream.StreamConfig {
			return jetstream.StreamConfig{Name: subject}
		},
	})
	if err != nil {
		return nil, fmt.Errorf("bus: watermill publisher: %w", err)
	}
	return &publisher{wm: wm}, nil
}

// Publish stores env in its stream (EFT_EVENTS, or EFT_JOBS for a train job)
// and returns once the server has acknowledged it. The envelope's id is the
// message's Nats-Msg-Id, so publishing the same envelope twice stores it once.
// The trace context of ctx (a new publish span under it) travels in the
// message headers and is recorded in the envelope.
func (b *Bus) Publish(ctx context.Context, env events.Envelope) error {
	_, err := b.publish(ctx, env)
	return err
}

// publish is Publish returning the envelope as sent, trace context included.
func (b *Bus) publish(ctx context.Context, env events.Envelope) (events.Envelope, error) {
	ctx, span := b.tracer.Start(ctx, "publish "+env.Type,
		trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(
			attribute.String("messaging.system", "nats"),
			attribute.String("messaging.destination.name", env.Subject()),
			attribute.String("messaging.message.id", env.ID),
			attribute.String("eft.run_id", env.RunID),
			attribute.String("eft.event_type", env.Type),
		))
	defer span.End()

	md := message.Metadata{}
	injectTrace(ctx, md)
	env.TraceParent = md.Get(headerTraceParent)
	env.TraceState = md.Get(headerTraceState)
	data, err := events.Encode(env)
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
		return env, fmt.Errorf("bus: publish: %w", err)
	}
	msg := message.NewMessage(env.ID, data)
	msg.Metadata = md
	msg.Metadata.Set(nats.MsgIdHdr, env.ID)
	msg.Metadata.Set(HeaderEventType, env.Type)
	msg.Metadata.Set(HeaderRunID, env.RunID)
	if err := b.publishRetrying(ctx, env.Subject(), msg); err != nil {
		span.SetStatus(codes.Error, err.Error())
		return env, fmt.Errorf("bus: publishing %s %s to %s: %w", env.Type, env.ID, env.Subject(), err)
	}
	return env, nil
}

// PublishNew wraps payload in a new envelope for runID and publishes it.
func (b *Bus) PublishNew(ctx context.Context, runID, producer string, payload events.Payload) (events.Envelope, error) {
	env, err := events.New(runID, producer, payload)
	if err != nil {
		return events.Envelope{}, err
	}
	return b.publish(ctx, env)
}

// PublishCausedBy publishes payload as the reaction of producer to cause, with
// an id derived from the cause (see events.NewCausedBy): a handler that runs
// twice for the same cause publishes one event.
func (b *Bus) PublishCausedBy(ctx context.Context, cause events.Envelope, producer string, payload events.Payload) (events.Envelope, error) {
	env, err := events.NewCausedBy(cause, producer, payload, "")
	if err != nil {
		return events.Envelope{}, err
	}
	return b.publish(ctx, env)
}
