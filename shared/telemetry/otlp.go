package telemetry

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// otlpExporter sends spans to an OpenTelemetry collector with OTLP over
// HTTP in its JSON encoding (POST {endpoint}/v1/traces). It is written
// here, against the OTLP specification, because the OpenTelemetry OTLP
// exporter module pulls in a genproto version that conflicts with the
// module graph's; the JSON encoding needs no protobuf code.
type otlpExporter struct {
	url     string
	headers map[string]string
	client  *http.Client

	mu       sync.Mutex
	shutdown bool
}

// DefaultOTLPEndpoint is where spans go when neither Config.Endpoint nor
// $OTEL_EXPORTER_OTLP_ENDPOINT says otherwise: a collector on this host.
const DefaultOTLPEndpoint = "http://localhost:4318"

func newOTLPExporter(endpoint string, headers map[string]string) (*otlpExporter, error) {
	if endpoint == "" {
		endpoint = DefaultOTLPEndpoint
	}
	if !strings.HasPrefix(endpoint, "http://") && !strings.HasPrefix(endpoint, "https://") {
		return nil, fmt.Errorf("telemetry: OTLP endpoint %q: want an http:// or https:// URL (OTLP over HTTP, port 4318 by convention)", endpoint)
	}
	return &otlpExporter{url: strings.TrimSuffix(endpoint, "/") + "/v1/traces", headers: headers, client: &http.Client{Timeout: 10 * time.Second}}, nil
}

