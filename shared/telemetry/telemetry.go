// Package telemetry sets up OpenTelemetry tracing for an eft process: a
// tracer provider that always makes trace and span ids (so every event
// records the trace it belongs to, and one run is one trace), exporting the
// spans nowhere by default, to stdout as JSON, or to a writer of the caller's.
//
// It owns the process-wide setup only; spans around messages are made by
// shared/bus.
package telemetry

import (
	"context"
	"fmt"
	"io"
	"os"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// Exporters Setup knows.
const (
	ExporterNone   = "none"
	ExporterStdout = "stdout"
)

// Config for Setup. The zero value traces without exporting.
type Config struct {
	// ServiceName is the service.name resource attribute ("eft", "tracker").
	ServiceName string
	// Exporter is "none" (the default, also for "") or "stdout"; $EFT_TRACES
	// sets it for the CLI.
	Exporter string
	// Writer receives the stdout exporter's JSON; nil means os.Stdout.
	Writer io.Writer
}

// Setup builds the tracer provider, installs it and the W3C propagator as
// the process's globals, and returns it with its shutdown (which flushes).
func Setup(cfg Config) (trace.TracerProvider, func(context.Context) error, error) {
	name := cfg.ServiceName
	if name == "" {
		name = "eft"
	}
	opts := []sdktrace.TracerProviderOption{
		sdktrace.WithResource(resource.NewSchemaless(attribute.String("service.name", name))),
		sdktrace.WithSampler(sdktrace.AlwaysSample()),
	}
	switch cfg.Exporter {
	case "", ExporterNone:
	case ExporterStdout:
		w := cfg.Writer
		if w == nil {
			w = os.Stdout
		}
		exp, err := stdouttrace.New(stdouttrace.WithWriter(w))
		if err != nil {
			return nil, nil, fmt.Errorf("telemetry: stdout exporter: %w", err)
		}
		opts = append(opts, sdktrace.WithSyncer(exp))
	default:
		return nil, nil, fmt.Errorf("telemetry: unknown exporter %q (want %q or %q)", cfg.Exporter, ExporterNone, ExporterStdout)
	}
	tp := sdktrace.NewTracerProvider(opts...)
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	return tp, tp.Shutdown, nil
}
