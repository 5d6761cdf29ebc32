package bus

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wmjs "github.com/ThreeDotsLabs/watermill-nats/v2/pkg/jetstream"
	wmnats "github.com/ThreeDotsLabs/watermill-nats/v2/pkg/nats"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/eftml/eft/events"
)

// Metadata keys the bus adds to every consumed message.
const (
	metaStreamSeq = "Eft-Stream-Seq"
	metaDelivered = "Eft-Delivered"
	metaSubject   = "Eft-Subject"
)

// Delivery is one message handed to a Handler.
type Delivery struct {
	// Envelope is the decoded event (its payload still raw: use
	// events.PayloadAs or events.DecodePayload).
	Envelope events.Envelope
	// Subject the message was published on.
	Subject string
	// StreamSeq is the message's sequence in its stream: a position a
	// projection can store with its state and resume after.
	StreamSeq uint64
	// Attempt counts deliveries of this message by JetStream, 1 for the first
	// (retries inside one delivery do not count).
	Attempt uint64
}

// Handler processes one delivery. Returning nil acknowledges it; an error
// is retried with backoff (unless wrapped by Permanent) and, after the last
// attempt, the message goes to the dead-letter subject and is acknowledged.
type Handler func(ctx context.Context, d Delivery) error

// RetryPolicy is how a handler error is retried within one delivery.
type RetryPolicy struct {
	// MaxRetries after the first attempt; 0 means 3, negative means none.
	MaxRetries int
	// InitialInterval before the first retry (0: 200ms), doubling up to
	// MaxInterval (0: 5s).
	InitialInterval time.Duration
	MaxInterval     time.Duration
}

func (p RetryPolicy) withDefaults() RetryPolicy {
	if p.MaxRetries == 0 {
		p.MaxRetries = 3
	}
	if p.MaxRetries < 0 {
		p.MaxRetries = 0
	}
	if p.InitialInterval == 0 {
		p.InitialInterval = 200 * time.Millisecond
	}
	if p.MaxInterval == 0 {
		p.MaxInterval = 5 * time.Second
	}
	return p
}

// Consumer describes a durable JetStream consumer and what handles its messages.
type Consumer struct {
	// Name is the durable consumer's name (letters, digits, '-', '_'); every
	// process that consumes with the same name shares its messages, and the
	// name is the suffix of its dead-letter subject. Usually the service's name.
	Name string
	// Stream to consume; empty means EventsStream.
	Stream string
	// Subjects filter the stream; empty means all of its subjects.
	Subjects []string
	// Handler processes each message.
	Handler Handler
	// StartAfter, when set, recreates the durable consumer so that delivery
	// starts after this stream sequence: for a projection that keeps its own
	// position with its state. The func runs on every (re)start.
	StartAfter func() uint64
	// AckWait is how long JetStream waits for an ack before redelivering (0: 60s).
	AckWait time.Duration
	// MaxDeliver bounds redeliveries of one message by JetStream (0: 10).
	MaxDeliver int
	// Retry is the in-process retry policy for handler errors.
	Retry RetryPolicy
	// FastAck acknowledges without waiting for the server's confirmation:
	// for consumers whose position of record is their own (StartAfter), where
	// a lost ack only costs a duplicate delivery they already skip.
	FastAck bool
	// OnDeadLetter, when set, is called after a message was sent to the
	// dead-letter subject: a stage publishes RunFailed here. data is the raw
	// message; d.Envelope is zero when data did not decode.
	OnDeadLetter func(ctx context.Context, d Delivery, data []byte, err error)
}

// permanentError marks an error that retrying cannot fix.
type permanentError struct{ err error }

func (p permanentError) Error() string { return p.err.Error() }
func (p permanentError) Unwrap() error { return p.err }

// Permanent wraps err so that the handler is not retried: the message goes to
// the dead-letter subject at once.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanentError{err}
}

// IsPermanent reports whether err was wrapped by Permanent.
func IsPermanent(err error) bool {
	var p permanentError
	return errors.As(err, &p)
}

