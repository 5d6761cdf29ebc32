package datasets

import (
	"strings"
	"testing"
)

// The counts are what datasets' train_test_split(test_size=...) gives
// Axolotl's val_set_size (int(v) above 1, else the float).
func TestValidationCountFollowsTrainTestSplit(t *testing.T) {
	for _, c := range []struct {
		n    int
		size float64
		want int
	}{
		{10, 0, 0},
		{10, 0.1, 1},
		{9, 0.25, 3}, // ceil(2.25)
		{45, 0.1, 5}, // ceil(4.5)
		{57, 0.1, 6}, // ceil(5.7)
		{100, 0.05, 5},
		{100, 0.07, 8},  // 0.07*100 is 7.000000000000001 in float64, as in Python
		{100, 0.29, 29}, // 28.999999999999996
		{3, 0.5, 2},
		{10, 4, 4},
		{10, 9, 9},
	} {
		got, err := ValidationCount(c.n, c.size)
		if err != nil || got != c.want {
			t.Errorf("ValidationCount(%d, %v) = %d, %v; want %d", c.n, c.size, got, err, c.want)
		}
	}
	for _, c := range []struct {
		n    int
		size float64
	}{{10, 1}, {10, 2.5}, {10, -0.1}, {10, 10}, {10, 11}, {10, 0.95}, {1, 0.5}, {0, 0.1}} {
		if _, err := ValidationCount(c.n, c.size); err == nil || !strings.Contains(err.Error(), "val_set_size") {
			t.Errorf("ValidationCount(%d, %v) error %v", c.n, c.size, err)
		}
	}
}

// texts is the "text" field of each row (splitspec_test.go uses it).
func texts(rows []Record) []string {
	var out []string
	for _, r := range rows {
		v, _ := r.Get("text")
		out = append(out, v.(string))
	}
	return out
}
