package blas

import (
	"math"
	"strings"
	"testing"
	"time"
)

func TestMeasurePeak(t *testing.T) {
	p := MeasurePeak(50 * time.Millisecond)
	if !(p.GFLOPS > 0) || math.IsInf(p.GFLOPS, 0) {
		t.Fatalf("GFLOPS = %v, want a positive finite rate", p.GFLOPS)
	}
	if p.Runs < 3 || p.Size != peakSize || p.Threads != Threads() || p.Implementation != Implementation() {
		t.Fatalf("peak %+v does not describe its own measurement", p)
	}
	if s := p.String(); !strings.Contains(s, "GFLOP/s") || !strings.Contains(s, p.Implementation) {
		t.Fatalf("String() = %q", s)
	}
	t.Log(p)
}