// ExportSpans implements sdktrace.SpanExporter.
func (e *otlpExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	e.mu.Lock()
	done := e.shutdown
	e.mu.Unlock()
	if done || len(spans) == 0 {
		return nil
	}
	body, err := json.Marshal(otlpRequest(spans))
	if err != nil {
		return fmt.Errorf("telemetry: encoding %d spans: %w", len(spans), err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("telemetry: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range e.headers {
		req.Header.Set(k, v)
	}
	resp, err := e.client.Do(req)
	if err != nil {
		return fmt.Errorf("telemetry: exporting %d spans to %s: %w", len(spans), e.url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("telemetry: exporting %d spans to %s: %s: %s", len(spans), e.url, resp.Status, strings.TrimSpace(string(msg)))
	}
	io.Copy(io.Discard, resp.Body)
	return nil
}

// Shutdown implements sdktrace.SpanExporter.
func (e *otlpExporter) Shutdown(context.Context) error {
	e.mu.Lock()
	e.shutdown = true
	e.mu.Unlock()
	return nil
}

// The OTLP/JSON shapes (opentelemetry-proto's trace/v1 in the protobuf JSON
// mapping: ids as hex, 64-bit integers as decimal strings, enums as
// numbers).
type (
	otlpTraces struct {
		ResourceSpans []otlpResourceSpans `json:"resourceSpans"`
	}
	otlpResourceSpans struct {
		Resource   otlpResource     `json:"resource"`
		ScopeSpans []otlpScopeSpans `json:"scopeSpans"`
	}
	otlpResource struct {
		Attributes []otlpKeyValue `json:"attributes"`
	}
	otlpScopeSpans struct {
		Scope otlpScope  `json:"scope"`
		Spans []otlpSpan `json:"spans"`
	}
	otlpScope struct {
		Name    string `json:"name"`
		Version string `json:"version,omitempty"`
	}
	otlpSpan struct {
		TraceID           string         `json:"traceId"`
		SpanID            string         `json:"spanId"`
		ParentSpanID      string         `json:"parentSpanId,omitempty"`
		Name              string         `json:"name"`
		Kind              int            `json:"kind"`
		StartTimeUnixNano string         `json:"startTimeUnixNano"`
		EndTimeUnixNano   string         `json:"endTimeUnixNano"`
		Attributes        []otlpKeyValue `json:"attributes,omitempty"`
		Events            []otlpEvent    `json:"events,omitempty"`
		Links             []otlpLink     `json:"links,omitempty"`
		Status            otlpStatus     `json:"status"`
	}
	otlpEvent struct {
		TimeUnixNano string         `json:"timeUnixNano"`
		Name         string         `json:"name"`
		Attributes   []otlpKeyValue `json:"attributes,omitempty"`
	}
	otlpLink struct {
		TraceID    string         `json:"traceId"`
		SpanID     string         `json:"spanId"`
		Attributes []otlpKeyValue `json:"attributes,omitempty"`
	}
	otlpStatus struct {
		Code    int    `json:"code"`
		Message string `json:"message,omitempty"`
	}
	otlpKeyValue struct {
		Key   string       `json:"key"`
		Value otlpAnyValue `json:"value"`
	}
	otlpAnyValue struct {
		StringValue *string         `json:"stringValue,omitempty"`
		BoolValue   *bool           `json:"boolValue,omitempty"`
		IntValue    *string         `json:"intValue,omitempty"`
		DoubleValue *float64        `json:"doubleValue,omitempty"`
		ArrayValue  *otlpArrayValue `json:"arrayValue,omitempty"`
	}
	otlpArrayValue struct {
		Values []otlpAnyValue `json:"values"`
	}
)

// otlpRequest groups spans by resource and instrumentation scope.
func otlpRequest(spans []sdktrace.ReadOnlySpan) otlpTraces {
	var out otlpTraces
	resIndex := map[string]int{}
	for _, s := range spans {
		resKey := s.Resource().Encoded(attribute.DefaultEncoder())
		ri, ok := resIndex[resKey]
		if !ok {
			ri = len(out.ResourceSpans)
			resIndex[resKey] = ri
			out.ResourceSpans = append(out.ResourceSpans, otlpResourceSpans{Resource: otlpResource{Attributes: otlpAttributes(s.Resource().Attributes())}})
		}
		rs := &out.ResourceSpans[ri]
		sc := s.InstrumentationScope()
		scopeID := -1
		for i, ss := range rs.ScopeSpans {
			if ss.Scope.Name == sc.Name && ss.Scope.Version == sc.Version {
				scopeID = i
			}
		}
		if scopeID < 0 {
			scopeID = len(rs.ScopeSpans)
			rs.ScopeSpans = append(rs.ScopeSpans, otlpScopeSpans{Scope: otlpScope{Name: sc.Name, Version: sc.Version}})
		}
		rs.ScopeSpans[scopeID].Spans = append(rs.ScopeSpans[scopeID].Spans, otlpSpanOf(s))
	}
	return out
}

func otlpSpanOf(s sdktrace.ReadOnlySpan) otlpSpan {
	sc := s.SpanContext()
	tid, sid := sc.TraceID(), sc.SpanID()
	o := otlpSpan{
		TraceID:           hex.EncodeToString(tid[:]),
		SpanID:            hex.EncodeToString(sid[:]),
		Name:              s.Name(),
		Kind:              int(s.SpanKind()), // trace.SpanKind numbers are OTLP's
		StartTimeUnixNano: unixNano(s.StartTime()),
		EndTimeUnixNano:   unixNano(s.EndTime()),
		Attributes:        otlpAttributes(s.Attributes()),
		Status:            otlpStatus{Message: s.Status().Description},
	}
	if p := s.Parent(); p.IsValid() {
		psid := p.SpanID()
		o.ParentSpanID = hex.EncodeToString(psid[:])
	}
	switch s.Status().Code { // OTLP: 0 unset, 1 ok, 2 error
	case codes.Ok:
		o.Status.Code = 1
	case codes.Error:
		o.Status.Code = 2
	}
	for _, ev := range s.Events() {
		o.Events = append(o.Events, otlpEvent{TimeUnixNano: unixNano(ev.Time), Name: ev.Name, Attributes: otlpAttributes(ev.Attributes)})
	}
	for _, l := range s.Links() {
		ltid, lsid := l.SpanContext.TraceID(), l.SpanContext.SpanID()
		o.Links = append(o.Links, otlpLink{TraceID: hex.EncodeToString(ltid[:]), SpanID: hex.EncodeToString(lsid[:]), Attributes: otlpAttributes(l.Attributes)})
	}
	return o
}

func unixNano(t time.Time) string {
	if t.IsZero() {
		return "0"
	}
	return strconv.FormatInt(t.UnixNano(), 10)
}

func otlpAttributes(kvs []attribute.KeyValue) []otlpKeyValue {
	out := make([]otlpKeyValue, 0, len(kvs))
	for _, kv := range kvs {
		out = append(out, otlpKeyValue{Key: string(kv.Key), Value: otlpValue(kv.Value)})
	}
	return out
}

func otlpValue(v attribute.Value) otlpAnyValue {
	str := func(s string) otlpAnyValue { return otlpAnyValue{StringValue: &s} }
	integer := func(i int64) otlpAnyValue { s := strconv.FormatInt(i, 10); return otlpAnyValue{IntValue: &s} }
	double := func(f float64) otlpAnyValue { return otlpAnyValue{DoubleValue: &f} }
	boolean := func(b bool) otlpAnyValue { return otlpAnyValue{BoolValue: &b} }
	switch v.Type() {
	case attribute.BOOL:
		return boolean(v.AsBool())
	case attribute.INT64:
		return integer(v.AsInt64())
	case attribute.FLOAT64:
		return double(v.AsFloat64())
	case attribute.STRING:
		return str(v.AsString())
	case attribute.BOOLSLICE:
		return otlpArray(v.AsBoolSlice(), boolean)
	case attribute.INT64SLICE:
		return otlpArray(v.AsInt64Slice(), integer)
	case attribute.FLOAT64SLICE:
		return otlpArray(v.AsFloat64Slice(), double)
	case attribute.STRINGSLICE:
		return otlpArray(v.AsStringSlice(), str)
	}
	return str(v.Emit())
}

func otlpArray[T any](xs []T, value func(T) otlpAnyValue) otlpAnyValue {
	vals := make([]otlpAnyValue, len(xs))
	for i, x := range xs {
		vals[i] = value(x)
	}
	return otlpAnyValue{ArrayValue: &otlpArrayValue{Values: vals}}
}
