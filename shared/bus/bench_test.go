package bus_test

import (
	"context"
	"sort"
	"testing"
	"time"

	"github.com/eftml/eft/events"
	"github.com/eftml/eft/shared/bus"
	"github.com/eftml/eft/shared/bus/bustest"
)

// BenchmarkPublishToHandlerLatency publishes one event at a time on the
// embedded server (file store, like `eft train`) and measures the time from
// the Publish call to the durable consumer's handler receiving it, through
// the full middleware chain. Reports p50 and p99.
func BenchmarkPublishToHandlerLatency(b *testing.B) {
	bb, _ := bustest.New(b)
	ctx := context.Background()
	got := make(chan time.Time, 1)
	sub, err := bb.Subscribe(ctx, bus.Consumer{Name: "latency", Handler: func(ctx context.Context, d bus.Delivery) error {
		got <- time.Now()
		return nil
	}})
	if err != nil {
		b.Fatal(err)
	}
	defer sub.Close()
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		env, err := events.New("bench", "bench", events.MetricsLogged{Step: int64(i), Values: map[string]events.Metric{"loss": 1.5}})
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		if err := bb.Publish(ctx, env); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, (<-got).Sub(start))
	}
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}
