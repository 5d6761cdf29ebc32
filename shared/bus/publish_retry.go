package bus

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// DefaultPublishRetryFor is how long a publish keeps retrying through a
// server restart or a network cut when Options.PublishRetryFor is zero.
const DefaultPublishRetryFor = 2 * time.Minute

// publishRetrying publishes msg, retrying what a server restart or a network
// cut causes (ack timeouts, no responders while JetStream recovers, a
// reconnecting connection) until Options.PublishRetryFor has passed. The
// message's Nats-Msg-Id makes a repeat of a publish that did reach the
// stream harmless. What the server refused on purpose (an API error), a
// closed connection or an oversized message fails at once.
func (b *Bus) publishRetrying(ctx context.Context, subject string, msg *message.Message) error {
	deadline := time.Now().Add(b.opts.PublishRetryFor)
	wait := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := b.pub.wm.Publish(subject, msg)
		if err == nil || !transientPublishError(err) || b.opts.PublishRetryFor < 0 || time.Now().After(deadline) {
			if err != nil && attempt > 1 {
				err = fmt.Errorf("%w (gave up after %d attempts)", err, attempt)
			}
			return err
		}
		b.slog.Warn("bus: publish failed; retrying", "subject", subject, "attempt", attempt, "error", err)
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (while retrying after %w)", ctx.Err(), err)
		case <-time.After(wait):
		}
		wait = min(2*wait, 2*time.Second)
	}
}

func transientPublishError(err error) bool {
	if errors.Is(err, nats.ErrConnectionClosed) || errors.Is(err, nats.ErrMaxPayload) || errors.Is(err, nats.ErrBadSubject) {
		return false
	}
	var api *jetstream.APIError
	return !errors.As(err, &api)
}
