package schedule

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
)

func mustNew(t *testing.T, kind string, lr float64, warmup, total int, opt Options) *Schedule {
	t.Helper()
	s, err := New(kind, lr, warmup, total, opt)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func f(v float64) *float64 { return &v }

// Values worked out by hand from transformers' lr_lambda definitions, for
// warmup 10 and 110 total steps (100 decay steps) at base lr 2.
func TestScheduleValues(t *testing.T) {
	c45 := 0.5 * (1 + math.Cos(math.Pi/4)) // cosine a quarter of the way
	cases := []struct {
		kind string
		opt  Options
		want map[int]float64
	}{
		{Constant, Options{}, map[int]float64{0: 2, 5: 2, 500: 2}},
		{ConstantWithWarmup, Options{}, map[int]float64{0: 0, 1: 0.2, 5: 1, 10: 2, 500: 2}},
		{Linear, Options{}, map[int]float64{0: 0, 5: 1, 10: 2, 35: 1.5, 60: 1, 110: 0, 200: 0}},
		{Cosine, Options{}, map[int]float64{0: 0, 5: 1, 10: 2, 35: 2 * c45, 60: 1, 85: 2 * (1 - c45), 110: 0}},
		// Past the end, cosine keeps going round (transformers does not clamp progress).
		{Cosine, Options{}, map[int]float64{160: 1, 210: 2, 310: 0}},
		{CosineWithMinLR, Options{MinLRRate: f(0.1)}, map[int]float64{5: 1, 10: 2, 60: 2 * (0.1 + 0.9*0.5), 110: 0.2}},
		{CosineWithMinLR, Options{MinLR: f(0.5)}, map[int]float64{110: 0.5, 60: 2 * (0.25 + 0.75*0.5)}},
		{CosineWithRestarts, Options{NumCycles: f(2)}, map[int]float64{10: 2, 35: 1, 59: 2 * 0.5 * (1 + math.Cos(math.Pi*0.98)), 60: 2, 110: 0}},
		{Polynomial, Options{LREnd: f(0.5), Power: f(2)}, map[int]float64{10: 2, 60: 1.5*0.25 + 0.5, 110: 0.5, 111: 0.5}},
		{InverseSqrt, Options{}, map[int]float64{5: 1, 10: 2, 40: 2 / math.Sqrt(4), 1000: 0.2}},
	}
	for _, c := range cases {
		s := mustNew(t, c.kind, 2, 10, 110, c.opt)
		for step, want := range c.want {
			if got := s.LR(step); math.Abs(got-want) > 1e-12 {
				t.Errorf("%s %+v: LR(%d) = %.15g, want %.15g", c.kind, c.opt, step, got, want)
			}
		}
	}
	// No warmup: the first update already runs at the full rate.
	if lr := mustNew(t, Linear, 1e-3, 0, 4, Options{}).LR(0); lr != 1e-3 {
		t.Errorf("linear without warmup LR(0) = %g", lr)
	}
}

func TestScheduleErrors(t *testing.T) {
	cases := []struct {
		kind string
		lr   float64
		w, n int
		opt  Options
		want string
	}{
		{"cosine_annealing", 1, 0, 10, Options{}, `unknown lr_scheduler "cosine_annealing"`},
		{Linear, -1, 0, 10, Options{}, "learning rate -1"},
		{Linear, 1, -2, 10, Options{}, "warmup steps -2"},
		{CosineWithMinLR, 1, 0, 10, Options{}, "exactly one of min_lr and min_lr_rate"},
		{CosineWithMinLR, 1, 0, 10, Options{MinLR: f(0.1), MinLRRate: f(0.1)}, "exactly one"},
		{CosineWithMinLR, 1, 0, 10, Options{MinLRRate: f(2)}, "within [0, 1]"},
		{Polynomial, 1e-8, 0, 10, Options{}, "lr_end"},
	}
	for _, c := range cases {
		_, err := New(c.kind, c.lr, c.w, c.n, c.opt)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.kind, err, c.want)
		}
	}
}

func TestAxolotlWarmupRule(t *testing.T) {
	i := func(v int) *int { return &v }
	cases := []struct {
		total int
		steps *int
		ratio *float64
		want  int
	}{
		{1000, i(50), nil, 50},
		{1000, nil, f(0.1), 100},
		{999, nil, f(0.1), 99}, // int() truncates
		{10000, nil, nil, 100}, // 3% capped at 100
		{1000, nil, nil, 30},   // 3%
		{40, nil, nil, 2},      // int(1.2) = 1 becomes 2
		{20, nil, f(0.05), 2},  // 1 becomes 2
		{20, i(0), nil, 0},
		{10, nil, nil, 0},
	}
	for _, c := range cases {
		got, err := WarmupSteps(c.total, c.steps, c.ratio)
		if err != nil || got != c.want {
			t.Errorf("total %d steps %v ratio %v: %d, %v; want %d", c.total, c.steps, c.ratio, got, err, c.want)
		}
	}
	if _, err := WarmupSteps(100, i(5), f(0.1)); err == nil {
		t.Error("warmup_steps with warmup_ratio accepted")
	}
}

func TestScheduleJSONRoundTrip(t *testing.T) {
	s := mustNew(t, CosineWithMinLR, 3e-4, 7, 90, Options{MinLRRate: f(0.1)})
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var back Schedule
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	for step := range 100 {
		if back.LR(step) != s.LR(step) {
			t.Fatalf("LR(%d) differs after JSON: %g vs %g (%s)", step, back.LR(step), s.LR(step), b)
		}
	}
}
