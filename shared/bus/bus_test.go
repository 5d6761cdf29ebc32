package bus_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/eftml/eft/events"
	"github.com/eftml/eft/shared/bus"
	"github.com/eftml/eft/shared/bus/bustest"
)

var fastRetry = bus.RetryPolicy{MaxRetries: 2, InitialInterval: time.Millisecond, MaxInterval: 5 * time.Millisecond}

func failed(t *testing.T, runID, msg string) events.Envelope {
	t.Helper()
	env, err := events.New(runID, "test", events.RunFailed{Stage: events.StageIngest, Error: msg})
	if err != nil {
		t.Fatal(err)
	}
	return env
}

// collect subscribes a consumer that records every delivery.
type collector struct {
	mu   sync.Mutex
	got  []bus.Delivery
	seen chan bus.Delivery
}

func newCollector() *collector { return &collector{seen: make(chan bus.Delivery, 100)} }

func (c *collector) handle(ctx context.Context, d bus.Delivery) error {
	c.mu.Lock()
	c.got = append(c.got, d)
	c.mu.Unlock()
	c.seen <- d
	return nil
}

func (c *collector) next(t *testing.T) bus.Delivery {
	t.Helper()
	select {
	case d := <-c.seen:
		return d
	case <-time.After(10 * time.Second):
		t.Fatal("no delivery within 10s")
	}
	return bus.Delivery{}
}

func (c *collector) none(t *testing.T, within time.Duration) {
	t.Helper()
	select {
	case d := <-c.seen:
		t.Fatalf("unexpected delivery %s %s", d.Envelope.Type, d.Envelope.ID)
	case <-time.After(within):
	}
}

func TestPublishConsumeRoundTrip(t *testing.T) {
	b, _ := bustest.New(t)
	ctx := t.Context()
	col := newCollector()
	sub, err := b.Subscribe(ctx, bus.Consumer{Name: "roundtrip", Subjects: []string{events.AllRunEvents}, Handler: col.handle})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	env := failed(t, "run-a", "boom")
	if err := b.Publish(ctx, env); err != nil {
		t.Fatal(err)
	}
	d := col.next(t)
	if d.Envelope.ID != env.ID || d.Subject != "eft.run.run-a.run.failed.v1" || d.StreamSeq != 1 || d.Attempt != 1 {
		t.Fatalf("delivery %+v", d)
	}
	p, err := events.PayloadAs[events.RunFailed](d.Envelope)
	if err != nil || p.Error != "boom" {
		t.Fatalf("payload %+v %v", p, err)
	}
}

