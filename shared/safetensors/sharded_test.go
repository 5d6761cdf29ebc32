package safetensors

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/eftml/eft/shared/testfixtures"
)

// llamaTensors returns the llama fixture's tensors in state-dict order
// (embeddings, layers, norm, head) with their data copied out of the mapping.
func llamaTensors(t *testing.T) []NamedTensor {
	t.Helper()
	f, err := Open(testfixtures.Path(t, "hf", "llama", "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []NamedTensor
	for _, n := range f.Names() {
		tt, _ := f.Tensor(n)
		tt.Data = bytes.Clone(tt.Data)
		out = append(out, NamedTensor{n, tt})
	}
	return out
}

func TestWriteModelShardsAndReadsBack(t *testing.T) {
	tensors := llamaTensors(t)
	dir := t.TempDir()
	// lm_head and embed_tokens are 512 KiB each: bigger than the limit, they
	// get shards of their own; the 40 KiB layer matrices fill 100 KiB shards.
	files, err := WriteModel(dir, "model", tensors, map[string]string{"format": "pt"}, 100_000)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 4 || files[len(files)-1] != "model.safetensors.index.json" {
		t.Fatalf("files %v", files)
	}
	nShards := len(files) - 1
	if !strings.HasSuffix(files[0], "-of-"+pad5(nShards)+".safetensors") {
		t.Errorf("shard name %s", files[0])
	}
	src, err := OpenModel(dir, "model")
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if _, ok := src.(*Sharded); !ok {
		t.Fatalf("OpenModel returned %T, want the sharded reader", src)
	}
	if len(src.Names()) != len(tensors) {
		t.Fatalf("%d tensors back, want %d", len(src.Names()), len(tensors))
	}
	for _, nt := range tensors {
		got, err := src.Tensor(nt.Name)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.Data, nt.Data) || !slices.Equal(got.Shape, nt.Shape) {
			t.Errorf("%s differs after the sharded round trip", nt.Name)
		}
	}
	for _, name := range files[:nShards] {
		st, _ := os.Stat(filepath.Join(dir, name))
		f, _ := Open(filepath.Join(dir, name))
		var data int64
		for _, n := range f.Names() {
			info, _ := f.Info(n)
			data += info.End - info.Begin
		}
		if data > 100_000 && len(f.Names()) > 1 {
			t.Errorf("%s holds %d bytes of tensors in %d tensors (file %d bytes)", name, data, len(f.Names()), st.Size())
		}
		f.Close()
	}
	index, _ := os.ReadFile(filepath.Join(dir, "model.safetensors.index.json"))
	var total int64
	for _, nt := range tensors {
		total += int64(len(nt.Data))
	}
	wantHead := "{\n  \"metadata\": {\n    \"total_parameters\": " + itoa(total/4) + ",\n    \"total_size\": " + itoa(total) + "\n  },\n  \"weight_map\": {\n    \"lm_head.weight\": \"model-00001-of-"
	if !strings.HasPrefix(string(index), wantHead) || !strings.HasSuffix(string(index), "\"\n  }\n}\n") {
		t.Errorf("index is not in transformers' layout:\n%s", index)
	}

	// Saving again unsharded removes the index and the shards.
	files, err = WriteModel(dir, "model", tensors, map[string]string{"format": "pt"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(dir)
	if len(files) != 1 || len(entries) != 1 || entries[0].Name() != "model.safetensors" {
		t.Errorf("after an unsharded save: files %v, directory %v", files, entries)
	}
	single, _ := os.ReadFile(filepath.Join(dir, "model.safetensors"))
	orig, _ := os.ReadFile(testfixtures.Path(t, "hf", "llama", "model.safetensors"))
	if !bytes.Equal(single, orig) {
		t.Error("an unsharded save of the llama fixture differs from what transformers wrote")
	}
}

func TestOpenIndexErrors(t *testing.T) {
	tensors := llamaTensors(t)[:3]
	dir := t.TempDir()
	if _, err := WriteModel(dir, "model", tensors, nil, 1); err != nil {
		t.Fatal(err)
	}
	indexPath := filepath.Join(dir, "model.safetensors.index.json")
	index, _ := os.ReadFile(indexPath)
	cases := []struct {
		name, index, want string
	}{
		{"not json", "{", "model.safetensors.index.json"},
		{"empty map", `{"weight_map":{}}`, "weight_map is missing or empty"},
		{"escape", `{"weight_map":{"lm_head.weight":"../x.safetensors"}}`, "not a file name"},
		{"missing shard", `{"weight_map":{"lm_head.weight":"model-00009-of-00009.safetensors"}}`, "names shard model-00009-of-00009.safetensors"},
		{"wrong shard", strings.Replace(string(index), `"lm_head.weight": "model-00001`, `"lm_head.weight": "model-00002`, 1), `puts "lm_head.weight" in model-00002-of-00003.safetensors, which does not hold it`},
	}
	for _, c := range cases {
		os.WriteFile(indexPath, []byte(c.index), 0o644)
		_, err := OpenModel(dir, "model")
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
	if _, err := OpenModel(t.TempDir(), "model"); err == nil || !strings.Contains(err.Error(), "neither model.safetensors nor model.safetensors.index.json") {
		t.Errorf("empty dir: %v", err)
	}
}

func pad5(n int) string { return fmt.Sprintf("%05d", n) }

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
