package main

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/eftml/eft/events"
	"github.com/eftml/eft/shared/bus"
)

// follow reads runID's events from the log of record, from the first, and
// calls fn on each until fn says stop or ctx ends. It uses an ordered
// (ephemeral, server-forgotten) consumer: a follower leaves nothing behind.
func follow(ctx context.Context, b *bus.Bus, runID string, fn func(env events.Envelope) (stop bool, err error)) error {
	cons, err := b.JetStream().OrderedConsumer(ctx, bus.EventsStream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{events.RunSubjects(runID)},
		DeliverPolicy:  jetstream.DeliverAllPolicy,
	})
	if err != nil {
		return fmt.Errorf("following run %s: %w", runID, err)
	}
	iter, err := cons.Messages()
	if err != nil {
		return fmt.Errorf("following run %s: %w", runID, err)
	}
	defer iter.Stop()
	stopIter := context.AfterFunc(ctx, iter.Stop)
	defer stopIter()
	for {
		msg, err := iter.Next()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("following run %s: %w", runID, err)
		}
		env, err := events.Decode(msg.Data())
		if err != nil {
			continue // not an event; the consumers dead-letter it
		}
		stop, err := fn(env)
		if err != nil || stop {
			return err
		}
	}
}