func TestSameEventIDIsStoredOnce(t *testing.T) {
	b, _ := bustest.New(t)
	ctx := t.Context()
	env := failed(t, "run-d", "once")
	for range 3 {
		if err := b.Publish(ctx, env); err != nil {
			t.Fatal(err)
		}
	}
	other := failed(t, "run-d", "twice")
	if err := b.Publish(ctx, other); err != nil {
		t.Fatal(err)
	}
	last, err := b.LastSequence(ctx, bus.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	if last != 2 {
		t.Fatalf("stream holds %d messages, want 2 (Nats-Msg-Id de-duplication)", last)
	}
}

func TestRetriesThenSucceeds(t *testing.T) {
	b, _ := bustest.New(t)
	ctx := t.Context()
	var calls atomic.Int32
	done := make(chan struct{})
	sub, err := b.Subscribe(ctx, bus.Consumer{Name: "flaky", Retry: fastRetry, Handler: func(ctx context.Context, d bus.Delivery) error {
		if calls.Add(1) < 3 {
			return errors.New("transient")
		}
		close(done)
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	_ = b.Publish(ctx, failed(t, "r", "x"))
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatalf("handler called %d times, never succeeded", calls.Load())
	}
	if n := deadLetters(t, b, "flaky"); n != 0 {
		t.Fatalf("%d dead letters after a success", n)
	}
}

func deadLetters(t *testing.T, b *bus.Bus, consumer string) int {
	t.Helper()
	s, err := b.JetStream().Stream(t.Context(), bus.DeadLetterStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(t.Context(), jetstream.WithSubjectFilter(events.DeadLetterSubject(consumer)))
	if err != nil {
		t.Fatal(err)
	}
	return int(info.State.Subjects[events.DeadLetterSubject(consumer)])
}

func readDeadLetter(t *testing.T, b *bus.Bus, consumer string) *jetstream.RawStreamMsg {
	t.Helper()
	s, _ := b.JetStream().Stream(t.Context(), bus.DeadLetterStream)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		m, err := s.GetLastMsgForSubject(t.Context(), events.DeadLetterSubject(consumer))
		if err == nil {
			return m
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no dead letter for %s", consumer)
	return nil
}

func TestFailuresGoToTheDeadLetterSubject(t *testing.T) {
	b, _ := bustest.New(t)
	ctx := t.Context()
	var calls atomic.Int32
	var dead atomic.Value
	sub, err := b.Subscribe(ctx, bus.Consumer{
		Name: "doomed", Retry: fastRetry,
		Handler: func(ctx context.Context, d bus.Delivery) error {
			calls.Add(1)
			return errors.New("disk on fire")
		},
		OnDeadLetter: func(ctx context.Context, d bus.Delivery, data []byte, err error) {
			dead.Store(d.Envelope.ID + ": " + err.Error())
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	env := failed(t, "r", "x")
	_ = b.Publish(ctx, env)
	m := readDeadLetter(t, b, "doomed")
	if got := m.Header.Get(bus.HeaderDeadLetterError); got != "disk on fire" {
		t.Fatalf("dead letter error header %q", got)
	}
	if got := m.Header.Get(bus.HeaderDeadLetterSubject); got != env.Subject() {
		t.Fatalf("dead letter subject header %q", got)
	}
	if back, err := events.Decode(m.Data); err != nil || back.ID != env.ID {
		t.Fatalf("dead letter body: %v", err)
	}
	if calls.Load() != 3 {
		t.Fatalf("handler called %d times, want 1 + 2 retries", calls.Load())
	}
	waitFor(t, func() bool { return dead.Load() != nil })
	if got := dead.Load().(string); got != env.ID+": disk on fire" {
		t.Fatalf("OnDeadLetter got %q", got)
	}
}

func TestPermanentErrorsAndPanicsAreNotRetried(t *testing.T) {
	b, _ := bustest.New(t)
	ctx := t.Context()
	var calls atomic.Int32
	sub, err := b.Subscribe(ctx, bus.Consumer{Name: "picky", Retry: bus.RetryPolicy{MaxRetries: 5, InitialInterval: time.Millisecond},
		Handler: func(ctx context.Context, d bus.Delivery) error {
			calls.Add(1)
			p, _ := events.PayloadAs[events.RunFailed](d.Envelope)
			if p.Error == "panic" {
				panic("handler bug")
			}
			return bus.Permanent(fmt.Errorf("bad config"))
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	_ = b.Publish(ctx, failed(t, "r", "permanent"))
	m := readDeadLetter(t, b, "picky")
	if m.Header.Get(bus.HeaderDeadLetterError) != "bad config" || calls.Load() != 1 {
		t.Fatalf("permanent: error %q after %d calls", m.Header.Get(bus.HeaderDeadLetterError), calls.Load())
	}
	_ = b.Publish(ctx, failed(t, "r", "panic"))
	waitFor(t, func() bool { return deadLetters(t, b, "picky") == 2 })
	m = readDeadLetter(t, b, "picky")
	if !strings.Contains(m.Header.Get(bus.HeaderDeadLetterError), "handler bug") {
		t.Fatalf("panic dead letter: %q", m.Header.Get(bus.HeaderDeadLetterError))
	}
}

func TestMalformedMessagesAreDeadLettered(t *testing.T) {
	b, _ := bustest.New(t)
	ctx := t.Context()
	col := newCollector()
	sub, err := b.Subscribe(ctx, bus.Consumer{Name: "strict", Handler: col.handle})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if _, err := b.JetStream().Publish(ctx, "eft.run.r.run.failed.v1", []byte(`{"id":"nope"}`)); err != nil {
		t.Fatal(err)
	}
	m := readDeadLetter(t, b, "strict")
	if !strings.Contains(m.Header.Get(bus.HeaderDeadLetterError), `envelope id "nope" is not a ULID`) {
		t.Fatalf("error header %q", m.Header.Get(bus.HeaderDeadLetterError))
	}
	// The consumer goes on with the next message.
	good := failed(t, "r", "fine")
	_ = b.Publish(ctx, good)
	if d := col.next(t); d.Envelope.ID != good.ID {
		t.Fatalf("next delivery %s", d.Envelope.ID)
	}
}

func TestDurableConsumerResumesWhereItStopped(t *testing.T) {
	b, _ := bustest.New(t)
	ctx := t.Context()
	col := newCollector()
	// A message the server handed to the closing subscriber's last pull comes
	// back after AckWait: keep it short so the test does not wait a minute.
	sub, err := b.Subscribe(ctx, bus.Consumer{Name: "durable", AckWait: time.Second, Handler: col.handle})
	if err != nil {
		t.Fatal(err)
	}
	first := failed(t, "r", "1")
	_ = b.Publish(ctx, first)
	col.next(t)
	if err := sub.Close(); err != nil {
		t.Fatal(err)
	}
	// Published while nobody consumes: delivered after the restart, and the
	// acknowledged first one is not delivered again.
	second := failed(t, "r", "2")
	_ = b.Publish(ctx, second)
	col2 := newCollector()
	sub, err = b.Subscribe(ctx, bus.Consumer{Name: "durable", AckWait: time.Second, Handler: col2.handle})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if d := col2.next(t); d.Envelope.ID != second.ID {
		t.Fatalf("after restart got %s, want %s", d.Envelope.ID, second.ID)
	}
	col2.none(t, 1500*time.Millisecond)
}

func TestStartAfterReplaysFromAPosition(t *testing.T) {
	b, _ := bustest.New(t)
	ctx := t.Context()
	var ids []string
	for i := range 5 {
		env := failed(t, "r", fmt.Sprint(i))
		ids = append(ids, env.ID)
		_ = b.Publish(ctx, env)
	}
	col := newCollector()
	sub, err := b.Subscribe(ctx, bus.Consumer{Name: "projection", StartAfter: func() uint64 { return 3 }, FastAck: true, Handler: col.handle})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	for _, want := range ids[3:] {
		if d := col.next(t); d.Envelope.ID != want {
			t.Fatalf("got %s, want %s", d.Envelope.ID, want)
		}
	}
	col.none(t, 200*time.Millisecond)
}

// One trace spans the publish and the handler, and an event the handler
// publishes carries the same trace id.
func TestTraceContextCrossesTheBus(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	srv := bustest.Server(t)
	b := bustest.Connect(t, srv, bus.Options{TracerProvider: tp})
	ctx := t.Context()
	reply := make(chan events.Envelope, 1)
	sub, err := b.Subscribe(ctx, bus.Consumer{Name: "reactor", Subjects: []string{events.TypeSubjects(events.TypeRunRequested)},
		Handler: func(ctx context.Context, d bus.Delivery) error {
			env, err := b.PublishCausedBy(ctx, d.Envelope, "reactor", events.RunFailed{Stage: "ingest", Error: "no"})
			reply <- env
			return err
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()

	ctx, root := tp.Tracer("cli").Start(ctx, "eft submit")
	req, _ := events.New("run-t", "cli", events.RunRequested{Config: events.ConfigSource{FileName: "c.yml"}})
	if err := b.Publish(ctx, req); err != nil {
		t.Fatal(err)
	}
	root.End()
	var got events.Envelope
	select {
	case got = <-reply:
	case <-time.After(10 * time.Second):
		t.Fatal("no reaction")
	}
	traceID := root.SpanContext().TraceID().String()
	if !strings.Contains(got.TraceParent, traceID) {
		t.Fatalf("reaction traceparent %q does not carry trace %s", got.TraceParent, traceID)
	}
	waitFor(t, func() bool { return len(rec.Ended()) >= 4 })
	kinds := map[string]trace.SpanKind{}
	for _, s := range rec.Ended() {
		if s.SpanContext().TraceID().String() != traceID {
			t.Errorf("span %q has trace %s, want %s", s.Name(), s.SpanContext().TraceID(), traceID)
		}
		kinds[s.Name()] = s.SpanKind()
	}
	for name, kind := range map[string]trace.SpanKind{
		"eft submit":               trace.SpanKindInternal,
		"publish run.requested.v1": trace.SpanKindProducer,
		"process run.requested.v1": trace.SpanKindConsumer,
		"publish run.failed.v1":    trace.SpanKindProducer,
	} {
		if kinds[name] != kind {
			t.Errorf("span %q: kind %v, want %v (spans: %v)", name, kinds[name], kind, kinds)
		}
	}
}

func TestJobsGoToOneWorkerAtATimeAndComeBackWhenItDies(t *testing.T) {
	b, srv := bustest.New(t)
	ctx := t.Context()
	ref := events.ArtifactRef{Bucket: "b", Name: "n", SHA256: strings.Repeat("0", 64), Size: 1}
	job, err := events.New("run-j", "test", events.TrainJob{Config: "c", Train: ref, Format: "f", MicroBatches: 1, SequenceLen: 8, MicroBatchSize: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Publish(ctx, job); err != nil {
		t.Fatal(err)
	}
	const ackWait = 600 * time.Millisecond

	// Worker 1 takes the job, heartbeats well past AckWait, then "dies"
	// (its context ends without an ack).
	ctx1, kill := context.WithCancel(ctx)
	took := make(chan uint64, 1)
	b1 := bustest.Connect(t, srv, bus.Options{Name: "worker-1"})
	go func() {
		_ = b1.ServeJobs(ctx1, bus.JobConsumer{Name: "trainer", AckWait: ackWait, Handler: func(ctx context.Context, j *bus.Job) error {
			took <- j.Attempt
			<-ctx.Done()
			return ctx.Err()
		}})
	}()
	if a := <-took; a != 1 {
		t.Fatalf("first attempt numbered %d", a)
	}
	// Worker 2 is idle meanwhile: heartbeats keep the job with worker 1.
	took2 := make(chan *bus.Job, 1)
	b2 := bustest.Connect(t, srv, bus.Options{Name: "worker-2"})
	go func() {
		_ = b2.ServeJobs(ctx, bus.JobConsumer{Name: "trainer", AckWait: ackWait, Handler: func(ctx context.Context, j *bus.Job) error {
			took2 <- j
			return nil
		}})
	}()
	select {
	case j := <-took2:
		t.Fatalf("worker 2 got the job (attempt %d) while worker 1 heartbeated", j.Attempt)
	case <-time.After(3 * ackWait):
	}
	kill()
	select {
	case j := <-took2:
		if j.Attempt != 2 || j.Envelope.ID != job.ID {
			t.Fatalf("worker 2 got attempt %d of %s", j.Attempt, j.Envelope.ID)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the dead worker's job never came back")
	}
	// Acked by worker 2: the work queue is empty.
	waitFor(t, func() bool {
		s, _ := b.JetStream().Stream(ctx, bus.JobsStream)
		info, err := s.Info(ctx)
		return err == nil && info.State.Msgs == 0
	})
}

func TestConnectErrorsNameTheServer(t *testing.T) {
	_, err := bus.Connect(t.Context(), "nats://127.0.0.1:1", bus.Options{})
	if err == nil || !strings.Contains(err.Error(), "nats://127.0.0.1:1") {
		t.Fatalf("err = %v", err)
	}
	if _, err := bus.StartEmbedded(bus.EmbeddedOptions{}); err == nil {
		t.Fatal("embedded server without a directory started")
	}
	b, _ := bustest.New(t)
	if _, err := b.Subscribe(t.Context(), bus.Consumer{Name: "has.dot", Handler: func(context.Context, bus.Delivery) error { return nil }}); err == nil {
		t.Fatal("consumer name with a dot accepted")
	}
	_ = nats.ErrTimeout
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
