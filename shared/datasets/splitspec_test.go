package datasets

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// Split specs as Hugging Face datasets reads them (split: in a dataset
// entry, e.g. Axolotl's "train[:20%]"): slices by percent, rounded half to
// even as Python's round, or by row index, negative from the end; pieces
// joined by "+". Expected rows worked out by hand from datasets'
// ReadInstruction rules.
func TestSplitSlices(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, n int) {
		var b strings.Builder
		for i := range n {
			fmt.Fprintf(&b, "{\"text\": \"%s %d\"}\n", strings.TrimSuffix(name, ".jsonl"), i)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("train.jsonl", 10)
	write("validation.jsonl", 4)
	for _, c := range []struct {
		split string
		want  []string
	}{
		{"train[:20%]", []string{"train 0", "train 1"}},
		{"train[:25%]", []string{"train 0", "train 1"}},                       // 2.5 rounds to 2
		{"train[:35%]", []string{"train 0", "train 1", "train 2", "train 3"}}, // 3.5 rounds to 4
		{"train[-30%:]", []string{"train 7", "train 8", "train 9"}},
		{"train[2:5]", []string{"train 2", "train 3", "train 4"}},
		{"train[-2:]", []string{"train 8", "train 9"}},
		{"train[5:2]", nil},
		{"validation[50%:]+train[:1]", []string{"validation 2", "validation 3", "train 0"}},
		{"train+validation", []string{"train 0", "train 1", "train 2", "train 3", "train 4", "train 5", "train 6", "train 7", "train 8", "train 9",
			"validation 0", "validation 1", "validation 2", "validation 3"}},
	} {
		ds := load(t, Spec{Path: dir, Split: c.split}, Options{})
		if got := texts(ds.Rows); !slices.Equal(got, c.want) || ds.Report.Rows != len(c.want) || ds.Split != c.split {
			t.Errorf("split %s: rows %q (report %d, split %q), want %q", c.split, got, ds.Report.Rows, ds.Split, c.want)
		}
	}
	for split, want := range map[string]string{
		"train[:11]":     "requested slice [0:11] is incompatible with its 10 rows",
		"train[:101%]":   "a percent boundary lies in [-100, 100]",
		"train[1%:5]":    "mixes percent and absolute boundaries",
		"train[:x]":      `"train[:x]" is not a split name or a slice`,
		"test[:10%]":     `split "test" not found (splits: [train validation])`,
		"train+test[:1]": `split "test" not found`,
	} {
		_, err := Load(context.Background(), Spec{Path: dir, Split: split}, Options{})
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), dir) {
			t.Errorf("split %s: error %v, want one naming the dataset and saying %q", split, err, want)
		}
	}
}

// Any split spec either parses into pieces whose bounds, for any row count,
// are an in-range slice or an error — never a panic.
func FuzzSplitSpec(f *testing.F) {
	for _, s := range []string{"train", "train[:20%]", "train[-30%:]", "train[2:5]", "a+b[1:-1]", "x[:]", "t[-100%:100%]", "t[%:]",
		"t[-9223372036854775808:]", "t[:-9223372036854775808%]"} {
		f.Add(s, 10)
	}
	f.Fuzz(func(t *testing.T, spec string, n int) {
		if n < 0 || n > 1<<20 {
			return
		}
		parts, err := parseSplitSpec(spec)
		if err != nil {
			return
		}
		for _, p := range parts {
			lo, hi, err := p.bounds(n)
			if err == nil && (lo < 0 || hi < lo || hi > n) {
				t.Fatalf("%q over %d rows: [%d:%d]", spec, n, lo, hi)
			}
		}
	})
}
