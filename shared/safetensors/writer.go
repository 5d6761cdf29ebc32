package safetensors

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"unicode/utf8"
	"unsafe"

	"github.com/eftml/eft/shared/pyjson"
)

// NamedTensor is a tensor with the name it is stored under.
type NamedTensor struct {
	Name string
	Tensor
}

// alignmentRank orders dtypes as the Rust implementation's Dtype enum does;
// files list tensors by descending rank, then by name, so that every tensor
// starts aligned to its element size.
var alignmentRank = map[DType]int{
	BOOL: 0, U8: 1, I8: 2, F8E5M2: 3, F8E4M3: 4, I16: 5, U16: 6, F16: 7, BF16: 8,
	I32: 9, U32: 10, F32: 11, F64: 12, I64: 13, U64: 14,
}

// ViewFloat32 wraps values as an F32 tensor without copying (on a
// little-endian host); the tensor aliases values, so write it before changing
// them. Use it to save parameters without doubling memory.
func ViewFloat32(shape []int, values []float32) (Tensor, error) {
	if !hostLittleEndian {
		return FromFloat32(F32, shape, values)
	}
	if err := checkShape(shape, len(values)); err != nil {
		return Tensor{}, err
	}
	var data []byte
	if len(values) > 0 {
		data = unsafe.Slice((*byte)(unsafe.Pointer(&values[0])), 4*len(values))
	}
	return Tensor{DType: F32, Shape: append([]int(nil), shape...), Data: data}, nil
}

// layout is a validated, ordered file plan: the header bytes (padded) and the
// tensors in data order.
type layout struct {
	header  []byte
	ordered []NamedTensor
	size    int64 // data section bytes
}

func plan(tensors []NamedTensor, metadata map[string]string) (*layout, error) {
	ordered := make([]NamedTensor, len(tensors))
	copy(ordered, tensors)
	seen := make(map[string]bool, len(tensors))
	for _, t := range ordered {
		switch {
		case t.Name == "":
			return nil, fmt.Errorf("a tensor has an empty name")
		case !utf8.ValidString(t.Name):
			return nil, fmt.Errorf("tensor %q: the name is not UTF-8, which a safetensors header must be", t.Name)
		case t.Name == metadataKey:
			return nil, fmt.Errorf("%q is reserved for metadata", metadataKey)
		case seen[t.Name]:
			return nil, fmt.Errorf("tensor %q given twice", t.Name)
		case !t.DType.Valid():
			return nil, fmt.Errorf("tensor %q: unknown dtype %q", t.Name, t.DType)
		}
		seen[t.Name] = true
		if err := checkShape(t.Shape, len(t.Data)/t.DType.Size()); err != nil || len(t.Data)%t.DType.Size() != 0 {
			return nil, fmt.Errorf("tensor %q: shape %v of %s does not match %d bytes of data", t.Name, t.Shape, t.DType, len(t.Data))
		}
	}
	sort.SliceStable(ordered, func(i, j int) bool {
		ri, rj := alignmentRank[ordered[i].DType], alignmentRank[ordered[j].DType]
		if ri != rj {
			return ri > rj
		}
		return ordered[i].Name < ordered[j].Name
	})
	for k, v := range metadata {
		if !utf8.ValidString(k) || !utf8.ValidString(v) {
			return nil, fmt.Errorf("metadata %q: %q: not UTF-8, which a safetensors header must be", k, v)
		}
	}
	// The header is written as serde_json writes it (Python's json.dumps
	// with ensure_ascii=False: only '"', '\\' and control characters are
	// escaped).
	h := []byte{'{'}
	if metadata != nil {
		h = pyjson.AppendString(h, metadataKey, false)
		h = append(h, ':', '{')
		for i, k := range sortedKeys(metadata) {
			if i > 0 {
				h = append(h, ',')
			}
			h = pyjson.AppendString(h, k, false)
			h = append(h, ':')
			h = pyjson.AppendString(h, metadata[k], false)
		}
		h = append(h, '}')
	}
	var offset int64
	for i, t := range ordered {
		if i > 0 || metadata != nil {
			h = append(h, ',')
		}
		h = pyjson.AppendString(h, t.Name, false)
		h = append(h, `:{"dtype":`...)
		h = pyjson.AppendString(h, string(t.DType), false)
		h = append(h, `,"shape":[`...)
		for j, d := range t.Shape {
			if j > 0 {
				h = append(h, ',')
			}
			h = strconv.AppendInt(h, int64(d), 10)
		}
		h = append(h, `],"data_offsets":[`...)
		h = strconv.AppendInt(h, offset, 10)
		offset += int64(len(t.Data))
		h = append(h, ',')
		h = strconv.AppendInt(h, offset, 10)
		h = append(h, ']', '}')
	}
	h = append(h, '}')
	for len(h)%8 != 0 {
		h = append(h, ' ')
	}
	return &layout{header: h, ordered: ordered, size: offset}, nil
}

// Encode writes a safetensors file to w: tensors ordered by dtype alignment
// then name, header padded with spaces to a multiple of 8 bytes, exactly as
// the Rust implementation (and so Python's safetensors) writes it. metadata
// may be nil; transformers and peft write {"format": "pt"}.
func Encode(w io.Writer, tensors []NamedTensor, metadata map[string]string) error {
	l, err := plan(tensors, metadata)
	if err != nil {
		return fmt.Errorf("safetensors: %w", err)
	}
	return l.write(w)
}

func (l *layout) write(w io.Writer) error {
	var n [8]byte
	binary.LittleEndian.PutUint64(n[:], uint64(len(l.header)))
	if _, err := w.Write(n[:]); err != nil {
		return err
	}
	if _, err := w.Write(l.header); err != nil {
		return err
	}
	for _, t := range l.ordered {
		if _, err := w.Write(t.Data); err != nil {
			return err
		}
	}
	return nil
}

// WriteFile writes a safetensors file atomically: into a temporary file in the
// same directory, synced, then renamed over path, so a crash leaves either the
// old file or the new one, never a torn one.
func WriteFile(path string, tensors []NamedTensor, metadata map[string]string) error {
	l, err := plan(tensors, metadata)
	if err != nil {
		return fmt.Errorf("safetensors: %s: %w", path, err)
	}
	return WriteAtomic(path, func(w io.Writer) error { return l.write(w) })
}

// WriteAtomic creates path through a temporary sibling file that is synced
// and renamed into place only when write succeeds. Checkpoints and adapters
// use it for their JSON files too.
func WriteAtomic(path string, write func(w io.Writer) error) (err error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("safetensors: %w", err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	bw := bufio.NewWriterSize(tmp, 1<<20)
	if err = write(bw); err != nil {
		return fmt.Errorf("safetensors: write %s: %w", path, err)
	}
	if err = bw.Flush(); err != nil {
		return fmt.Errorf("safetensors: write %s: %w", path, err)
	}
	if err = tmp.Sync(); err != nil {
		return fmt.Errorf("safetensors: sync %s: %w", path, err)
	}
	if err = tmp.Close(); err != nil {
		return fmt.Errorf("safetensors: close %s: %w", path, err)
	}
	if err = os.Chmod(tmp.Name(), 0o644); err != nil {
		return fmt.Errorf("safetensors: %w", err)
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("safetensors: %w", err)
	}
	return syncDir(dir)
}

// syncDir makes a rename durable; platforms that cannot open directories
// for sync are not an error.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return nil
	}
	defer d.Close()
	_ = d.Sync()
	return nil
}
