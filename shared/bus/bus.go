package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace"

	"github.com/eftml/eft/events"
)

// Stream names.
const (
	// EventsStream holds every run event (subjects eft.run.>), with limits
	// retention: it is the log of record the tracker replays.
	EventsStream = "EFT_EVENTS"
	// JobsStream is the work queue of train jobs (eft.jobs.>).
	JobsStream = "EFT_JOBS"
	// DeadLetterStream keeps messages that failed every attempt (eft.dlq.>).
	DeadLetterStream = "EFT_DLQ"
)

// Options configure a connection. The zero value is usable.
type Options struct {
	// Name identifies this process on the server and in logs ("eft-train", "tracker").
	Name string
	// Logger receives the bus's and watermill's logs; nil discards them.
	Logger *slog.Logger
	// TracerProvider makes the publish and process spans; nil means
	// otel.GetTracerProvider() at connect time.
	TracerProvider trace.TracerProvider
	// DuplicateWindow is how long the streams remember message ids for
	// Nats-Msg-Id de-duplication; zero means 10 minutes.
	DuplicateWindow time.Duration
	// Replicas of each stream on a clustered server; zero means 1.
	Replicas int
	// MemoryStorage keeps streams in memory instead of files (benchmarks).
	MemoryStorage bool
	// PublishRetryFor is how long Publish retries through a server restart
	// or a network cut (0: DefaultPublishRetryFor; negative: no retry).
	PublishRetryFor time.Duration
	// Credentials authenticate this process to the server and configure TLS;
	// every connection the bus opens uses them.
	Credentials Credentials
}

// Bus is a connection to NATS JetStream with eft's streams provisioned.
// It is safe for concurrent use.
type Bus struct {
	url    string
	opts   Options
	nc     *nats.Conn
	js     jetstream.JetStream
	pub    *publisher
	logger watermill.LoggerAdapter
	slog   *slog.Logger
	tracer trace.Tracer
}

// Connect dials url, makes sure eft's streams exist with the expected
// settings, and returns the bus.
func Connect(ctx context.Context, url string, opts Options) (*Bus, error) {
	if url == "" {
		return nil, fmt.Errorf("bus: no NATS URL")
	}
	if opts.Name == "" {
		opts.Name = "eft"
	}
	if opts.DuplicateWindow == 0 {
		opts.DuplicateWindow = 10 * time.Minute
	}
	if opts.Replicas == 0 {
		opts.Replicas = 1
	}
	if opts.PublishRetryFor == 0 {
		opts.PublishRetryFor = DefaultPublishRetryFor
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.TracerProvider == nil {
		opts.TracerProvider = otel.GetTracerProvider()
	}
	nc, err := dial(url, opts.Name, opts.Credentials)
	if err != nil {
		return nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("bus: jetstream on %s: %w", url, err)
	}
	b := &Bus{
		url:    url,
		opts:   opts,
		nc:     nc,
		js:     js,
		logger: watermill.NewSlogLogger(opts.Logger),
		slog:   opts.Logger,
		tracer: opts.TracerProvider.Tracer("github.com/eftml/eft/shared/bus"),
	}
	if err := b.provisionStreams(ctx); err != nil {
		nc.Close()
		return nil, err
	}
	b.pub, err = newPublisher(b)
	if err != nil {
		nc.Close()
		return nil, err
	}
	return b, nil
}

func dial(url, name string, creds Credentials) (*nats.Conn, error) {
	auth, err := creds.natsOptions()
	if err != nil {
		return nil, err
	}
	nc, err := nats.Connect(url, append([]nats.Option{
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
	}, auth...)...)
	if err != nil {
		return nil, fmt.Errorf("bus: connecting to NATS at %s: %w", url, err)
	}
	return nc, nil
}

// StreamConfigs are the streams eft needs, as Connect provisions them.
func (b *Bus) StreamConfigs() []jetstream.StreamConfig {
	storage := jetstream.FileStorage
	if b.opts.MemoryStorage {
		storage = jetstream.MemoryStorage
	}
	return []jetstream.StreamConfig{
		{
			Name:        EventsStream,
			Description: "eft run events: the log of record",
			Subjects:    []string{events.AllRunEvents},
			Retention:   jetstream.LimitsPolicy,
			Storage:     storage,
			Replicas:    b.opts.Replicas,
			Duplicates:  b.opts.DuplicateWindow,
			MaxMsgSize:  events.MaxEnvelopeBytes + 64<<10, // envelope plus headers
		},
		{
			Name:        JobsStream,
			Description: "eft train jobs: a work queue, one trainer per job",
			Subjects:    []string{events.AllJobs},
			Retention:   jetstream.WorkQueuePolicy,
			Storage:     storage,
			Replicas:    b.opts.Replicas,
			Duplicates:  b.opts.DuplicateWindow,
		},
		{
			Name:        DeadLetterStream,
			Description: "eft messages that failed every attempt",
			Subjects:    []string{events.DeadLetters},
			Retention:   jetstream.LimitsPolicy,
			Storage:     storage,
			Replicas:    b.opts.Replicas,
			MaxAge:      30 * 24 * time.Hour,
		},
	}
}

func (b *Bus) provisionStreams(ctx context.Context) error {
	for _, cfg := range b.StreamConfigs() {
		if _, err := b.js.CreateOrUpdateStream(ctx, cfg); err != nil {
			return fmt.Errorf("bus: provisioning stream %s: %w", cfg.Name, err)
		}
	}
	return nil
}

// URL is the server this bus is connected to.
func (b *Bus) URL() string { return b.url }

// Conn is the underlying connection, for packages that need NATS directly
// (artifacts). Do not close it; Close the bus.
func (b *Bus) Conn() *nats.Conn { return b.nc }

// JetStream is the JetStream context of the connection.
func (b *Bus) JetStream() jetstream.JetStream { return b.js }

// Logger is the bus's logger, for services that want to log alike.
func (b *Bus) Logger() *slog.Logger { return b.slog }

// Close flushes what was published and closes the connection.
func (b *Bus) Close() error {
	err := b.nc.Drain()
	if errors.Is(err, nats.ErrConnectionClosed) {
		err = nil
	}
	return err
}

// LastSequence is the sequence of the last message in stream (0 when empty).
func (b *Bus) LastSequence(ctx context.Context, stream string) (uint64, error) {
	s, err := b.js.Stream(ctx, stream)
	if err != nil {
		return 0, fmt.Errorf("bus: stream %s: %w", stream, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("bus: stream %s info: %w", stream, err)
	}
	return info.State.LastSeq, nil
}
