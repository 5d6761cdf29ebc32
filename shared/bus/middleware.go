package bus

import (
	"context"
	"fmt"
	"strconv"

	"github.com/ThreeDotsLabs/watermill/message"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/eftml/eft/events"
)

// Headers of a dead-lettered message, besides the original ones.
const (
	HeaderDeadLetterError    = "Eft-Dlq-Error"
	HeaderDeadLetterConsumer = "Eft-Dlq-Consumer"
	HeaderDeadLetterSubject  = "Eft-Dlq-Subject"
)

// delivery decodes a consumed message.
func delivery(msg *message.Message) (Delivery, error) {
	d := Delivery{Subject: msg.Metadata.Get(metaSubject)}
	d.StreamSeq, _ = strconv.ParseUint(msg.Metadata.Get(metaStreamSeq), 10, 64)
	d.Attempt, _ = strconv.ParseUint(msg.Metadata.Get(metaDelivered), 10, 64)
	env, err := events.Decode(msg.Payload)
	if err != nil {
		return d, fmt.Errorf("message %s on %s (stream seq %d): %w", msg.UUID, d.Subject, d.StreamSeq, err)
	}
	d.Envelope = env
	return d, nil
}

// tracingMiddleware continues the trace found in the message headers with a
// consumer span around the handler, so everything the handler publishes
// belongs to the same trace.
func (b *Bus) tracingMiddleware(consumer string) message.HandlerMiddleware {
	return func(h message.HandlerFunc) message.HandlerFunc {
		return func(msg *message.Message) ([]*message.Message, error) {
			ctx := extractTrace(msg.Context(), msg.Metadata)
			typ := msg.Metadata.Get(HeaderEventType)
			ctx, span := b.tracer.Start(ctx, "process "+typ,
				trace.WithSpanKind(trace.SpanKindConsumer),
				trace.WithAttributes(
					attribute.String("messaging.system", "nats"),
					attribute.String("messaging.destination.name", msg.Metadata.Get(metaSubject)),
					attribute.String("messaging.consumer.group.name", consumer),
					attribute.String("messaging.message.id", msg.UUID),
					attribute.String("eft.run_id", msg.Metadata.Get(HeaderRunID)),
					attribute.String("eft.event_type", typ),
				))
			defer span.End()
			msg.SetContext(ctx)
			out, err := h(msg)
			if err != nil {
				span.RecordError(err)
				span.SetStatus(codes.Error, err.Error())
			}
			return out, err
		}
	}
}

// deadLetterMiddleware turns a final handler error into a copy of the
// message on eft.dlq.<consumer> (with the error in a header), a call to
// OnDeadLetter, and an ack. Only when the dead-letter publish itself fails
// is the message nacked, to be delivered again.
func (b *Bus) deadLetterMiddleware(c Consumer) message.HandlerMiddleware {
	return func(h message.HandlerFunc) message.HandlerFunc {
		return func(msg *message.Message) ([]*message.Message, error) {
			out, err := h(msg)
			if err == nil {
				return out, nil
			}
			if ctxErr := msg.Context().Err(); ctxErr != nil && !IsPermanent(err) {
				// Shutting down mid-retry: let JetStream deliver it again later.
				return nil, err
			}
			b.slog.Error("bus: handler failed for good; dead-lettering",
				"consumer", c.Name, "subject", msg.Metadata.Get(metaSubject), "id", msg.UUID, "error", err)
			dead := message.NewMessage(msg.UUID, msg.Payload)
			for k, v := range msg.Metadata {
				switch k {
				case metaStreamSeq, metaDelivered, metaSubject, "Nats-Msg-Id":
				default:
					dead.Metadata.Set(k, v)
				}
			}
			dead.Metadata.Set(HeaderDeadLetterError, err.Error())
			dead.Metadata.Set(HeaderDeadLetterConsumer, c.Name)
			dead.Metadata.Set(HeaderDeadLetterSubject, msg.Metadata.Get(metaSubject))
			if perr := b.pub.wm.Publish(events.DeadLetterSubject(c.Name), dead); perr != nil {
				return nil, fmt.Errorf("bus: dead-lettering after %v: %w", err, perr)
			}
			if c.OnDeadLetter != nil {
				d, _ := delivery(msg)
				c.OnDeadLetter(context.WithoutCancel(msg.Context()), d, msg.Payload, err)
			}
			return nil, nil
		}
	}
}
