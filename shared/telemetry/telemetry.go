// Package telemetry sets up OpenTelemetry tracing for an eft process: a
// tracer provider that always makes trace and span ids (so every event
// records the trace it belongs to, and one run is one trace), exporting the
// spans nowhere by default, to stdout as JSON (or a writer of the caller's),
// or to an OpenTelemetry collector over OTLP/HTTP (otlp.go).
//
// It owns the process-wide setup only; spans around messages are made by
// shared/bus.
package telemetry

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"

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
	ExporterOTLP   = "otlp"
)

// Config for Setup. The zero value traces without exporting.
type Config struct {
	// ServiceName is the service.name resource attribute ("eft", "tracker").
	ServiceName string
	// Exporter is "none" (the default, also for ""), "stdout" or "otlp";
	// $EFT_TRACES sets it for the CLI.
	Exporter string
	// Writer receives the stdout exporter's JSON; nil means os.Stdout.
	Writer io.Writer
	// Endpoint is the OTLP/HTTP collector's base URL; "" means
	// $OTEL_EXPORTER_OTLP_ENDPOINT, else DefaultOTLPEndpoint. Headers
	// (e.g. an authorization token) are added to each export; nil means
	// $OTEL_EXPORTER_OTLP_HEADERS ("key=value,key2=value2").
	Endpoint string
	Headers  map[string]string
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
	case ExporterOTLP:
		endpoint, headers := cfg.Endpoint, cfg.Headers
		if endpoint == "" {
			endpoint = os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT")
		}
		if headers == nil {
			var err error
			if headers, err = parseHeaders(os.Getenv("OTEL_EXPORTER_OTLP_HEADERS")); err != nil {
				return nil, nil, err
			}
		}
		exp, err := newOTLPExporter(endpoint, headers)
		if err != nil {
			return nil, nil, err
		}
		opts = append(opts, sdktrace.WithBatcher(exp))
	default:
		return nil, nil, fmt.Errorf("telemetry: unknown exporter %q (want %q, %q or %q)", cfg.Exporter, ExporterNone, ExporterStdout, ExporterOTLP)
	}
	tp := sdktrace.NewTracerProvider(opts...)
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	return tp, tp.Shutdown, nil
}

// parseHeaders reads OTEL_EXPORTER_OTLP_HEADERS' "key=value,key2=value2"
// (values URL-encoded, as the specification says).
func parseHeaders(s string) (map[string]string, error) {
	out := map[string]string{}
	for _, pair := range strings.Split(s, ",") {
		if strings.TrimSpace(pair) == "" {
			continue
		}
		k, v, ok := strings.Cut(pair, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			return nil, fmt.Errorf("telemetry: OTEL_EXPORTER_OTLP_HEADERS: %q is not key=value", pair)
		}
		dv, err := url.QueryUnescape(strings.TrimSpace(v))
		if err != nil {
			return nil, fmt.Errorf("telemetry: OTEL_EXPORTER_OTLP_HEADERS: value of %q: %w", k, err)
		}
		out[k] = dv
	}
	return out, nil
}
