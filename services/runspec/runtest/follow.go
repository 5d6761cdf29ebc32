package runtest

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/eftml/eft/events"
	"github.com/eftml/eft/shared/bus"
)

// Follow reads runID's events from the first until until returns true,
// failing the test after timeout; it returns every event read.
func Follow(t testing.TB, b *bus.Bus, runID string, timeout time.Duration, until func(events.Envelope) bool) []events.Envelope {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cons, err := b.JetStream().OrderedConsumer(ctx, bus.EventsStream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{events.RunSubjects(runID)},
	})
	if err != nil {
		t.Fatal(err)
	}
	iter, err := cons.Messages()
	if err != nil {
		t.Fatal(err)
	}
	defer iter.Stop()
	stop := context.AfterFunc(ctx, iter.Stop)
	defer stop()
	var out []events.Envelope
	for {
		msg, err := iter.Next()
		if err != nil {
			t.Fatalf("run %s: %v after %d events (%s)", runID, err, len(out), Types(out))
		}
		env, err := events.Decode(msg.Data())
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, env)
		if until(env) {
			return out
		}
	}
}

// Ends is an until for Follow: the run's training completed, failed or was cancelled.
func Ends(env events.Envelope) bool {
	return env.Type == events.TypeTrainingCompleted || events.Terminal(env.Type)
}

// Types lists the events' types, for messages.
func Types(envs []events.Envelope) []string {
	out := make([]string, len(envs))
	for i, e := range envs {
		out[i] = e.Type
	}
	return out
}

// Of decodes the events of payload type T.
func Of[T events.Payload](t testing.TB, envs []events.Envelope) []T {
	t.Helper()
	var zero T
	var out []T
	for _, e := range envs {
		if e.Type != zero.EventType() {
			continue
		}
		p, err := events.PayloadAs[T](e)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, p)
	}
	return out
}

// All returns every event of runID stored so far.
func All(t testing.TB, b *bus.Bus, runID string) []events.Envelope {
	t.Helper()
	ctx := context.Background()
	cons, err := b.JetStream().OrderedConsumer(ctx, bus.EventsStream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{events.RunSubjects(runID)},
	})
	if err != nil {
		t.Fatal(err)
	}
	var out []events.Envelope
	for {
		batch, err := cons.Fetch(256, jetstream.FetchMaxWait(300*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for msg := range batch.Messages() {
			env, err := events.Decode(msg.Data())
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, env)
			n++
		}
		if n == 0 {
			return out
		}
	}
}
