package bus_test

import (
	"context"
	"net"
	"testing"
	"time"

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
	if last, err := b.LastSequence(ctx, bus.EventsStream); err != nil || last != 1 {
		t.Fatalf("EFT_EVENTS holds %d messages (%v), want 1", last, err)
	}
}
