// Package bustest starts a real embedded NATS JetStream server for tests, in
// a temporary directory on a random port, and connects a bus to it.
package bustest

import (
	"context"
	"testing"

	"github.com/eftml/eft/shared/bus"
	"github.com/nats-io/nats.go/jetstream"
)

// Server starts an embedded server whose store is a fresh temporary
// directory; it is shut down when the test ends.
func Server(t testing.TB) *bus.Embedded {
	t.Helper()
	srv, err := bus.StartEmbedded(bus.EmbeddedOptions{Dir: t.TempDir()})
	if err != nil {
		t.Fatalf("bustest: %v", err)
	}
	t.Cleanup(srv.Shutdown)
	return srv
}

// Connect connects a bus to srv, closed when the test ends.
func Connect(t testing.TB, srv *bus.Embedded, opts bus.Options) *bus.Bus {
	t.Helper()
	if opts.Name == "" {
		opts.Name = t.Name()
	}
	b, err := bus.Connect(context.Background(), srv.URL(), opts)
	if err != nil {
		t.Fatalf("bustest: %v", err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// New starts a server and connects a bus to it.
func New(t testing.TB) (*bus.Bus, *bus.Embedded) {
	t.Helper()
	srv := Server(t)
	return Connect(t, srv, bus.Options{}), srv
}

// CapStream sets the stream's max bytes (a quota, as an operator sets it)
// to what it holds now plus headroom, and returns the stream and its quota.
func CapStream(t testing.TB, b *bus.Bus, name string, headroom int64) (jetstream.Stream, int64) {
	t.Helper()
	ctx := context.Background()
	stream, err := b.JetStream().Stream(ctx, name)
	if err != nil {
		t.Fatalf("bustest: %v", err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		t.Fatalf("bustest: %v", err)
	}
	cfg := info.Config
	cfg.MaxBytes = int64(info.State.Bytes) + headroom
	if _, err := b.JetStream().UpdateStream(ctx, cfg); err != nil {
		t.Fatalf("bustest: %v", err)
	}
	return stream, cfg.MaxBytes
}
