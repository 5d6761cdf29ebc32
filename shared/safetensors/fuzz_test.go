package safetensors

import (
	"bytes"
	"os"
	"slices"
	"testing"

	"github.com/eftml/eft/shared/testfixtures"
)

// FuzzParse feeds arbitrary bytes to the reader: it must return an error or
// a file whose every tensor can be read and re-encoded into an equal file —
// never panic. The seed corpus (testdata/fuzz/FuzzParse) holds small valid
// and broken files; the qwen2 adapter fixture is added here.
func FuzzParse(f *testing.F) {
	if b, err := os.ReadFile(testfixtures.Path(f, "hf", "qwen2-lora", "adapter_model.safetensors")); err == nil {
		f.Add(b)
	}
	f.Add(header(`{"a":{"dtype":"BF16","shape":[2,2],"data_offsets":[0,8]},"__metadata__":{"format":"pt"}}`, 8))
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := Parse("fuzz", data)
		if err != nil {
			return
		}
		var tensors []NamedTensor
		for _, n := range file.Names() {
			tt, err := file.Tensor(n)
			if err != nil {
				t.Fatalf("listed tensor %q cannot be read: %v", n, err)
			}
			if tt.DType.IsFloat() {
				if _, err := tt.Float32s(); err != nil {
					t.Fatalf("%q: %v", n, err)
				}
			}
			tensors = append(tensors, NamedTensor{n, tt})
		}
		var buf bytes.Buffer
		if err := Encode(&buf, tensors, file.Metadata()); err != nil {
			t.Fatalf("re-encoding a valid file: %v", err)
		}
		again, err := Parse("again", buf.Bytes())
		if err != nil {
			t.Fatalf("re-encoded file does not parse: %v", err)
		}
		for _, n := range file.Names() {
			a, _ := file.Tensor(n)
			b, err := again.Tensor(n)
			if err != nil || !bytes.Equal(a.Data, b.Data) || !slices.Equal(a.Shape, b.Shape) || a.DType != b.DType {
				t.Fatalf("tensor %q changed in the round trip", n)
			}
		}
	})
}
