package bus

import (
	"context"
	"strings"

	"github.com/ThreeDotsLabs/watermill/message"
	"go.opentelemetry.io/otel/propagation"
)

// W3C trace-context header names, as the propagator writes them.
const (
	headerTraceParent = "traceparent"
	headerTraceState  = "tracestate"
)

// The bus always speaks W3C trace context, whatever global propagator the
// process set: the envelope format names these two fields.
var traceContext = propagation.TraceContext{}

// metadataCarrier lets the propagator read and write watermill metadata.
type metadataCarrier message.Metadata

func (c metadataCarrier) Get(key string) string { return message.Metadata(c).Get(key) }
func (c metadataCarrier) Set(key, value string) { message.Metadata(c).Set(key, value) }
func (c metadataCarrier) Keys() []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	return keys
}

func injectTrace(ctx context.Context, md message.Metadata) {
	traceContext.Inject(ctx, metadataCarrier(md))
}

// extractTrace returns ctx carrying the remote span context found in md
// (case-insensitively: NATS headers may come back canonicalised).
func extractTrace(ctx context.Context, md message.Metadata) context.Context {
	carrier := propagation.MapCarrier{}
	for k, v := range md {
		switch {
		case strings.EqualFold(k, headerTraceParent):
			carrier[headerTraceParent] = v
		case strings.EqualFold(k, headerTraceState):
			carrier[headerTraceState] = v
		}
	}
	return traceContext.Extract(ctx, carrier)
}
