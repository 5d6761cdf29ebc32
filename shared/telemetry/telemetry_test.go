package telemetry_test

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

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

// The otlp exporter posts OTLP/JSON to {endpoint}/v1/traces: the span's
// ids in hex, its parent, kind, attributes of each type, status, events
// and the service.name resource, with the configured headers; a collector
// answering 5xx is an export error naming the URL and status.
func TestOTLPExporterPostsTheSpans(t *testing.T) {
	var mu sync.Mutex
	var bodies [][]byte
	var headers []http.Header
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		if r.URL.Path != "/v1/traces" || r.Method != http.MethodPost {
			http.Error(w, "wrong path "+r.URL.Path, http.StatusNotFound)
			return
		}
		bodies = append(bodies, body)
		headers = append(headers, r.Header.Clone())
	}))
	defer srv.Close()
	tp, shutdown, err := telemetry.Setup(telemetry.Config{ServiceName: "tracker", Exporter: "otlp", Endpoint: srv.URL + "/",
		Headers: map[string]string{"Authorization": "Bearer t0ken"}})
	if err != nil {
		t.Fatal(err)
	}
	tr := tp.Tracer("eft/bus", trace.WithInstrumentationVersion("1"))
	ctx, parent := tr.Start(t.Context(), "run")
	_, child := tr.Start(ctx, "consume", trace.WithSpanKind(trace.SpanKindConsumer))
	child.SetAttributes(attribute.String("eft.run", "r1"), attribute.Int64("eft.step", 7), attribute.Float64("loss", 1.5),
		attribute.Bool("retry", true), attribute.StringSlice("tags", []string{"a", "b"}))
	child.AddEvent("acked", trace.WithAttributes(attribute.Int("n", 2)))
	child.SetStatus(codes.Error, "bad payload")
	child.End()
	parent.End()
	if err := shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(bodies) == 0 {
		t.Fatal("nothing was posted")
	}
	if ct := headers[0].Get("Content-Type"); ct != "application/json" || headers[0].Get("Authorization") != "Bearer t0ken" {
		t.Errorf("headers %v", headers[0])
	}
	var req struct {
		ResourceSpans []struct {
			Resource struct {
				Attributes []struct {
					Key   string
					Value map[string]any
				}
			}
			ScopeSpans []struct {
				Scope struct{ Name, Version string }
				Spans []struct {
					TraceID, SpanID, ParentSpanID, Name string
					Kind                                int
					StartTimeUnixNano, EndTimeUnixNano  string
					Attributes                          []struct {
						Key   string
						Value map[string]any
					}
					Events []struct{ Name string }
					Status struct {
						Code    int
						Message string
					}
				}
			}
		}
	}
	if err := json.Unmarshal(bodies[0], &req); err != nil {
		t.Fatalf("%v in %s", err, bodies[0])
	}
	rs := req.ResourceSpans
	if len(rs) != 1 || len(rs[0].ScopeSpans) != 1 || rs[0].ScopeSpans[0].Scope.Name != "eft/bus" || rs[0].ScopeSpans[0].Scope.Version != "1" {
		t.Fatalf("grouping: %s", bodies[0])
	}
	if !strings.Contains(string(bodies[0]), `{"key":"service.name","value":{"stringValue":"tracker"}}`) {
		t.Errorf("no service.name resource in %s", bodies[0])
	}
	spans := rs[0].ScopeSpans[0].Spans
	if len(spans) != 2 {
		t.Fatalf("%d spans, want 2: %s", len(spans), bodies[0])
	}
	c, p := spans[0], spans[1]
	ptid, psid := parent.SpanContext().TraceID(), parent.SpanContext().SpanID()
	if c.Name != "consume" || c.TraceID != hex.EncodeToString(ptid[:]) || c.ParentSpanID != hex.EncodeToString(psid[:]) || p.ParentSpanID != "" || len(c.SpanID) != 16 {
		t.Errorf("ids: child %+v, parent %+v", c, p)
	}
	if c.Kind != 5 || p.Kind != 1 || c.Status.Code != 2 || c.Status.Message != "bad payload" || len(c.Events) != 1 || c.Events[0].Name != "acked" {
		t.Errorf("kind, status or events: %+v", c)
	}
	if start, _ := strconv.ParseInt(c.StartTimeUnixNano, 10, 64); start <= 0 || c.EndTimeUnixNano < c.StartTimeUnixNano {
		t.Errorf("times %s..%s", c.StartTimeUnixNano, c.EndTimeUnixNano)
	}
	want := map[string]string{"eft.run": `{"stringValue":"r1"}`, "eft.step": `{"intValue":"7"}`, "loss": `{"doubleValue":1.5}`,
		"retry": `{"boolValue":true}`, "tags": `{"arrayValue":{"values":[{"stringValue":"a"},{"stringValue":"b"}]}}`}
	for _, a := range c.Attributes {
		got, _ := json.Marshal(a.Value)
		if w, ok := want[a.Key]; ok && string(got) != w {
			t.Errorf("attribute %s = %s, want %s", a.Key, got, w)
		}
		delete(want, a.Key)
	}
	if len(want) != 0 {
		t.Errorf("attributes missing: %v", want)
	}
}

func TestOTLPExportErrorsNameTheCollector(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "quota exceeded", http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	var exportErr error
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) { exportErr = err }))
	defer otel.SetErrorHandler(otel.ErrorHandlerFunc(func(error) {}))
	tp, shutdown, err := telemetry.Setup(telemetry.Config{Exporter: "otlp", Endpoint: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	_, span := tp.Tracer("t").Start(t.Context(), "x")
	span.End()
	err = shutdown(t.Context())
	if err == nil {
		err = exportErr
	}
	if err == nil || !strings.Contains(err.Error(), srv.URL+"/v1/traces") || !strings.Contains(err.Error(), "503") || !strings.Contains(err.Error(), "quota exceeded") {
		t.Fatalf("export error %v", err)
	}
	for _, bad := range []telemetry.Config{{Exporter: "otlp", Endpoint: "collector:4317"}} {
		if _, _, err := telemetry.Setup(bad); err == nil || !strings.Contains(err.Error(), "collector:4317") {
			t.Errorf("endpoint %q: err = %v", bad.Endpoint, err)
		}
	}
	t.Setenv("OTEL_EXPORTER_OTLP_HEADERS", "novalue")
	if _, _, err := telemetry.Setup(telemetry.Config{Exporter: "otlp"}); err == nil || !strings.Contains(err.Error(), "OTEL_EXPORTER_OTLP_HEADERS") {
		t.Errorf("bad headers: err = %v", err)
	}
}
