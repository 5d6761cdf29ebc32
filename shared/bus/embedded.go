package bus

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// EmbeddedOptions configure an in-process NATS server. The zero value (apart
// from Dir) is a JetStream server on a random loopback port.
type EmbeddedOptions struct {
	// Dir holds the JetStream file store (a "jetstream" folder is made in it).
	Dir string
	// Host and Port to listen on; "" means 127.0.0.1 and 0 a random free port.
	Host string
	Port int
	// Logs, when true, lets the server log to stderr.
	Logs bool
}

// Embedded is a NATS JetStream server running in this process.
type Embedded struct {
	srv *server.Server
}

// StartEmbedded starts a JetStream-enabled NATS server whose state lives under
// opts.Dir, and waits until it accepts connections.
func StartEmbedded(opts EmbeddedOptions) (*Embedded, error) {
	if opts.Dir == "" {
		return nil, fmt.Errorf("bus: embedded server needs a directory for its store")
	}
	if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("bus: embedded server store: %w", err)
	}
	host := opts.Host
	if host == "" {
		host = "127.0.0.1"
	}
	port := opts.Port
	if port == 0 {
		port = server.RANDOM_PORT
	}
	sopts := &server.Options{
		ServerName: "eft-embedded",
		Host:       host,
		Port:       port,
		JetStream:  true,
		StoreDir:   filepath.Join(opts.Dir, "jetstream"),
		NoSigs:     true,
		NoLog:      !opts.Logs,
		// Events are small, but job and artifact chunks are not; 8 MiB leaves
		// room for the object store's chunking without raising NATS's ceiling.
		MaxPayload: 8 << 20,
	}
	srv, err := server.NewServer(sopts)
	if err != nil {
		return nil, fmt.Errorf("bus: embedded server: %w", err)
	}
	if opts.Logs {
		srv.ConfigureLogger()
	}
	srv.Start()
	if !srv.ReadyForConnections(30 * time.Second) {
		srv.Shutdown()
		return nil, fmt.Errorf("bus: embedded server in %s did not become ready in 30s (is another eft using this home?)", opts.Dir)
	}
	return &Embedded{srv: srv}, nil
}

// URL is the client URL to connect to, like nats://127.0.0.1:41234.
func (e *Embedded) URL() string { return e.srv.ClientURL() }

// Shutdown stops the server and waits until it has; the file store is kept.
func (e *Embedded) Shutdown() {
	e.srv.Shutdown()
	e.srv.WaitForShutdown()
}
