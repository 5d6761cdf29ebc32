package bus_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/eftml/eft/events"
	"github.com/eftml/eft/shared/bus"
)

// A publish made while the server is away longer than an ack timeout (5s)
// is retried and lands once the server is back on its file store, exactly
// once; with retries off it fails.
func TestPublishRetriesThroughAServerRestart(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	dir := t.TempDir()
	opts := bus.EmbeddedOptions{Dir: dir, Port: port}
	srv := start(t, opts)
	ctx := context.Background()
	b, err := bus.Connect(ctx, srv.URL(), bus.Options{Name: "retry"})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	noRetry, err := bus.Connect(ctx, srv.URL(), bus.Options{Name: "no-retry", PublishRetryFor: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer noRetry.Close()

	srv.Shutdown()
	env := failed(t, events.NewRunID(), "published while the server was away")
	done := make(chan error, 1)
	go func() { done <- b.Publish(ctx, env) }()
	noRetryErr := noRetry.Publish(ctx, failed(t, events.NewRunID(), "x"))
	if noRetryErr == nil {
		t.Fatal("a publish without retries succeeded with no server")
	}
	select {
	case err := <-done:
		t.Fatalf("the retrying publish returned while the server was away: %v", err)
	default:
	}
	start(t, opts)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the publish did not land within 30s of the restart")
	}
	// Count the retried event's subject only: the no-retry client's publish
	// failed for its caller, but nats.go keeps it in its reconnect buffer and
	// may still deliver it after the restart (at-least-once), which is not
	// what this test is about.
	if n := storedOn(t, srv.URL(), events.Subject(env.RunID, env.Type)); n != 1 {
		t.Fatalf("EFT_EVENTS holds %d copies of the retried event, want 1", n)
	}
}

// storedOn counts the messages EFT_EVENTS holds on subject.
func storedOn(t *testing.T, url, subject string) uint64 {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	s, err := js.Stream(ctx, bus.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(subject))
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Subjects[subject]
}
