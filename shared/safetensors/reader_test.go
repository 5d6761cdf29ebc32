package safetensors

import (
	"bytes"
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/eftml/eft/shared/testfixtures"
)

// fixtureFiles are safetensors files written by Python's safetensors (the Rust
// implementation) through transformers and peft.
var fixtureFiles = []string{
	"llama/model.safetensors", "llama/reference.safetensors",
	"mistral/model.safetensors", "qwen2/model.safetensors", "qwen3/model.safetensors",
	"llama-lora/adapter_model.safetensors", "llama-lora/reference.safetensors",
	"qwen2-lora/adapter_model.safetensors",
}

func TestReadLlamaFixture(t *testing.T) {
	f, err := Open(testfixtures.Path(t, "hf", "llama", "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if got := f.Metadata()["format"]; got != "pt" {
		t.Errorf("metadata format = %q, want pt", got)
	}
	// 2 layers x 9 tensors + embed_tokens + norm + lm_head.
	if n := len(f.Names()); n != 21 {
		t.Errorf("%d tensors, want 21: %v", n, f.Names())
	}
	want := map[string][]int{
		"lm_head.weight":                         {2048, 64},
		"model.embed_tokens.weight":              {2048, 64},
		"model.layers.1.self_attn.k_proj.weight": {32, 64},
		"model.layers.0.mlp.down_proj.weight":    {64, 160},
		"model.norm.weight":                      {64},
	}
	for name, shape := range want {
		info, ok := f.Info(name)
		if !ok {
			t.Fatalf("no %s", name)
		}
		if info.DType != F32 || !slices.Equal(info.Shape, shape) {
			t.Errorf("%s: %s %v, want F32 %v", name, info.DType, info.Shape, shape)
		}
	}
	// Matrices were drawn from normal(0, 0.2): the standard deviation tells
	// us the bytes were decoded as the floats they are.
	w, err := f.Float32s("model.layers.0.mlp.gate_proj.weight")
	if err != nil {
		t.Fatal(err)
	}
	var sum, sq float64
	for _, v := range w {
		sum += float64(v)
		sq += float64(v) * float64(v)
	}
	mean := sum / float64(len(w))
	std := math.Sqrt(sq/float64(len(w)) - mean*mean)
	if math.Abs(mean) > 0.01 || math.Abs(std-0.2) > 0.01 {
		t.Errorf("gate_proj mean %.4f std %.4f, want about 0 and 0.2", mean, std)
	}
	tensor, _ := f.Tensor("model.layers.0.mlp.gate_proj.weight")
	view, ok := tensor.Float32View()
	if !ok {
		t.Fatal("no zero-copy view of an aligned F32 tensor")
	}
	for i := range w {
		if view[i] != w[i] {
			t.Fatalf("view[%d] = %v, copy has %v", i, view[i], w[i])
		}
	}
}

func TestReadIntegerReference(t *testing.T) {
	f, err := Open(testfixtures.Path(t, "hf", "llama", "reference.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Metadata() != nil {
		t.Errorf("reference has no __metadata__, got %v", f.Metadata())
	}
	labels, err := f.Int64s("labels")
	if err != nil {
		t.Fatal(err)
	}
	// FIXTURES.md: -100 on the first 5 labels of row 0 and the first 3 of row 1.
	for i, v := range labels {
		row, col := i/16, i%16
		ignored := (row == 0 && col < 5) || (row == 1 && col < 3)
		if ignored != (v == -100) {
			t.Errorf("labels[%d][%d] = %d", row, col, v)
		}
		if !ignored && (v < 0 || v >= 2048) {
			t.Errorf("labels[%d][%d] = %d is not a token id", row, col, v)
		}
	}
	lens, _ := f.Int64s("packed.seq_lens")
	if !slices.Equal(lens, []int64{5, 7, 4}) {
		t.Errorf("packed.seq_lens = %v, want [5 7 4]", lens)
	}
	if _, err := f.Float32s("labels"); err == nil || !strings.Contains(err.Error(), "labels") {
		t.Errorf("reading I64 labels as float32: err = %v, want an error naming the tensor", err)
	}
	if _, err := f.Int64s("loss"); err == nil {
		t.Error("reading F32 loss as int64 succeeded")
	}
}

// Re-encoding what Python's safetensors wrote must give back the same bytes:
// order, JSON spelling, padding and data.
func TestEncodeReproducesFixturesByteForByte(t *testing.T) {
	for _, rel := range fixtureFiles {
		path := testfixtures.Path(t, "hf", rel)
		orig, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		f, err := Parse(rel, orig)
		if err != nil {
			t.Fatal(err)
		}
		var tensors []NamedTensor
		// Reverse-sorted input: the encoder, not the caller, owns the order.
		names := f.Names()
		for i := len(names) - 1; i >= 0; i-- {
			tensor, _ := f.Tensor(names[i])
			tensors = append(tensors, NamedTensor{names[i], tensor})
		}
		var buf bytes.Buffer
		if err := Encode(&buf, tensors, f.Metadata()); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(buf.Bytes(), orig) {
			n := binary.LittleEndian.Uint64(orig)
			t.Errorf("%s: re-encoded file differs\n got header %q\nwant header %q", rel,
				buf.Bytes()[8:min(len(buf.Bytes()), 8+int(n))], orig[8:8+n])
		}
	}
}

// Byte strings from the Rust implementation's own serialization tests.
func TestEncodeMatchesRustVectors(t *testing.T) {
	data := []float32{0, 1, 2, 3, 4, 5}
	enc := func(name string, shape []int, meta map[string]string, tensors bool) []byte {
		var list []NamedTensor
		if tensors {
			tt, err := FromFloat32(F32, shape, data)
			if err != nil {
				t.Fatal(err)
			}
			list = append(list, NamedTensor{name, tt})
		}
		var buf bytes.Buffer
		if err := Encode(&buf, list, meta); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	floats := []byte{0, 0, 0, 0, 0, 0, 128, 63, 0, 0, 0, 64, 0, 0, 64, 64, 0, 0, 128, 64, 0, 0, 160, 64}
	cases := []struct {
		name string
		got  []byte
		want []byte
	}{
		{"attn.0", enc("attn.0", []int{1, 2, 3}, nil, true),
			append(append([]byte{64, 0, 0, 0, 0, 0, 0, 0}, `{"attn.0":{"dtype":"F32","shape":[1,2,3],"data_offsets":[0,24]}}`...), floats...)},
		{"attn0 padded", enc("attn0", []int{1, 1, 2, 3}, nil, true),
			append(append([]byte{72, 0, 0, 0, 0, 0, 0, 0}, `{"attn0":{"dtype":"F32","shape":[1,1,2,3],"data_offsets":[0,24]}}       `...), floats...)},
		{"empty", enc("", nil, nil, false), append([]byte{8, 0, 0, 0, 0, 0, 0, 0}, "{}      "...)},
		{"metadata only", enc("", nil, map[string]string{"framework": "pt"}, false),
			append([]byte{40, 0, 0, 0, 0, 0, 0, 0}, `{"__metadata__":{"framework":"pt"}}     `...)},
	}
	for _, c := range cases {
		if !bytes.Equal(c.got, c.want) {
			t.Errorf("%s:\n got %q\nwant %q", c.name, c.got, c.want)
		}
		if _, err := Parse(c.name, c.got); err != nil {
			t.Errorf("%s: cannot read back: %v", c.name, err)
		}
	}
}

func TestEncodeOrdersByAlignmentThenName(t *testing.T) {
	one := func(d DType) Tensor { return Tensor{DType: d, Shape: []int{1}, Data: make([]byte, d.Size())} }
	tensors := []NamedTensor{
		{"a.u8", one(U8)}, {"b.f32", one(F32)}, {"a.f32", one(F32)}, {"c.i32", one(I32)},
		{"z.i64", one(I64)}, {"d.bf16", one(BF16)}, {"e.f16", one(F16)}, {"f.u64", one(U64)},
	}
	var buf bytes.Buffer
	if err := Encode(&buf, tensors, nil); err != nil {
		t.Fatal(err)
	}
	f, err := Parse("order", buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	for pos := int64(0); pos < int64(len(f.data)); {
		for _, n := range f.Names() {
			if info, _ := f.Info(n); info.Begin == pos {
				order = append(order, n)
				pos = info.End
			}
		}
	}
	// The Rust Dtype enum order: ... BF16 < I32 < U32 < F32 < F64 < I64 < U64.
	want := []string{"f.u64", "z.i64", "a.f32", "b.f32", "c.i32", "d.bf16", "e.f16", "a.u8"}
	if strings.Join(order, " ") != strings.Join(want, " ") {
		t.Errorf("data order %v, want %v", order, want)
	}
}

func TestJSONStringsEscapeLikeSerde(t *testing.T) {
	tt, _ := FromFloat32(F32, []int{1}, []float32{1})
	var buf bytes.Buffer
	name := "a\"b\\c\n\x01<é>"
	if err := Encode(&buf, []NamedTensor{{name, tt}}, map[string]string{"k": "v&"}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(buf.Bytes(), []byte(`"a\"b\\c\n\u0001<é>"`)) || !bytes.Contains(buf.Bytes(), []byte(`"v&"`)) {
		t.Errorf("header %q", buf.Bytes())
	}
	f, err := Parse("escape", buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := f.Info(name); !ok {
		t.Errorf("name did not survive: %v", f.Names())
	}
}

// header builds a file from a header string and a data section of n bytes.
func header(h string, n int) []byte {
	b := make([]byte, 8, 8+len(h)+n)
	binary.LittleEndian.PutUint64(b, uint64(len(h)))
	b = append(b, h...)
	return append(b, make([]byte, n)...)
}

func TestBadFilesGiveClearErrors(t *testing.T) {
	good := header(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, 8)
	cases := []struct {
		name string
		file []byte
		want string
	}{
		{"empty", nil, "truncated"},
		{"short length", []byte{1, 2, 3}, "truncated"},
		{"header past end", good[:20], "truncated: header length"},
		{"data cut", good[:len(good)-3], `"a": data_offsets [0, 8] run past the 5-byte data section`},
		{"huge header", append([]byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0}, "{}"...), "exceeds"},
		{"not json", header(`{"a":`, 0), "header JSON"},
		{"not an object", header(`[1,2]`, 0), "does not start with '{'"},
		{"bad utf8", header("{\"\xff\":1}", 0), "UTF-8"},
		{"unknown dtype", header(`{"a":{"dtype":"F7","shape":[2],"data_offsets":[0,8]}}`, 8), `"a": unknown dtype "F7"`},
		{"missing dtype", header(`{"a":{"shape":[2],"data_offsets":[0,8]}}`, 8), `"a": missing dtype`},
		{"missing offsets", header(`{"a":{"dtype":"F32","shape":[2]}}`, 8), `"a": missing data_offsets`},
		{"three offsets", header(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8,9]}}`, 8), "begin, end"},
		{"reversed offsets", header(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}}`, 8), "bad data_offsets"},
		{"negative offsets", header(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[-4,8]}}`, 8), "bad data_offsets"},
		{"shape mismatch", header(`{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}`, 8), `shape [3] of F32 needs 12 bytes`},
		{"negative dim", header(`{"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}`, 8), "negative dimension"},
		{"overflowing shape", header(`{"a":{"dtype":"F32","shape":[4611686018427387904,4611686018427387904,4],"data_offsets":[0,8]}}`, 8), "needs"},
		{"overlap", header(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, 8), `"b" [4, 8] overlaps tensor "a"`},
		{"gap", header(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, 8), "gap"},
		{"left over", header(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, 8), "cover 4 bytes but the data section has 8"},
		{"duplicate", header(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, 8), `"a" twice`},
		{"bad metadata", header(`{"__metadata__":{"n":1}}`, 0), "__metadata__ must map strings to strings"},
		{"trailing", header(`{} x`, 0), "trailing"},
		{"shape not numbers", header(`{"a":{"dtype":"F32","shape":["2"],"data_offsets":[0,8]}}`, 8), `tensor "a"`},
	}
	for _, c := range cases {
		_, err := Parse("bad.safetensors", c.file)
		if err == nil {
			t.Errorf("%s: no error", c.name)
			continue
		}
		if !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "bad.safetensors") {
			t.Errorf("%s: error %q, want it to name the file and say %q", c.name, err, c.want)
		}
	}
	if _, err := Parse("good", good); err != nil {
		t.Fatalf("the well-formed control case fails: %v", err)
	}
}

func TestOpenTruncatedAndMissingFiles(t *testing.T) {
	dir := t.TempDir()
	orig, err := os.ReadFile(testfixtures.Path(t, "hf", "qwen2-lora", "adapter_model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	cut := filepath.Join(dir, "cut.safetensors")
	if err := os.WriteFile(cut, orig[:len(orig)-100], 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(cut); err == nil || !strings.Contains(err.Error(), "truncated file?") || !strings.Contains(err.Error(), cut) {
		t.Errorf("truncated file: %v", err)
	}
	tiny := filepath.Join(dir, "tiny.safetensors")
	os.WriteFile(tiny, []byte{1}, 0o644)
	if _, err := Open(tiny); err == nil || !strings.Contains(err.Error(), "truncated") {
		t.Errorf("1-byte file: %v", err)
	}
	if _, err := Open(filepath.Join(dir, "absent.safetensors")); err == nil || !os.IsNotExist(errorsUnwrapAll(err)) {
		t.Errorf("absent file: %v", err)
	}
	f, err := Open(testfixtures.Path(t, "hf", "llama", "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	_, err = f.Tensor("layers.0.mlp.up_proj.weight")
	if err == nil || !strings.Contains(err.Error(), `did you mean "model.layers.0.mlp.up_proj.weight"`) {
		t.Errorf("missing tensor: %v", err)
	}
}

func errorsUnwrapAll(err error) error {
	for {
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return err
		}
		next := u.Unwrap()
		if next == nil {
			return err
		}
		err = next
	}
}

func TestWriteFileRoundTripAllDTypes(t *testing.T) {
	values := []float32{0, 1, -2.5, 3.1415927, 1e-3, -65504, 1e-7, 100}
	var tensors []NamedTensor
	for _, d := range []DType{F32, F16, BF16, F64} {
		tt, err := FromFloat32(d, []int{2, 4}, values)
		if err != nil {
			t.Fatal(err)
		}
		tensors = append(tensors, NamedTensor{"w." + string(d), tt})
	}
	ids, _ := FromInt64([]int{3}, []int64{-100, 0, 1 << 40})
	tensors = append(tensors, NamedTensor{"ids", ids})
	path := filepath.Join(t.TempDir(), "all.safetensors")
	if err := WriteFile(path, tensors, map[string]string{"format": "pt"}); err != nil {
		t.Fatal(err)
	}
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, d := range []DType{F32, F16, BF16, F64} {
		got, err := f.Float32s("w." + string(d))
		if err != nil {
			t.Fatal(err)
		}
		for i, v := range values {
			want := v
			switch d {
			case F16:
				want = F16ToFloat32(Float32ToF16(v))
			case BF16:
				want = BF16ToFloat32(Float32ToBF16(v))
			}
			if got[i] != want {
				t.Errorf("%s[%d] = %v, want %v", d, i, got[i], want)
			}
		}
	}
	gotIDs, _ := f.Int64s("ids")
	if !slices.Equal(gotIDs, []int64{-100, 0, 1 << 40}) {
		t.Errorf("ids = %v", gotIDs)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("WriteFile left temporary files: %v", entries)
	}
}

func TestWriterRejectsBadTensors(t *testing.T) {
	ok, _ := FromFloat32(F32, []int{2}, []float32{1, 2})
	cases := []struct {
		name    string
		tensors []NamedTensor
		want    string
	}{
		{"duplicate", []NamedTensor{{"a", ok}, {"a", ok}}, `"a" given twice`},
		{"empty name", []NamedTensor{{"", ok}}, "empty name"},
		{"not UTF-8", []NamedTensor{{"a\xff", ok}}, "not UTF-8"},
		{"reserved", []NamedTensor{{"__metadata__", ok}}, "reserved"},
		{"shape", []NamedTensor{{"a", Tensor{DType: F32, Shape: []int{3}, Data: ok.Data}}}, "does not match 8 bytes"},
		{"dtype", []NamedTensor{{"a", Tensor{DType: "F7", Shape: []int{2}, Data: ok.Data}}}, "unknown dtype"},
	}
	for _, c := range cases {
		path := filepath.Join(t.TempDir(), "x.safetensors")
		err := WriteFile(path, c.tensors, nil)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
		if _, statErr := os.Stat(path); statErr == nil {
			t.Errorf("%s: a file was written despite the error", c.name)
		}
	}
	if err := WriteFile(filepath.Join(t.TempDir(), "x.safetensors"), []NamedTensor{{"a", ok}}, map[string]string{"format": "p\xfft"}); err == nil || !strings.Contains(err.Error(), "not UTF-8") {
		t.Errorf("metadata that is not UTF-8: %v", err)
	}
	if _, err := FromFloat32(F32, []int{3}, []float32{1}); err == nil {
		t.Error("FromFloat32 accepted 1 value for shape [3]")
	}
	if _, err := FromFloat32(I32, []int{1}, []float32{1}); err == nil {
		t.Error("FromFloat32 accepted an integer dtype")
	}
}
