package trainer

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/eftml/eft/events"
	"github.com/eftml/eft/services/runspec"
	"github.com/eftml/eft/shared/bus"
)

// watcher follows what the rest of the system says about a run while it
// trains: RunCancelled or RunFailed stop it; EvalCompleted results join the
// log history its checkpoints carry.
type watcher struct {
	halt    atomic.Bool
	history *runspec.History
	cc      jetstream.ConsumeContext
}

// watchRun starts following runID's events from the first (a cancel that
// came before the job started counts too).
func watchRun(ctx context.Context, b *bus.Bus, runID string, h *runspec.History) (*watcher, error) {
	w := &watcher{history: h}
	cons, err := b.JetStream().OrderedConsumer(ctx, bus.EventsStream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{
			events.Subject(runID, events.TypeRunCancelled),
			events.Subject(runID, events.TypeRunFailed),
			events.Subject(runID, events.TypeEvalCompleted),
		},
		DeliverPolicy: jetstream.DeliverAllPolicy,
	})
	if err != nil {
		return nil, fmt.Errorf("trainer: following run %s: %w", runID, err)
	}
	w.cc, err = cons.Consume(func(msg jetstream.Msg) {
		env, err := events.Decode(msg.Data())
		if err != nil {
			return
		}
		switch env.Type {
		case events.TypeRunCancelled, events.TypeRunFailed:
			w.halt.Store(true)
		case events.TypeEvalCompleted:
			if p, err := events.PayloadAs[events.EvalCompleted](env); err == nil {
				w.history.AddEval(p)
			}
		}
	})
	if err != nil {
		return nil, fmt.Errorf("trainer: following run %s: %w", runID, err)
	}
	return w, nil
}

// stopped reports whether the run was cancelled or failed.
func (w *watcher) stopped() bool { return w.halt.Load() }

// stoppedWithin waits up to d for the run to be cancelled or failed: a
// peer that stopped for it may be a moment ahead of this trainer's view.
func (w *watcher) stoppedWithin(d time.Duration) bool {
	for deadline := time.Now().Add(d); !w.stopped(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			return false
		}
	}
	return true
}

func (w *watcher) stop() { w.cc.Stop() }
