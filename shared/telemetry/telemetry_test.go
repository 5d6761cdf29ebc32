package telemetry_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/eftml/eft/shared/telemetry"
)

func TestStdoutExporterWritesTheSpans(t *testing.T) {
	var out bytes.Buffer
	tp, shutdown, err := telemetry.Setup(telemetry.Config{ServiceName: "test-svc", Exporter: "stdout", Writer: &out})
	if err != nil {
		t.Fatal(err)
	}
	_, span := tp.Tracer("t").Start(t.Context(), "unit of work")
	traceID := span.SpanContext().TraceID().String()
	span.End()
	if err := shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	var got struct {
		Name        string
		SpanContext struct{ TraceID string }
		Resource    []struct {
			Key   string
			Value struct{ Value any }
		}
	}
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatalf("exporter wrote %q: %v", out.String(), err)
	}
	if got.Name != "unit of work" || got.SpanContext.TraceID != traceID {
		t.Fatalf("exported %+v", got)
	}
	if !strings.Contains(out.String(), "test-svc") {
		t.Fatalf("service name missing from %s", out.String())
	}
}

func TestNoneStillMakesTraceIDs(t *testing.T) {
	tp, shutdown, err := telemetry.Setup(telemetry.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer shutdown(t.Context())
	_, span := tp.Tracer("t").Start(t.Context(), "x")
	defer span.End()
	if !span.SpanContext().IsValid() {
		t.Fatal("no trace id without an exporter")
	}
	if _, _, err := telemetry.Setup(telemetry.Config{Exporter: "zipkin"}); err == nil || !strings.Contains(err.Error(), `"zipkin"`) {
		t.Fatalf("unknown exporter: err = %v", err)
	}
}