// Subscription is a running consumer.
type Subscription struct {
	router *message.Router
	sub    *wmjs.Subscriber
	nc     *nats.Conn
	done   chan struct{}
	err    error
	once   sync.Once
}

// Wait blocks until the subscription stopped (its context ended or Close)
// and returns why, nil for a normal stop.
func (s *Subscription) Wait() error {
	<-s.done
	return s.err
}

// Close stops the subscription, letting the message in hand finish.
func (s *Subscription) Close() error {
	s.stop()
	<-s.done
	return s.err
}

// stop shuts down in the one order that is safe with watermill-nats: its
// subscriber closes its output channel as soon as it is told to close, while
// a NATS callback may still be sending on it (a "send on closed channel"
// panic). So the connection is drained first — no more callbacks, the ones
// in flight finish through the still-running router and ack — and only then
// is the router closed.
func (s *Subscription) stop() {
	s.once.Do(func() {
		if err := s.nc.Drain(); err == nil {
			deadline := time.Now().Add(30 * time.Second)
			for !s.nc.IsClosed() && time.Now().Before(deadline) {
				time.Sleep(5 * time.Millisecond)
			}
		}
		_ = s.router.Close()
	})
}

// Consume runs c until ctx ends; it returns nil on a normal stop.
func (b *Bus) Consume(ctx context.Context, c Consumer) error {
	sub, err := b.Subscribe(ctx, c)
	if err != nil {
		return err
	}
	return sub.Wait()
}

// Subscribe provisions c's durable consumer, starts handling its messages in
// the background and returns once it is running.
func (b *Bus) Subscribe(ctx context.Context, c Consumer) (*Subscription, error) {
	if !events.ValidRunID(c.Name) {
		return nil, fmt.Errorf("bus: consumer name %q must be letters, digits, '-' or '_'", c.Name)
	}
	if c.Handler == nil {
		return nil, fmt.Errorf("bus: consumer %s has no handler", c.Name)
	}
	if c.Stream == "" {
		c.Stream = EventsStream
	}
	if c.AckWait == 0 {
		c.AckWait = 60 * time.Second
	}
	if c.MaxDeliver == 0 {
		c.MaxDeliver = 10
	}
	if _, err := b.provisionConsumer(ctx, c); err != nil {
		return nil, err
	}

	// Each subscriber has its own connection: watermill's subscriber drains
	// its connection on Close.
	nc, err := dial(b.url, b.opts.Name+"/"+c.Name, b.opts.Credentials)
	if err != nil {
		return nil, err
	}
	stream, name := c.Stream, c.Name
	sub, err := wmjs.NewSubscriber(wmjs.SubscriberConfig{
		Conn:           nc,
		Logger:         b.logger,
		AckWaitTimeout: c.AckWait,
		AckAsync:       c.FastAck,
		Unmarshaler:    unmarshaler{},
		ResourceInitializer: func(ctx context.Context, js jetstream.JetStream, _ string) (jetstream.Consumer, func(context.Context, watermill.LoggerAdapter), error) {
			cons, err := js.Consumer(ctx, stream, name)
			return cons, nil, err
		},
	})
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("bus: subscriber %s: %w", c.Name, err)
	}
	router, err := message.NewRouter(message.RouterConfig{CloseTimeout: 30 * time.Second}, b.logger)
	if err != nil {
		_ = sub.Close()
		return nil, err
	}
	retry := c.Retry.withDefaults()
	// Outermost first: dead-letter after tracing saw every attempt, retries
	// around the handler, panics turned into errors the retry sees.
	router.AddMiddleware(
		b.deadLetterMiddleware(c),
		b.tracingMiddleware(c.Name),
		middleware.Retry{
			MaxRetries:          retry.MaxRetries,
			InitialInterval:     retry.InitialInterval,
			MaxInterval:         retry.MaxInterval,
			Multiplier:          2,
			RandomizationFactor: 0.2,
			ResetContextOnRetry: true,
			ShouldRetry:         func(p middleware.RetryParams) bool { return !IsPermanent(p.Err) },
			Logger:              b.logger,
		}.Middleware,
		middleware.Recoverer,
	)
	router.AddConsumerHandler(c.Name, c.Name, drainedSubscriber{sub}, func(msg *message.Message) error {
		d, err := delivery(msg)
		if err != nil {
			return Permanent(err)
		}
		return c.Handler(msg.Context(), d)
	})

	s := &Subscription{router: router, sub: sub, nc: nc, done: make(chan struct{})}
	// The router runs on its own context; ctx ending stops it through stop().
	go func() {
		defer close(s.done)
		s.err = router.Run(context.WithoutCancel(ctx))
		_ = sub.Close()
	}()
	go func() {
		select {
		case <-ctx.Done():
			s.stop()
		case <-s.done:
		}
	}()
	select {
	case <-router.Running():
		return s, nil
	case <-s.done:
		if s.err == nil {
			s.err = ctx.Err()
		}
		return nil, fmt.Errorf("bus: consumer %s stopped while starting: %w", c.Name, s.err)
	case <-ctx.Done():
		<-s.done
		return nil, fmt.Errorf("bus: consumer %s stopped while starting: %w", c.Name, ctx.Err())
	}
}

