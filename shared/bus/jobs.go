package bus

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/eftml/eft/events"
)

// Job is one work-queue message in the hands of a worker.
type Job struct {
	Envelope events.Envelope
	// Attempt counts deliveries of this job, 1 for the first: above 1, a
	// worker died or gave it back, and the new one should resume.
	Attempt uint64
	msg     jetstream.Msg
}

// InProgress tells JetStream the job is still being worked on, resetting its
// ack timer. ServeJobs already does this every AckWait/3; call it as well
// around long steps if they may block the process.
func (j *Job) InProgress() error { return j.msg.InProgress() }

// JobHandler works one job. nil acks it (done, removed from the queue); a
// Permanent error terminates it (never redelivered) and dead-letters it; any
// other error gives it back to the queue for another attempt after a delay.
type JobHandler func(ctx context.Context, job *Job) error

// JobConsumer describes a work-queue consumer.
type JobConsumer struct {
	// Name of the durable consumer every worker of the kind shares ("trainer").
	Name string
	// Subjects to take jobs from; empty means events.TrainJobs.
	Subjects []string
	Handler  JobHandler
	// AckWait: a job not heartbeated for this long goes to another worker (0: 60s).
	AckWait time.Duration
	// MaxDeliver bounds attempts at one job (0: 5).
	MaxDeliver int
	// RetryDelay before a failed job is offered again (0: 5s).
	RetryDelay time.Duration
}

// ServeJobs takes jobs one at a time (PullMaxMessages(1)) and runs the
// handler on each while heartbeating, until ctx ends. A job in hand when ctx
// ends is neither acked nor nacked: it returns to the queue after AckWait,
// as it would if the process died.
func (b *Bus) ServeJobs(ctx context.Context, c JobConsumer) error {
	if !events.ValidRunID(c.Name) {
		return fmt.Errorf("bus: job consumer name %q must be letters, digits, '-' or '_'", c.Name)
	}
	if len(c.Subjects) == 0 {
		c.Subjects = []string{events.TrainJobs}
	}
	if c.AckWait == 0 {
		c.AckWait = 60 * time.Second
	}
	if c.MaxDeliver == 0 {
		c.MaxDeliver = 5
	}
	if c.RetryDelay == 0 {
		c.RetryDelay = 5 * time.Second
	}
	cons, err := b.js.CreateOrUpdateConsumer(ctx, JobsStream, jetstream.ConsumerConfig{
		Durable:        c.Name,
		Description:    "eft work-queue consumer " + c.Name,
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        c.AckWait,
		MaxDeliver:     c.MaxDeliver,
		FilterSubjects: c.Subjects,
		MaxAckPending:  -1,
	})
	if err != nil {
		return fmt.Errorf("bus: provisioning job consumer %s: %w", c.Name, err)
	}
	iter, err := cons.Messages(jetstream.PullMaxMessages(1))
	if err != nil {
		return fmt.Errorf("bus: job consumer %s: %w", c.Name, err)
	}
	stop := context.AfterFunc(ctx, iter.Stop)
	defer stop()
	defer iter.Stop()
	for {
		msg, err := iter.Next()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return nil
			}
			return fmt.Errorf("bus: job consumer %s: %w", c.Name, err)
		}
		b.runJob(ctx, c, msg)
	}
}

func (b *Bus) runJob(ctx context.Context, c JobConsumer, msg jetstream.Msg) {
	md := message.Metadata{}
	for k, v := range msg.Headers() {
		if len(v) > 0 {
			md.Set(k, v[0])
		}
	}
	job := &Job{msg: msg, Attempt: 1}
	if meta, err := msg.Metadata(); err == nil {
		job.Attempt = meta.NumDelivered
	}
	ctx, span := b.tracer.Start(extractTrace(ctx, md), "process "+md.Get(HeaderEventType),
		trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(
			attribute.String("messaging.system", "nats"),
			attribute.String("messaging.destination.name", msg.Subject()),
			attribute.String("messaging.consumer.group.name", c.Name),
			attribute.String("eft.run_id", md.Get(HeaderRunID)),
			attribute.Int64("eft.attempt", int64(job.Attempt)),
		))
	defer span.End()

	env, err := events.Decode(msg.Data())
	if err == nil {
		job.Envelope = env
		err = b.heartbeating(ctx, c, job)
	} else {
		err = Permanent(err)
	}
	switch {
	case err == nil:
		if aerr := msg.DoubleAck(ctx); aerr != nil {
			b.slog.Error("bus: acking job", "consumer", c.Name, "subject", msg.Subject(), "error", aerr)
		}
	case ctx.Err() != nil:
		// Shutting down: leave the job for the next worker.
	case IsPermanent(err):
		span.SetStatus(codes.Error, err.Error())
		b.slog.Error("bus: job failed for good", "consumer", c.Name, "subject", msg.Subject(), "error", err)
		dead := &nats.Msg{Subject: events.DeadLetterSubject(c.Name), Data: msg.Data(), Header: nats.Header{}}
		for k, v := range msg.Headers() {
			if k != nats.MsgIdHdr {
				dead.Header[k] = v
			}
		}
		dead.Header.Set(HeaderDeadLetterError, err.Error())
		dead.Header.Set(HeaderDeadLetterConsumer, c.Name)
		dead.Header.Set(HeaderDeadLetterSubject, msg.Subject())
		if _, perr := b.js.PublishMsg(ctx, dead); perr != nil {
			b.slog.Error("bus: dead-lettering job", "error", perr)
		}
		_ = msg.Term()
	default:
		span.SetStatus(codes.Error, err.Error())
		b.slog.Warn("bus: job failed; giving it back", "consumer", c.Name, "subject", msg.Subject(), "attempt", job.Attempt, "error", err)
		_ = msg.NakWithDelay(c.RetryDelay)
	}
}

// heartbeating runs the handler while telling JetStream every AckWait/3 that
// the job is in progress.
func (b *Bus) heartbeating(ctx context.Context, c JobConsumer, job *Job) error {
	done := make(chan struct{})
	defer close(done)
	go func() {
		tick := time.NewTicker(c.AckWait / 3)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-tick.C:
				if err := job.InProgress(); err != nil {
					b.slog.Warn("bus: job heartbeat", "subject", job.msg.Subject(), "error", err)
				}
			}
		}
	}()
	return callJobHandler(ctx, c.Handler, job)
}

// callJobHandler turns a panic into a permanent error: a job that crashes its
// worker would crash every worker it is given to.
func callJobHandler(ctx context.Context, h JobHandler, job *Job) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = Permanent(fmt.Errorf("job handler panicked: %v", r))
		}
	}()
	return h(ctx, job)
}
