package pyjson

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/eftml/eft/shared/testfixtures"
)

// cases is testdata/pyjson/cases.json, which gen.py writes with CPython.
type cases struct {
	Floats []struct {
		Bits       string
		Repr, JSON string
	}
	Strings []struct {
		S           string
		ASCII, UTF8 string
	}
	Docs []struct {
		Doc, Indent2, Compact string
		Indent2UTF8           string `json:"indent2_utf8"`
	}
}

func loadCases(t *testing.T) cases {
	t.Helper()
	data, err := os.ReadFile(testfixtures.Path(t, "pyjson", "cases.json"))
	if err != nil {
		t.Fatal(err)
	}
	var c cases
	if err := json.Unmarshal(data, &c); err != nil {
		t.Fatal(err)
	}
	if len(c.Floats) < 600 || len(c.Strings) < 10 || len(c.Docs) < 5 {
		t.Fatalf("cases.json holds %d floats, %d strings, %d documents: too few", len(c.Floats), len(c.Strings), len(c.Docs))
	}
	return c
}

func TestFloatsAsPythonSpellsThem(t *testing.T) {
	for _, c := range loadCases(t).Floats {
		u, err := strconv.ParseUint(c.Bits, 16, 64)
		if err != nil {
			t.Fatal(err)
		}
		f := math.Float64frombits(u)
		if got := string(AppendFloatRepr(nil, f)); got != c.Repr {
			t.Errorf("repr(%s) = %s, Python %s", c.Bits, got, c.Repr)
		}
		if got := string(AppendFloat([]byte("x"), f)); got != "x"+c.JSON {
			t.Errorf("json.dumps(%s) = %s, Python %s", c.Bits, got[1:], c.JSON)
		}
	}
}

func TestStringsAsPythonQuotesThem(t *testing.T) {
	for _, c := range loadCases(t).Strings {
		if got := string(AppendString(nil, c.S, true)); got != c.ASCII {
			t.Errorf("json.dumps(%q) = %s, Python %s", c.S, got, c.ASCII)
		}
		if got := string(AppendString(nil, c.S, false)); got != c.UTF8 {
			t.Errorf("json.dumps(%q, ensure_ascii=False) = %s, Python %s", c.S, got, c.UTF8)
		}
	}
	// Go strings may hold bytes that are not UTF-8; Python's cannot. They
	// are written as the replacement character.
	if got := string(AppendString(nil, "a\xffb", true)); got != `"a\ufffdb"` {
		t.Errorf("invalid UTF-8: %s", got)
	}
}

// goValue decodes a document into the Go values Marshal takes, keeping
// Python's int/float distinction: a number with a '.' or an exponent is a
// float.
func goValue(t *testing.T, doc string) any {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(doc))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatal(err)
	}
	var conv func(any) any
	conv = func(v any) any {
		switch x := v.(type) {
		case json.Number:
			if strings.ContainsAny(string(x), ".eE") {
				f, err := x.Float64()
				if err != nil {
					t.Fatal(err)
				}
				return f
			}
			n, err := x.Int64()
			if err != nil {
				t.Fatal(err)
			}
			return n
		case []any:
			for i := range x {
				x[i] = conv(x[i])
			}
		case map[string]any:
			for k := range x {
				x[k] = conv(x[k])
			}
		}
		return v
	}
	return conv(v)
}

func TestDocumentsAsJSONDumpsWritesThem(t *testing.T) {
	for _, c := range loadCases(t).Docs {
		v := goValue(t, c.Doc)
		for _, w := range []struct {
			opts Options
			want string
		}{{Options{Indent: "  "}, c.Indent2}, {Options{}, c.Compact}, {Options{Indent: "  ", KeepNonASCII: true}, c.Indent2UTF8}} {
			got, err := Marshal(v, w.opts)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != w.want {
				t.Errorf("%+v: %s\ngot\n%s\nPython\n%s", w.opts, c.Doc, got, w.want)
			}
		}
	}
}

// Typed slices and maps are written as their []any and map[string]any
// forms; json.Number keeps its spelling.
func TestTypedContainers(t *testing.T) {
	typed := map[string]any{
		"s": []string{"a"}, "i": []int{1, 2}, "i64": []int64{3}, "f": []float64{0.5, 2},
		"ms": map[string]string{"k": "v"}, "mi": map[string]int{"k": 1}, "mi64": map[string]int64{"k": 2},
		"mf": map[string]float64{"k": 1e-7}, "n": json.Number("1.50"), "none": []string(nil),
	}
	plain := map[string]any{
		"s": []any{"a"}, "i": []any{1, 2}, "i64": []any{int64(3)}, "f": []any{0.5, 2.0},
		"ms": map[string]any{"k": "v"}, "mi": map[string]any{"k": 1}, "mi64": map[string]any{"k": 2},
		"mf": map[string]any{"k": 1e-7}, "n": json.Number("1.50"), "none": []any{},
	}
	a, err := Marshal(typed, Options{Indent: "  "})
	if err != nil {
		t.Fatal(err)
	}
	b, err := Marshal(plain, Options{Indent: "  "})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) || !bytes.Contains(a, []byte(`"n": 1.50`)) || !bytes.Contains(a, []byte(`"k": 1e-07`)) {
		t.Errorf("typed\n%s\nplain\n%s", a, b)
	}
}

func TestUnsupportedTypeIsAnError(t *testing.T) {
	_, err := Marshal(map[string]any{"k": []any{struct{}{}}}, Options{})
	if err == nil || !strings.Contains(err.Error(), "struct {}") {
		t.Errorf("got %v, want an error naming the type", err)
	}
}
