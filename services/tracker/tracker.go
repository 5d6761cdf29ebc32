package tracker

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/eftml/eft/shared/bus"
)

// ConsumerName is the tracker's durable consumer on EFT_EVENTS.
const ConsumerName = "tracker"

// Service consumes EFT_EVENTS into a Store.
type Service struct {
	bus   *bus.Bus
	store *Store

	mu      sync.Mutex
	applied chan struct{} // closed and replaced after each applied event
}

// New returns the tracker service over b, projecting into store. The caller
// owns store (and closes it after Run returns).
func New(b *bus.Bus, store *Store) *Service {
	return &Service{bus: b, store: store, applied: make(chan struct{})}
}

// Store is the service's projection, for the HTTP API.
func (s *Service) Store() *Store { return s.store }

// Run consumes events until ctx ends (nil) or the store cannot be written
// (an error: the tracker stops rather than skip an event).
func (s *Service) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	err := s.bus.Consume(ctx, bus.Consumer{
		Name:       ConsumerName,
		Stream:     bus.EventsStream,
		StartAfter: s.store.Position,
		FastAck:    true,
		Retry:      bus.RetryPolicy{MaxRetries: 5, InitialInterval: 100 * time.Millisecond},
		Handler: func(ctx context.Context, d bus.Delivery) error {
			if _, err := s.store.Apply(d.Envelope, d.StreamSeq); err != nil {
				return err
			}
			s.notify()
			return nil
		},
		OnDeadLetter: func(_ context.Context, d bus.Delivery, _ []byte, err error) {
			if d.Envelope.ID == "" {
				// Not an event at all: it is in the dead-letter stream; move past it.
				if aerr := s.store.Advance(d.StreamSeq); aerr == nil {
					s.notify()
					return
				}
			}
			cancel(fmt.Errorf("tracker: stopping at stream sequence %d: %w", d.StreamSeq, err))
		},
	})
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
		return cause
	}
	return err
}

func (s *Service) notify() {
	s.mu.Lock()
	close(s.applied)
	s.applied = make(chan struct{})
	s.mu.Unlock()
}

// WaitFor blocks until the store's position reaches seq or ctx ends.
func (s *Service) WaitFor(ctx context.Context, seq uint64) error {
	for {
		s.mu.Lock()
		ch := s.applied
		s.mu.Unlock()
		if s.store.Position() >= seq {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("tracker: at stream sequence %d, waiting for %d: %w", s.store.Position(), seq, ctx.Err())
		}
	}
}

// Advance moves the position past seq without projecting anything (for a
// stream message that is not an event).
func (s *Store) Advance(seq uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if seq <= s.pos {
		return nil
	}
	b := s.db.NewBatch()
	defer b.Close()
	_ = b.Set(keyPosition, seqBytes(seq), nil)
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("tracker: advancing to %d: %w", seq, err)
	}
	s.pos = seq
	return nil
}

// Rebuild deletes the store in dir and replays EFT_EVENTS into a new one, up
// to the stream's last message at the time of the call; it returns the new
// store, open. No tracker may be running on dir (the store's lock ensures it).
func Rebuild(ctx context.Context, b *bus.Bus, dir string) (*Store, error) {
	old, err := OpenStore(dir)
	if err != nil {
		return nil, err
	}
	if err := old.Close(); err != nil {
		return nil, err
	}
	if err := os.RemoveAll(dir); err != nil {
		return nil, fmt.Errorf("tracker: removing %s: %w", dir, err)
	}
	store, err := OpenStore(dir)
	if err != nil {
		return nil, err
	}
	last, err := b.LastSequence(ctx, bus.EventsStream)
	if err != nil {
		store.Close()
		return nil, err
	}
	if last == 0 {
		return store, nil
	}
	svc := New(b, store)
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- svc.Run(runCtx) }()
	waitErr := svc.WaitFor(ctx, last)
	stop()
	if err := <-done; err != nil && waitErr == nil {
		waitErr = err
	}
	if waitErr != nil {
		store.Close()
		return nil, waitErr
	}
	return store, nil
}