func (b *Bus) provisionConsumer(ctx context.Context, c Consumer) (jetstream.Consumer, error) {
	cfg := jetstream.ConsumerConfig{
		Durable:        c.Name,
		Description:    "eft consumer " + c.Name,
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        c.AckWait,
		MaxDeliver:     c.MaxDeliver,
		DeliverPolicy:  jetstream.DeliverAllPolicy,
		FilterSubjects: c.Subjects,
	}
	stream, err := b.js.Stream(ctx, c.Stream)
	if err != nil {
		return nil, fmt.Errorf("bus: stream %s: %w", c.Stream, err)
	}
	if c.StartAfter != nil {
		// The consumer's own position is the one of record: start the durable
		// afresh right after it.
		if err := stream.DeleteConsumer(ctx, c.Name); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			return nil, fmt.Errorf("bus: resetting consumer %s: %w", c.Name, err)
		}
		cfg.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
		cfg.OptStartSeq = c.StartAfter() + 1
	}
	cons, err := stream.CreateOrUpdateConsumer(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("bus: provisioning consumer %s on %s: %w", c.Name, c.Stream, err)
	}
	return cons, nil
}

// drainedSubscriber hides the error watermill-nats returns from Close when
// the connection was already drained by Subscription.stop (as it always is).
type drainedSubscriber struct{ *wmjs.Subscriber }

func (d drainedSubscriber) Close() error {
	if err := d.Subscriber.Close(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		return err
	}
	return nil
}

// unmarshaler turns a JetStream message into a watermill message whose
// metadata also carries the stream sequence, delivery count and subject. It
// never fails: a message that is not an envelope reaches the handler wrapper,
// which sends it to the dead-letter subject.
type unmarshaler struct{}

func (unmarshaler) Unmarshal(msg jetstream.Msg) (*message.Message, error) {
	md := message.Metadata{}
	for k, v := range msg.Headers() {
		if len(v) > 0 {
			md.Set(k, v[0])
		}
	}
	id := md.Get(wmnats.WatermillUUIDHdr)
	if id == "" {
		id = md.Get(nats.MsgIdHdr)
	}
	if id == "" {
		id = watermill.NewULID()
	}
	delete(md, wmnats.WatermillUUIDHdr)
	md.Set(metaSubject, msg.Subject())
	if meta, err := msg.Metadata(); err == nil {
		md.Set(metaStreamSeq, strconv.FormatUint(meta.Sequence.Stream, 10))
		md.Set(metaDelivered, strconv.FormatUint(meta.NumDelivered, 10))
	}
	m := message.NewMessage(id, msg.Data())
	m.Metadata = md
	return m, nil
}
